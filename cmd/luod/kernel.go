//go:build linux && !luodfault

package main

import (
	"log/slog"

	"github.com/liveupdate/luo/internal/update"
)

// kernel is the kernel luod updates: the running one, through device.
func kernel(device, _ string, _ *slog.Logger) update.Kernel {
	return update.NewSystem(device)
}
