//go:build linux

package supervisor

import (
	"os"
	"path/filepath"

	"github.com/liveupdate/luo/internal/execshim"
)

// ShimArg is the first argument that makes luod act as the exec shim.
const ShimArg = "--exec-shim"

// ShimName is the exec shim's binary, installed next to luod.
const ShimName = "luod-exec"

// RunShim is the exec shim in luod's own binary, luod re-executed as
// ShimArg PATH ARGV0 ARGS...: the fallback when luod-exec is not installed
// next to luod (see package execshim). It only returns on failure, with the
// exit status systemd uses for exec failures.
func RunShim(args []string) int { return execshim.Run(args) }

// shimCommand is the argv prefix that runs the exec shim: luod-exec next to
// exe when it is there, else exe itself with ShimArg.
func shimCommand(exe string) []string {
	p := filepath.Join(filepath.Dir(exe), ShimName)
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return []string{p}
	}
	return []string{exe, ShimArg}
}
