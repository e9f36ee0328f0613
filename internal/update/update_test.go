package update

import (
	"strings"
	"testing"
)

func TestLUOSessionName(t *testing.T) {
	if got := LUOSessionName("counter.service", "state"); got != "luod/counter/state" {
		t.Errorf("short name = %q", got)
	}
	long := LUOSessionName(strings.Repeat("u", 60)+".service", "state")
	if len(long) > 63 || !strings.HasPrefix(long, "luod/uuu") || !Reserved(long) {
		t.Errorf("long name %q (%d bytes)", long, len(long))
	}
	if long != LUOSessionName(strings.Repeat("u", 60)+".service", "state") {
		t.Error("not deterministic")
	}
	if long == LUOSessionName(strings.Repeat("u", 60)+".service", "other") {
		t.Error("different names collide")
	}
	for name, want := range map[string]bool{"luod": true, "luod/x": true, "luodx": false, "cache": false} {
		if Reserved(name) != want {
			t.Errorf("Reserved(%q) = %v", name, !want)
		}
	}
}
