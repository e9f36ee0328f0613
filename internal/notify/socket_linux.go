package notify

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rcvbufSize is the receive buffer size systemd asks for
// (NOTIFY_RCVBUF_SIZE).
const rcvbufSize = 8 << 20

// recvFlags are the flags of every recvmsg(2): never block (the Go poller
// waits), make received fds close-on-exec, and report the real length of a
// datagram longer than the buffer.
const recvFlags = unix.MSG_DONTWAIT | unix.MSG_CMSG_CLOEXEC | unix.MSG_TRUNC

// A Socket is luod's notification socket, an AF_UNIX SOCK_DGRAM socket with
// SO_PASSCRED (and SO_PASSPIDFD when the kernel has it).
//
// A Socket is safe for concurrent use. Close may be called at any time and
// makes pending and later calls to Receive fail with an error matching
// [net.ErrClosed]. Concurrent Receive calls take turns; each datagram goes to
// one of them.
type Socket struct {
	path      string
	f         *os.File
	rc        syscall.RawConn
	passPIDFD bool
	closed    atomic.Bool

	// turn is held by the Receive that owns the buffers and the read
	// deadline.
	turn chan struct{}
	buf  []byte
	oob  []byte
	iov  unix.Iovec
	hdr  unix.Msghdr
}

// Listen creates the notification socket and binds it at path, whose parent
// directory must exist: a path starting with '@' names a socket in the
// abstract namespace instead. A stale socket file at path is removed first;
// any other file there is an error. The socket file is made mode 0777, like
// systemd's, and is left in place by Close so that a re-executed luod can
// keep using the socket (see File).
//
// The socket is close-on-exec and non-blocking, with SO_PASSCRED on,
// SO_PASSPIDFD on when the kernel supports it (see PIDFDEnabled), and a
// receive buffer of 8 MiB if allowed (SO_RCVBUFFORCE, else SO_RCVBUF).
func Listen(path string) (*Socket, error) {
	return listen(path, controlSize(FDMax))
}

// controlSize is the size of a control buffer with room for the
// credentials, a pidfd and maxFDs fds.
func controlSize(maxFDs int) int {
	return unix.CmsgSpace(unix.SizeofUcred) +
		unix.CmsgSpace(4) + // SCM_PIDFD
		unix.CmsgSpace(4*maxFDs)
}

// listen is Listen with a control buffer of oobSize bytes.
func listen(path string, oobSize int) (*Socket, error) {
	if path == "" {
		return nil, errors.New("notify: listen: empty socket path")
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("notify: listen %s: %w", path, os.NewSyscallError("socket", err))
	}
	passPIDFD, err := bindSocket(fd, path)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("notify: listen %s: %w", path, err)
	}
	return newSocket(fd, path, passPIDFD, oobSize), nil
}

// bindSocket binds fd at path and sets the socket options.
func bindSocket(fd int, path string) (passPIDFD bool, err error) {
	abstract := path[0] == '@'
	if !abstract {
		if err := removeStale(path); err != nil {
			return false, err
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return false, os.NewSyscallError("bind", err)
	}
	if !abstract {
		if err := os.Chmod(path, 0o777); err != nil {
			os.Remove(path)
			return false, err
		}
	}
	passPIDFD, err = setOptions(fd)
	if err != nil && !abstract {
		os.Remove(path)
	}
	return passPIDFD, err
}

// removeStale removes a socket file left at path by an earlier luod.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("%s exists and is not a socket (mode %v): %w", path, fi.Mode(), fs.ErrExist)
	}
	return os.Remove(path)
}

// setOptions turns on SO_PASSCRED (required) and SO_PASSPIDFD (reported in
// passPIDFD), and raises the receive buffer as far as allowed.
func setOptions(fd int) (passPIDFD bool, err error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		return false, os.NewSyscallError("setsockopt SO_PASSCRED", err)
	}
	// Linux 6.5 and later; systemd goes on without it too.
	passPIDFD = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSPIDFD, 1) == nil
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbufSize) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbufSize)
	}
	return passPIDFD, nil
}

// newSocket wraps fd, a bound non-blocking notification socket, and takes
// ownership of it.
func newSocket(fd int, path string, passPIDFD bool, oobSize int) *Socket {
	f := os.NewFile(uintptr(fd), path)
	rc, _ := f.SyscallConn() // fails only for a nil *os.File
	s := &Socket{
		path:      path,
		f:         f,
		rc:        rc,
		passPIDFD: passPIDFD,
		turn:      make(chan struct{}, 1),
		buf:       make([]byte, BufferMax),
		oob:       make([]byte, oobSize),
	}
	s.iov.Base = &s.buf[0]
	s.iov.SetLen(len(s.buf))
	s.hdr.Iov = &s.iov
	s.hdr.SetIovlen(1)
	s.hdr.Control = &s.oob[0]
	return s
}

