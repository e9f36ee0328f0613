//go:build linux

package supervisor

import (
	"os"

	"golang.org/x/sys/unix"
)

// prefetch asks the kernel to read the units' executables into the page
// cache, in the background. After a kexec the page cache is empty: each
// service's first exec would read its binary from disk page by page while
// the service is down. Started as soon as the units are loaded, the
// reading overlaps with restoring the stores. Errors do not matter here:
// the exec reports them.
func (m *Manager) prefetch() {
	paths := []string{m.shim[0]}
	seen := map[string]bool{m.shim[0]: true}
	for _, u := range m.units {
		if u.def == nil || len(u.def.ExecStart) == 0 {
			continue
		}
		p, err := u.def.ExecStart[0].LookPath()
		if err != nil || seen[p] {
			continue
		}
		seen[p] = true
		paths = append(paths, p)
	}
	go func() {
		for _, p := range paths {
			f, err := os.Open(p)
			if err != nil {
				continue
			}
			// The exec reads from the start; WILLNEED starts the reads
			// and returns without waiting for them.
			unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_WILLNEED)
			f.Close()
		}
	}()
}
