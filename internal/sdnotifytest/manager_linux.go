package sdnotifytest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// payloadBufSize is one byte more than the manager's buffer
	// (NOTIFY_BUFFER_MAX = PIPE_BUF = 4096), so that a too-long payload
	// shows up as len(Payload) > 4096 even when it is not truncated.
	payloadBufSize = 4096 + 1

	// maxFDs is how many fds the manager makes room for (NOTIFY_FD_MAX).
	maxFDs = 768
)

// A Manager is the receiving end of a notification socket, bound to a fresh
// address. Create it with [New] or [NewAbstract]; it is closed by the test's
// cleanup. Receive, ExpectNone and Serve must not be called concurrently.
type Manager struct {
	addr string
	sock *os.File // non-blocking, registered with the runtime poller
	mu   sync.Mutex
}

// New returns a Manager bound to a file system socket in a temporary
// directory (tb.TempDir, or a shorter directory when that path does not fit
// in sockaddr_un).
func New(tb testing.TB) *Manager {
	tb.Helper()
	dir := tb.TempDir()
	path := filepath.Join(dir, "notify")
	if len(path) >= 108 {
		short, err := os.MkdirTemp("", "sdn")
		if err != nil {
			tb.Fatalf("sdnotifytest: %v", err)
		}
		tb.Cleanup(func() { os.RemoveAll(short) })
		path = filepath.Join(short, "notify")
	}
	return newManager(tb, path)
}

// NewAbstract returns a Manager bound to a random name in the abstract
// namespace; its address starts with '@'.
func NewAbstract(tb testing.TB) *Manager {
	tb.Helper()
	return newManager(tb, fmt.Sprintf("@luo-sdnotifytest/%d/%016x", os.Getpid(), rand.Uint64()))
}

func newManager(tb testing.TB, addr string) *Manager {
	tb.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		tb.Fatalf("sdnotifytest: socket: %v", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		unix.Close(fd)
		tb.Fatalf("sdnotifytest: setsockopt SO_PASSCRED: %v", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: addr}); err != nil {
		unix.Close(fd)
		tb.Fatalf("sdnotifytest: bind %s: %v", addr, err)
	}
	m := &Manager{addr: addr, sock: os.NewFile(uintptr(fd), addr)}
	tb.Cleanup(func() { m.sock.Close() })
	return m
}

// Addr returns the address of the socket in $NOTIFY_SOCKET format.
func (m *Manager) Addr() string { return m.addr }

// Setenv sets $NOTIFY_SOCKET to the Manager's address for the duration of the
// test (tb.Setenv, so the test cannot be parallel).
func (m *Manager) Setenv(tb testing.TB) {
	tb.Helper()
	tb.Setenv("NOTIFY_SOCKET", m.addr)
}

// A Datagram is one received notification.
type Datagram struct {
	// Payload is the datagram's data. A payload longer than 4096 bytes,
	// which systemd drops, has length 4097 (or Trunc set).
	Payload []byte
	// Creds holds the sender's SCM_CREDENTIALS, or nil if absent.
	Creds *unix.Ucred
	// Files holds the received fds (close-on-exec), in order. The
	// receiver owns them: see Close.
	Files []*os.File
	// Trunc and CTrunc report MSG_TRUNC and MSG_CTRUNC; systemd drops
	// such datagrams.
	Trunc, CTrunc bool
	// OOB is the raw ancillary data.
	OOB []byte
}

// Lines returns the payload split at newlines.
func (d *Datagram) Lines() []string {
	return strings.Split(string(d.Payload), "\n")
}

// Close closes every file in d.Files, as the manager does with fds it does
// not keep. Closing a barrier fd releases the waiting sender.
func (d *Datagram) Close() error {
	var errs []error
	for _, f := range d.Files {
		errs = append(errs, f.Close())
	}
	d.Files = nil
	return errors.Join(errs...)
}

