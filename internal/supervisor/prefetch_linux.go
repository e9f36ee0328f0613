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
			// WILLNEED starts the reads and returns without waiting for
			// them, but reads at most the device's readahead size per
			// call: ask for the whole file chunk by chunk.
			if fi, err := f.Stat(); err == nil {
				const chunk = 128 << 10
				for off := int64(0); off < fi.Size(); off += chunk {
					unix.Fadvise(int(f.Fd()), off, chunk, unix.FADV_WILLNEED)
				}
			}
			f.Close()
		}
	}()
}
