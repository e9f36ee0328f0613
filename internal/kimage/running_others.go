//go:build !(linux && amd64)

package kimage

import (
	"errors"
	"fmt"
	"runtime"
)

// Running returns the Live Update formats of the running kernel. It is
// implemented for linux/amd64 only; here it fails with an error wrapping
// errors.ErrUnsupported.
func Running() (Formats, error) {
	return Formats{}, fmt.Errorf("kimage: running kernel: reading it on %s/%s: %w", runtime.GOOS, runtime.GOARCH, errors.ErrUnsupported)
}
