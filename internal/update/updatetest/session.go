package updatetest

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/internal/update"
)

type device struct {
	k      *Kernel
	closed bool
}

func (d *device) CreateSession(name string) (update.Session, error) {
	k := d.k
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.do(Op{Name: "create", Session: name}); err != nil {
		return nil, &luo.Error{Op: "CREATE_SESSION", Session: name, Err: err}
	}
	if d.closed {
		return nil, &luo.Error{Op: "CREATE_SESSION", Session: name, Err: syscall.EBADF}
	}
	if err := luo.ValidateName(name); err != nil {
		return nil, err
	}
	for _, s := range k.sessions {
		if s.name == name && !s.incoming && s.aliveLocked() {
			return nil, &luo.Error{Op: "CREATE_SESSION", Session: name, Err: syscall.EEXIST}
		}
	}
	s, err := newSession(k, name, false)
	if err != nil {
		return nil, err
	}
	k.sessions = append(k.sessions, s)
	return s, nil
}

func (d *device) RetrieveSession(name string) (update.Session, error) {
	k := d.k
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.do(Op{Name: "retrieve", Session: name}); err != nil {
		return nil, &luo.Error{Op: "RETRIEVE_SESSION", Session: name, Err: err}
	}
	if d.closed {
		return nil, &luo.Error{Op: "RETRIEVE_SESSION", Session: name, Err: syscall.EBADF}
	}
	for _, s := range k.sessions {
		if s.name != name || !s.incoming || s.finished {
			continue
		}
		if s.file != nil {
			if s.aliveLocked() {
				return nil, &luo.Error{Op: "RETRIEVE_SESSION", Session: name, Err: syscall.EINVAL}
			}
			continue
		}
		f, err := placeholder(name)
		if err != nil {
			return nil, err
		}
		s.file = f
		return s, nil
	}
	return nil, &luo.Error{Op: "RETRIEVE_SESSION", Session: name, Err: syscall.ENOENT}
}

func (d *device) Close() error {
	d.k.mu.Lock()
	defer d.k.mu.Unlock()
	if !d.closed {
		d.closed = true
		d.k.devOpen = false
	}
	return nil
}

// Session is a fake LUO session.
type Session struct {
	k        *Kernel
	name     string
	incoming bool
	file     *os.File // the session's fd (a placeholder); nil before an incoming one is retrieved
	files    map[uint64]*os.File
	closed   bool
	finished bool
}

func newSession(k *Kernel, name string, incoming bool) (*Session, error) {
	f, err := placeholder(name)
	if err != nil {
		return nil, err
	}
	return &Session{k: k, name: name, incoming: incoming, file: f, files: map[uint64]*os.File{}}, nil
}

// placeholder is the file standing for a session fd.
func placeholder(name string) (*os.File, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("updatetest: eventfd: %w", err)
	}
	return os.NewFile(uintptr(fd), "luo_session "+name), nil
}

// aliveLocked reports whether the session still exists: not closed, and
// its fd (if it has one yet) not closed by whoever held it.
func (s *Session) aliveLocked() bool {
	if s.closed || s.finished {
		return false
	}
	if s.file == nil {
		return s.incoming // not retrieved yet
	}
	rc, err := s.file.SyscallConn()
	return err == nil && rc.Control(func(uintptr) {}) == nil
}

// Name returns the session's name.
func (s *Session) Name() string { return s.name }

// File returns the session's fd.
func (s *Session) File() *os.File { return s.file }

// Incoming reports whether the session came from the previous boot.
func (s *Session) Incoming() bool { return s.incoming }

// Files returns the tokens preserved in the session, sorted.
func (s *Session) Files() []uint64 {
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	return slices.Sorted(maps.Keys(s.files))
}

// PreserveFD preserves a copy of f under token.
func (s *Session) PreserveFD(f *os.File, token uint64) error {
	k := s.k
	k.mu.Lock()
	defer k.mu.Unlock()
	e := func(errno error) error {
		return &luo.Error{Op: "PRESERVE_FD", Session: s.name, Token: token, Err: errno}
	}
	if err := k.do(Op{Name: "preserve", Session: s.name, Token: token}); err != nil {
		return e(err)
	}
	switch {
	case !s.aliveLocked():
		return e(syscall.EBADF)
	case s.incoming:
		return e(syscall.EINVAL)
	case s.files[token] != nil:
		return e(syscall.EEXIST)
	}
	if err := luo.CheckPreservable(f); err != nil {
		return e(syscall.ENOENT)
	}
	key, err := keyOf(f)
	if err != nil {
		return e(err)
	}
	if k.preservedLocked(key) {
		return e(syscall.EBUSY)
	}
	d, err := dup(f)
	if err != nil {
		return e(err)
	}
	s.files[token] = d
	return nil
}

// preservedLocked reports whether a file of that inode is preserved in a
// live session, or retrieved from an unfinished one.
func (k *Kernel) preservedLocked(key [2]uint64) bool {
	for _, s := range k.sessions {
		if !s.aliveLocked() {
			continue
		}
		for _, g := range s.files {
			if gk, err := keyOf(g); err == nil && gk == key {
				return true
			}
		}
	}
	return false
}

// RetrieveFD returns a new file on the file preserved under token.
func (s *Session) RetrieveFD(token uint64) (*os.File, error) {
	k := s.k
	k.mu.Lock()
	defer k.mu.Unlock()
	e := func(errno error) error {
		return &luo.Error{Op: "RETRIEVE_FD", Session: s.name, Token: token, Err: errno}
	}
	if err := k.do(Op{Name: "retrieve-fd", Session: s.name, Token: token}); err != nil {
		return nil, e(err)
	}
	switch {
	case !s.aliveLocked():
		return nil, e(syscall.EBADF)
	case !s.incoming:
		return nil, e(syscall.EINVAL)
	case s.files[token] == nil:
		return nil, e(syscall.ENOENT)
	}
	return dup(s.files[token])
}

// Finish ends an incoming session, discarding what was not retrieved.
func (s *Session) Finish() error {
	k := s.k
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.do(Op{Name: "finish", Session: s.name}); err != nil {
		return &luo.Error{Op: "FINISH", Session: s.name, Err: err}
	}
	if !s.incoming || !s.aliveLocked() {
		return &luo.Error{Op: "FINISH", Session: s.name, Err: syscall.EINVAL}
	}
	s.finished = true
	s.release()
	return nil
}

// Close closes the session: see update.Session.
func (s *Session) Close() error {
	k := s.k
	k.mu.Lock()
	defer k.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.release()
	if s.file != nil {
		s.file.Close()
	}
	return nil
}

// release drops the preserved copies.
func (s *Session) release() {
	for _, f := range s.files {
		f.Close()
	}
	s.files = map[uint64]*os.File{}
}

func dup(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nfd int
	var derr error
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("updatetest: dup: %w", derr)
	}
	return os.NewFile(uintptr(nfd), f.Name()), nil
}

func keyOf(f *os.File) ([2]uint64, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return [2]uint64{}, err
	}
	var st unix.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil {
		return [2]uint64{}, err
	}
	if serr != nil {
		return [2]uint64{}, serr
	}
	return [2]uint64{uint64(st.Dev), st.Ino}, nil
}

// ErrInjected is a convenient error for Fail functions.
var ErrInjected = errors.New("injected fault")
