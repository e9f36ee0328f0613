package control

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// listenUnix creates a listening socket at path, mode 0600 from the start:
// socket(2), bind(2), chmod(2), then listen(2), so no client can connect
// before the mode is set.
func listenUnix(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", os.NewSyscallError("socket", err))
	}
	fail := func(op string, err error, bound bool) (*net.UnixListener, error) {
		unix.Close(fd)
		if bound {
			os.Remove(path)
		}
		return nil, fmt.Errorf("control socket %s: %w", path, os.NewSyscallError(op, err))
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return fail("bind", err, false)
	}
	if err := unix.Chmod(path, 0o600); err != nil {
		return fail("chmod", err, true)
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		return fail("listen", err, true)
	}
	f := os.NewFile(uintptr(fd), path)
	l, err := net.FileListener(f) // duplicates the fd
	f.Close()
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	ul, ok := l.(*net.UnixListener)
	if !ok {
		l.Close()
		os.Remove(path)
		return nil, fmt.Errorf("control socket %s: not a unix listener", path)
	}
	return ul, nil
}

// removeStale removes a socket file no server answers on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("control socket %s: exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("control socket %s: another server is listening on it", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale control socket: %w", err)
	}
	return nil
}

// peerCred returns the credentials of nc's peer, with SO_PEERCRED.
func peerCred(nc *net.UnixConn) (Ucred, error) {
	rc, err := nc.SyscallConn()
	if err != nil {
		return Ucred{}, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var serr error
	if err := rc.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Ucred{}, fmt.Errorf("peer credentials: %w", err)
	}
	if serr != nil {
		return Ucred{}, fmt.Errorf("peer credentials: %w", os.NewSyscallError("getsockopt SO_PEERCRED", serr))
	}
	return Ucred{PID: int(cred.Pid), UID: cred.Uid, GID: cred.Gid}, nil
}

// hungUp reports whether nc's peer shut down its writing side or closed
// the connection, without reading from it: poll(2) for POLLRDHUP. A
// connection that is closed already counts as hung up.
func hungUp(nc *net.UnixConn) bool {
	rc, err := nc.SyscallConn()
	if err != nil {
		return true
	}
	hup := false
	err = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		n, err := unix.Poll(fds, 0)
		hup = err == nil && n > 0 && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0
	})
	return hup || err != nil
}
