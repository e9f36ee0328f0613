package update_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/fdstore"
	"github.com/liveupdate/luo/internal/unit"
	"github.com/liveupdate/luo/internal/update"
	"github.com/liveupdate/luo/internal/update/updatetest"
)

// TestSequences runs random sequences of store changes, unit changes
// (limits on preserved memory among them: PreserveMaxBytes= and the
// host's), kexec updates (some refused, some failing at a random kernel
// operation or at taking the fleet slot; staged ahead or not, the staging
// kept across soft updates as across luod's re-exec, or dropped; some
// with a health gate that units fail in the next kernel, and a rollback)
// and soft updates against a model of what every store must hold and of
// the host's fleet slot. After every step: each store holds exactly what
// the model says, with the same contents; the fleet slot is held, in the
// state, the model says; no session of luod's and no kexec image is left
// over from an update that did not reboot; the device is closed. At the
// end no fd has leaked. The seed is printed; LUO_SEED=n reruns one
// sequence.
func TestSequences(t *testing.T) {
	seeds := []uint64{}
	for i := range 24 {
		seeds = append(seeds, uint64(i+1))
	}
	if testing.Short() {
		seeds = seeds[:6]
	}
	if s := os.Getenv("LUO_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seeds = []uint64{n}
	}
	baseline := openFDs(t)
	// seen counts the steps of the fleet's paths over all sequences:
	// every one must have been taken.
	seen := map[string]int{}
	paths := []string{"after the update: release", "after the update: keep failed", "after the update: rollback",
		"after the update: keep rolled-back", `fault="slot"`, `fault="kept"`, "aborted with the slot kept", "the operator releases"}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			w := newWorld(t, seed)
			for step := 0; step < 120 && !t.Failed(); step++ {
				w.step(step)
				w.check(step)
			}
			if t.Failed() {
				t.Logf("rerun with LUO_SEED=%d; the steps were:\n%s", seed, strings.Join(w.log, "\n"))
			}
			for _, l := range w.log {
				for _, p := range paths {
					if strings.Contains(l, p) {
						seen[p]++
					}
				}
			}
			w.close()
		})
	}
	t.Logf("fleet paths taken: %v", seen)
	for _, p := range paths {
		if seen[p] == 0 && len(seeds) > 6 {
			t.Errorf("no sequence took the path %q", p)
		}
	}
	// What the updates that rebooted held (the manifest memfds) went with
	// their goroutines; the finalizers close them.
	n := openFDs(t)
	for try := 0; try < 50 && n > baseline; try++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		n = openFDs(t)
	}
	if n > baseline {
		t.Errorf("%d fds open after the sequences, %d before", n, baseline)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// world is one machine: a fake kernel, the host luod manages, and the model.
type world struct {
	t     *testing.T
	rng   *rand.Rand
	k     *updatetest.Kernel
	h     *host
	model map[string]*modelUnit
	log   []string
	// reboots and soft updates done, for the counter.
	kexecs int
	// hostMax is the host's limit on preserved bytes, -1 for none.
	hostMax int64
	// staged is the update staged ahead, nil when none is: its kernel
	// is loaded, and the next kexec runs it.
	staged *update.Staged
	// fleet is the fake fleet the kexec updates take their slot from;
	// slot is the model of it: the state the host's slot is held in, ""
	// when it is free.
	fleet *seqFleet
	slot  string
}

// seqFleet is a fleet of one host: its slot's state ("" when free), and
// whether etcd answers the next Take.
type seqFleet struct {
	state, reason string
	down          bool
	takes         int
}

func (f *seqFleet) Take(_ context.Context, use update.SlotUse, _ time.Duration) (*update.Slot, error) {
	if f.down {
		return nil, errors.New("etcd: context deadline exceeded")
	}
	if f.state != "" && f.state != update.SlotUpdating {
		return nil, &update.KeptError{Host: "me", Holder: "me (" + f.state + ")"}
	}
	f.takes++
	f.state, f.reason = update.SlotUpdating, ""
	return &update.Slot{Group: "g", Host: "me", Since: time.Now()}, nil
}

func (f *seqFleet) Release(context.Context, *update.Slot) error {
	f.state, f.reason = "", ""
	return nil
}

func (f *seqFleet) Keep(_ context.Context, _ *update.Slot, state, reason string) error {
	if f.state != "" {
		f.state, f.reason = state, reason
	}
	return nil
}

// modelUnit is what a unit's store must hold.
type modelUnit struct {
	preserve unit.Preserve
	active   bool
	// session units keep a region in their own LUO session, like package
	// keep in session mode: the store holds the session and the region.
	session bool
	memfds  []kv // name and contents, in store order
	pipes   []string
	// max is the unit's PreserveMaxBytes=, -1 for none.
	max int64
}

// limits are the values the sequences give PreserveMaxBytes= and the
// host's limit: none, or a few memfds' worth (each holds about 15 bytes).
var limits = []int64{-1, -1, 0, 20, 40, 80}

type kv struct{ name, data string }

func newWorld(t *testing.T, seed uint64) *world {
	w := &world{t: t, rng: rand.New(rand.NewPCG(seed, seed)), k: updatetest.New(), model: map[string]*modelUnit{}, hostMax: -1, fleet: &seqFleet{}}
	w.h = newHost(t)
	for i, p := range []unit.Preserve{unit.PreserveYes, unit.PreserveOnSuccess, unit.PreserveRestart, unit.PreserveYes} {
		name := fmt.Sprintf("u%d.service", i)
		w.model[name] = &modelUnit{preserve: p, active: true, max: -1}
		w.h.unit(name, p, true)
	}
	w.model["s.service"] = &modelUnit{preserve: unit.PreserveYes, active: true, session: true, max: -1}
	w.h.unit("s.service", unit.PreserveYes, true)
	w.startSessionService("fresh")
	return w
}

func (w *world) logf(format string, args ...any) {
	w.log = append(w.log, fmt.Sprintf(format, args...))
}

func (w *world) units() []string {
	var names []string
	for n := range w.model {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (w *world) pick() (string, *modelUnit) {
	names := w.units()
	n := names[w.rng.IntN(len(names))]
	return n, w.model[n]
}

func (w *world) step(i int) {
	if w.slot != "" && w.rng.IntN(4) == 0 {
		w.logf("%d: the operator releases the slot kept as %s", i, w.slot)
		w.fleet.Release(context.Background(), nil)
		w.slot = ""
		return
	}
	name, m := w.pick()
	switch r := w.rng.IntN(24); {
	case r >= 22:
		if w.staged != nil && r == 23 {
			w.logf("%d: unstage", i)
			if err := update.Unstage(w.k); err != nil {
				w.t.Errorf("%d: unstage: %v", i, err)
			}
			w.staged = nil
			break
		}
		w.stage(i)
	case r >= 20 && !m.session:
		if r == 20 {
			m.max = limits[w.rng.IntN(len(limits))]
			w.h.find(name).max = update.QuotaOf(m.max)
			w.logf("%d: %s now has PreserveMaxBytes=%d", i, name, m.max)
			break
		}
		w.hostMax = limits[w.rng.IntN(len(limits))]
		w.h.quota = update.QuotaOf(w.hostMax)
		w.logf("%d: the host's limit is now %d", i, w.hostMax)
	case r < 6 && !m.session:
		d := fmt.Sprintf("%s-%d", name, i)
		fd := "m" + strconv.Itoa(w.rng.IntN(3))
		w.logf("%d: %s stores memfd %s=%q", i, name, fd, d)
		w.h.memfd(w.h.find(name), fd, d)
		m.memfds = append(m.memfds, kv{fd, d})
	case r < 7 && !m.session:
		w.logf("%d: %s stores a pipe", i, name)
		w.h.pipe(w.h.find(name), "p")
		m.pipes = append(m.pipes, "p")
	case r < 9 && !m.session:
		fd := "m" + strconv.Itoa(w.rng.IntN(3))
		w.logf("%d: %s removes %s", i, name, fd)
		for _, e := range w.h.find(name).store.RemoveName(fd) {
			e.File.Close()
		}
		m.memfds = slices.DeleteFunc(m.memfds, func(x kv) bool { return x.name == fd })
	case r < 10 && !m.session:
		w.logf("%d: %s removes its pipes", i, name)
		for _, e := range w.h.find(name).store.RemoveName("p") {
			e.File.Close()
		}
		m.pipes = nil
	case r < 11 && !m.session:
		p := []unit.Preserve{unit.PreserveYes, unit.PreserveOnSuccess, unit.PreserveRestart, unit.PreserveNo}[w.rng.IntN(4)]
		w.logf("%d: %s now has FileDescriptorStorePreserve=%s", i, name, p)
		m.preserve, w.h.find(name).preserve = p, p
	case r < 12:
		m.active = !m.active
		w.logf("%d: %s active=%v", i, name, m.active)
		w.h.find(name).active = m.active
	case r < 18:
		w.kexec(i)
	default:
		w.soft(i)
	}
}

// lossy reports whether a kexec now loses something.
func (w *world) lossy() bool {
	over := w.overLimits()
	for name, m := range w.model {
		if len(m.pipes) > 0 || !m.carried() && len(m.memfds) > 0 || over[name] {
			return true
		}
	}
	return false
}

// carried tells whether a kexec carries the unit's store at all.
func (m *modelUnit) carried() bool {
	return m.preserve == unit.PreserveYes || m.preserve == unit.PreserveOnSuccess
}

// bytes is what the unit's memfds hold.
func (m *modelUnit) bytes() int64 {
	var n int64
	for _, x := range m.memfds {
		n += int64(len(x.data))
	}
	return n
}

// overLimits are the units a kexec would take no memfd of because of the
// limits on preserved memory, as luod.service(5) and luod(8) say: a unit
// over its own limit, then, while the rest is over the host's, the
// largest unit (ties: the last by name).
func (w *world) overLimits() map[string]bool {
	over := map[string]bool{}
	var kept []string
	for _, name := range w.units() {
		m := w.model[name]
		switch {
		case m.session || !m.carried() || len(m.memfds) == 0:
		case m.max >= 0 && m.bytes() > m.max:
			over[name] = true
		default:
			kept = append(kept, name)
		}
	}
	if w.hostMax < 0 {
		return over
	}
	for {
		var total int64
		for _, n := range kept {
			total += w.model[n].bytes()
		}
		if total <= w.hostMax {
			return over
		}
		largest := 0
		for j, n := range kept {
			if b, lb := w.model[n].bytes(), w.model[kept[largest]].bytes(); b > lb || b == lb && n > kept[largest] {
				largest = j
			}
		}
		over[kept[largest]] = true
		kept = slices.Delete(kept, largest, largest+1)
	}
}

// stage stages a kexec update (or stages again, replacing the staged one):
// refused, loading nothing, when it would lose something without
// allow-loss.
func (w *world) stage(i int) {
	allowLoss := w.rng.IntN(2) == 0
	w.logf("%d: stage allow-loss=%v", i, allowLoss)
	if w.staged != nil {
		if err := update.Unstage(w.k); err != nil {
			w.t.Errorf("%d: unstage before staging again: %v", i, err)
		}
		w.staged = nil
	}
	st, _, err := update.Stage(w.k, w.h, testImage, allowLoss)
	var uerr *update.Error
	switch {
	case w.lossy() && !allowLoss:
		if st != nil || !errors.As(err, &uerr) || uerr.Phase != update.PhasePlan {
			w.t.Errorf("%d: a lossy staging without allow-loss: %v", i, err)
		}
	case err != nil || st == nil:
		w.t.Errorf("%d: stage: %v", i, err)
	default:
		w.staged = st
	}
}

// kexec runs a kexec update, maybe with a fault at one kernel operation:
// the staged one when there is one.
func (w *world) kexec(i int) {
	allowLoss := w.rng.IntN(2) == 0
	fault := ""
	if w.rng.IntN(3) == 0 {
		fault = []string{"load", "create", "preserve", "preserve-manifest", "exec"}[w.rng.IntN(5)]
		if fault == "load" && w.staged != nil {
			fault = "" // a staged run loads nothing
		}
	}
	if fault == "" && w.rng.IntN(8) == 0 {
		fault = "slot"
	}
	w.fleet.down = fault == "slot"
	if fault == "" && w.slot != "" {
		fault = "kept" // the host keeps its slot after a failed update
	}
	gate := w.rng.IntN(3) == 0
	w.logf("%d: kexec update allow-loss=%v fault=%q staged=%v gate=%v", i, allowLoss, fault, w.staged != nil, gate)
	n := 0
	w.k.Fail = func(op updatetest.Op) error {
		hit := false
		switch fault {
		case "load", "exec":
			hit = op.Name == fault
		case "create":
			hit = op.Name == "create" && op.Session == update.SessionName
		case "preserve":
			hit = op.Name == "preserve" && op.Session == update.SessionName && op.Token > 0 && n == 0
		case "preserve-manifest":
			hit = op.Name == "preserve" && op.Session == update.SessionName && op.Token == 0
		}
		if hit {
			n++
			return errors.New("injected")
		}
		return nil
	}
	req := kexecTo(allowLoss)
	req.Count = w.kexecs + 1
	req.Staged = w.staged
	req.Slots = w.fleet
	if gate {
		req.Health = &update.Health{Timeout: time.Minute, Rollback: &update.Boot{Release: "7.2.13", Image: "/boot/prev", Cmdline: "liveupdate=on"}}
	}
	next, err := w.k.Boot(func() error { return update.Run(context.Background(), w.k, w.h, req) })
	w.k.Fail, w.fleet.down = nil, false
	refused := w.lossy() && !allowLoss
	var uerr *update.Error
	switch {
	case refused:
		if !errors.As(err, &uerr) || uerr.Phase != update.PhasePlan {
			w.t.Errorf("%d: a lossy update without allow-loss: %v, rebooted %v", i, err, next != nil)
		}
		return
	case fault != "" && (fault != "preserve" || w.hasMemfdsToPreserve()):
		var kept *update.KeptError
		if next != nil || !errors.As(err, &uerr) || !uerr.Restored || (fault == "slot" || fault == "kept") && uerr.Phase != update.PhaseSlot ||
			fault == "kept" && !errors.As(err, &kept) {
			w.t.Errorf("%d: fault %q: Run = %v, rebooted %v", i, fault, err, next != nil)
		}
		w.logf("%d: aborted: %v", i, err)
		if w.slot != "" {
			w.logf("%d: aborted with the slot kept as %s", i, w.slot)
		}
		return
	case next == nil:
		w.t.Errorf("%d: update did not reboot: %v", i, err)
		return
	}
	w.kexecs++
	w.staged = nil // the next kernel has nothing loaded
	w.slot = update.SlotUpdating
	w.reboot(i, next)
}

// settle does what luod does once the update into the kernel next
// finished (see update.Completion.Next), with the model: a healthy update
// frees the slot; a failed health gate rolls back (a kexec into the kernel
// left, carrying the slot), after which, as after any other unhealthy
// update, the slot is kept.
func (w *world) settle(i int, c *update.Completion) {
	next := c.Next()
	w.logf("%d: after the update: %s %s %s", i, next.Action, next.State, next.Reason)
	switch next.Action {
	case update.ActionRelease:
		w.fleet.Release(context.Background(), c.Slot)
		w.slot = ""
	case update.ActionKeep:
		w.fleet.Keep(context.Background(), c.Slot, next.State, next.Reason)
		w.slot = next.State
	case update.ActionRollback:
		b := c.Health.Rollback
		req := update.Request{Kind: update.Kexec, Target: kexecImage(b.Image, b.Cmdline), Count: w.kexecs + 1, From: update.Boot{Release: "7.3.4"},
			Slot: c.Slot, RolledBack: &update.RolledBack{From: c.Report.From, To: c.Report.To, Reason: next.Reason}}
		k, err := w.k.Boot(func() error { return update.Run(context.Background(), w.k, w.h, req) })
		if k == nil {
			// luod keeps the slot as failed when the rollback fails.
			w.logf("%d: rollback failed: %v", i, err)
			if !w.lossy() {
				w.t.Errorf("%d: a rollback that loses nothing failed: %v", i, err)
			}
			w.fleet.Keep(context.Background(), c.Slot, update.SlotFailed, next.Reason+"; rollback failed")
			w.slot = update.SlotFailed
			return
		}
		w.logf("%d: rolled back", i)
		w.kexecs++
		w.reboot(i, k)
	default:
		if c.Slot != nil {
			w.t.Errorf("%d: nothing done with the slot after an update: %+v", i, next)
		}
	}
}

// hasMemfdsToPreserve reports whether luod's session gets a memfd at all
// (else a fault on the first one cannot hit).
func (w *world) hasMemfdsToPreserve() bool {
	over := w.overLimits()
	for name, m := range w.model {
		if m.carried() && len(m.memfds) > 0 && !m.session && !over[name] {
			return true
		}
	}
	return false
}

// reboot is the next luod after a kexec: it restores the stores from the
// next kernel, checks the manifest against the model, starts the units
// and finishes.
func (w *world) reboot(i int, next *updatetest.Kernel) {
	r, err := update.Restore(next)
	if err != nil || r.Err != nil || len(r.Problems) > 0 {
		w.t.Fatalf("%d: Restore: %v %v %v", i, err, r.Err, r.Problems)
	}
	if r.Manifest.Count != w.kexecs {
		w.t.Errorf("%d: manifest count %d, want %d", i, r.Manifest.Count, w.kexecs)
	}
	over := w.overLimits()
	old := w.h
	w.k, w.h = next, newHost(w.t)
	w.h.quota = update.QuotaOf(w.hostMax)
	for _, u := range r.Units {
		m := w.model[u.Name]
		hu := w.h.unit(u.Name, m.preserve, u.Active)
		hu.max = update.QuotaOf(m.max)
		if u.Active != m.active {
			w.t.Errorf("%d: %s came back active=%v, the model says %v", i, u.Name, u.Active, m.active)
		}
		for _, e := range u.Entries {
			if e.File == nil {
				continue
			}
			if _, err := hu.store.Add(e.Name, e.File, e.Poll, fdstore.OriginLUO); err != nil {
				w.t.Fatal(err)
			}
			if e.Fate == update.FateSession && e.Session != "" {
				w.h.sessions[e.File] = next.Find(e.Session)
			}
		}
	}
	// The model: a kexec keeps the memfds of carried stores and loses the
	// rest; the session service keeps its region.
	for name, m := range w.model {
		if !m.carried() || over[name] {
			m.memfds = nil
		}
		m.pipes = nil
	}
	old.closeAll()
	w.startSessionService("")
	c := update.NewCompletion(r.Session, r.Manifest, update.NewReport(r.Manifest, "next", time.Now()), w.units(), time.Now(), time.Minute)
	// Now and then a unit does not come up in the next kernel.
	down := ""
	if w.rng.IntN(3) == 0 {
		down, _ = w.pick()
	}
	for _, n := range w.units() {
		if n != down {
			c.Ready(n, time.Now())
		}
	}
	if c.Done() == (down != "") {
		w.t.Errorf("%d: completion done=%v with %q down: %v", i, c.Done(), down, c.Pending())
	}
	if err := c.Finish(time.Now()); err != nil {
		w.t.Errorf("%d: finish: %v", i, err)
	}
	w.logf("%d: rebooted (update %d, rolled back %v), %q not up", i, w.kexecs, r.Manifest.RolledBack != nil, down)
	w.settle(i, c)
}

// startSessionService is what the session service does when it starts:
// take its region from the incoming session left by the last kernel (or
// create it with data when there is none), put it in a new outgoing
// session, and store the session and the region.
func (w *world) startSessionService(data string) {
	name := "s.service"
	hu, m := w.h.find(name), w.model[name]
	var region *os.File
	for _, e := range hu.store.RemoveName("sess") {
		in := w.h.sessions[e.File]
		if in == nil {
			w.t.Fatalf("%s: stored session %s is unknown", name, e.File.Name())
		}
		f, err := in.RetrieveFD(1)
		if err != nil {
			w.t.Fatalf("%s: retrieve its region: %v", name, err)
		}
		region = f
		if err := in.Finish(); err != nil {
			w.t.Fatal(err)
		}
		in.Close()
		delete(w.h.sessions, e.File)
	}
	for _, e := range hu.store.RemoveName("region") {
		e.File.Close()
	}
	if region == nil {
		if data == "" {
			w.t.Fatalf("%s: no incoming session to take the region from", name)
		}
		w.h.memfd(hu, "region", data)
		region = hu.store.RemoveName("region")[0].File
		m.memfds = []kv{{"region", data}}
	}
	s := outgoing(w.t, w.k, "cache")
	if err := s.PreserveFD(region, 1); err != nil {
		w.t.Fatalf("%s: preserve its region: %v", name, err)
	}
	w.h.session(hu, "sess", s, fdstore.OriginNotify)
	w.h.add(hu, "region", region)
}

// soft runs a soft update whose re-exec "succeeds": the next luod takes
// the stores from the manifest.
func (w *world) soft(i int) {
	restart := w.rng.IntN(2) == 0
	w.logf("%d: soft update restart-units=%v", i, restart)
	var got *update.Manifest
	w.h.reexec = func(m *update.Manifest) error {
		got = m
		return errors.New("simulated: the new luod took over")
	}
	err := update.Run(context.Background(), w.k, w.h, update.Request{Kind: update.Soft, RestartUnits: restart, Count: w.kexecs})
	w.h.reexec = nil
	var uerr *update.Error
	if !errors.As(err, &uerr) || uerr.Phase != update.PhaseExec || got == nil {
		w.t.Fatalf("%d: soft update: %v", i, err)
	}
	if w.staged != nil {
		// The re-executed luod keeps the staging without its plan (its
		// trial answers are gone): the staged run plans again.
		w.staged = update.ResumeStaged(w.staged.Save())
	}
	if got.Count != w.kexecs || got.Kind != update.Soft {
		w.t.Errorf("%d: soft manifest %+v", i, got)
	}
	// Every entry is inherited, pipes and sessions included.
	for _, u := range got.Units {
		m := w.model[u.Name]
		if len(u.Entries) != len(m.memfds)+len(m.pipes)+b2i(m.session) {
			w.t.Errorf("%d: soft manifest %s has %d entries, the model %d+%d", i, u.Name, len(u.Entries), len(m.memfds), len(m.pipes))
		}
		for _, e := range u.Entries {
			if e.Fate != update.FateInherit || e.File == nil {
				w.t.Errorf("%d: soft manifest %s %s: %s", i, u.Name, e.Name, e.Fate)
			}
		}
		if u.Active != m.active {
			w.t.Errorf("%d: soft manifest %s active=%v, model %v", i, u.Name, u.Active, m.active)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// check compares every store with the model, and the kernel with what is
// allowed to be left between updates.
func (w *world) check(i int) {
	if w.fleet.state != w.slot {
		w.t.Errorf("%d: the fleet slot is %q, the model says %q", i, w.fleet.state, w.slot)
	}
	for _, name := range w.units() {
		m, hu := w.model[name], w.h.find(name)
		var memfds []kv
		pipes := 0
		for _, e := range hu.store.Entries() {
			info, err := fdstore.Describe(e.File)
			switch {
			case err != nil:
				w.t.Errorf("%d: %s %s: %v", i, name, e.Name, err)
			case info.Type == "memfd":
				memfds = append(memfds, kv{e.Name, contents(w.t, e.File)})
			case info.Type == "fifo":
				pipes++
			}
		}
		if !slices.Equal(memfds, m.memfds) || pipes != len(m.pipes) {
			w.t.Errorf("%d: %s holds memfds %v and %d pipes; the model says %v and %d", i, name, memfds, pipes, m.memfds, len(m.pipes))
		}
		if hu.active != m.active {
			w.t.Errorf("%d: %s active=%v, model %v", i, name, hu.active, m.active)
		}
	}
	if got := w.k.Sessions(); !slices.Equal(got, []string{"out:cache"}) {
		w.t.Errorf("%d: sessions between updates: %v", i, got)
	}
	if loaded := w.k.Image() != nil; loaded != (w.staged != nil) {
		w.t.Errorf("%d: an image loaded: %v, staged: %v", i, loaded, w.staged != nil)
	}
	if w.k.DeviceOpen() {
		w.t.Errorf("%d: the device is open between updates", i)
	}
}

// close ends the world, closing every file it holds.
func (w *world) close() {
	w.h.closeAll()
	for _, name := range w.k.Sessions() {
		if s := w.k.Find(strings.SplitN(name, ":", 2)[1]); s != nil {
			s.Close()
		}
	}
}

// closeAll closes every stored file, as the death of luod's process does.
func (h *host) closeAll() {
	for _, u := range h.units {
		for _, e := range u.store.Take() {
			if s := h.sessions[e.File]; s != nil {
				s.Close()
				continue
			}
			e.File.Close()
		}
	}
}
