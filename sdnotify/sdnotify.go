package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

// ErrNoSocket is returned when there is no manager to notify: $NOTIFY_SOCKET
// is unset or empty, or the method was called on a nil *Notifier. It is the
// analogue of sd_notify(3) returning 0; a service that may run without a
// manager can ignore it:
//
//	if err := n.Ready(); err != nil && !errors.Is(err, sdnotify.ErrNoSocket) {
//		return err
//	}
var ErrNoSocket = errors.New("sdnotify: NOTIFY_SOCKET is not set, no service manager to notify")

// A Notifier sends notifications to one service manager socket. Create it
// with [Open] or [OpenAddr]; the zero value is not usable.
//
// A Notifier is safe for concurrent use by multiple goroutines. Methods called
// on a nil *Notifier return [ErrNoSocket] (after validating their arguments),
// so the result of a failed Open can be used without a check. After [Notifier.Close],
// methods return an error wrapping [syscall.EBADF].
type Notifier struct {
	addr   string
	sock   *os.File // AF_UNIX SOCK_DGRAM socket, unconnected; nil on non-Linux systems
	closed atomic.Bool
}

// Open returns a Notifier for the socket named by $NOTIFY_SOCKET, as
// [OpenAddr] does. It returns [ErrNoSocket] and a nil *Notifier when the
// variable is unset or empty. It does not unset the variable, so processes
// started by the service inherit it (like sd_notify with unset_environment=0);
// unset it with os.Unsetenv when that is not wanted.
func Open() (*Notifier, error) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil, ErrNoSocket
	}
	return OpenAddr(addr)
}

// OpenAddr returns a Notifier for the socket address addr, in the format of
// $NOTIFY_SOCKET: "/path" for an AF_UNIX socket in the file system, "@name"
// for one in the abstract namespace. The AF_VSOCK forms ("vsock:CID:PORT",
// "vsock-stream:", "vsock-dgram:", "vsock-seqpacket:") return an error wrapping
// [errors.ErrUnsupported]; anything else is an error wrapping
// [syscall.EINVAL]. The empty address returns [ErrNoSocket].
//
// OpenAddr creates a close-on-exec socket but does not contact the manager,
// so it succeeds even if nothing listens on addr: that is reported by the
// first send. Close the Notifier to release the socket.
func OpenAddr(addr string) (*Notifier, error) {
	if err := checkAddr(addr); err != nil {
		return nil, err
	}
	return openAddr(addr)
}

// sunPathLen is the size of sun_path in struct sockaddr_un.
const sunPathLen = 108

// vsockPrefixes are the AF_VSOCK forms of $NOTIFY_SOCKET (sd_notify(3)).
var vsockPrefixes = []string{"vsock:", "vsock-stream:", "vsock-dgram:", "vsock-seqpacket:"}

// checkAddr validates a $NOTIFY_SOCKET address.
func checkAddr(addr string) error {
	if addr == "" {
		return ErrNoSocket
	}
	for _, p := range vsockPrefixes {
		if strings.HasPrefix(addr, p) {
			return fmt.Errorf("sdnotify: notify socket %q: vsock notify sockets are not supported: %w", addr, errors.ErrUnsupported)
		}
	}
	if addr[0] != '/' && addr[0] != '@' {
		return fmt.Errorf("sdnotify: notify socket %q: want an absolute path (\"/run/...\") or an abstract name (\"@name\"): %w", addr, syscall.EINVAL)
	}
	if addr == "@" {
		return fmt.Errorf("sdnotify: notify socket %q: empty abstract name: %w", addr, syscall.EINVAL)
	}
	if i := strings.IndexByte(addr, 0); i >= 0 {
		return fmt.Errorf("sdnotify: notify socket %q: NUL byte at offset %d: %w", addr, i, syscall.EINVAL)
	}
	if len(addr) >= sunPathLen {
		return fmt.Errorf("sdnotify: notify socket %q: address is %d bytes, at most %d fit in sockaddr_un: %w", addr, len(addr), sunPathLen-1, syscall.EINVAL)
	}
	return nil
}

