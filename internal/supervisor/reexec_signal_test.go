//go:build linux

package supervisor_test

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/luodtest"
)

// TestShutdownRefusesReexec: once luod began to shut down (SIGTERM), a
// re-exec or an update is refused with ShuttingDown, and luod goes on to
// stop its units and exit. luod used to re-execute in the middle of its
// shutdown: the new luod did not know it was stopping, and ran on.
func TestShutdownRefusesReexec(t *testing.T) {
	d := luodtest.Start(t, map[string]string{
		// Ignores SIGTERM: the shutdown lasts until TimeoutStopSec=.
		"slow.service": "[Service]\nType=notify\nExecStart=@BIN@/testsvc -ignore-term\nTimeoutStopSec=2s\n",
	})
	d.WaitUnit("slow.service", "active", func(u control.Unit) bool { return u.ActiveState == "active" })
	if err := syscall.Kill(d.PID(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	d.WaitLog("shutting down")
	var verr *control.RemoteError
	if err := d.Call(control.MethodReexec, nil, nil); !errors.As(err, &verr) || verr.Name != control.ErrShuttingDown {
		t.Errorf("Reexec while shutting down: %v, want %s", err, control.ErrShuttingDown)
	}
	if err := d.Call(control.MethodRunUpdate, control.UpdateParams{NoKexec: true}, nil); !errors.As(err, &verr) || verr.Name != control.ErrShuttingDown {
		t.Errorf("RunUpdate while shutting down: %v, want %s", err, control.ErrShuttingDown)
	}
	select {
	case <-d.Exited():
	case <-time.After(20 * time.Second):
		t.Fatalf("luod still runs 20 s after SIGTERM\n%s", d.Log())
	}
	if log := d.Log(); !strings.Contains(log, "all units stopped") || strings.Contains(log, "re-executing") {
		t.Errorf("luod did not stop its units and exit without re-executing:\n%s", log)
	}
}
