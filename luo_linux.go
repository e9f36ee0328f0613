package luo

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Open opens DevicePath. It fails with EBUSY while any other open file
// description of the device exists; the error then names the holders it can
// find in /proc.
func Open() (*Device, error) { return OpenPath(DevicePath) }

// OpenPath opens the LUO device at path (O_RDWR|O_CLOEXEC).
func OpenPath(path string) (*Device, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		e := &Error{Op: "open", Err: err}
		if path != DevicePath {
			e.Detail = path
		}
		if err == unix.EBUSY {
			if h := holders(path); h != "" {
				e.Detail = "held by " + h
			}
		}
		return nil, e
	}
	d := &Device{fd: fd, open: true, path: path}
	d.cleanup = runtime.AddCleanup(d, closeFD, fd)
	return d, nil
}

func closeFD(fd int) { unix.Close(fd) }

// Close closes the device so another process can open it. Sessions stay
// valid. Closing twice returns nil.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.open {
		d.cleanup.Stop()
		if err := unix.Close(d.fd); err != nil {
			d.err = &Error{Op: "close", Err: err}
		}
		d.open = false
	}
	return d.err
}

// ioctl issues req on the device fd, which Close does not close meanwhile.
func (d *Device) ioctl(req uintptr, arg unsafe.Pointer) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if !d.open {
		return errClosed
	}
	return ioctl(uintptr(d.fd), req, arg)
}

// errClosed is the error of an operation on a closed Device.
var errClosed = fmt.Errorf("%w: %w", os.ErrClosed, unix.EBADF)

// CreateSession wraps LIVEUPDATE_IOCTL_CREATE_SESSION: it creates an
// outgoing session. Names are validated first (ValidateName); the kernel
// fails with EEXIST if an outgoing session of that name exists (an incoming
// one of the same name does not count).
func (d *Device) CreateSession(name string) (*Session, error) {
	const op = "CREATE_SESSION"
	if err := ValidateName(name); err != nil {
		return nil, &Error{Op: op, Session: name, Err: err}
	}
	arg := LiveupdateIoctlCreateSession{Size: uint32(unsafe.Sizeof(LiveupdateIoctlCreateSession{}))}
	copy(arg.Name[:], name)
	if err := d.ioctl(LIVEUPDATE_IOCTL_CREATE_SESSION, unsafe.Pointer(&arg)); err != nil {
		return nil, &Error{Op: op, Session: name, Err: err}
	}
	return newSession(int(arg.Fd), name, false), nil
}

// RetrieveSession wraps LIVEUPDATE_IOCTL_RETRIEVE_SESSION: it returns the
// incoming session of that name preserved by the previous kernel. ENOENT
// means there is none (see the error's hint for why).
func (d *Device) RetrieveSession(name string) (*Session, error) {
	const op = "RETRIEVE_SESSION"
	if err := ValidateName(name); err != nil {
		return nil, &Error{Op: op, Session: name, Err: err}
	}
	arg := LiveupdateIoctlRetrieveSession{Size: uint32(unsafe.Sizeof(LiveupdateIoctlRetrieveSession{}))}
	copy(arg.Name[:], name)
	if err := d.ioctl(LIVEUPDATE_IOCTL_RETRIEVE_SESSION, unsafe.Pointer(&arg)); err != nil {
		return nil, &Error{Op: op, Session: name, Err: err}
	}
	return newSession(int(arg.Fd), name, true), nil
}

// newSession adopts fd, the session fd the kernel returned, as is: the
// *os.File is made only if File asks for it.
func newSession(fd int, name string, incoming bool) *Session {
	s := &Session{fd: fd, open: true, name: name, incoming: incoming}
	s.cleanup = runtime.AddCleanup(s, closeFD, fd)
	return s
}

func newSessionFile(f *os.File, name string, incoming bool) *Session {
	return &Session{f: f, open: true, name: name, incoming: incoming}
}

// File returns the session's fd, for handing it to another process (for
// example through a service manager's fd store). The *os.File stays owned by
// s: closing it ends the session. Every call returns the same *os.File;
// after Close it is a closed file.
func (s *Session) File() *os.File {
	s.mu.RLock()
	f := s.f
	s.mu.RUnlock()
	if f != nil {
		return f
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		if s.open {
			// The file owns the fd from now on, and its finalizer
			// replaces the cleanup.
			s.cleanup.Stop()
			s.f = os.NewFile(uintptr(s.fd), sessionLinkPrefix+s.name)
		} else {
			s.f = closedFile(sessionLinkPrefix + s.name)
		}
	}
	return s.f
}

// closedFile returns a closed *os.File named name, or nil if it cannot
// make one: what File returns for a session closed before File was called.
func closedFile(name string) *os.File {
	fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), name)
	f.Close()
	return f
}

