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
			readahead(p)
		}
	}()
}

// PrefetchSelf asks the kernel to read luod's own executable into the page
// cache, in the background. Call it first thing: after a kexec luod
// starts from an empty page cache, and each code path it takes for the
// first time would otherwise stop on a page fault that reads from disk (on
// a TCG VM, this halved the time from luod's main to its first unit's
// start).
func PrefetchSelf() { go readahead("/proc/self/exe") }

// readahead starts reading the whole of the file at path into the page
// cache. FADV_WILLNEED starts the reads and returns without waiting for
// them, but reads at most the device's readahead size per call: it asks
// for the whole file chunk by chunk. Errors do not matter: the exec or
// the page fault reports them.
func readahead(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		const chunk = 128 << 10
		for off := int64(0); off < fi.Size(); off += chunk {
			unix.Fadvise(int(f.Fd()), off, chunk, unix.FADV_WILLNEED)
		}
	}
}