// Receive waits for the next datagram. It returns an error wrapping ctx.Err()
// when ctx is done first.
func (m *Manager) Receive(ctx context.Context) (*Datagram, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.sock.SetReadDeadline(time.Time{}); err != nil {
		return nil, err
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		m.sock.SetReadDeadline(time.Unix(1, 0))
		close(fired)
	})
	defer func() {
		if !stop() {
			<-fired // do not let it move the deadline of the next call
		}
	}()
	d, err := m.recv(true)
	if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
		return nil, fmt.Errorf("sdnotifytest: receive on %s: %w", m.addr, ctx.Err())
	}
	return d, err
}

// TryReceive returns the next queued datagram, or nil if none is queued.
func (m *Manager) TryReceive() (*Datagram, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.recv(false)
}

// ExpectNone fails the test if a datagram is queued on the socket. Because
// sendmsg on an AF_UNIX datagram socket queues the message before it returns,
// this checks that an earlier send sent nothing.
func (m *Manager) ExpectNone(tb testing.TB) {
	tb.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	d, err := m.recv(false)
	if err != nil {
		tb.Fatalf("sdnotifytest: %v", err)
	}
	if d != nil {
		d.Close()
		tb.Errorf("sdnotifytest: unexpected datagram %q with %d files", d.Payload, len(d.Files))
	}
}

// Serve receives datagrams until ctx is done, calls handle (if not nil) on
// each and then closes its files, as a manager that consumes no fds does; in
// particular it honours barriers. A handler that wants to keep the files
// takes them by setting d.Files to nil. Serve returns nil when ctx is done.
func (m *Manager) Serve(ctx context.Context, handle func(*Datagram)) error {
	for {
		d, err := m.Receive(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if handle != nil {
			handle(d)
		}
		d.Close()
	}
}

// recv reads one datagram; when wait is false it returns (nil, nil) if none
// is queued.
func (m *Manager) recv(wait bool) (*Datagram, error) {
	rc, err := m.sock.SyscallConn()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, payloadBufSize)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4)+unix.CmsgSpace(4*maxFDs))
	var (
		n, oobn, flags int
		rerr           error
		got            bool
	)
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, flags, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC)
		if rerr == unix.EAGAIN || rerr == unix.EWOULDBLOCK {
			rerr = nil
			return !wait
		}
		got = rerr == nil
		return true
	})
	if err != nil {
		return nil, err
	}
	if rerr != nil {
		return nil, fmt.Errorf("sdnotifytest: recvmsg on %s: %w", m.addr, rerr)
	}
	if !got {
		return nil, nil
	}
	d := &Datagram{
		Payload: buf[:n],
		OOB:     oob[:oobn],
		Trunc:   flags&unix.MSG_TRUNC != 0,
		CTrunc:  flags&unix.MSG_CTRUNC != 0,
	}
	msgs, err := unix.ParseSocketControlMessage(d.OOB)
	if err != nil {
		return nil, fmt.Errorf("sdnotifytest: parse control messages: %w", err)
	}
	for i := range msgs {
		msg := &msgs[i]
		if msg.Header.Level != unix.SOL_SOCKET {
			continue
		}
		switch msg.Header.Type {
		case unix.SCM_CREDENTIALS:
			if d.Creds, err = unix.ParseUnixCredentials(msg); err != nil {
				d.Close()
				return nil, fmt.Errorf("sdnotifytest: parse SCM_CREDENTIALS: %w", err)
			}
		case unix.SCM_RIGHTS:
			fds, err := unix.ParseUnixRights(msg)
			if err != nil {
				d.Close()
				return nil, fmt.Errorf("sdnotifytest: parse SCM_RIGHTS: %w", err)
			}
			for _, fd := range fds {
				d.Files = append(d.Files, os.NewFile(uintptr(fd), fmt.Sprintf("received-fd-%d", len(d.Files))))
			}
		}
	}
	return d, nil
}
