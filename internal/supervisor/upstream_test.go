package supervisor_test

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/luodtest"
	"github.com/liveupdate/luo/internal/sdnotifytest"
)

// TestNotifiesItsManager: luod run as a Type=notify service tells its own
// manager its main PID and READY=1 once its units are started, RELOADING=1
// then READY=1 around a daemon-reload, and STOPPING=1 when it stops; only
// luod does: its units notify luod, never luod's manager.
func TestNotifiesItsManager(t *testing.T) {
	mgr := sdnotifytest.New(t)
	mgr.Setenv(t)
	d := luodtest.Start(t, map[string]string{"a.service": svc("-status up")})
	d.WaitUnit("a.service", "active", active)

	// next returns the next datagram's assignments but STATUS= alone, and
	// fails on one not sent by luod; status is the last STATUS= seen.
	var status string
	var next func(what string) map[string]string
	next = func(what string) map[string]string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		dg, err := mgr.Receive(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		dg.Close()
		if dg.Creds == nil || int(dg.Creds.Pid) != d.PID() {
			t.Fatalf("a notification from %+v, not from luod (pid %d): %q", dg.Creds, d.PID(), dg.Payload)
		}
		kv := map[string]string{}
		for _, l := range dg.Lines() {
			if k, v, ok := strings.Cut(l, "="); ok {
				kv[k] = v
			}
		}
		if s, ok := kv["STATUS"]; ok {
			status = s
			if len(kv) == 1 {
				return next(what)
			}
		}
		return kv
	}
	ready := next("READY=1")
	if ready["READY"] != "1" || ready["MAINPID"] != strconv.Itoa(d.PID()) || !strings.HasPrefix(ready["STATUS"], "1 units: ") {
		t.Errorf("first notification %v, want READY=1, MAINPID=%d and a status", ready, d.PID())
	}

	var rep control.ReloadReply
	d.MustCall(control.MethodReload, nil, &rep)
	if r := next("RELOADING=1"); r["RELOADING"] != "1" || r["MONOTONIC_USEC"] == "" {
		t.Errorf("at daemon-reload %v, want RELOADING=1 with MONOTONIC_USEC", r)
	}
	// The status follows the units, not only READY=1: a.service became
	// active after the first one (a STATUS= of its own), or with it.
	if status != "1 units: 1 active, 0 failed" {
		t.Errorf("status before the reload %q, want 1 units: 1 active, 0 failed", status)
	}
	if r := next("READY=1 after the reload"); r["READY"] != "1" || r["STATUS"] != "1 units: 1 active, 0 failed" {
		t.Errorf("after daemon-reload %v, want READY=1 and STATUS=1 units: 1 active, 0 failed", r)
	}

	d.MustCall(control.MethodStopUnit, control.UnitName{Name: "a.service"}, nil)
	for status != "1 units: 0 active, 0 failed" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		dg, err := mgr.Receive(ctx)
		cancel()
		if err != nil {
			t.Fatalf("no STATUS=1 units: 0 active, 0 failed after a stop (last %q): %v", status, err)
		}
		dg.Close()
		for _, l := range dg.Lines() {
			if s, ok := strings.CutPrefix(l, "STATUS="); ok {
				status = s
			}
		}
	}

	syscall.Kill(d.PID(), syscall.SIGTERM)
	if r := next("STOPPING=1"); r["STOPPING"] != "1" {
		t.Errorf("at SIGTERM %v, want STOPPING=1", r)
	}
	<-d.Exited()
}
