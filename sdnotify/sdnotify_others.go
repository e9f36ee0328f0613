//go:build !linux

package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
)

// errUnsupported is returned where the protocol needs Linux.
var errUnsupported = fmt.Errorf("sdnotify: not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)

func openAddr(string) (*Notifier, error) { return nil, errUnsupported }

func (n *Notifier) sendmsg([]byte, []*os.File) error { return errUnsupported }

func (n *Notifier) barrier(context.Context) error { return errUnsupported }

func monotonicUsec() (uint64, error) { return 0, errUnsupported }
