package keep

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/activation"
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

// Mode tells how the regions cross the next kernel live update.
type Mode int

const (
	// ModeNone: there is no service manager ($NOTIFY_SOCKET unset); the
	// regions live as long as the process.
	ModeNone Mode = iota
	// ModeFDStore: the manager's fd store holds the regions and carries
	// them across a kexec when the unit has FileDescriptorStorePreserve=yes.
	ModeFDStore
	// ModeSession: the regions are also preserved in a LUO session the
	// manager handed out (LUOSession=), which the kernel carries.
	ModeSession
	// ModeOwnSession: the regions are also preserved in a LUO session keep
	// created itself (Config.SessionName; needs /dev/liveupdate).
	ModeOwnSession
)

func (m Mode) String() string {
	switch m {
	case ModeNone:
		return "none"
	case ModeFDStore:
		return "fd-store"
	case ModeSession:
		return "session"
	case ModeOwnSession:
		return "own-session"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// The errors a caller may handle; every error keep returns for these cases
// wraps one of them (test with [errors.Is]) and says what to change.
var (
	// ErrStoreFull: the service manager's fd store cannot hold what keep
	// needs (FileDescriptorStoreMax=, read from $FDSTORE, is too small).
	// Nothing was stored or finished: raise the limit and restart.
	ErrStoreFull = errors.New("keep: the service manager's fd store is too small")
	// ErrSizeChanged: a kept region was asked for with another size. A
	// preserved memfd cannot change size: Remove the region to start over.
	ErrSizeChanged = errors.New("keep: a kept region cannot change size")
	// ErrBadName: a region or file name is invalid, empty or reserved.
	ErrBadName = errors.New("keep: invalid name")
	// ErrNotFound: Remove or Forget of a name keep does not hold.
	ErrNotFound = errors.New("keep: not found")
	// ErrIndex: keep's index of its regions is unreadable.
	ErrIndex = errors.New("keep: unreadable index")
	// ErrSession: a LUO session operation failed (the error also wraps the
	// *luo.Error).
	ErrSession = errors.New("keep: LUO session")
)

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
	// environment (LISTEN_FDS, unsetting it). Fds that are not keep's are
	// available from Store.File.
	Files *activation.Files
	// StoreMax is the manager's fd-store limit (FileDescriptorStoreMax=);
	// 0 reads $FDSTORE, which systemd ≥ 254 and luod set. When it is known,
	// keep refuses with ErrStoreFull what the manager would drop.
	StoreMax int
	// Logger receives what keep decides and why; nil discards it.
	Logger *slog.Logger
}

// Store is the set of regions of a service, and the other fds it keeps in
// the manager's fd store. Not safe for concurrent use.
type Store struct {
	cfg      Config
	log      *slog.Logger
	notifier *sdnotify.Notifier
	files    *activation.Files
	bootID   string

	index    *os.File
	idx      index
	regions  map[string]*Region
	other    map[string][]*os.File // store entries that are not keep's
	session  *luo.Session          // outgoing session (session mode)
	ownSess  bool                  // created by keep in this instance
	restored Origin                // origin of the restored regions
}

// Open restores the regions the service manager or the previous kernel
// kept for this service and prepares for new ones. It fails with
// ErrStoreFull, before it stores or finishes anything, when the manager's
// fd store cannot hold the regions it restores, keep.index and the session.
func Open(cfg *Config) (*Store, error) {
	s := &Store{regions: map[string]*Region{}, other: map[string][]*os.File{}}
	if cfg != nil {
		s.cfg = *cfg
	}
	s.log = s.cfg.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.cfg.Device == "" {
		s.cfg.Device = luo.DevicePath
	}
	if s.cfg.Session != "" {
		if err := validName(s.cfg.Session); err != nil {
			return nil, fmt.Errorf("%w: Config.Session: %w", ErrBadName, err)
		}
	}
	if s.cfg.SessionName == "" {
		s.cfg.SessionName = defaultSessionName()
	}
	if err := luo.ValidateName(s.cfg.SessionName); err != nil {
		return nil, fmt.Errorf("%w: Config.SessionName: %w", ErrBadName, err)
	}
	if s.cfg.StoreMax == 0 {
		if v, err := strconv.Atoi(os.Getenv("FDSTORE")); err == nil && v > 0 {
			s.cfg.StoreMax = v
		}
	}
	s.notifier = s.cfg.Notifier
	if s.notifier == nil {
		n, err := sdnotify.Open()
		if err != nil && !errors.Is(err, sdnotify.ErrNoSocket) {
			return nil, fmt.Errorf("keep: %w", err)
		}
		if n == nil {
			s.log.Warn("keep: no service manager ($NOTIFY_SOCKET unset): regions will not survive a restart or a live update")
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

// Regions returns the names of the kept regions, sorted.
func (s *Store) Regions() []string { return sortedKeys(s.regions) }

// LiveUpdates returns how many kernel live updates the regions went through.
func (s *Store) LiveUpdates() int { return s.idx.LiveUpdates }

// Mode tells how the regions cross the next kernel live update.
func (s *Store) Mode() Mode {
	switch {
	case s.notifier == nil:
		return ModeNone
	case s.session == nil:
		return ModeFDStore
	case s.ownSess || s.session.Name() == s.cfg.SessionName:
		return ModeOwnSession
	}
	return ModeSession
}

// SessionName returns the kernel name of the LUO session the regions are
// preserved in (session modes), or "".
func (s *Store) SessionName() string {
	if s.session == nil {
		return ""
	}
	return s.session.Name()
}

// StoreMax returns the manager's fd-store limit keep works with (0:
// unknown), and StoreUsed how many of its entries are in use: the index,
// the regions, one for the session in session mode (reserved whether it is
// there or not, as luod reserves it for a LUOSession= name; one however
// many sessions the manager holds under the name) and the other fds.
func (s *Store) StoreMax() int { return s.cfg.StoreMax }

// StoreUsed: see StoreMax.
func (s *Store) StoreUsed() int {
	n := 1 + len(s.regions) + s.others()
	if s.cfg.Session != "" {
		n++ // the session's slot, taken or not
	}
	return n
}

// Notifier returns the notifier to the service manager (nil without one).
func (s *Store) Notifier() *sdnotify.Notifier { return s.notifier }

// Close unmaps the regions. The memfds stay with the manager.
func (s *Store) Close() error {
	for _, r := range s.regions {
		r.unmap()
	}
	return nil
}

// fits returns ErrStoreFull, explained, when n more entries would not fit
// in the manager's store.
func (s *Store) fits(n int, what string) error {
	used := s.StoreUsed()
	if s.cfg.StoreMax == 0 || s.notifier == nil || used+n <= s.cfg.StoreMax {
		return nil
	}
	return fmt.Errorf("%w: %s needs %d entries of the fd store, FileDescriptorStoreMax=%d allows %d (in use: %s); raise FileDescriptorStoreMax=",
		ErrStoreFull, what, used+n, s.cfg.StoreMax, s.cfg.StoreMax, s.usage())
}

func (s *Store) usage() string {
	u := fmt.Sprintf("%d regions, %s", len(s.regions), IndexName)
	if s.cfg.Session != "" {
		u += ", the session " + strconv.Quote(s.cfg.Session)
	}
	if n := s.others(); n > 0 {
		u += fmt.Sprintf(", %d other fds", n)
	}
	return u
}

// others counts the store entries that are not keep's.
func (s *Store) others() int {
	n := 0
	for _, fs := range s.other {
		n += len(fs)
	}
	return n
}

// validName checks a name for the fd store.
func validName(name string) error {
	if name == "" {
		return errors.New("empty")
	}
	return sdnotify.ValidFDName(name)
}

// storeErr says what failed in a message to the manager; without a manager
// there is nothing to store, which is not an error.
func storeErr(what string, err error) error {
	if err == nil || errors.Is(err, sdnotify.ErrNoSocket) {
		return nil
	}
	return fmt.Errorf("keep: %s: %w", what, err)
}
