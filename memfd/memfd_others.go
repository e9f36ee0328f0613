//go:build !linux

package memfd

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

var errUnsupported = fmt.Errorf("memfd: needs Linux, not %s: %w", runtime.GOOS, errors.ErrUnsupported)

// New is not supported on this operating system.
func New(name string, size int64) (*os.File, error) { return nil, errUnsupported }

// Size returns the file's size in bytes.
func Size(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("memfd: %w", err)
	}
	return fi.Size(), nil
}

// Resize is not supported on this operating system.
func Resize(f *os.File, size int64) error { return errUnsupported }

// AddSeals is not supported on this operating system.
func AddSeals(f *os.File, s Seals) error { return errUnsupported }

// GetSeals is not supported on this operating system.
func GetSeals(f *os.File) (Seals, error) { return 0, errUnsupported }

// Map is not supported on this operating system.
func Map(f *os.File) ([]byte, error) { return nil, errUnsupported }

// Unmap is not supported on this operating system.
func Unmap(b []byte) error { return errUnsupported }
