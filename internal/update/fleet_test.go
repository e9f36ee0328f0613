package update_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/kimage/kimagetest"
	"github.com/liveupdate/luo/internal/update"
	"github.com/liveupdate/luo/internal/update/updatetest"
)

// slots is a fake fleet: one slot, and what happened to it, with how many
// units were stopped and whether a kernel was loaded at each step.
type slots struct {
	h      *host
	k      *updatetest.Kernel
	busy   bool
	held   *update.Slot
	log    []string
	uses   []update.SlotUse
	before []int // units stopped when the slot was taken
}

func (s *slots) Take(_ context.Context, use update.SlotUse, _ time.Duration) (*update.Slot, error) {
	if s.busy {
		return nil, &update.BusyError{Group: "g", Max: 1, Holders: []string{"other (failed)"}}
	}
	if s.k.Image() != nil {
		s.log = append(s.log, "take-after-load")
	}
	s.before = append(s.before, len(s.h.stopped))
	s.uses = append(s.uses, use)
	s.held = &update.Slot{Group: "g", Host: "me", Since: time.Now()}
	s.log = append(s.log, "take")
	return s.held, nil
}

func (s *slots) Release(_ context.Context, sl *update.Slot) error {
	s.log = append(s.log, "release "+sl.Host)
	s.held = nil
	return nil
}

func (s *slots) Keep(_ context.Context, sl *update.Slot, state, reason string) error {
	s.log = append(s.log, "keep "+state)
	return nil
}

// TestRunTakesSlot: in a fleet a kexec takes its slot after the plan and
// before it loads the kernel or stops a unit, never gives it back after the
// point of no return, and carries it and the health gate to the next
// kernel.
func TestRunTakesSlot(t *testing.T) {
	k, h := machine(t)
	s := &slots{h: h, k: k}
	req := kexecTo(false)
	req.Slots = s
	req.Health = &update.Health{Timeout: 10 * time.Second, Rollback: &update.Boot{Release: "7.2.13", Image: "/boot/prev"}}
	next, err := k.Boot(func() error { return update.Run(context.Background(), k, h, req) })
	if next == nil {
		t.Fatalf("Run: %v", err)
	}
	if !equal(s.log, []string{"take"}) || s.before[0] != 0 {
		t.Errorf("slot: %v, units stopped when taken %v", s.log, s.before)
	}
	if s.uses[0] != (update.SlotUse{Kind: update.Kexec, From: "7.2.13", To: testImage.Kernel}) {
		t.Errorf("taken for %+v", s.uses[0])
	}
	want := []update.Phase{update.PhasePlan, update.PhaseSlot, update.PhaseSlot, update.PhaseLoad}
	if !equal(h.progress[:4], want) {
		t.Errorf("progress %v, want it to start with %v", h.progress, want)
	}
	r := mustRestore(t, next)
	m := r.Manifest
	if m.Slot == nil || m.Slot.Host != "me" || !m.Slot.Since.Equal(s.held.Since) || m.Timeline.SlotTaken.IsZero() || m.Health == nil || m.Health.Rollback.Image != "/boot/prev" {
		t.Errorf("manifest slot %+v, health %+v, taken at %v", m.Slot, m.Health, m.Timeline.SlotTaken)
	}
	rep := update.NewReport(m, "7.3.4", time.Now())
	if !strings.Contains(eventNames(rep), "requested slot-taken loaded") {
		t.Errorf("report timeline %s", eventNames(rep))
	}
}

func eventNames(r *update.Report) string {
	var names []string
	for _, ev := range r.Sorted().Timeline {
		names = append(names, ev.Name)
	}
	return strings.Join(names, " ")
}