// FromFile returns a Socket for a notification socket inherited from an
// earlier luod (see File). f must be a bound AF_UNIX SOCK_DGRAM socket;
// otherwise the error matches syscall.ENOTSOCK or syscall.EPROTOTYPE.
//
// The Socket uses a duplicate of f's descriptor, so the caller should close
// f. The duplicate shares f's open file description, which FromFile makes
// non-blocking, and FromFile turns the socket options on again as Listen
// does. Path is taken from getsockname(2).
func FromFile(f *os.File) (*Socket, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("notify: from file %s: %w", f.Name(), err)
	}
	fd := -1
	var cerr error
	if err := rc.Control(func(sysfd uintptr) { fd, cerr = dupSocket(int(sysfd)) }); err != nil {
		return nil, fmt.Errorf("notify: from file %s: %w", f.Name(), err)
	}
	if cerr != nil {
		return nil, fmt.Errorf("notify: from file %s: %w", f.Name(), cerr)
	}
	path, passPIDFD, err := adoptSocket(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("notify: from file %s: %w", f.Name(), err)
	}
	return newSocket(fd, path, passPIDFD, controlSize(FDMax)), nil
}

// dupSocket checks that fd is an AF_UNIX SOCK_DGRAM socket and returns a
// close-on-exec duplicate.
func dupSocket(fd int) (int, error) {
	domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return -1, os.NewSyscallError("getsockopt SO_DOMAIN", err)
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return -1, os.NewSyscallError("getsockopt SO_TYPE", err)
	}
	if domain != unix.AF_UNIX || typ != unix.SOCK_DGRAM {
		return -1, fmt.Errorf("not an AF_UNIX SOCK_DGRAM socket (domain %d, type %d): %w", domain, typ, unix.EPROTOTYPE)
	}
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
	}
	return nfd, nil
}

// adoptSocket makes fd non-blocking, sets the socket options and returns
// the address it is bound to.
func adoptSocket(fd int) (path string, passPIDFD bool, err error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		return "", false, os.NewSyscallError("fcntl O_NONBLOCK", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return "", false, os.NewSyscallError("getsockname", err)
	}
	if sa, ok := sa.(*unix.SockaddrUnix); ok {
		path = sa.Name
	}
	if path == "" || path == "@" {
		return "", false, errors.New("socket is not bound")
	}
	passPIDFD, err = setOptions(fd)
	return path, passPIDFD, err
}

// File returns a duplicate of the socket's descriptor, to hand the socket to
// a re-executed luod, which adopts it with FromFile. The duplicate is
// close-on-exec: pass it in exec.Cmd.ExtraFiles (which clears the flag in
// the child), or clear FD_CLOEXEC before execve(2) in place. It shares the
// socket's open file description, so O_NONBLOCK is shared as well; Receive
// does not depend on it (every recvmsg uses MSG_DONTWAIT).
func (s *Socket) File() (*os.File, error) {
	nfd := -1
	var derr error
	err := s.rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	})
	switch {
	case s.closed.Load():
		if nfd >= 0 {
			unix.Close(nfd)
		}
		return nil, fmt.Errorf("notify: file: %w", net.ErrClosed)
	case err != nil:
		return nil, fmt.Errorf("notify: file: %w", err)
	case derr != nil:
		return nil, fmt.Errorf("notify: file: %w", os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", derr))
	}
	return os.NewFile(uintptr(nfd), s.path), nil
}

// Path returns the address the socket is bound to: a file system path, or
// "@name" for the abstract namespace.
func (s *Socket) Path() string { return s.path }

// PIDFDEnabled reports whether SO_PASSPIDFD could be turned on (Linux 6.5 and
// later). If not, messages carry no PIDFD and senders are known by PID only.
func (s *Socket) PIDFDEnabled() bool { return s.passPIDFD }

// Close closes the socket, which makes pending Receive calls return. It
// does not remove the socket file. Calls after the first return nil.
func (s *Socket) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("notify: close: %w", err)
	}
	return nil
}

// Pending reports whether a datagram is queued on the socket (FIONREAD).
// luod checks it before reaping children, so that what a service sent
// right before exiting is handled first, as systemd does.
func (s *Socket) Pending() bool {
	n := 0
	s.rc.Control(func(fd uintptr) {
		n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	})
	return n > 0
}