// Close releases the Notifier's socket. It does not affect the manager or
// $NOTIFY_SOCKET. Closing a closed or nil Notifier returns nil.
func (n *Notifier) Close() error {
	if n == nil || n.sock == nil || !n.closed.CompareAndSwap(false, true) {
		return nil
	}
	if err := n.sock.Close(); err != nil {
		return fmt.Errorf("sdnotify: close socket for %s: %w", n.addr, err)
	}
	return nil
}

// Addr returns the address the Notifier sends to, in $NOTIFY_SOCKET format,
// or "" for a nil Notifier.
func (n *Notifier) Addr() string {
	if n == nil {
		return ""
	}
	return n.addr
}

// Notify sends one notification made of the given assignments, each of the
// form KEY=VALUE, joined with newlines. KEY must be a non-empty string of
// A-Z, 0-9 and '_' (private extensions should start with "X_"); VALUE must
// contain neither a newline nor a NUL byte, and the whole message must fit in
// [MaxMessageSize] bytes. Invalid input is rejected before anything is sent.
//
// Like sd_notify, Notify blocks while the manager's receive queue is full
// (the manager is not reading). Well-known assignments have their own
// methods; see sd_notify(3) for the rest.
func (n *Notifier) Notify(state ...string) error {
	return n.NotifyWithFiles(nil, state...)
}

// NotifyWithFiles is like [Notifier.Notify] but also passes files to the
// manager (SCM_RIGHTS), at most [MaxFiles] of them. The manager closes every
// file the message does not tell it to keep (see [Notifier.StoreFiles]). The
// caller keeps ownership of files: the manager receives duplicates, and
// closing files afterwards does not affect them.
func (n *Notifier) NotifyWithFiles(files []*os.File, state ...string) error {
	payload, err := buildMessage(state)
	if err != nil {
		return err
	}
	if err := checkFiles(files); err != nil {
		return err
	}
	return n.send(payload, files)
}

// Ready sends READY=1: start-up is finished (Type=notify), or a reload
// announced with [Notifier.Reloading] is complete.
func (n *Notifier) Ready() error {
	return n.Notify("READY=1")
}

// Reloading sends RELOADING=1 with MONOTONIC_USEC= set to the current
// CLOCK_MONOTONIC time in microseconds, as Type=notify-reload requires.
// Send [Notifier.Ready] when the reload is complete.
func (n *Notifier) Reloading() error {
	usec, err := monotonicUsec()
	if err != nil {
		return err
	}
	return n.Notify("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatUint(usec, 10))
}

// Stopping sends STOPPING=1: the service is shutting down. The manager
// ignores READY=1 and RELOADING=1 after it.
func (n *Notifier) Stopping() error {
	return n.Notify("STOPPING=1")
}

// Status sends STATUS= with a free-form, single-line, UTF-8 status text shown
// by "systemctl status". The empty string clears it. systemd ignores texts
// that are not valid UTF-8, so Status rejects them.
func (n *Notifier) Status(status string) error {
	if !utf8.ValidString(status) {
		return fmt.Errorf("sdnotify: status %s is not valid UTF-8, which the manager ignores: %w", quoteShort(status), syscall.EINVAL)
	}
	return n.Notify("STATUS=" + status)
}

// maxErrno is the largest errno value the manager accepts (MAX_ERRNO).
const maxErrno = 4095

// Errno sends ERRNO=, the error the service failed with, as a number.
func (n *Notifier) Errno(errno syscall.Errno) error {
	if errno > maxErrno {
		return fmt.Errorf("sdnotify: errno %d out of range 0..%d: %w", uintptr(errno), maxErrno, syscall.EINVAL)
	}
	return n.Notify("ERRNO=" + strconv.FormatUint(uint64(errno), 10))
}

// ExtendTimeout sends EXTEND_TIMEOUT_USEC=: the manager extends the current
// start, runtime, stop or watchdog timeout to d from now. d must be positive
// and is rounded up to whole microseconds.
func (n *Notifier) ExtendTimeout(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("sdnotify: timeout extension %v must be positive: %w", d, syscall.EINVAL)
	}
	usec := d / time.Microsecond
	if d%time.Microsecond != 0 {
		usec++
	}
	return n.Notify("EXTEND_TIMEOUT_USEC=" + strconv.FormatInt(int64(usec), 10))
}

