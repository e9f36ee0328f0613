package update_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/fdstore"
	"github.com/liveupdate/luo/internal/kexec"
	"github.com/liveupdate/luo/internal/unit"
	"github.com/liveupdate/luo/internal/update"
	"github.com/liveupdate/luo/internal/update/updatetest"
)

func kexecImage(kernel, cmdline string) kexec.Image {
	return kexec.Image{Kernel: kernel, Initrd: "/boot/initrd", Cmdline: cmdline}
}

// machine is a fake kernel with a host holding three units: plain memfds,
// a service with its own session holding a memfd that is also in its store,
// and a stopped unit with a memfd.
func machine(t *testing.T) (*updatetest.Kernel, *host) {
	k := updatetest.New()
	h := newHost(t)
	a := h.unit("a.service", unit.PreserveYes, true)
	h.memfd(a, "one", "A1")
	h.memfd(a, "two", "A2")
	s := h.unit("s.service", unit.PreserveOnSuccess, true)
	own := outgoing(t, k, "cache")
	h.session(s, "own", own, fdstore.OriginNotify)
	f := h.memfd(s, "region", "S1")
	if err := own.PreserveFD(f, 1); err != nil {
		t.Fatal(err)
	}
	idle := h.unit("idle.service", unit.PreserveYes, false)
	h.memfd(idle, "kept", "I1")
	return k, h
}

