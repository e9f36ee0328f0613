package unit

import (
	"os"
	"strings"
	"testing"
)

// TestManPageListsEverySetting: luod.service(5), the manual page of the
// unit settings, names every key luod implements, so that a key added to
// the parser without its documentation fails here.
func TestManPageListsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../docs/man/luod.service.5")
	if err != nil {
		t.Fatal(err)
	}
	page := strings.ReplaceAll(string(b), `\-`, "-")
	for id := range handlers {
		section, key, _ := strings.Cut(id, ".")
		if !strings.Contains(page, key+"=") {
			t.Errorf("docs/man/luod.service.5 does not mention [%s] %s=", section, key)
		}
	}
}
