package version

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	rev := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}}
	dirty := append(rev, debug.BuildSetting{Key: "vcs.modified", Value: "true"})
	for _, c := range []struct {
		version  string
		settings []debug.BuildSetting
		want     string
	}{
		{"", nil, "(devel)"},
		{"(devel)", rev, "(devel) 0123456789ab"},
		{"", dirty, "(devel) 0123456789ab-dirty"},
		{"v1.2.3", nil, "v1.2.3"},
		// A pseudo-version names its revision already.
		{"v0.0.0-20261203093000-0123456789ab", rev, "v0.0.0-20261203093000-0123456789ab"},
	} {
		bi := &debug.BuildInfo{Main: debug.Module{Version: c.version}, Settings: c.settings}
		if got := fromBuildInfo(bi); got != c.want {
			t.Errorf("fromBuildInfo(%q, %v) = %q, want %q", c.version, c.settings, got, c.want)
		}
	}
}

func TestLinkerWins(t *testing.T) {
	defer func(old string) { set = old }(set)
	set = "1.2.3"
	if got := String(); got != "1.2.3" {
		t.Errorf("String() = %q with the linker's 1.2.3", got)
	}
}
