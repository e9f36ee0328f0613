package keep

import (
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/sdnotify"
)

// restore finds the regions (from an incoming session in session mode, the
// first start after a live update; else from the fd store), checks that
// the manager's store can hold what keep needs, and only then finishes the
// incoming session and stores and preserves the regions again.
func (s *Store) restore() error {
	incoming, outgoing := s.storedSessions()
	var from *luo.Session // the incoming session the regions come from
	for _, in := range incoming {
		if from == nil && s.restoreSession(in) {
			from = in
		}
	}
	if from == nil {
		s.restoreStore()
	}
	if s.idx.BootID != "" && s.idx.BootID != s.bootID {
		s.idx.LiveUpdates++
	}
	s.idx.Version, s.idx.BootID = 1, s.bootID
	s.collectOther(incoming, outgoing)

	if s.cfg.Session != "" {
		if len(outgoing) > 0 {
			s.session = outgoing[0]
		} else if sess, err := s.createSession(); err != nil {
			s.log.Warn("keep: no outgoing LUO session: the regions are carried by the fd store only (FileDescriptorStorePreserve=yes)", "session", s.cfg.Session, "err", err)
		} else {
			s.session, s.ownSess = sess, true
		}
	}
	if err := s.fits(0, "restoring"); err != nil {
		if s.ownSess {
			s.session.Close()
			s.session = nil
		}
		return err // the incoming session is not finished: nothing is lost
	}

	for _, in := range incoming {
		if err := in.Finish(); err != nil && in == from {
			return fmt.Errorf("%w: finish %q: %w", ErrSession, in.Name(), err)
		}
	}
	if s.session != nil && (s.ownSess || len(incoming) > 0) {
		// One session under the name, ours, not a finished incoming one
		// next to it: first, so that a manager that counts every session
		// has room for the regions and the index.
		if err := storeErr("replace the stored sessions", s.notifier.RemoveFiles(s.cfg.Session)); err != nil {
			return err
		}
		if err := storeErr("store the session", s.notifier.StoreFiles(s.cfg.Session, []*os.File{s.session.File()}, &sdnotify.StoreOptions{NoPoll: true})); err != nil {
			return err
		}
	}
	if from != nil {
		for _, r := range s.sortedRegions() {
			if err := s.storeRegion(r); err != nil {
				return err
			}
		}
	}
	if s.session != nil && (from != nil || s.idx.SessionName != s.session.Name() || s.idx.SessionBoot != s.bootID) {
		if err := s.preserveAll(); err != nil {
			// An outgoing session keep cannot fill: one an earlier
			// instance filled in this boot while its index was lost (the
			// kernel has token 0), or one that is out of space.
			s.log.Warn("keep: cannot preserve the regions in the stored LUO session; dropping it, the manager hands out a new one at the next start, until then the regions are carried by the fd store only", "session", s.session.Name(), "err", err)
			s.dropSessions()
		}
	} else if s.session == nil && from != nil {
		// The finished incoming session is useless now; a manager that
		// hands out sessions (LUOSession=) creates a fresh one at the next
		// start instead of handing back this one.
		s.dropSessions()
	}
	if err := s.writeIndex(from != nil); err != nil {
		return err
	}
	for _, in := range incoming {
		in.Close()
	}
	s.log.Info("keep: opened", "regions", len(s.regions), "origin", s.restored, "live_updates", s.idx.LiveUpdates,
		"mode", s.Mode(), "session", s.SessionName(), "store_used", s.StoreUsed(), "store_max", s.cfg.StoreMax)
	return nil
}

// storedSessions sorts the LUO sessions stored under Config.Session.
func (s *Store) storedSessions() (incoming, outgoing []*luo.Session) {
	if s.cfg.Session == "" {
		return nil, nil
	}
	for _, f := range s.files.Named(s.cfg.Session) {
		sess, err := luo.SessionFromFile(f)
		if err != nil {
			s.log.Warn("keep: stored fd is not a LUO session, ignoring it", "name", s.cfg.Session, "err", err)
			continue
		}
		if sess.Incoming() {
			incoming = append(incoming, sess)
		} else {
			outgoing = append(outgoing, sess)
		}
	}
	return incoming, outgoing
}

