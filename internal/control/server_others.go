//go:build !linux

package control

import (
	"errors"
	"fmt"
	"net"
	"runtime"
)

func listenUnix(path string) (*net.UnixListener, error) {
	return nil, fmt.Errorf("control socket %s: %w on %s", path, errors.ErrUnsupported, runtime.GOOS)
}

func peerCred(*net.UnixConn) (Ucred, error) {
	return Ucred{}, fmt.Errorf("peer credentials: %w on %s", errors.ErrUnsupported, runtime.GOOS)
}

func hungUp(*net.UnixConn) bool { return false }
