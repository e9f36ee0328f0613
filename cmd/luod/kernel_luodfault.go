//go:build linux && luodfault

package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo/internal/update"
	"github.com/liveupdate/luo/internal/update/updatetest"
)

// This file is built only into the test build of luod (go build -tags
// luodfault) that the VM fault matrix runs: a production luod has no fault
// injection. Faults are given as PHASE=WHAT, in $LUOD_TEST_FAULT for every
// update, or in the file RUNTIME/test-fault for the next update only:
//
//	load=ERRNO      loading the next kernel fails
//	preserve=ERRNO  preserving the first memfd in luod's session fails
//	reboot=ERRNO    the reboot fails
//	hang=preserved  the update stops once every memfd is preserved, right
//	                before the manifest, so luod can be killed there

// kernel is the running kernel, failing as the faults say.
func kernel(device, runtime string, log *slog.Logger) update.Kernel {
	f := &faults{spec: os.Getenv("LUOD_TEST_FAULT"), env: os.Getenv("LUOD_TEST_FAULT"), file: filepath.Join(runtime, "test-fault"), log: log}
	return &updatetest.Faulty{Kernel: update.NewSystem(device), Fail: f.fail}
}

type faults struct {
	env, file string
	log       *slog.Logger

	mu   sync.Mutex
	spec string // the fault of the update in progress
	hit  bool   // the preserve fault was injected in this update
}

func (f *faults) fail(op updatetest.Op) error {
	f.mu.Lock()
	if op.Name == "load" { // an update begins
		f.spec, f.hit = f.env, false
		if b, err := os.ReadFile(f.file); err == nil {
			os.Remove(f.file)
			f.spec = strings.TrimSpace(string(b))
		}
		if f.spec != "" {
			f.log.Warn("fault injection for this update", "fault", f.spec)
		}
	}
	phase, what, _ := strings.Cut(f.spec, "=")
	var err error
	switch {
	case phase == "load" && op.Name == "load":
		err = errno(what)
	case phase == "preserve" && op.Name == "preserve" && op.Session == update.SessionName && op.Token > 0 && !f.hit:
		f.hit = true
		err = errno(what)
	case phase == "reboot" && op.Name == "exec":
		err = errno(what)
	case phase == "hang" && what == "preserved" && op.Name == "preserve" && op.Session == update.SessionName && op.Token == 0:
		f.mu.Unlock()
		f.log.Warn("fault injection: hanging after preserve of the memfds, before the manifest")
		select {}
	}
	f.mu.Unlock()
	return err
}

// errno returns the errno named name, such as "ENOSPC".
func errno(name string) error {
	for e := unix.Errno(1); e < 4096; e++ {
		if unix.ErrnoName(e) == name {
			return e
		}
	}
	return unix.EINVAL
}
