package keep

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/activation"
	"github.com/liveupdate/luo/memfd"
	"github.com/liveupdate/luo/sdnotify"
)

// Origin tells where a region's contents came from.
type Origin int

const (
	// Fresh: the region was created by this process; it reads as zeros.
	Fresh Origin = iota
	// FDStore: the service manager's fd store handed it back in the same
	// boot (the service restarted).
	FDStore
	// LUO: it was carried across a kernel live update.
	LUO
)

func (o Origin) String() string {
	switch o {
	case Fresh:
		return "fresh"
	case FDStore:
		return "fdstore"
	case LUO:
		return "luo"
	}
	return fmt.Sprintf("Origin(%d)", int(o))
}

// IndexName is the fd name of the memfd in which keep records its regions.
const IndexName = "keep.index"

// Config configures Open. A nil *Config means the defaults.
type Config struct {
	// Session enables session mode: the fd name under which the LUO session
	// is stored (the LUOSession= name when the manager provides it). Empty
	// means fd-store mode.
	Session string
	// SessionName is the kernel name of the session keep creates when the
	// manager hands none out. Default "keep/" + the unit name ($LUOD_UNIT,
	// or the systemd unit from /proc/self/cgroup, or the program name).
	SessionName string
	// Device is the LUO device ("/dev/liveupdate").
	Device string
	// Notifier talks to the service manager; nil opens $NOTIFY_SOCKET.
	Notifier *sdnotify.Notifier
	// Files are the fds the manager passed; nil receives them from the
	// environment (LISTEN_FDS, unsetting it). Fds keep does not use are
	// available from Store.Files.
	Files *activation.Files
	// Logf receives what keep decides and why; nil discards it.
	Logf func(format string, args ...any)
}

// Store is the set of regions of a service. Not safe for concurrent use.
type Store struct {
	cfg      Config
	notifier *sdnotify.Notifier
	files    *activation.Files
	bootID   string

	index    *os.File
	idx      index
	regions  map[string]*Region
	session  *luo.Session // outgoing session (session mode)
	ownSess  bool         // created by keep (stored under cfg.Session)
	mode     string
	restored Origin // origin of the restored regions
}

// Region is one named memfd region.
type Region struct {
	Name   string
	Size   int64
	Origin Origin
	// File is the memfd. It stays owned by the Store.
	File *os.File
	mem  []byte
}

// index is what keep records about its regions, in the "keep.index"
// memfd (and at token 0 of the session in session mode).
type index struct {
	Version     int           `json:"version"`
	BootID      string        `json:"boot_id"`
	LiveUpdates int           `json:"live_updates"`
	Regions     []indexRegion `json:"regions"`
	// SessionName and SessionBoot identify the outgoing session the
	// regions were last preserved in (session mode).
	SessionName string `json:"session_name,omitempty"`
	SessionBoot string `json:"session_boot,omitempty"`
}

type indexRegion struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	Token   uint64 `json:"token"`
	Removed bool   `json:"removed,omitempty"`
}

const indexSize = 64 << 10

