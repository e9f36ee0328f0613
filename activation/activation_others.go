//go:build !linux

package activation

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

func ownPIDFDID() (uint64, bool, error) { return 0, false, nil }

func claim(env listenEnv) ([]*os.File, error) {
	return nil, fmt.Errorf("activation: receiving %d fds: not supported on %s: %w", env.n, runtime.GOOS, errors.ErrUnsupported)
}
