package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// openAddr creates the socket for a validated address.
func openAddr(addr string) (*Notifier, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sdnotify: create socket for %s: %w", addr, os.NewSyscallError("socket", err))
	}
	// The socket stays blocking, like libsystemd's: a datagram to a full
	// receive queue waits rather than being lost. os.NewFile therefore
	// does not register it with the runtime poller; it is only used for its
	// reference-counted Close.
	return &Notifier{addr: addr, sock: os.NewFile(uintptr(fd), "sdnotify:"+addr)}, nil
}

// ownCreds returns the credentials libsystemd puts in SCM_CREDENTIALS: our
// PID and our real user and group IDs.
func ownCreds() *unix.Ucred {
	return &unix.Ucred{Pid: int32(os.Getpid()), Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
}

// controlMessage builds the ancillary data of a notification: SCM_RIGHTS
// with fds (when there are any), then SCM_CREDENTIALS with creds (when not
// nil), in the order libsystemd uses.
func controlMessage(fds []int, creds *unix.Ucred) []byte {
	var oob []byte
	if len(fds) > 0 {
		oob = append(oob, unix.UnixRights(fds...)...)
	}
	if creds != nil {
		oob = append(oob, unix.UnixCredentials(creds)...)
	}
	return oob
}

// sendmsg sends payload and files as one datagram.
func (n *Notifier) sendmsg(payload []byte, files []*os.File) error {
	sc, err := n.sock.SyscallConn()
	if err != nil {
		return fmt.Errorf("sdnotify: send to %s: %w", n.addr, err)
	}
	var sendErr error
	err = withFDs(files, make([]int, 0, len(files)), func(fds []int) error {
		if err := sc.Control(func(sock uintptr) {
			sendErr = n.sendmsgFDs(int(sock), payload, fds)
		}); err != nil {
			// Control only fails when the socket has been closed
			// since send checked.
			return n.errClosed()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return sendErr
}

// sendmsgFDs does the sendmsg(2) call. Like libsystemd, it retries without
// SCM_CREDENTIALS when the kernel refuses them (for example in a user
// namespace where our IDs are not mapped); the receiving manager enables
// SO_PASSCRED, so the kernel then attaches our credentials itself.
func (n *Notifier) sendmsgFDs(sock int, payload []byte, fds []int) error {
	// A new sockaddr per call: unix.Sendmsg writes into it.
	to := &unix.SockaddrUnix{Name: n.addr}
	err := unix.Sendmsg(sock, payload, controlMessage(fds, ownCreds()), to, unix.MSG_NOSIGNAL)
	if err == unix.EPERM || err == unix.EINVAL || err == unix.ESRCH {
		err = unix.Sendmsg(sock, payload, controlMessage(fds, nil), to, unix.MSG_NOSIGNAL)
	}
	if err == nil {
		return nil
	}
	serr := os.NewSyscallError("sendmsg", err)
	switch err {
	case unix.ENOENT, unix.ECONNREFUSED:
		return fmt.Errorf("sdnotify: send to %s: %w (no service manager is listening on this socket)", n.addr, serr)
	case unix.EAGAIN:
		return fmt.Errorf("sdnotify: send to %s: %w (the manager's receive queue is full)", n.addr, serr)
	}
	return fmt.Errorf("sdnotify: send to %s: %w", n.addr, serr)
}

// withFDs calls fn with the descriptors of files appended to fds. Each
// file is kept open (its descriptor cannot be closed and reused) until fn
// returns, through (*os.File).SyscallConn rather than Fd, which would switch
// the caller's non-blocking files to blocking mode.
func withFDs(files []*os.File, fds []int, fn func([]int) error) error {
	if len(files) == 0 {
		return fn(fds)
	}
	i := len(fds)
	sc, err := files[0].SyscallConn()
	if err != nil {
		return fmt.Errorf("sdnotify: file %d (%s): %w", i, files[0].Name(), err)
	}
	var inner error
	if err := sc.Control(func(fd uintptr) {
		inner = withFDs(files[1:], append(fds, int(fd)), fn)
	}); err != nil {
		// Control only fails for a closed file, with an error of
		// internal/poll that errors.Is cannot match: report os.ErrClosed.
		return fmt.Errorf("sdnotify: file %d (%s): %w", i, files[0].Name(), os.ErrClosed)
	}
	return inner
}

// barrier implements Barrier once the trivial checks are done.
func (n *Notifier) barrier(ctx context.Context) error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("sdnotify: barrier: %w", os.NewSyscallError("pipe2", err))
	}
	// The read end is made non-blocking so that os.NewFile registers it
	// with the runtime poller, which gives deadlines for ctx.
	if err := unix.SetNonblock(p[0], true); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return fmt.Errorf("sdnotify: barrier: %w", os.NewSyscallError("fcntl", err))
	}
	r := os.NewFile(uintptr(p[0]), "sdnotify-barrier-r")
	defer r.Close()
	w := os.NewFile(uintptr(p[1]), "sdnotify-barrier-w")
	err := n.send([]byte("BARRIER=1"), []*os.File{w})
	w.Close()
	if err != nil {
		return err
	}

	stop := context.AfterFunc(ctx, func() {
		r.SetReadDeadline(time.Unix(1, 0))
	})
	defer stop()
	var buf [64]byte
	for {
		// The manager never writes: the read returns EOF when the last
		// copy of the write end is closed, i.e. on POLLHUP.
		_, err := r.Read(buf[:])
		switch {
		case err == io.EOF:
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
			return fmt.Errorf("sdnotify: barrier: manager at %s did not respond: %w", n.addr, ctx.Err())
		case err != nil:
			return fmt.Errorf("sdnotify: barrier: %w", err)
		}
	}
}

// monotonicUsec returns CLOCK_MONOTONIC in microseconds, the clock of
// MONOTONIC_USEC=.
func monotonicUsec() (uint64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("sdnotify: %w", os.NewSyscallError("clock_gettime", err))
	}
	return uint64(ts.Sec)*1e6 + uint64(ts.Nsec)/1e3, nil
}