// Open restores the regions the service manager or the previous kernel
// kept for this service and prepares for new ones.
func Open(cfg *Config) (*Store, error) {
	s := &Store{regions: map[string]*Region{}}
	if cfg != nil {
		s.cfg = *cfg
	}
	if s.cfg.Device == "" {
		s.cfg.Device = luo.DevicePath
	}
	if s.cfg.Session != "" {
		if err := sdnotify.ValidFDName(s.cfg.Session); err != nil {
			return nil, fmt.Errorf("keep: Session: %w", err)
		}
	}
	if s.cfg.SessionName == "" {
		s.cfg.SessionName = defaultSessionName()
	}
	if err := luo.ValidateName(s.cfg.SessionName); err != nil {
		return nil, fmt.Errorf("keep: SessionName: %w", err)
	}
	s.notifier = s.cfg.Notifier
	if s.notifier == nil {
		n, err := sdnotify.Open()
		if err != nil && !errors.Is(err, sdnotify.ErrNoSocket) {
			return nil, fmt.Errorf("keep: %w", err)
		}
		if n == nil {
			s.logf("no service manager ($NOTIFY_SOCKET unset): regions will not survive a restart or a live update")
		}
		s.notifier = n
	}
	s.files = s.cfg.Files
	if s.files == nil {
		fs, err := activation.Receive(&activation.Config{UnsetEnv: true})
		if err != nil {
			return nil, fmt.Errorf("keep: %w", err)
		}
		s.files = fs
	}
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return nil, fmt.Errorf("keep: boot id: %w", err)
	}
	s.bootID = strings.TrimSpace(string(b))
	if err := s.restore(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// restore finds the regions: from an incoming session (first start after a
// live update in session mode), else from the fd store.
func (s *Store) restore() error {
	var incoming, outgoing []*luo.Session
	if s.cfg.Session != "" {
		for _, f := range s.files.Named(s.cfg.Session) {
			sess, err := luo.SessionFromFile(f)
			if err != nil {
				s.logf("fd %q is not a LUO session, ignoring it: %v", s.cfg.Session, err)
				continue
			}
			if sess.Incoming() {
				incoming = append(incoming, sess)
			} else {
				outgoing = append(outgoing, sess)
			}
		}
	}
	restoredFromSession := false
	for _, in := range incoming {
		ok, err := s.restoreSession(in)
		if err != nil {
			return err
		}
		restoredFromSession = restoredFromSession || ok
	}
	if !restoredFromSession {
		s.restoreStore()
	}
	if s.idx.BootID != "" && s.idx.BootID != s.bootID {
		s.idx.LiveUpdates++
	}
	s.idx.Version, s.idx.BootID = 1, s.bootID

	// Session mode: an outgoing session to preserve into.
	if s.cfg.Session != "" {
		if len(outgoing) > 0 {
			s.session = outgoing[0]
			s.mode = fmt.Sprintf("LUO session %q (stored as %q)", s.session.Name(), s.cfg.Session)
		} else if sess, err := s.createSession(); err != nil {
			s.logf("no outgoing LUO session (%v): falling back to fd-store mode, the manager must carry the regions (FileDescriptorStorePreserve=yes)", err)
			if restoredFromSession {
				// Drop the finished incoming session from the store: it is
				// useless now, and a manager that hands out sessions
				// (systemd's LUOSession=) then creates a fresh one at the
				// next start instead of reusing it.
				s.notifier.RemoveFiles(s.cfg.Session)
			}
		} else {
			s.session, s.ownSess = sess, true
		}
	}
	if s.mode == "" {
		s.mode = "fd store (carried by the manager)"
	}
	storeIndex := restoredFromSession || s.index == nil
	if s.index == nil {
		if err := s.writeIndex(true); err != nil {
			return err
		}
		storeIndex = false
	}
	// Regions restored from a session go back to the fd store.
	if restoredFromSession {
		for _, r := range s.sortedRegions() {
			if err := s.storeRegion(r); err != nil {
				return err
			}
		}
	}
	// Preserve into the outgoing session unless it holds them already (a
	// restart in the same boot with the same session).
	if s.session != nil && (restoredFromSession || s.idx.SessionName != s.session.Name() || s.idx.SessionBoot != s.bootID) {
		for _, ir := range s.idx.Regions {
			if r := s.regions[ir.Name]; r != nil && !ir.Removed {
				if err := s.session.PreserveFD(r.File, ir.Token); err != nil {
					return fmt.Errorf("keep: preserve region %q: %w", r.Name, err)
				}
			}
		}
		if err := s.session.PreserveFD(s.index, 0); err != nil {
			return fmt.Errorf("keep: preserve the index: %w", err)
		}
		s.idx.SessionName, s.idx.SessionBoot = s.session.Name(), s.bootID
	}
	if err := s.writeIndex(storeIndex); err != nil {
		return err
	}
	if s.ownSess {
		// Replace the stored session (the incoming one, if any) by ours.
		s.notifier.RemoveFiles(s.cfg.Session)
		if err := s.notifier.StoreFiles(s.cfg.Session, []*os.File{s.session.File()}, &sdnotify.StoreOptions{NoPoll: true}); err != nil && !errors.Is(err, sdnotify.ErrNoSocket) {
			return fmt.Errorf("keep: store the session: %w", err)
		}
		s.mode = fmt.Sprintf("own LUO session %q", s.session.Name())
	}
	s.logf("%d regions restored (%s), %d live updates so far; carried across kexec by: %s", len(s.regions), s.restored, s.idx.LiveUpdates, s.mode)
	return nil
}

func (s *Store) sortedRegions() []*Region {
	var rs []*Region
	for _, n := range s.Regions() {
		rs = append(rs, s.regions[n])
	}
	return rs
}

// restoreSession retrieves every region from an incoming session, then
// finishes and closes it. It reports false for a session that has nothing
// (already finished by an earlier instance of the service).
func (s *Store) restoreSession(in *luo.Session) (bool, error) {
	defer in.Close()
	f, err := in.RetrieveFD(0)
	if err != nil {
		s.logf("incoming session %q has no index (%v); ignoring it", in.Name(), err)
		in.Finish()
		return false, nil
	}
	idx, err := readIndex(f)
	if err != nil {
		f.Close()
		in.Finish()
		return false, fmt.Errorf("keep: session %q: %w", in.Name(), err)
	}
	s.idx = idx
	s.regions = map[string]*Region{}
	for _, ir := range idx.Regions {
		if ir.Removed {
			continue
		}
		rf, err := in.RetrieveFD(ir.Token)
		if err != nil {
			s.logf("region %q (token %d) could not be retrieved: %v; it starts fresh", ir.Name, ir.Token, err)
			continue
		}
		s.regions[ir.Name] = &Region{Name: ir.Name, Size: ir.Size, Origin: LUO, File: rf}
	}
	// Finish before preserving again: retrieved files stay busy until then.
	if err := in.Finish(); err != nil {
		return false, fmt.Errorf("keep: finish session %q: %w", in.Name(), err)
	}
	// The index memfd was retrieved too; rewrite it in place later.
	s.index = f
	s.restored = LUO
	return true, nil
}

// restoreStore takes the regions from the fd store.
func (s *Store) restoreStore() {
	idxFiles := s.files.Named(IndexName)
	if len(idxFiles) == 0 {
		return
	}
	idx, err := readIndex(idxFiles[0])
	if err != nil {
		s.logf("ignoring the stored index: %v", err)
		return
	}
	s.index, s.idx = idxFiles[0], idx
	s.restored = FDStore
	if idx.BootID != s.bootID {
		s.restored = LUO
	}
	for _, ir := range idx.Regions {
		if ir.Removed {
			continue
		}
		fs := s.files.Named(ir.Name)
		if len(fs) == 0 {
			s.logf("region %q is in the index but not in the fd store; it starts fresh", ir.Name)
			continue
		}
		s.regions[ir.Name] = &Region{Name: ir.Name, Size: ir.Size, Origin: s.restored, File: fs[0]}
	}
}

func (s *Store) createSession() (*luo.Session, error) {
	dev, err := luo.OpenPath(s.cfg.Device)
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	return dev.CreateSession(s.cfg.SessionName)
}

func readIndex(f *os.File) (index, error) {
	var idx index
	b := make([]byte, indexSize)
	n, _ := f.ReadAt(b, 0)
	b = b[:n]
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, fmt.Errorf("index: %w", err)
	}
	if idx.Version != 1 {
		return idx, fmt.Errorf("index version %d, keep reads 1", idx.Version)
	}
	return idx, nil
}

