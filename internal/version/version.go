// Package version is the version luod and luoctl report: the one the
// build set with the linker,
//
//	go build -ldflags "-X github.com/liveupdate/luo/internal/version.set=1.2.3"
//
// (make build and make deb set it from git describe), else the main
// module's version and VCS revision that go build records. Both binaries
// of one build report the same string.
package version

import (
	"runtime/debug"
	"strings"
)

// set is the version the linker set (-X), if any.
var set string

// String returns the version.
func String() string {
	if set != "" {
		return set
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	return fromBuildInfo(bi)
}

// fromBuildInfo is the module's version, or "(devel)", followed by the
// VCS revision (12 digits, "-dirty" when the tree was modified) unless the
// version already names it.
func fromBuildInfo(bi *debug.BuildInfo) string {
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev = rev[:min(len(rev), 12)]; rev != "" && !strings.Contains(v, rev) {
		v += " " + rev + dirty
	}
	return v
}