func TestRunKexec(t *testing.T) {
	k, h := machine(t)
	next, err := k.Boot(func() error { return update.Run(context.Background(), k, h, kexecTo(false)) })
	if err != nil {
		t.Fatalf("Run returned instead of rebooting: %v", err)
	}
	if got := k.Image(); got == nil || got.Kernel != testImage.Kernel {
		t.Errorf("loaded image %v", got)
	}
	if !equal(h.stopped, []string{"a.service", "s.service"}) || len(h.resumed) != 0 {
		t.Errorf("stopped %v resumed %v", h.stopped, h.resumed)
	}
	wantPhases := []update.Phase{update.PhasePlan, update.PhaseLoad, update.PhaseStop, update.PhaseStop, update.PhasePreserve, update.PhaseReboot}
	if !equal(h.progress, wantPhases) {
		t.Errorf("progress %v, want %v", h.progress, wantPhases)
	}
	if got := next.Sessions(); !equal(got, []string{"in:cache", "in:luod"}) {
		t.Fatalf("sessions in the next kernel %v", got)
	}

	r := mustRestore(t, next)
	m := r.Manifest
	if m.Kind != update.Kexec || m.Count != 1 || m.From.Release != "7.2.13" || m.To.Image != testImage.Kernel {
		t.Errorf("manifest %+v", m)
	}
	tl := m.Timeline
	for name, at := range map[string]time.Time{"requested": tl.Requested, "loaded": tl.Loaded, "stop-begin": tl.StopBegin, "last-stopped": tl.LastStopped, "preserved": tl.Preserved, "reboot": tl.Reboot} {
		if at.IsZero() {
			t.Errorf("timeline lacks %s", name)
		}
	}
	got := map[string]string{}
	for _, u := range r.Units {
		for _, e := range u.Entries {
			switch {
			case e.File == nil:
				got[u.Name+"/"+e.Name] = string(e.Fate)
			case e.Fate == update.FateSession:
				got[u.Name+"/"+e.Name] = "session " + e.Session
			default:
				got[u.Name+"/"+e.Name] = contents(t, e.File)
			}
		}
		if u.Name == "idle.service" && (u.Active || !u.Stopped.IsZero()) {
			t.Errorf("idle.service %+v", u)
		}
		if u.Name == "a.service" && (!u.Active || u.Stopped.IsZero()) {
			t.Errorf("a.service %+v", u)
		}
	}
	want := map[string]string{
		"a.service/one": "A1", "a.service/two": "A2", "idle.service/kept": "I1",
		"s.service/own": "session cache", "s.service/region": "session", // in the service's own session
	}
	if !mapsEqual(got, want) {
		t.Errorf("restored %v, want %v", got, want)
	}
	if len(r.Problems) != 0 {
		t.Errorf("problems %v", r.Problems)
	}
	// The service's own session came back with its memfd in it.
	if own := next.Find("cache"); own == nil || own.File() != entry(r.Units, "s.service", "own").File || !equal(own.Files(), []uint64{1}) {
		t.Errorf("the service's own session in the next kernel: %+v", own)
	}
	if next.DeviceOpen() {
		t.Error("Restore left the device open")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestRunAborts fails an update at every step after the plan and checks
// that each abort leaves the machine as it found it: no image loaded, no
// session of luod's left, the device closed, the stopped units started
// again with their stores, and that the next attempt succeeds.
func TestRunAborts(t *testing.T) {
	nospc := func(name string, token uint64) func(updatetest.Op) error {
		return func(op updatetest.Op) error {
			if op.Name == name && op.Session == update.SessionName && op.Token == token {
				return syscall.ENOSPC
			}
			return nil
		}
	}
	for _, tc := range []struct {
		name    string
		fail    func(updatetest.Op) error
		stuck   bool
		phase   update.Phase
		loaded  bool // whether the image was loaded (and must be unloaded)
		stopped bool
	}{
		{"load", func(op updatetest.Op) error {
			if op.Name == "load" {
				return syscall.ENOEXEC
			}
			return nil
		}, false, update.PhaseLoad, false, false},
		{"stop", nil, true, update.PhaseStop, true, true},
		{"create session", func(op updatetest.Op) error {
			if op.Name == "create" && op.Session == update.SessionName {
				return syscall.ENOMEM
			}
			return nil
		}, false, update.PhasePreserve, true, true},
		{"first memfd", nospc("preserve", 1), false, update.PhasePreserve, true, true},
		{"second memfd", nospc("preserve", 2), false, update.PhasePreserve, true, true},
		{"manifest", nospc("preserve", 0), false, update.PhasePreserve, true, true},
		{"reboot", func(op updatetest.Op) error {
			if op.Name == "exec" {
				return syscall.EBUSY
			}
			return nil
		}, false, update.PhaseReboot, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, h := machine(t)
			k.Fail = tc.fail
			if tc.stuck {
				h.stuck["s.service"] = true
			}
			before := map[string][]string{}
			for _, u := range h.units {
				before[u.name] = storeNames(u.store)
			}
			req := kexecTo(false)
			req.StopTimeout = 50 * time.Millisecond
			next, err := k.Boot(func() error { return update.Run(context.Background(), k, h, req) })
			if next != nil {
				t.Fatal("rebooted")
			}
			var uerr *update.Error
			if !errors.As(err, &uerr) || uerr.Phase != tc.phase || !uerr.Restored {
				t.Fatalf("Run = %v, want an abort in phase %s", err, tc.phase)
			}
			if k.Image() != nil {
				t.Error("an image is still loaded after the abort")
			}
			unloaded := slices.ContainsFunc(k.Ops(), func(op updatetest.Op) bool { return op.Name == "unload" })
			if unloaded != tc.loaded {
				t.Errorf("unloaded = %v, want %v (ops %v)", unloaded, tc.loaded, k.Ops())
			}
			if got := k.Sessions(); !equal(got, []string{"out:cache"}) {
				t.Errorf("sessions after the abort %v, want only the service's", got)
			}
			if k.DeviceOpen() {
				t.Error("device left open")
			}
			if tc.stopped != (len(h.stopped) > 0) || !equal(h.resumed, []string{"a.service", "s.service"}) && tc.stopped {
				t.Errorf("stopped %v, resumed %v", h.stopped, h.resumed)
			}
			for _, u := range h.units {
				if got := storeNames(u.store); !equal(got, before[u.name]) {
					t.Errorf("%s store %v, was %v", u.name, got, before[u.name])
				}
				if u.name != "idle.service" && !u.active {
					t.Errorf("%s is not active again", u.name)
				}
			}
			if !h.progressHas(update.PhaseAbort) {
				t.Errorf("no abort progress: %v", h.progress)
			}
			// Nothing is left over that would fail the next attempt.
			k.Fail = nil
			delete(h.stuck, "s.service")
			next, err = k.Boot(func() error { return update.Run(context.Background(), k, h, kexecTo(false)) })
			if next == nil {
				t.Fatalf("retry after the abort: %v", err)
			}
		})
	}
}

func (h *host) progressHas(p update.Phase) bool { return slices.Contains(h.progress, p) }

// TestRunRefusesLoss: without --allow-loss an update that would lose an fd
// changes nothing at all; with it, the fd is reported lost and the rest is
// carried.
func TestRunRefusesLoss(t *testing.T) {
	k, h := machine(t)
	h.pipe(h.find("a.service"), "pipe")
	restart := h.unit("r.service", unit.PreserveRestart, true)
	h.memfd(restart, "m", "R")
	_, err := k.Boot(func() error { return update.Run(context.Background(), k, h, kexecTo(false)) })
	var uerr *update.Error
	if !errors.As(err, &uerr) || uerr.Phase != update.PhasePlan {
		t.Fatalf("Run = %v, want a refusal in the plan", err)
	}
	for _, want := range []string{`a.service "pipe" (a pipe`, `r.service "m" (FileDescriptorStorePreserve=restart`, "2 fds would be lost"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	for _, op := range k.Ops() {
		if op.Name == "load" || op.Name == "exec" || op.Session == update.SessionName {
			t.Errorf("a refused plan did %v", op)
		}
	}
	if len(h.stopped) != 0 || len(h.progress) != 0 {
		t.Errorf("a refused plan stopped %v, progress %v", h.stopped, h.progress)
	}

	next, err := k.Boot(func() error { return update.Run(context.Background(), k, h, kexecTo(true)) })
	if next == nil {
		t.Fatalf("Run with allow-loss: %v", err)
	}
	r := mustRestore(t, next)
	lost := map[string]string{}
	for _, u := range r.Units {
		for _, e := range u.Entries {
			if e.Fate == update.FateLost {
				lost[u.Name+"/"+e.Name] = e.Reason
			}
		}
	}
	if len(lost) != 2 || !strings.Contains(lost["a.service/pipe"], "pipe") || !strings.Contains(lost["r.service/m"], "restart") {
		t.Errorf("lost %v", lost)
	}
}

// TestRunRefusesOverQuota: a unit over its PreserveMaxBytes=, and units
// over the host's limit, make the update refuse before anything stops;
// with allow-loss it goes on, those units' memfds reported lost with the
// limit as the reason and every other one carried. The host's limit is
// exactly a.service's 4 bytes and idle.service's 2: s.service's region, in
// its own session, does not count against it.
func TestRunRefusesOverQuota(t *testing.T) {
	k, h := machine(t)
	q := h.unit("q.service", unit.PreserveYes, true)
	q.max = update.QuotaOf(4)
	h.memfd(q, "big", "12345")
	big := h.unit("z.service", unit.PreserveYes, true)
	h.memfd(big, "huge", strings.Repeat("z", 100))
	h.quota = update.QuotaOf(6)
	_, err := k.Boot(func() error { return update.Run(context.Background(), k, h, kexecTo(false)) })
	var uerr *update.Error
	if !errors.As(err, &uerr) || uerr.Phase != update.PhasePlan {
		t.Fatalf("Run = %v, want a refusal in the plan", err)
	}
	for _, want := range []string{`q.service "big" (the unit's memfds add up to 5 B (5 bytes), over its [X-LUO] PreserveMaxBytes=4)`, `z.service "huge"`, "--preserve-max-bytes=6", "2 fds would be lost"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	if len(h.stopped) != 0 {
		t.Errorf("a refused plan stopped %v", h.stopped)
	}
	next, err := k.Boot(func() error { return update.Run(context.Background(), k, h, kexecTo(true)) })
	if next == nil {
		t.Fatalf("Run with allow-loss: %v", err)
	}
	r := mustRestore(t, next)
	if e := entry(r.Units, "q.service", "big"); e.Fate != update.FateLost || e.File != nil || !strings.Contains(e.Reason, "PreserveMaxBytes=4") {
		t.Errorf("q.service big after the update: %+v", e)
	}
	if e := entry(r.Units, "z.service", "huge"); e.Fate != update.FateLost || e.File != nil || !strings.Contains(e.Reason, "--preserve-max-bytes") {
		t.Errorf("z.service huge after the update: %+v", e)
	}
	if e := entry(r.Units, "a.service", "one"); e.File == nil || contents(t, e.File) != "A1" {
		t.Errorf("a.service one after the update: %+v", e)
	}
	if e := entry(r.Units, "s.service", "region"); e.Fate != update.FateSession {
		t.Errorf("s.service region after the update: %+v", e)
	}
}

// TestPlanQuotaSkipsOwnSession: under a host limit of 0, the memfds luod
// would preserve are all lost, but not s.service's region, which its own
// LUO session carries: the limits are applied once the kernel said so,
// not to the first guess (which took the region for one luod preserves).
func TestPlanQuotaSkipsOwnSession(t *testing.T) {
	k, h := machine(t)
	h.quota = update.QuotaOf(0)
	p := update.MakePlan(k, h, update.Kexec, testImage, false)
	if e := entry(p.Units, "s.service", "region"); e.Fate != update.FateSession {
		t.Errorf("s.service region: %s (%s), want session", e.Fate, e.Reason)
	}
	if e := entry(p.Units, "a.service", "one"); e.Fate != update.FateLost || !strings.Contains(e.Reason, "--preserve-max-bytes=0") {
		t.Errorf("a.service one: %s (%s), want lost to the host's limit", e.Fate, e.Reason)
	}
}

// TestRunBusyMemfdAllowedLoss: a memfd the trial preservation found busy
// elsewhere (not in the unit's session) is lost with --allow-loss, and the
// update goes on instead of failing on it for real.
func TestRunBusyMemfdAllowedLoss(t *testing.T) {
	k, h := machine(t)
	f := h.memfd(h.find("a.service"), "busy", "B")
	other := outgoing(t, k, "elsewhere")
	if err := other.PreserveFD(f, 1); err != nil {
		t.Fatal(err)
	}
	plan := update.MakePlan(k, h, update.Kexec, testImage, false)
	if fate := entry(plan.Units, "a.service", "busy"); fate.Fate != update.FateLost || !strings.Contains(fate.Reason, "busy") {
		t.Fatalf("plan for the busy memfd: %+v", fate)
	}
	next, err := k.Boot(func() error { return update.Run(context.Background(), k, h, kexecTo(true)) })
	if next == nil {
		t.Fatalf("Run: %v", err)
	}
	r := mustRestore(t, next)
	if e := entry(r.Units, "a.service", "busy"); e.Fate != update.FateLost || e.File != nil {
		t.Errorf("busy memfd after the update: %+v", e)
	}
	if e := entry(r.Units, "a.service", "one"); e.File == nil || contents(t, e.File) != "A1" {
		t.Errorf("a.service one after the update: %+v", e)
	}
}

func entry(units []update.Unit, unitName, name string) update.Entry {
	for _, u := range units {
		for _, e := range u.Entries {
			if u.Name == unitName && e.Name == name {
				return e
			}
		}
	}
	return update.Entry{}
}

// TestRunStoreChangesWhileStopping: what a unit stores in its last moments
// is decided again after the stop; a new loss aborts the update.
func TestRunStoreChangesWhileStopping(t *testing.T) {
	k, h := machine(t)
	a := h.find("a.service")
	h.duringStop = func() { h.pipe(a, "late-pipe") }
	_, err := k.Boot(func() error { return update.Run(context.Background(), k, h, kexecTo(false)) })
	var uerr *update.Error
	if !errors.As(err, &uerr) || uerr.Phase != update.PhasePreserve || !strings.Contains(err.Error(), "late-pipe") {
		t.Fatalf("Run = %v, want an abort naming the late pipe", err)
	}
	if k.Image() != nil || !equal(k.Sessions(), []string{"out:cache"}) {
		t.Errorf("after the abort: image %v sessions %v", k.Image(), k.Sessions())
	}

	h.duringStop = func() { h.memfd(a, "late-memfd", "L") }
	next, err := k.Boot(func() error { return update.Run(context.Background(), k, h, kexecTo(true)) })
	if next == nil {
		t.Fatal(err)
	}
	r := mustRestore(t, next)
	if e := entry(r.Units, "a.service", "late-memfd"); e.File == nil || contents(t, e.File) != "L" {
		t.Errorf("the memfd stored while stopping: %+v", e)
	}
}

func TestRunSoft(t *testing.T) {
	k, h := machine(t)
	h.pipe(h.find("a.service"), "pipe")
	var got *update.Manifest
	h.reexec = func(m *update.Manifest) error { got = m; return errors.New("exec: ENOENT") }
	ops := len(k.Ops())
	err := update.Run(context.Background(), k, h, update.Request{Kind: update.Soft, Count: 4})
	var uerr *update.Error
	if !errors.As(err, &uerr) || uerr.Phase != update.PhaseExec || !strings.Contains(err.Error(), "ENOENT") {
		t.Fatalf("Run = %v", err)
	}
	if len(k.Ops()) != ops {
		t.Errorf("a soft update touched the kernel: %v", k.Ops()[ops:])
	}
	if got == nil || got.Kind != update.Soft || got.Count != 4 || got.Timeline.Requested.IsZero() {
		t.Fatalf("manifest handed to Reexec: %+v", got)
	}
	for _, u := range got.Units {
		for _, e := range u.Entries {
			if e.Fate != update.FateInherit || e.File == nil {
				t.Errorf("%s %s: %+v", u.Name, e.Name, e)
			}
		}
		if u.Active != (u.Name != "idle.service") {
			t.Errorf("%s active %v", u.Name, u.Active)
		}
	}
	if len(h.stopped) != 0 || len(h.resumed) != 0 {
		t.Errorf("a soft update without restart stopped %v resumed %v", h.stopped, h.resumed)
	}

	err = update.Run(context.Background(), k, h, update.Request{Kind: update.Soft, RestartUnits: true})
	if !errors.As(err, &uerr) || uerr.Phase != update.PhaseExec {
		t.Fatalf("Run = %v", err)
	}
	if !equal(h.stopped, []string{"a.service", "s.service"}) || !equal(h.resumed, h.stopped) {
		t.Errorf("restart units: stopped %v, resumed %v", h.stopped, h.resumed)
	}
	for _, u := range got.Units {
		if u.Active != (u.Name != "idle.service") || u.Active && u.Stopped.IsZero() {
			t.Errorf("%s: active %v stopped %v", u.Name, u.Active, u.Stopped)
		}
	}
}

// TestPlanHasNoSideEffects: a plan never replaces or unloads an image it
// did not load, and leaves no session behind on any path.
func TestPlanHasNoSideEffects(t *testing.T) {
	operator := kexecImage("/boot/operator", "liveupdate=on")
	for _, tc := range []struct {
		name     string
		prepare  func(k *updatetest.Kernel)
		fail     func(updatetest.Op) error
		wantOps  []string // load/unload operations done
		wantLoad *kexec.Image
		ok       bool
		detail   string
	}{
		{"nothing loaded", nil, nil, []string{"load", "unload"}, nil, true, "trial kexec_file_load succeeded"},
		{"operator's image", func(k *updatetest.Kernel) { k.Load(operator) }, nil, nil, &operator, true, "another kexec image is loaded"},
		{"loaded unknown", nil, func(op updatetest.Op) error {
			if op.Name == "loaded" {
				return syscall.EACCES
			}
			return nil
		}, nil, nil, true, "cannot tell"},
		{"load fails", nil, func(op updatetest.Op) error {
			if op.Name == "load" {
				return syscall.ENOEXEC
			}
			return nil
		}, []string{"load"}, nil, false, "exec format error"},
		{"trial session exists", nil, func(op updatetest.Op) error {
			if op.Name == "create" && op.Session == "luod/plan" {
				return syscall.EEXIST
			}
			return nil
		}, []string{"load", "unload"}, nil, true, "trial"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, h := machine(t)
			if tc.prepare != nil {
				tc.prepare(k)
			}
			opsBefore := len(k.Ops())
			k.Fail = tc.fail
			p := update.MakePlan(k, h, update.Kexec, testImage, true)
			var ops []string
			for _, op := range k.Ops()[opsBefore:] {
				if op.Name == "load" || op.Name == "unload" {
					ops = append(ops, op.Name)
				}
			}
			if !equal(ops, tc.wantOps) {
				t.Errorf("load/unload ops %v, want %v", ops, tc.wantOps)
			}
			if got := k.Image(); (got == nil) != (tc.wantLoad == nil) || got != nil && got.Kernel != tc.wantLoad.Kernel {
				t.Errorf("loaded image after the plan: %v, want %v", got, tc.wantLoad)
			}
			c := p.Checks[len(p.Checks)-1]
			if c.Name != update.CheckLoadable || c.OK != tc.ok || !strings.Contains(c.Detail, tc.detail) {
				t.Errorf("load check %+v, want ok=%v ~%q", c, tc.ok, tc.detail)
			}
			if got := k.Sessions(); !equal(got, []string{"out:cache"}) {
				t.Errorf("sessions after the plan %v", got)
			}
			if k.DeviceOpen() {
				t.Error("device left open")
			}
		})
	}
}