// TestRunSlotAborts: a busy fleet refuses the update before anything
// changed; an abort gives back the slot the run took, but not one it
// carried (a rollback's); a soft update that stops no unit takes none.
func TestRunSlotAborts(t *testing.T) {
	k, h := machine(t)
	s := &slots{h: h, k: k, busy: true}
	req := kexecTo(false)
	req.Slots = s
	err := update.Run(context.Background(), k, h, req)
	var uerr *update.Error
	var busy *update.BusyError
	if !errors.As(err, &uerr) || uerr.Phase != update.PhaseSlot || !errors.As(err, &busy) || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("Run in a busy fleet = %v", err)
	}
	if len(h.stopped) != 0 || k.Image() != nil || len(k.Sessions()) != 1 {
		t.Errorf("a refused update changed things: stopped %v, image %v, sessions %v", h.stopped, k.Image(), k.Sessions())
	}

	s.busy = false
	k.Fail = func(op updatetest.Op) error {
		if op.Name == "exec" {
			return syscall.EBUSY
		}
		return nil
	}
	err = update.Run(context.Background(), k, h, req)
	if !errors.As(err, &uerr) || uerr.Phase != update.PhaseReboot || !equal(s.log, []string{"take", "release me"}) {
		t.Errorf("abort at reboot: %v; slot %v", err, s.log)
	}

	// A rollback carries its slot: an abort keeps it.
	s.log = nil
	carried := &update.Slot{Group: "g", Host: "me"}
	rb := req
	rb.Slot, rb.RolledBack = carried, &update.RolledBack{From: "7.2.13", To: "7.3.4", Reason: "x not READY"}
	err = update.Run(context.Background(), k, h, rb)
	if !errors.As(err, &uerr) || len(s.log) != 0 {
		t.Errorf("rollback abort: %v; slot %v", err, s.log)
	}

	k.Fail = nil
	var handed *update.Manifest
	h.reexec = func(m *update.Manifest) error { handed = m; return errors.New("exec: ENOENT") }
	update.Run(context.Background(), k, h, update.Request{Kind: update.Soft, Slots: s})
	if len(s.log) != 0 || handed == nil || handed.Slot != nil {
		t.Errorf("a soft update without restart took a slot: %v", s.log)
	}
	update.Run(context.Background(), k, h, update.Request{Kind: update.Soft, RestartUnits: true, Slots: s})
	if !equal(s.log, []string{"take", "release me"}) || handed.Slot == nil || handed.Slot.Host != "me" {
		t.Errorf("soft update restarting units, failed exec: %v, handed slot %+v", s.log, handed.Slot)
	}
}

// TestUnhealthy: what the completion of an update says about its units.
func TestUnhealthy(t *testing.T) {
	m := &update.Manifest{Kind: update.Kexec, Health: &update.Health{Timeout: 10 * time.Second}}
	c := update.NewCompletion(nil, m, &update.Report{}, []string{"a.service", "b.service", "c.service"}, time.Now(), time.Minute)
	if d := time.Until(c.Deadline); d > 10*time.Second || d < 9*time.Second {
		t.Errorf("deadline in %v, want the health gate's 10s", d)
	}
	c.Ready("a.service", time.Now())
	c.Failed("b.service", "exit-code")
	c.Finish(time.Now())
	want := "b.service failed after the update: exit-code; c.service: not READY within 10s"
	if got := c.Unhealthy(); got != want {
		t.Errorf("Unhealthy() = %q, want %q", got, want)
	}
	// Saved across a re-exec, it says the same.
	c2 := update.ResumeCompletion(c.Save(func(*os.File) int { return 0 }), nil, c.Report)
	if got := c2.Unhealthy(); got != want || c2.Health == nil || c2.Kind != update.Kexec {
		t.Errorf("resumed: %q, %+v", got, c2)
	}
	ok := update.NewCompletion(nil, &update.Manifest{}, &update.Report{}, []string{"a.service"}, time.Now(), time.Minute)
	ok.Ready("a.service", time.Now())
	if got := ok.Unhealthy(); got != "" {
		t.Errorf("healthy: %q", got)
	}
	if rep := (&update.Report{RolledBack: &update.RolledBack{}}); rep.Result() != update.ResultRolledBack {
		t.Errorf("result of a rollback %q", rep.Result())
	}
}

