//go:build !linux

package kexec

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
)

var errUnsupported = fmt.Errorf("kexec needs Linux, not %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Load is not supported on this operating system.
func Load(img Image) error { return &Error{Op: "load", Kernel: img.Kernel, Err: errUnsupported} }

// Unload is not supported on this operating system.
func Unload() error { return &Error{Op: "unload", Err: errUnsupported} }

// Loaded is not supported on this operating system.
func Loaded() (bool, error) { return false, errUnsupported }

// Exec is not supported on this operating system.
func Exec() error { return &Error{Op: "exec", Err: errUnsupported} }

func hint(op string, errno syscall.Errno) string { return "" }