// collectOther records the passed fds that are neither keep's index, its
// regions nor a session: the service's own, which keep counts and hands
// out through File.
func (s *Store) collectOther(incoming, outgoing []*luo.Session) {
	mine := map[*os.File]bool{s.index: true}
	for _, r := range s.regions {
		mine[r.File] = true
	}
	for _, sess := range append(slices.Clone(incoming), outgoing...) {
		mine[sess.File()] = true
	}
	for _, f := range s.files.All() {
		if !mine[f] && (s.cfg.Session == "" || f.Name() != s.cfg.Session) {
			s.other[f.Name()] = append(s.other[f.Name()], f)
		}
	}
}

// restoreSession takes the index and the regions from an incoming session
// (without finishing it). It reports false for a session without an index
// (already finished by an earlier instance of the service).
func (s *Store) restoreSession(in *luo.Session) bool {
	f, err := in.RetrieveFD(0)
	if err != nil {
		s.log.Info("keep: incoming session has no index, ignoring it", "session", in.Name(), "err", err)
		return false
	}
	idx, err := readIndex(f)
	if err != nil {
		s.log.Warn("keep: ignoring the incoming session", "session", in.Name(), "err", err)
		f.Close()
		return false
	}
	s.idx, s.index, s.restored = idx, f, LUO
	for _, ir := range idx.live() {
		rf, err := in.RetrieveFD(ir.Token)
		if err != nil {
			s.log.Warn("keep: region could not be retrieved; it starts fresh", "region", ir.Name, "token", ir.Token, "err", err)
			continue
		}
		s.regions[ir.Name] = &Region{Name: ir.Name, Size: ir.Size, Origin: LUO, File: rf}
	}
	return true
}

// restoreStore takes the index and the regions from the fd store.
func (s *Store) restoreStore() {
	idxFiles := s.files.Named(IndexName)
	if len(idxFiles) == 0 {
		return
	}
	idx, err := readIndex(idxFiles[0])
	if err != nil {
		s.log.Warn("keep: ignoring the stored index", "err", err)
		return
	}
	s.index, s.idx = idxFiles[0], idx
	s.restored = FDStore
	if idx.BootID != s.bootID {
		s.restored = LUO
	}
	for _, ir := range idx.live() {
		fs := s.files.Named(ir.Name)
		if len(fs) == 0 {
			s.log.Warn("keep: region is in the index but not in the fd store; it starts fresh", "region", ir.Name)
			continue
		}
		s.regions[ir.Name] = &Region{Name: ir.Name, Size: ir.Size, Origin: s.restored, File: fs[0]}
	}
}

// preserveAll preserves the index (token 0) and every region in the
// outgoing session.
func (s *Store) preserveAll() error {
	if s.index == nil {
		if err := s.writeIndex(true); err != nil {
			return err
		}
	}
	if err := s.session.PreserveFD(s.index, 0); err != nil {
		return fmt.Errorf("%w: preserve the index: %w", ErrSession, err)
	}
	for _, ir := range s.idx.live() {
		if r := s.regions[ir.Name]; r != nil {
			if err := s.session.PreserveFD(r.File, ir.Token); err != nil {
				return fmt.Errorf("%w: preserve region %q: %w", ErrSession, r.Name, err)
			}
		}
	}
	s.idx.SessionName, s.idx.SessionBoot = s.session.Name(), s.bootID
	return nil
}

// dropSessions removes every session stored under Config.Session from the
// manager's store and closes the outgoing one: the regions stay in the fd
// store.
func (s *Store) dropSessions() {
	if err := storeErr("remove the sessions", s.notifier.RemoveFiles(s.cfg.Session)); err != nil {
		s.log.Warn("keep: cannot remove the session from the fd store", "err", err)
	}
	if s.session != nil {
		s.session.Close()
	}
	s.session, s.ownSess = nil, false
	s.idx.SessionName, s.idx.SessionBoot = "", ""
	s.idx.Regions = s.idx.live()
}

func (s *Store) createSession() (*luo.Session, error) {
	dev, err := luo.OpenPath(s.cfg.Device)
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	return dev.CreateSession(s.cfg.SessionName)
}

// storeRegion hands a region's memfd to the fd store.
func (s *Store) storeRegion(r *Region) error {
	return storeErr("store region "+strconv.Quote(r.Name), s.notifier.StoreFiles(r.Name, []*os.File{r.File}, &sdnotify.StoreOptions{NoPoll: true}))
}