// TestFindBoot: the running kernel's image is found by the release in its
// boot header, whatever its file is called, with the initrd beside it.
func TestFindBoot(t *testing.T) {
	dir := t.TempDir()
	for name, rel := range map[string]string{"vmlinuz-7.3.4": "7.3.4", "vmlinuz-old": "7.2.13", "vmlinuz-7.2.13": "7.3.4"} {
		if err := os.WriteFile(filepath.Join(dir, name), kimagetest.BzImage(rel+" (test@host) #1", []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "initrd.img-7.2.13"), nil, 0o644)
	b, err := update.FindBoot([]string{filepath.Join(dir, "vmlinuz-*")}, "7.2.13", "ro liveupdate=on")
	if err != nil || b.Image != filepath.Join(dir, "vmlinuz-old") || b.Initrd != filepath.Join(dir, "initrd.img-7.2.13") || b.Cmdline != "ro liveupdate=on" {
		t.Errorf("FindBoot = %+v, %v", b, err)
	}
	if b, err := update.FindBoot([]string{filepath.Join(dir, "vmlinuz-*")}, "6.1.0", ""); err == nil || !strings.Contains(err.Error(), "6.1.0") {
		t.Errorf("FindBoot of a release without image = %+v, %v", b, err)
	}
}

// TestNext: what follows a finished update, rule by rule.
func TestNext(t *testing.T) {
	slot := &update.Slot{Group: "g", Host: "h"}
	back := &update.Boot{Image: "/boot/prev"}
	gate := &update.Health{Timeout: time.Second, Rollback: back}
	rb := &update.RolledBack{From: "7.2.13", To: "7.3.4", Reason: "x.service: not READY within 1s"}
	for _, tc := range []struct {
		name    string
		m       update.Manifest
		healthy bool
		want    update.Action
		state   string
	}{
		{"healthy in a fleet", update.Manifest{Kind: update.Kexec, Slot: slot, Health: gate}, true, update.ActionRelease, ""},
		{"healthy alone", update.Manifest{Kind: update.Kexec, Health: gate}, true, update.ActionNone, ""},
		{"gate failed after a kexec", update.Manifest{Kind: update.Kexec, Slot: slot, Health: gate}, false, update.ActionRollback, ""},
		{"gate failed alone", update.Manifest{Kind: update.Kexec, Health: gate}, false, update.ActionRollback, ""},
		{"no kernel to go back to", update.Manifest{Kind: update.Kexec, Slot: slot, Health: &update.Health{Timeout: time.Second}}, false, update.ActionKeep, update.SlotFailed},
		{"unhealthy without a gate", update.Manifest{Kind: update.Kexec, Slot: slot}, false, update.ActionKeep, update.SlotFailed},
		{"soft update unhealthy", update.Manifest{Kind: update.Soft, Slot: slot, Health: &update.Health{Timeout: time.Second}}, false, update.ActionKeep, update.SlotFailed},
		{"rolled back, healthy", update.Manifest{Kind: update.Kexec, Slot: slot, RolledBack: rb}, true, update.ActionKeep, update.SlotRolledBack},
		{"rolled back, unhealthy: no second rollback", update.Manifest{Kind: update.Kexec, Slot: slot, RolledBack: rb, Health: gate}, false, update.ActionKeep, update.SlotRolledBack},
		{"rolled back alone", update.Manifest{Kind: update.Kexec, RolledBack: rb}, true, update.ActionNone, update.SlotRolledBack},
	} {
		c := update.NewCompletion(nil, &tc.m, &update.Report{}, []string{"x.service"}, time.Now(), time.Minute)
		if tc.healthy {
			c.Ready("x.service", time.Now())
		}
		c.Finish(time.Now())
		next := c.Next()
		if next.Action != tc.want || next.State != tc.state {
			t.Errorf("%s: %+v, want %s %s", tc.name, next, tc.want, tc.state)
		}
		if (next.Action == update.ActionKeep || next.Action == update.ActionRollback) && next.Reason == "" {
			t.Errorf("%s: no reason", tc.name)
		}
		if tc.m.RolledBack != nil && !strings.Contains(next.Reason, "rolled back from 7.3.4 to 7.2.13") {
			t.Errorf("%s: reason %q", tc.name, next.Reason)
		}
	}
}
