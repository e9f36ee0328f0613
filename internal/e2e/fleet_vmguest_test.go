//go:build vmguest

package e2e_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
)

// TestFleet is the guest side of TestVMFleetRollback:
//
//	stage 1 (7.2)  the fleet is free; update into 7.3 with a health gate,
//	               its command line making gate.service never READY
//	stage 2 (7.3)  the slot is still held (updating); luod rolls back alone
//	stage 3 (7.2)  rolled back: counter intact, slot kept as rolled-back;
//	               released by hand; a gate without a rollback kernel is
//	               refused; update into 7.3 again
//	stage 4 (7.3)  healthy: the slot is given back from here
func TestFleet(t *testing.T) {
	waitLuod(t, control.DefaultSocket)
	switch vm.Stage() {
	case 1:
		waitActive(t, "counter.service", "gate.service")
		if f := fleetStatus(t); len(f.Holders) != 0 || f.Host != "vm1" || f.Max != 1 {
			t.Fatalf("fleet before any update: %+v", f)
		}
		args := fleetUpdate(t, 3, "luotest.unready", "--health-timeout", "20s")
		vmtest.ExpectKexec(t)
		if out, code := luoctl(t, args...); code != 0 || !strings.Contains(out, "slot: holding a slot of fleet group \"vm\" as vm1") {
			t.Fatalf("update run: exit %d", code)
		}
		time.Sleep(time.Minute)
		t.Fatal("still running a minute after the update said it reboots")
	case 2:
		// luod rolls back by itself once gate.service is not READY in 20s.
		vmtest.ExpectKexec(t)
		us := waitActive(t, "counter.service")
		if st := parseStatus(t, us["counter.service"].Status); st.origin != "luo" {
			t.Errorf("counter in 7.3: %q", st.raw)
		}
		if u := unit(t, "gate.service"); u.ActiveState != "activating" {
			t.Errorf("gate.service in the unready boot: %s/%s %q", u.ActiveState, u.SubState, u.Status)
		}
		f := fleetStatus(t)
		if len(f.Holders) != 1 || f.Holders[0].Host != "vm1" || f.Holders[0].State != "updating" || f.Holders[0].Kind != "kexec" {
			t.Errorf("fleet across the kexec: %+v", f.Holders)
		}
	case 3:
		us := waitActive(t, "counter.service", "gate.service")
		st := parseStatus(t, us["counter.service"].Status)
		if st.origin != "luo" || st.liveUpdates != 2 || st.gen != 3 {
			t.Errorf("counter after the rollback: %q, want generation 3, origin luo, 2 live updates", st.raw)
		}
		rep := waitReport(t, time.Minute)
		b, _ := json.MarshalIndent(rep, "", "  ")
		t.Logf("the rollback's report:\n%s", b)
		if rep.Result != "rolled-back" || rep.RolledBack == nil || !strings.HasPrefix(rep.RolledBack.To, "7.3") || !strings.HasPrefix(rep.From, "7.3") ||
			!strings.Contains(rep.RolledBack.Reason, "gate.service: not READY within 20s") {
			t.Errorf("report: result %s, rolled back %+v, from %s", rep.Result, rep.RolledBack, rep.From)
		}
		f := waitHolder(t, "rolled-back")
		if !strings.Contains(f.Holders[0].Reason, "gate.service: not READY within 20s") {
			t.Errorf("slot kept because %q", f.Holders[0].Reason)
		}
		luoctl(t, "fleet", "status")
		// It does not try 7.3 again before an operator released the slot.
		if out, code := luoctl(t, fleetUpdate(t, 0, "")...); code != 4 || !strings.Contains(out, "keeps its fleet slot after a failed update") {
			t.Errorf("an update while the host keeps its slot: exit %d", code)
		}
		if out, code := luoctl(t, "fleet", "release", "vm1"); code != 0 || !strings.Contains(out, "Released the slot of vm1") {
			t.Fatalf("fleet release: exit %d", code)
		}
		// No kernel to roll back to under --kernels: refused, nothing done.
		args := fleetUpdate(t, 0, "", "--health-timeout", "60s")
		if out, code := luoctl(t, args...); code != 4 || !strings.Contains(out, "roll back") || !strings.Contains(out, "nothing was changed") {
			t.Errorf("a gate without a rollback kernel: exit %d", code)
		}
		if f := fleetStatus(t); len(f.Holders) != 0 {
			t.Errorf("a refused update holds a slot: %+v", f.Holders)
		}
		vmtest.ExpectKexec(t)
		if _, code := luoctl(t, fleetUpdate(t, 3, "", "--health-timeout", "60s")...); code != 0 {
			t.Fatalf("update run: exit %d", code)
		}
		time.Sleep(time.Minute)
		t.Fatal("still running a minute after the update said it reboots")
	case 4:
		us := waitActive(t, "counter.service", "gate.service")
		if st := parseStatus(t, us["counter.service"].Status); st.origin != "luo" || st.gen != 4 {
			t.Errorf("counter after the last update: %q", st.raw)
		}
		rep := waitEvent(t, "slot-released", time.Minute)
		b, _ := json.MarshalIndent(rep, "", "  ")
		t.Logf("the last update's report:\n%s", b)
		if rep.Result != "ok" || rep.RolledBack != nil {
			t.Errorf("report: %s %+v", rep.Result, rep.RolledBack)
		}
		if f := fleetStatus(t); len(f.Holders) != 0 {
			t.Errorf("slots held after a healthy update: %+v", f.Holders)
		}
	}
}

// fleetUpdate is `luoctl update run` into the next stage, with extra on
// its command line, and the stage rollback's kernel to go back to (0:
// none), then args.
func fleetUpdate(t *testing.T, rollback int, extra string, args ...string) []string {
	t.Helper()
	kernel, initrd, cmdline, err := vm.NextBoot()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{"update", "run", "--kernel", kernel, "--initrd", initrd, "--cmdline", strings.TrimSpace(cmdline + " " + extra)}
	if rollback > 0 {
		p, err := vm.ReadPlan()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, "--rollback-kernel", p.Stages[rollback-1].Kernel, "--rollback-initrd", p.Initrd, "--rollback-cmdline", p.StageCmdline(rollback))
	}
	return append(out, args...)
}

func fleetStatus(t *testing.T) control.Fleet {
	t.Helper()
	var f control.Fleet
	mustCall(t, control.MethodGetFleet, nil, &f)
	return f
}

// waitHolder waits until vm1 holds the slot in state.
func waitHolder(t *testing.T, state string) control.Fleet {
	t.Helper()
	var f control.Fleet
	poll(t, "vm1 holding its slot as "+state, time.Minute, func() error {
		f = fleetStatus(t)
		if len(f.Holders) != 1 || f.Holders[0].Host != "vm1" || f.Holders[0].State != state {
			return os.ErrNotExist
		}
		return nil
	})
	return f
}