// WaitReadable waits until a datagram is queued, without reading it, or
// until ctx is done or the socket is closed (it then returns an error). A
// service manager that reads the socket in its own loop (TryReceive) waits
// with it in another goroutine: what a service sent before it exited is
// then read in order with everything else the loop learns, its exit
// included.
func (s *Socket) WaitReadable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("notify: wait: %w", err)
	}
	defer s.wakeOn(ctx)()
	err := s.rc.Read(func(fd uintptr) bool { return s.queued(int(fd)) })
	switch {
	case s.closed.Load():
		return fmt.Errorf("notify: wait: %w", net.ErrClosed)
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
		return fmt.Errorf("notify: wait: %w", ctx.Err())
	case err != nil:
		return fmt.Errorf("notify: wait: %w", err)
	}
	return nil
}

// wakeOn wakes a wait on the socket when ctx is done, by setting a read
// deadline in the past; the function it returns undoes that, after the
// callback has run if it started, before the next wait.
func (s *Socket) wakeOn(ctx context.Context) (undo func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = s.f.SetReadDeadline(time.Unix(1, 0))
		close(fired)
	})
	return func() {
		if !stop() {
			<-fired
			_ = s.f.SetReadDeadline(time.Time{})
		}
	}
}

// queued reports whether a datagram is queued (an empty one included,
// which SIOCINQ would not tell from an empty queue), by peeking at it
// without taking it or its fds.
func (s *Socket) queued(fd int) bool {
	var b [1]byte
	_, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return err != unix.EAGAIN
}

// TryReceive returns the next queued datagram as a Message, like Receive,
// or nil and a nil error when none is queued. It never blocks.
func (s *Socket) TryReceive() (*Message, error) {
	s.turn <- struct{}{}
	defer func() { <-s.turn }()
	if s.closed.Load() {
		return nil, fmt.Errorf("notify: receive: %w", net.ErrClosed)
	}
	var n, oobn, flags int
	var rerr error
	if err := s.rc.Control(func(fd uintptr) {
		for {
			if n, oobn, flags, rerr = s.recvmsg(int(fd)); rerr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return nil, fmt.Errorf("notify: receive: %w", err)
	}
	switch {
	case rerr == unix.EAGAIN:
		return nil, nil
	case rerr != nil:
		return nil, fmt.Errorf("notify: receive: %w", os.NewSyscallError("recvmsg", rerr))
	}
	return s.decode(n, oobn, flags)
}

// Receive waits for the next datagram and returns it as a Message, which the
// caller must Close (or take the files of). It returns
//
//   - a *DropError when the datagram was dropped (see the package doc),
//     after closing every fd that came with it: log it and call Receive
//     again;
//   - an error matching net.ErrClosed once the socket is closed;
//   - ctx.Err(), wrapped, when ctx is done first;
//   - any other error (from recvmsg(2)) when the socket is unusable.
func (s *Socket) Receive(ctx context.Context) (*Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("notify: receive: %w", err)
	}
	select {
	case s.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("notify: receive: %w", ctx.Err())
	}
	defer func() { <-s.turn }()
	if s.closed.Load() {
		return nil, fmt.Errorf("notify: receive: %w", net.ErrClosed)
	}

	defer s.wakeOn(ctx)()

	var n, oobn, flags int
	var rerr error
	err := s.rc.Read(func(fd uintptr) bool {
		for {
			n, oobn, flags, rerr = s.recvmsg(int(fd))
			if rerr != unix.EINTR {
				return rerr != unix.EAGAIN
			}
		}
	})
	switch {
	case s.closed.Load():
		if err == nil && rerr == nil {
			// Received just as Close ran: deliver it, the fds are live.
			return s.decode(n, oobn, flags)
		}
		return nil, fmt.Errorf("notify: receive: %w", net.ErrClosed)
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
		return nil, fmt.Errorf("notify: receive: %w", ctx.Err())
	case err != nil:
		return nil, fmt.Errorf("notify: receive: %w", err)
	case rerr != nil:
		return nil, fmt.Errorf("notify: receive: %w", os.NewSyscallError("recvmsg", rerr))
	}
	return s.decode(n, oobn, flags)
}

// recvmsg wraps recvmsg(2) into the socket's buffers. Unlike unix.Recvmsg
// it allocates nothing and asks for no sender address.
func (s *Socket) recvmsg(fd int) (n, oobn, flags int, err error) {
	s.hdr.SetControllen(len(s.oob))
	s.hdr.Flags = 0
	r, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&s.hdr)), recvFlags)
	if e != 0 {
		return 0, 0, 0, e
	}
	return int(r), int(s.hdr.Controllen), int(s.hdr.Flags), nil
}

