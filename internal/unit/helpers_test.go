package unit

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// diff returns "" when want and got are deeply equal, and a (-want +got)
// report otherwise. (go-cmp is not a dependency of this module.)
func diff(want, got any) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	return fmt.Sprintf("(-want +got)\n- %#v\n+ %#v", want, got)
}

// mustParse parses a unit file or fails the test.
func mustParse(t *testing.T, name, text string) *Unit {
	t.Helper()
	u, err := Parse(name, strings.NewReader(text))
	if err != nil {
		t.Fatalf("Parse(%q): %v", name, err)
	}
	return u
}

// service returns a minimal valid unit file with extra lines in [Service].
func service(lines ...string) string {
	return "[Service]\nExecStart=/bin/true\n" + strings.Join(lines, "\n") + "\n"
}