// writeIndex rewrites the index memfd in place (its size is fixed: it may
// be preserved). store hands a new index memfd to the fd store.
func (s *Store) writeIndex(store bool) error {
	if s.index == nil {
		f, err := memfd.New(IndexName, indexSize)
		if err != nil {
			return fmt.Errorf("keep: %w", err)
		}
		s.index = f
		store = true
	}
	b, err := json.Marshal(s.idx)
	if err != nil {
		return err
	}
	if len(b) >= indexSize {
		return fmt.Errorf("keep: index of %d regions does not fit in %d bytes", len(s.idx.Regions), indexSize)
	}
	b = append(b, make([]byte, indexSize-len(b))...)
	if _, err := s.index.WriteAt(b, 0); err != nil {
		return fmt.Errorf("keep: write index: %w", err)
	}
	if store {
		s.notifier.RemoveFiles(IndexName)
		if err := s.notifier.StoreFiles(IndexName, []*os.File{s.index}, &sdnotify.StoreOptions{NoPoll: true}); err != nil && !errors.Is(err, sdnotify.ErrNoSocket) {
			return fmt.Errorf("keep: store the index: %w", err)
		}
	}
	return nil
}

func (s *Store) storeRegion(r *Region) error {
	err := s.notifier.StoreFiles(r.Name, []*os.File{r.File}, &sdnotify.StoreOptions{NoPoll: true})
	if err != nil && !errors.Is(err, sdnotify.ErrNoSocket) {
		return fmt.Errorf("keep: store region %q: %w", r.Name, err)
	}
	return nil
}