// decode turns a received datagram into a Message, or drops it and closes
// its fds.
func (s *Socket) decode(n, oobn, flags int) (*Message, error) {
	c := parseControl(s.oob[:oobn])
	c.closeStray()
	drop := func(de *DropError) (*Message, error) {
		c.closeAll()
		if c.hasCred && c.cred.Pid > 0 {
			de.PID = int(c.cred.Pid)
		}
		de.FDs = len(c.fds)
		return nil, de
	}
	switch {
	case flags&unix.MSG_CTRUNC != 0:
		return drop(&DropError{Reason: reasonTruncatedControl})
	case flags&unix.MSG_TRUNC != 0 || n > len(s.buf):
		return drop(&DropError{Reason: reasonTruncatedPayload})
	case !c.hasCred || c.cred.Pid <= 0:
		return drop(&DropError{Reason: reasonNoCredentials})
	}
	m, err := Parse(s.buf[:n])
	if err != nil {
		var de *DropError
		if !errors.As(err, &de) {
			de = &DropError{Reason: "invalid message: " + err.Error()}
		}
		return drop(de)
	}
	m.PID, m.UID, m.GID = int(c.cred.Pid), c.cred.Uid, c.cred.Gid
	if c.pidfd >= 0 {
		m.PIDFD = os.NewFile(uintptr(c.pidfd), "pidfd")
	}
	if len(c.fds) > 0 {
		m.Files = make([]*os.File, len(c.fds))
		for i, fd := range c.fds {
			m.Files[i] = os.NewFile(uintptr(fd), "notify-fd")
		}
	}
	return m, nil
}

// control is what parseControl found in the control data of one datagram.
type control struct {
	fds     []int // SCM_RIGHTS, from every such message, in order
	pidfd   int   // the first SCM_PIDFD, or -1
	stray   []int // further SCM_PIDFDs, never used
	cred    unix.Ucred
	hasCred bool // cred is from the first SCM_CREDENTIALS
}

// parseControl walks the control messages in b. Unlike
// unix.ParseSocketControlMessage it never gives up half way, so that every
// fd that arrived is found and can be closed: a header whose length runs
// past the buffer is cut at its end.
func parseControl(b []byte) control {
	c := control{pidfd: -1}
	hdrLen := unix.CmsgLen(0)
	for len(b) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		hl := uint64(h.Len) // uint32 on 32-bit systems
		if hl < uint64(hdrLen) {
			break
		}
		l := len(b)
		if hl < uint64(l) {
			l = int(hl)
		}
		data := b[hdrLen:l]
		if h.Level == unix.SOL_SOCKET {
			switch h.Type {
			case unix.SCM_RIGHTS:
				for ; len(data) >= 4; data = data[4:] {
					c.fds = append(c.fds, int(int32(binary.NativeEndian.Uint32(data))))
				}
			case unix.SCM_PIDFD:
				if len(data) >= 4 {
					fd := int(int32(binary.NativeEndian.Uint32(data)))
					if c.pidfd < 0 {
						c.pidfd = fd
					} else {
						c.stray = append(c.stray, fd)
					}
				}
			case unix.SCM_CREDENTIALS:
				if !c.hasCred && len(data) >= unix.SizeofUcred {
					c.cred = unix.Ucred{
						Pid: int32(binary.NativeEndian.Uint32(data[0:])),
						Uid: binary.NativeEndian.Uint32(data[4:]),
						Gid: binary.NativeEndian.Uint32(data[8:]),
					}
					c.hasCred = true
				}
			}
		}
		next := cmsgAlign(l)
		if next >= len(b) {
			break
		}
		b = b[next:]
	}
	return c
}

// cmsgAlign is CMSG_ALIGN.
func cmsgAlign(n int) int {
	return (n + unix.SizeofPtr - 1) &^ (unix.SizeofPtr - 1)
}

// closeAll closes every fd in c.
func (c *control) closeAll() {
	for _, fd := range c.fds {
		unix.Close(fd)
	}
	if c.pidfd >= 0 {
		unix.Close(c.pidfd)
	}
	c.closeStray()
}

// closeStray closes the fds in c that are never handed out.
func (c *control) closeStray() {
	for _, fd := range c.stray {
		unix.Close(fd)
	}
	c.stray = nil
}
