//go:build linux

package supervisor_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/luodtest"
)

// floodFor is how long TestHostileFlood floods luod.
const floodFor = 10 * time.Second

// TestHostileFlood: one service sends valid and invalid datagrams, with
// and without fds, as fast as luod takes them, for floodFor. Meanwhile
// another unit restarts in less than 2 s each time and luod answers
// within 2 s; luod's log grows by no more than the rate limits allow
// (10,000 lines per 30 s for the unit, as many for datagrams it cannot
// tie to a unit); afterwards luod holds exactly one more fd, the one the
// flood stored, and the flooder still runs.
func TestHostileFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("a 10 s flood; not in -short")
	}
	d := luodtest.Start(t, map[string]string{
		"flooder.service": svc("-ctl @DIR@/flooder.ctl") + "FileDescriptorStoreMax=4\n",
		bystanderUnit: "[Unit]\nStartLimitIntervalSec=0\n" + svc("-ctl @DIR@/bystander.ctl -report @DIR@/bystander.report -store keep=memfd:kept") +
			"FileDescriptorStoreMax=1\n",
	}, "-log-level", "info")
	flooder := d.WaitUnit("flooder.service", "active", active)
	d.WaitUnit(bystanderUnit, "active", active)
	fds := luodtest.FDs(t, d.PID())
	off := len(d.Log())
	report := d.ReadReport(filepath.Join(d.Dir, "bystander.report"), 0)

	type result struct {
		ans string
		err error
	}
	flood := make(chan result, 1)
	go func() {
		ans, err := luodtest.Ctl(filepath.Join(d.Dir, "flooder.ctl"), "flood "+floodFor.String())
		flood <- result{ans, err}
	}()
	time.Sleep(500 * time.Millisecond)
	var restarts []time.Duration
	slowest := time.Duration(0)
	end := time.Now().Add(floodFor - time.Second)
	for time.Now().Before(end) {
		start := time.Now()
		answers(t, d)
		slowest = max(slowest, time.Since(start))
		if len(restarts) < 4 {
			start = time.Now()
			d.MustCall(control.MethodRestartUnit, control.UnitName{Name: bystanderUnit}, nil)
			restarts = append(restarts, time.Since(start))
			r := d.ReadReport(filepath.Join(d.Dir, "bystander.report"), report.PID)
			if strings.Join(r.Names, ",") != "keep" || r.Contents["keep"] != "kept" {
				t.Errorf("the bystander restarted with %q %v", r.Names, r.Contents)
			}
			report = r
		}
		time.Sleep(200 * time.Millisecond)
	}
	r := <-flood
	if r.err != nil || !strings.HasPrefix(r.ans, "ok ") {
		t.Fatalf("flood: %q %v", r.ans, r.err)
	}
	sent, _ := strconv.Atoi(strings.TrimPrefix(r.ans, "ok "))
	t.Logf("%d datagrams in %v (%.0f/s); the bystander restarted in %v; luod answered within %v", sent, floodFor,
		float64(sent)/floodFor.Seconds(), restarts, slowest)
	for i, took := range restarts {
		if took > 2*time.Second {
			t.Errorf("restart %d of the bystander took %v during the flood", i+1, took)
		}
	}
	if len(restarts) < 4 {
		t.Errorf("only %d restarts during the flood", len(restarts))
	}
	if slowest > 2*time.Second {
		t.Errorf("luod took up to %v to answer during the flood", slowest)
	}
	if u := d.Unit("flooder.service"); u.MainPID != flooder.MainPID || u.ActiveState != "active" || u.FDStoreCount != 1 {
		t.Errorf("flooder after the flood: pid %d %s, %d stored; was pid %d", u.MainPID, u.ActiveState, u.FDStoreCount, flooder.MainPID)
	}
	if u := d.Unit(bystanderUnit); u.ActiveState != "active" || u.FDStoreCount != 1 || u.MainPID != report.PID {
		t.Errorf("bystander after the flood: %+v", u)
	}
	if got := fdsBecome(t, d.PID(), fds+1); got != fds+1 {
		t.Errorf("luod has %d fds after the flood, want %d (%d before, and the one stored)", got, fds+1, fds)
	}
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.PID())); err == nil {
		for line := range strings.SplitSeq(string(status), "\n") {
			if strings.HasPrefix(line, "VmRSS:") || strings.HasPrefix(line, "VmHWM:") {
				t.Logf("luod after the flood: %s, %d fds", strings.Join(strings.Fields(line), " "), fds+1)
			}
		}
	}

	// Every datagram but the valid ones makes a warning; the limits keep
	// the log to 10,000 lines for the unit and 10,000 for what could not
	// be tied to a unit (dropped datagrams, extra fds, bad barriers).
	log := d.Log()[off:]
	lines := strings.Count(log, "\n")
	unit := logLines(d, off, "unit=flooder.service")
	strangers := logLines(d, off, fmt.Sprintf("pid=%d", flooder.MainPID)) - logLines(d, off, "unit=flooder.service", fmt.Sprintf("pid=%d", flooder.MainPID))
	t.Logf("luod logged %d lines: %d for the unit, %d for datagrams of no unit", lines, unit, strangers)
	if unit > 10000 || strangers > 10000 {
		t.Errorf("the flood made %d lines for the unit and %d for no unit; the limit is 10,000 per 30 s each", unit, strangers)
	}
	if lines > 20000+100 {
		t.Errorf("the flood made luod log %d lines:\n%s", lines, tail(log, 20))
	}
	if sent < 20000 {
		t.Logf("only %d datagrams: the rate limits were not reached", sent)
	}

	t.Run("another unit's dropped datagram is still logged", func(t *testing.T) {
		off := len(d.Log())
		mustRaw(t, filepath.Join(d.Dir, "bystander.ctl"), "FDSTORE=1\nFDNAME=x\x00y", "pipe")
		logLine(t, d, off, "got notification message with embedded NUL, ignoring", fmt.Sprintf("PID %d", report.PID))
	})
}

// TestHostileLingeringClose: closing a TCP socket with SO_LINGER whose
// peer does not read blocks close(2) for the linger time. A service that
// stores one and then removes it (or sends it without FDSTORE=1, or over
// the limit) makes luod close it in its loop, which then answers nothing
// for as long as the service chose. systemd closes such fds
// asynchronously (asynchronous_close) for this reason.
func TestHostileLingeringClose(t *testing.T) {
	if testing.Short() {
		t.Skip("not in -short")
	}
	h := startHostile(t)
	b := h.before(t)
	mustRaw(t, h.actorCtl, "FDSTORE=1\nFDNAME=slow", "linger:5")
	// The service's own copy is closed: luod's is the last.
	mustRaw(t, h.actorCtl, "FDSTOREREMOVE=1\nFDNAME=slow", "-", "nobarrier")
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	var m control.Manager
	err := h.d.CallWithin(answerWithin, control.MethodGetManager, nil, &m)
	t.Logf("GetManager after the close: %v after %v", err, time.Since(start))
	if err != nil {
		t.Errorf("luod's loop is blocked in close(2) of a lingering socket: no answer within %v", answerWithin)
	}
	h.after(t, b, nil)
}
