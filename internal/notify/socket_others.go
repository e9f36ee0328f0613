//go:build !linux

package notify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
)

var errUnsupported = fmt.Errorf("notify: not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// A Socket is luod's notification socket. Outside Linux it cannot be
// created.
type Socket struct{}

// Listen fails outside Linux with an error wrapping errors.ErrUnsupported.
func Listen(path string) (*Socket, error) { return nil, errUnsupported }

// FromFile fails outside Linux with an error wrapping
// errors.ErrUnsupported.
func FromFile(f *os.File) (*Socket, error) { return nil, errUnsupported }

// File fails outside Linux.
func (s *Socket) File() (*os.File, error) { return nil, errUnsupported }

// Path returns "" outside Linux.
func (s *Socket) Path() string { return "" }

// PIDFDEnabled returns false outside Linux.
func (s *Socket) PIDFDEnabled() bool { return false }

// Close does nothing outside Linux.
func (s *Socket) Close() error { return nil }

// Receive fails outside Linux.
func (s *Socket) Receive(ctx context.Context) (*Message, error) { return nil, errUnsupported }

// WaitReadable fails outside Linux.
func (s *Socket) WaitReadable(ctx context.Context) error { return errUnsupported }

// TryReceive fails outside Linux.
func (s *Socket) TryReceive() (*Message, error) { return nil, errUnsupported }

// Pending always reports false on this operating system.
func (s *Socket) Pending() bool { return false }