// Close closes the session fd. For an outgoing session this unpreserves
// every file in it (the files themselves are unharmed); for an incoming
// session it is an implicit FINISH, which discards unretrieved files.
// Closing again returns what the first Close returned.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open {
		s.open = false
		var err error
		if s.f != nil {
			err = s.f.Close()
		} else {
			s.cleanup.Stop()
			err = unix.Close(s.fd)
		}
		if err != nil {
			s.err = &Error{Op: "close", Session: s.name, Err: err}
		}
	}
	return s.err
}

// PreserveFD wraps LIVEUPDATE_SESSION_PRESERVE_FD: the file is preserved
// under token (any value, unique within the session) and carried to the
// next kernel as long as the session fd stays open. The kernel takes its own
// reference: f may be closed afterwards. From now on the memfd's size is
// frozen (ftruncate, growing writes and fallocate fail with EPERM); its
// contents stay writable, and what they hold at the kexec is what the next
// kernel gets.
func (s *Session) PreserveFD(f *os.File, token uint64) error {
	const op = "PRESERVE_FD"
	if f == nil {
		return &Error{Op: op, Session: s.name, Token: token, Err: unix.EBADF}
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return &Error{Op: op, Session: s.name, Token: token, Err: err}
	}
	arg := LiveupdateSessionPreserveFd{
		Size:  uint32(unsafe.Sizeof(LiveupdateSessionPreserveFd{})),
		Token: token,
	}
	var opErr error
	// f's fd stays open during the ioctl, as the session's does.
	if err := rc.Control(func(ffd uintptr) {
		arg.Fd = int32(ffd)
		opErr = s.ioctl(LIVEUPDATE_SESSION_PRESERVE_FD, unsafe.Pointer(&arg))
	}); err != nil {
		opErr = fmt.Errorf("%w: %w", err, unix.EBADF)
	}
	if opErr != nil {
		return &Error{Op: op, Session: s.name, Token: token, Err: opErr}
	}
	return nil
}

// RetrieveFD wraps LIVEUPDATE_SESSION_RETRIEVE_FD: it returns the file
// preserved under token, with its contents, size, file offset and seals
// restored (not its name). Retrieving a token again returns a new fd on the
// same open file description; a failed retrieve fails the same way every
// time. The kernel keeps the file pinned until Finish.
func (s *Session) RetrieveFD(token uint64) (*os.File, error) {
	const op = "RETRIEVE_FD"
	arg := LiveupdateSessionRetrieveFd{
		Size:  uint32(unsafe.Sizeof(LiveupdateSessionRetrieveFd{})),
		Token: token,
	}
	if err := s.ioctl(LIVEUPDATE_SESSION_RETRIEVE_FD, unsafe.Pointer(&arg)); err != nil {
		return nil, &Error{Op: op, Session: s.name, Token: token, Err: err}
	}
	return s.retrievedFile(arg.Fd, token), nil
}

// retrievedFile wraps the fd RETRIEVE_FD returned, named
// "luo:<session>:<token>" (built in one allocation).
func (s *Session) retrievedFile(fd int32, token uint64) *os.File {
	var buf [len("luo:") + MaxNameLen + len(":") + 20]byte
	b := append(buf[:0], "luo:"...)
	b = append(b, s.name...)
	b = append(b, ':')
	b = strconv.AppendUint(b, token, 10)
	return os.NewFile(uintptr(fd), string(b))
}

// Finish wraps LIVEUPDATE_SESSION_FINISH: the incoming session's files are
// released to their retrievers and every unretrieved file is discarded.
// Finishing again is a no-op. The session fd stays open until Close.
func (s *Session) Finish() error {
	arg := LiveupdateSessionFinish{Size: uint32(unsafe.Sizeof(LiveupdateSessionFinish{}))}
	if err := s.ioctl(LIVEUPDATE_SESSION_FINISH, unsafe.Pointer(&arg)); err != nil {
		return &Error{Op: "FINISH", Session: s.name, Err: err}
	}
	return nil
}

// GetName wraps LIVEUPDATE_SESSION_GET_NAME: it asks the kernel for the
// session's name.
func (s *Session) GetName() (string, error) {
	arg := LiveupdateSessionGetName{Size: uint32(unsafe.Sizeof(LiveupdateSessionGetName{}))}
	if err := s.ioctl(LIVEUPDATE_SESSION_GET_NAME, unsafe.Pointer(&arg)); err != nil {
		return "", &Error{Op: "GET_NAME", Session: s.name, Err: err}
	}
	return cstring(arg.Name[:]), nil
}

// sessionLinkPrefix is how /proc/<pid>/fd/N shows a session fd:
// "anon_inode:[luo_session] <name>".
const sessionLinkPrefix = "anon_inode:[luo_session] "