// Watchdog sends WATCHDOG=1, resetting the manager's watchdog timer
// (WatchdogSec=).
func (n *Notifier) Watchdog() error {
	return n.Notify("WATCHDOG=1")
}

// MainPID sends MAINPID=: pid becomes the service's main process. The manager
// only accepts a PID outside the unit's cgroup from root.
func (n *Notifier) MainPID(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("sdnotify: main PID %d must be positive: %w", pid, syscall.EINVAL)
	}
	return n.Notify("MAINPID=" + strconv.Itoa(pid))
}

// StoreOptions are the options of [Notifier.StoreFiles]. A nil *StoreOptions
// means the defaults.
type StoreOptions struct {
	// NoPoll sends FDPOLL=0: the manager does not watch the files for
	// POLLHUP/POLLERR. By default (false) a stored file on which the manager
	// sees POLLHUP or POLLERR, such as a socket whose peer has gone, is
	// removed from the store and closed. Files that cannot be polled
	// (regular files, memfds) are never watched.
	NoPoll bool
}

// StoreFiles sends files to the manager's fd store for this service
// (FDSTORE=1) under the given name (FDNAME=). They are handed back to the
// next instance of the service through $LISTEN_FDS, with name in
// $LISTEN_FDNAMES (see package activation). A nil opts means the defaults.
//
// The unit must set FileDescriptorStoreMax= high enough: otherwise the
// manager logs a warning and closes the files, and StoreFiles cannot tell.
// The manager also drops files that are already in the store (same
// underlying file); it keeps the existing entry and its name.
//
// name must pass [ValidFDName] and, unlike in systemd, must not be empty: an
// empty name would become an empty LISTEN_FDNAMES field, which
// sd_listen_fds_with_names cannot represent when it is the only one, and
// which a reader cannot tell from the "stored" default. At least one and at
// most [MaxFiles] files are required. The caller keeps ownership of files.
func (n *Notifier) StoreFiles(name string, files []*os.File, opts *StoreOptions) error {
	if err := validStoreName(name); err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("sdnotify: store %q: no files: %w", name, syscall.EINVAL)
	}
	state := []string{"FDSTORE=1", "FDNAME=" + name}
	if opts != nil && opts.NoPoll {
		state = append(state, "FDPOLL=0")
	}
	return n.NotifyWithFiles(files, state...)
}

// RemoveFiles sends FDSTOREREMOVE=1 with FDNAME=name: the manager closes and
// removes every entry of the service's fd store with that name. It is not an
// error if there is none. name must be valid and non-empty, as for
// [Notifier.StoreFiles].
func (n *Notifier) RemoveFiles(name string) error {
	if err := validStoreName(name); err != nil {
		return err
	}
	return n.Notify("FDSTOREREMOVE=1", "FDNAME="+name)
}

// Barrier waits until the manager has processed every notification this
// process sent before it (sd_notify_barrier(3)). It creates a pipe, sends
// BARRIER=1 with the write end as the only file, closes its own copy of the
// write end and waits until the manager closes its copy, which systemd does
// once it has processed the earlier messages.
//
// Barrier honours ctx while it waits for the manager (the send itself blocks
// like [Notifier.Notify]): when ctx is done first it returns an error
// wrapping ctx.Err(). Use a deadline: a manager that does not implement barriers
// (older than systemd 246) never closes the fd, and then it is only closed
// when the message is dropped.
func (n *Notifier) Barrier(ctx context.Context) error {
	if n == nil {
		return ErrNoSocket
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sdnotify: barrier: %w", err)
	}
	return n.barrier(ctx)
}

// errClosed is the error for methods called after Close.
func (n *Notifier) errClosed() error {
	return fmt.Errorf("sdnotify: send to %s: notifier is closed: %w", n.addr, syscall.EBADF)
}

// send sends one validated message.
func (n *Notifier) send(payload []byte, files []*os.File) error {
	if n == nil {
		return ErrNoSocket
	}
	if n.sock == nil {
		return fmt.Errorf("sdnotify: Notifier not created by Open or OpenAddr: %w", syscall.EBADF)
	}
	if n.closed.Load() {
		return n.errClosed()
	}
	return n.sendmsg(payload, files)
}
