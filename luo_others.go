//go:build !linux

package luo

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

var errUnsupported = fmt.Errorf("live update needs Linux, not %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Open opens DevicePath. It always fails on this operating system.
func Open() (*Device, error) { return OpenPath(DevicePath) }

// OpenPath opens the LUO device at path. It always fails on this operating system.
func OpenPath(path string) (*Device, error) {
	return nil, &Error{Op: "open", Detail: path, Err: errUnsupported}
}

// CreateSession is not supported on this operating system.
func (d *Device) CreateSession(name string) (*Session, error) {
	return nil, &Error{Op: "CREATE_SESSION", Session: name, Err: errUnsupported}
}

// RetrieveSession is not supported on this operating system.
func (d *Device) RetrieveSession(name string) (*Session, error) {
	return nil, &Error{Op: "RETRIEVE_SESSION", Session: name, Err: errUnsupported}
}

// PreserveFD is not supported on this operating system.
func (s *Session) PreserveFD(f *os.File, token uint64) error {
	return &Error{Op: "PRESERVE_FD", Session: s.name, Token: token, Err: errUnsupported}
}

// RetrieveFD is not supported on this operating system.
func (s *Session) RetrieveFD(token uint64) (*os.File, error) {
	return nil, &Error{Op: "RETRIEVE_FD", Session: s.name, Token: token, Err: errUnsupported}
}

// Finish is not supported on this operating system.
func (s *Session) Finish() error { return &Error{Op: "FINISH", Session: s.name, Err: errUnsupported} }

// GetName is not supported on this operating system.
func (s *Session) GetName() (string, error) {
	return "", &Error{Op: "GET_NAME", Session: s.name, Err: errUnsupported}
}

// SessionFromFile always fails on this operating system.
func SessionFromFile(f *os.File) (*Session, error) {
	return nil, fmt.Errorf("luo: %w", errUnsupported)
}

// IsSession always reports false on this operating system.
func IsSession(f *os.File) bool { return false }

// ErrNotPreservable is matched by the errors of CheckPreservable.
var ErrNotPreservable = fmt.Errorf("cannot be preserved across a kexec")

// CheckPreservable always fails on this operating system.
func CheckPreservable(f *os.File) error {
	return fmt.Errorf("%w: %w", ErrNotPreservable, errUnsupported)
}

// Close does nothing on this operating system: no Device can be opened.
func (d *Device) Close() error { return nil }

// File returns nil: no session exists on this operating system.
func (s *Session) File() *os.File { return nil }

// Close does nothing on this operating system.
func (s *Session) Close() error { return nil }