// SessionFromFile adopts f, a session fd received from elsewhere (an fd
// store, LISTEN_FDS), as a *Session that owns f. It returns an error wrapping
// ErrNotSession for any other file. Whether the session is incoming is
// probed without side effects: PRESERVE_FD of fd -1 fails with EINVAL on an
// incoming session and with EBADF (or EEXIST) on an outgoing one.
func SessionFromFile(f *os.File) (*Session, error) {
	name, err := sessionName(f)
	if err != nil {
		return nil, err
	}
	s := &Session{f: f, open: true, name: name}
	arg := LiveupdateSessionPreserveFd{Size: uint32(unsafe.Sizeof(LiveupdateSessionPreserveFd{})), Fd: -1, Token: ^uint64(0)}
	err = s.ioctl(LIVEUPDATE_SESSION_PRESERVE_FD, unsafe.Pointer(&arg))
	switch {
	case errors.Is(err, unix.EINVAL):
		s.incoming = true
	case errors.Is(err, unix.EBADF), errors.Is(err, unix.EEXIST):
	case err == nil:
		return nil, &Error{Op: "PRESERVE_FD", Session: name, Token: arg.Token, Err: errors.New("probe with fd -1 unexpectedly succeeded")}
	default:
		return nil, &Error{Op: "PRESERVE_FD", Session: name, Token: arg.Token, Detail: "probing the session's direction", Err: err}
	}
	return s, nil
}

// IsSession reports whether f is a LUO session fd.
func IsSession(f *os.File) bool {
	_, err := sessionName(f)
	return err == nil
}

// sessionName returns the session name of f, as systemd's
// fd_get_luo_session_name does: an anon-inode file whose /proc/self/fd link
// reads "anon_inode:[luo_session] <name>".
func sessionName(f *os.File) (string, error) {
	if f == nil {
		return "", fmt.Errorf("luo: nil file: %w", ErrNotSession)
	}
	var link string
	var statErr error
	rc, err := f.SyscallConn()
	if err != nil {
		return "", fmt.Errorf("luo: %s: %w", f.Name(), err)
	}
	if err := rc.Control(func(fd uintptr) {
		var st unix.Statfs_t
		if statErr = unix.Fstatfs(int(fd), &st); statErr != nil {
			return
		}
		if st.Type != unix.ANON_INODE_FS_MAGIC {
			statErr = ErrNotSession
			return
		}
		link, statErr = os.Readlink("/proc/self/fd/" + strconv.Itoa(int(fd)))
	}); err != nil {
		return "", fmt.Errorf("luo: %s: %w", f.Name(), err)
	}
	if statErr != nil {
		if statErr == ErrNotSession {
			return "", fmt.Errorf("luo: %s: %w", f.Name(), ErrNotSession)
		}
		return "", fmt.Errorf("luo: identify %s: %w", f.Name(), statErr)
	}
	name, ok := strings.CutPrefix(link, sessionLinkPrefix)
	if !ok || name == "" {
		return "", fmt.Errorf("luo: %s is %q: %w", f.Name(), link, ErrNotSession)
	}
	return name, nil
}

// ioctl issues req on the session fd, which Close does not close
// meanwhile. Once the fd is an *os.File (File, SessionFromFile), its owner
// may close that file directly, so the ioctl goes through the file's
// RawConn, taken anew on every call rather than kept in the Session: the
// compiler then sees its concrete type, so that neither the closure nor arg
// escape and the call allocates nothing.
func (s *Session) ioctl(req uintptr, arg unsafe.Pointer) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.open {
		return errClosed
	}
	if s.f == nil {
		return ioctl(uintptr(s.fd), req, arg)
	}
	rc, err := s.f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	if err := rc.Control(func(fd uintptr) { opErr = ioctl(fd, req, arg) }); err != nil {
		// The file is closed.
		return fmt.Errorf("%w: %w", err, unix.EBADF)
	}
	return opErr
}

// ioctl is the only place that issues a LUO ioctl. The kernel copies the
// whole struct back, so arg must be writable.
func ioctl(fd uintptr, req uintptr, arg unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(arg))
	if e != 0 {
		return e
	}
	return nil
}

func cstring(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

// holders lists the processes that have path open, as "pid 12 (luod), ...",
// as far as /proc lets us see.
func holders(path string) string {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return ""
	}
	var out []string
	self := strconv.Itoa(os.Getpid())
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		fds, err := os.ReadDir("/proc/" + p.Name() + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink("/proc/" + p.Name() + "/fd/" + fd.Name()); err == nil && l == path {
				comm, _ := os.ReadFile("/proc/" + p.Name() + "/comm")
				who := "pid " + p.Name() + " (" + strings.TrimSpace(string(comm)) + ")"
				if p.Name() == self {
					who += " [this process]"
				}
				out = append(out, who)
				break
			}
		}
	}
	return strings.Join(out, ", ")
}
