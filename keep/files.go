package keep

import (
	"fmt"
	"os"
	"strconv"

	"github.com/liveupdate/luo/sdnotify"
)

// KeepOptions are the options of Store.Keep. A nil *KeepOptions means the
// defaults.
type KeepOptions struct {
	// Poll lets the manager watch the file for POLLHUP/POLLERR and drop it
	// when they occur (systemd's default, FDPOLL=1): right for a
	// connection that is useless once its peer is gone. By default keep
	// stores with FDPOLL=0, so that a pipe or socket stays in the store
	// whatever its peer does.
	Poll bool
}

// Keep hands f to the service manager's fd store under name, next to the
// regions, so that the next instance of the service gets it back from
// File. A file kept before under the same name (in this run or an earlier
// one) is replaced: removed from the store and closed, unless it is f.
// Names are unique among what keep holds: name must be valid (see
// [sdnotify.ValidFDName]), not empty, and not a region's, IndexName or
// Config.Session. The Store owns f from now on: File returns it and Forget
// closes it.
//
// Only memfds cross a kernel live update; other kept files (pipes,
// sockets, ...) survive restarts of the service. Keep fails with
// ErrStoreFull when the manager's store cannot hold one more entry.
func (s *Store) Keep(name string, f *os.File, opts *KeepOptions) error {
	if err := s.checkName(name); err != nil {
		return fmt.Errorf("%w: kept file %q: %w", ErrBadName, name, err)
	}
	if _, isRegion := s.regions[name]; isRegion {
		return fmt.Errorf("%w: %q is a region", ErrBadName, name)
	}
	old := s.other[name]
	if len(old) == 1 && old[0] == f {
		return nil
	}
	if err := s.fits(1-len(old), fmt.Sprintf("keeping %q", name)); err != nil {
		return err
	}
	if len(old) > 0 {
		if err := s.Forget(name); err != nil {
			return err
		}
	}
	poll := opts != nil && opts.Poll
	if err := storeErr("keep "+strconv.Quote(name), s.notifier.StoreFiles(name, []*os.File{f}, &sdnotify.StoreOptions{NoPoll: !poll})); err != nil {
		return err
	}
	s.other[name] = []*os.File{f}
	return nil
}

// File returns the file kept under name: handed back by the manager at
// start, or kept with Keep in this run; nil if there is none. (When an
// older manager handed back several under one name, it is the first.)
func (s *Store) File(name string) *os.File {
	if fs := s.other[name]; len(fs) > 0 {
		return fs[0]
	}
	return nil
}

// Files returns the names of the kept files (not the regions), sorted.
func (s *Store) Files() []string { return sortedKeys(s.other) }

// Forget removes the file kept under name from the manager's fd store and
// closes it. It fails with ErrNotFound when keep holds no file of that
// name (a region is removed with Remove).
func (s *Store) Forget(name string) error {
	fs, ok := s.other[name]
	if !ok {
		return fmt.Errorf("%w: no kept file %q", ErrNotFound, name)
	}
	if err := storeErr("forget "+strconv.Quote(name), s.notifier.RemoveFiles(name)); err != nil {
		return err
	}
	delete(s.other, name)
	for _, f := range fs {
		f.Close()
	}
	return nil
}

// checkName checks the name of a new region or kept file.
func (s *Store) checkName(name string) error {
	if err := validName(name); err != nil {
		return err
	}
	if name == IndexName || (s.cfg.Session != "" && name == s.cfg.Session) {
		return fmt.Errorf("%q is reserved by keep", name)
	}
	return nil
}