// Region returns the region called name, restored if it was kept, else
// created with size bytes of zeros and handed to the manager (and to the
// session in session mode). name must pass [sdnotify.ValidFDName]
// (printable ASCII, no ':', at most [sdnotify.MaxFDNameLen] bytes) and be
// neither empty, IndexName nor Config.Session.
func (s *Store) Region(name string, size int64) (*Region, error) {
	if err := sdnotify.ValidFDName(name); err != nil {
		return nil, fmt.Errorf("keep: region name: %w", err)
	}
	if name == "" || name == IndexName || name == s.cfg.Session {
		return nil, fmt.Errorf("keep: region name %q is reserved or empty", name)
	}
	if size <= 0 {
		return nil, fmt.Errorf("keep: region %q: size %d must be positive", name, size)
	}
	if r := s.regions[name]; r != nil {
		if r.Size != size {
			return nil, fmt.Errorf("keep: region %q was kept with %d bytes, not %d: a kept region cannot change size (Remove it first)", name, r.Size, size)
		}
		if st, err := r.File.Stat(); err != nil || st.Size() != size {
			return nil, fmt.Errorf("keep: region %q: the kept memfd has the wrong size", name)
		}
		return r, nil
	}
	f, err := memfd.New(name, size)
	if err != nil {
		return nil, fmt.Errorf("keep: %w", err)
	}
	r := &Region{Name: name, Size: size, Origin: Fresh, File: f}
	token := uint64(1)
	for _, ir := range s.idx.Regions {
		token = max(token, ir.Token+1)
	}
	if s.session != nil {
		if err := s.session.PreserveFD(f, token); err != nil {
			f.Close()
			return nil, fmt.Errorf("keep: preserve region %q: %w", name, err)
		}
	}
	if err := s.storeRegion(r); err != nil {
		f.Close()
		return nil, err
	}
	s.idx.Regions = slices.DeleteFunc(s.idx.Regions, func(ir indexRegion) bool { return ir.Name == name })
	s.idx.Regions = append(s.idx.Regions, indexRegion{Name: name, Size: size, Token: token})
	s.regions[name] = r
	if err := s.writeIndex(false); err != nil {
		return nil, err
	}
	return r, nil
}

// Remove forgets a region: it leaves the fd store and the index. (A LUO
// session cannot drop a single file; in session mode the region's pages
// stay preserved until the session ends, and the next kernel discards them.)
func (s *Store) Remove(name string) error {
	r := s.regions[name]
	if r == nil {
		return fmt.Errorf("keep: no region %q", name)
	}
	delete(s.regions, name)
	r.unmap()
	r.File.Close()
	for i := range s.idx.Regions {
		if s.idx.Regions[i].Name == name {
			s.idx.Regions[i].Removed = s.session != nil
		}
	}
	if s.session == nil {
		s.idx.Regions = slices.DeleteFunc(s.idx.Regions, func(ir indexRegion) bool { return ir.Name == name })
	}
	if err := s.notifier.RemoveFiles(name); err != nil && !errors.Is(err, sdnotify.ErrNoSocket) {
		return fmt.Errorf("keep: %w", err)
	}
	return s.writeIndex(false)
}

// Regions returns the names of the kept regions, sorted.
func (s *Store) Regions() []string {
	var names []string
	for n := range s.regions {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// LiveUpdates returns how many kernel live updates the regions went through.
func (s *Store) LiveUpdates() int { return s.idx.LiveUpdates }

// Mode describes how the regions are carried across a kexec.
func (s *Store) Mode() string { return s.mode }

// Notifier returns the notifier to the service manager (nil without one).
func (s *Store) Notifier() *sdnotify.Notifier { return s.notifier }

// Files returns the fds the manager passed, including those keep uses.
func (s *Store) Files() *activation.Files { return s.files }

// Close unmaps the regions. The memfds stay with the manager.
func (s *Store) Close() error {
	for _, r := range s.regions {
		r.unmap()
	}
	return nil
}

// Bytes maps the region shared and read-write (once) and returns it.
func (r *Region) Bytes() ([]byte, error) {
	if r.mem == nil {
		b, err := memfd.Map(r.File)
		if err != nil {
			return nil, fmt.Errorf("keep: region %q: %w", r.Name, err)
		}
		r.mem = b
	}
	return r.mem, nil
}

func (r *Region) unmap() {
	if r.mem != nil {
		memfd.Unmap(r.mem)
		r.mem = nil
	}
}

// defaultSessionName is "keep/" + the unit's name.
func defaultSessionName() string {
	name := os.Getenv("LUOD_UNIT")
	if name == "" {
		if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				if i := strings.LastIndexByte(line, '/'); i >= 0 && strings.HasSuffix(line, ".service") {
					name = line[i+1:]
				}
			}
		}
	}
	if name == "" {
		name = filepath.Base(os.Args[0])
	}
	name = "keep/" + strings.TrimSuffix(name, ".service")
	if len(name) > luo.MaxNameLen {
		name = name[:luo.MaxNameLen]
	}
	return name
}
