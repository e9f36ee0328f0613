package e2e_test

// The model of keep under luod shared by the host test (TestModelHost,
// luod on the host) and the VM test (TestVMModel on the host,
// TestModelGuest in the guest): counter services in fd-store,
// LUOSession= and own-session mode, each with FileDescriptorStoreMax=
// exactly what keep's docs ask for; a seeded generator of steps (start,
// stop, SIGKILL with Restart=on-failure, luoctl restart, daemon-reexec,
// soft updates with and without --restart-units, kexec live updates);
// the state every unit must be in after each step; and a runner that
// executes steps on a luod and checks every unit after each.
//
// The sequence depends on the seed, the units and the lengths only, never
// on what luod does, so the host and every VM stage compute the same one.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/control"
)

// modelMode is how a unit's counter carries its region across a kexec.
type modelMode int

const (
	modeFDStore    modelMode = iota // no -session: luod carries the memfds
	modeLUOSession                  // -session state, LUOSession=state
	modeOwn                         // -session own: keep creates its session (root)
)

func (m modelMode) String() string {
	return [...]string{"fd-store", "LUOSession=", "own-session"}[m]
}

// modelRegionSize is the counter's region: small, so that restarts under
// TCG are quick.
const modelRegionSize = 65536

// modelUnit is one counter service of the model.
type modelUnit struct {
	name string
	mode modelMode
	// noLUO: the machine has no /dev/liveupdate (the host), so keep falls
	// back to fd-store mode in session mode, as its docs say.
	noLUO bool
}

// session is the fd name of the unit's LUO session ("" in fd-store mode).
func (u modelUnit) session() string {
	switch u.mode {
	case modeLUOSession:
		return "state"
	case modeOwn:
		return "own"
	}
	return ""
}

// storeMax is FileDescriptorStoreMax= exactly as keep's docs ask: "large
// enough for the regions, the index memfd ("keep.index") and the session,
// if any".
func (u modelUnit) storeMax() int {
	if u.session() != "" {
		return 3
	}
	return 2
}

// file is the unit file, with counter the path of the example counter.
func (u modelUnit) file(counter string) string {
	args := fmt.Sprintf("-size %d", modelRegionSize)
	if s := u.session(); s != "" {
		args += " -session " + s
	}
	f := fmt.Sprintf(`[Unit]
Description=model: counter in %s mode, FileDescriptorStoreMax= as keep's docs ask
StartLimitIntervalSec=0
[Service]
Type=notify
ExecStart=%s %s
FileDescriptorStoreMax=%d
FileDescriptorStorePreserve=yes
Restart=on-failure
RestartSec=100ms
TimeoutStopSec=30s
`, u.mode, counter, args, u.storeMax())
	if u.mode == modeLUOSession {
		f += "LUOSession=state\n"
	}
	return f
}

// needs are the fd-store entries (name -> type, as DumpFDStore says) the
// unit must hold whenever it has run: its region, keep's index and, in
// session mode with LUO, the session.
func (u modelUnit) needs() map[string]string {
	n := map[string]string{"counter": "memfd", "keep.index": "memfd"}
	if s := u.session(); s != "" && !u.noLUO {
		n[s] = "luo-session"
	}
	return n
}

// modeOK says whether the counter's mode= (keep.Store.Mode) is the
// unit's mode: in session mode a LUO session (the manager's, or one keep
// created, named keep/ and the unit), never the fall-back to the fd store.
func (u modelUnit) modeOK(mode string) (bool, string) {
	switch {
	case u.mode == modeLUOSession && !u.noLUO:
		// The session luod handed out, not one keep made itself.
		return strings.HasPrefix(mode, "session session="), "session session=<luod's session>"
	case u.mode == modeOwn && !u.noLUO:
		want := "own-session session=keep/" + strings.TrimSuffix(u.name, ".service")
		return mode == want, want
	}
	return mode == "fd-store", "fd-store"
}

// vmModelUnits are the units of the VM: one per mode.
var vmModelUnits = []modelUnit{
	{name: "fdstore.service", mode: modeFDStore},
	{name: "luosession.service", mode: modeLUOSession},
	{name: "ownsession.service", mode: modeOwn},
}

// stepKind is a kind of step.
type stepKind int

const (
	stepStart       stepKind = iota // luoctl start of a stopped unit
	stepStop                        // luoctl stop (SIGTERM, a clean exit)
	stepKill                        // SIGKILL of the main process: Restart=on-failure restarts it
	stepRestart                     // luoctl restart (of a running or stopped unit)
	stepReexec                      // luoctl daemon-reexec
	stepSoft                        // luoctl update run --no-kexec
	stepSoftRestart                 // luoctl update run --no-kexec --restart-units
	stepKexec                       // luoctl update run --kernel ... (or --staged): ends a VM stage
	stepStage                       // luoctl update stage (the next stage's kernel): nothing may restart
	stepUnstage                     // luoctl update unstage
)

// modelStep is one step; unit is set for the per-unit kinds.
type modelStep struct {
	kind stepKind
	unit string
	// stage is the stage a kexec goes to, and release its kernel ("7.2" or
	// "7.3").
	stage   int
	release string
	// staged: the kexec runs the update staged before (update run
	// --staged).
	staged bool
}

func (s modelStep) String() string {
	switch s.kind {
	case stepStart:
		return "luoctl start " + s.unit
	case stepStop:
		return "luoctl stop " + s.unit
	case stepKill:
		return "kill -9 the main process of " + s.unit + " (Restart=on-failure)"
	case stepRestart:
		return "luoctl restart " + s.unit
	case stepReexec:
		return "luoctl daemon-reexec"
	case stepSoft:
		return "luoctl update run --no-kexec"
	case stepSoftRestart:
		return "luoctl update run --no-kexec --restart-units"
	case stepKexec:
		if s.staged {
			return fmt.Sprintf("luoctl update run --staged (%s, stage %d): kexec live update", s.release, s.stage)
		}
		return fmt.Sprintf("luoctl update run --kernel (%s, stage %d): kexec live update", s.release, s.stage)
	case stepStage:
		return "luoctl update stage --kernel (the next stage's)"
	case stepUnstage:
		return "luoctl update unstage"
	}
	return fmt.Sprintf("step(%d)", int(s.kind))
}

// unitModel is what one unit must be.
type unitModel struct {
	running     bool
	gen         int    // generation the counter reports
	origin      string // fresh, fdstore or luo
	liveUpdates int
	// kills since the last start by hand: each automatic restart doubles
	// RestartSec=, so the generator allows only a few in a row.
	kills int
}

// verified is what the counter must report for its checksum.
func (u unitModel) verified() string {
	if u.origin == "fresh" {
		return "fresh"
	}
	return "ok"
}

func (u unitModel) String() string {
	if !u.running {
		return fmt.Sprintf("stopped (generation %d kept in the store)", u.gen)
	}
	return fmt.Sprintf("generation=%d origin=%s verified=%s live_updates=%d", u.gen, u.origin, u.verified(), u.liveUpdates)
}

// model is the state of the whole system.
type model struct {
	units   []modelUnit
	state   map[string]*unitModel
	kexecs  int // live updates since the cold boot
	reexecs int // luod re-execs since it booted (daemon-reexec and soft updates)
	// staged: an update into the next stage is staged (it survives
	// re-execs, and the kexec then runs it).
	staged bool
}

// newModel is the state after the cold boot: luod started every unit
// once, fresh.
func newModel(units []modelUnit) *model {
	m := &model{units: units, state: map[string]*unitModel{}}
	for _, u := range units {
		m.state[u.name] = &unitModel{running: true, gen: 1, origin: "fresh"}
	}
	return m
}

// start applies one start of a unit in the same boot.
func (u *unitModel) start() {
	u.running = true
	u.gen++
	u.origin = "fdstore" // Preserve=yes: the store outlives every stop
}

// apply applies a step and returns the units it (re)starts.
func (m *model) apply(s modelStep) []string {
	var started []string
	switch s.kind {
	case stepStart, stepRestart:
		u := m.state[s.unit]
		u.start()
		u.kills = 0
		started = append(started, s.unit)
	case stepStop:
		m.state[s.unit].running = false
	case stepKill:
		u := m.state[s.unit]
		u.start()
		u.kills++
		started = append(started, s.unit)
	case stepReexec, stepSoft:
		m.reexecs++
	case stepSoftRestart:
		m.reexecs++
		for _, mu := range m.units {
			if u := m.state[mu.name]; u.running {
				u.start()
				started = append(started, mu.name)
			}
		}
	case stepStage:
		m.staged = true
	case stepUnstage:
		m.staged = false
	case stepKexec:
		// A new luod starts every unit at boot, stopped ones too, each
		// with what crossed the kexec.
		m.kexecs++
		m.staged = false
		m.reexecs = 0
		for _, mu := range m.units {
			u := m.state[mu.name]
			u.start()
			u.origin, u.liveUpdates, u.kills = "luo", m.kexecs, 0
			started = append(started, mu.name)
		}
	}
	return started
}

// generate returns the sequence of n steps for seed, with kexecs kexec
// live updates spread over it (the last step is never one). Stage 1 boots
// 7.2, and the kexecs alternate 7.3, 7.2, ...
func generate(seed uint64, units []modelUnit, n, kexecs int) []modelStep {
	rng := rand.New(rand.NewPCG(seed, 0x6d6f64656c))
	at := map[int]bool{}
	for i := 1; i <= kexecs; i++ {
		p := i*n/(kexecs+1) - 1 + rng.IntN(5) - 2
		for at[p] || p < 1 || p >= n-1 {
			p = 1 + rng.IntN(n-2)
		}
		at[p] = true
	}
	m := newModel(units)
	type op struct {
		kind    stepKind
		weight  int
		perUnit func(u *unitModel) bool
	}
	ops := []op{
		{stepStart, 6, func(u *unitModel) bool { return !u.running }},
		{stepStop, 3, func(u *unitModel) bool { return u.running }},
		{stepKill, 4, func(u *unitModel) bool { return u.running && u.kills < 3 }},
		{stepRestart, 4, func(*unitModel) bool { return true }},
		{stepReexec, 2, nil},
		{stepSoft, 2, nil},
		{stepSoftRestart, 2, nil},
	}
	if kexecs > 0 {
		// Staging needs a LUO device and a next kernel: VM sequences only.
		ops = append(ops, op{stepStage, 2, nil}, op{stepUnstage, 1, nil})
	}
	var steps []modelStep
	for i := range n {
		var s modelStep
		if at[i] {
			stage := m.kexecs + 2
			s = modelStep{kind: stepKexec, stage: stage, release: [2]string{"7.2", "7.3"}[(stage-1)%2], staged: m.staged}
		} else {
			total := 0
			cands := map[stepKind][]string{}
			usable := func(o op) bool {
				switch o.kind {
				case stepUnstage:
					return m.staged
				case stepStage: // there must be a next kernel
					return m.kexecs < kexecs
				}
				return true
			}
			for _, o := range ops {
				if o.perUnit == nil {
					if usable(o) {
						total += o.weight
					}
					continue
				}
				for _, u := range units {
					if o.perUnit(m.state[u.name]) {
						cands[o.kind] = append(cands[o.kind], u.name)
					}
				}
				if len(cands[o.kind]) > 0 {
					total += o.weight
				}
			}
			k := rng.IntN(total)
			for _, o := range ops {
				if o.perUnit != nil && len(cands[o.kind]) == 0 || !usable(o) {
					continue
				}
				if k -= o.weight; k < 0 {
					s.kind = o.kind
					if o.perUnit != nil {
						s.unit = cands[o.kind][rng.IntN(len(cands[o.kind]))]
					}
					break
				}
			}
		}
		m.apply(s)
		steps = append(steps, s)
	}
	return steps
}

// stages splits a sequence into the steps of each stage: every stage but
// the last ends with its kexec.
func stages(steps []modelStep) [][]modelStep {
	var out [][]modelStep
	begin := 0
	for i, s := range steps {
		if s.kind == stepKexec {
			out = append(out, steps[begin:i+1])
			begin = i + 1
		}
	}
	return append(out, steps[begin:])
}

// modelSeed returns $LUO_SEED (a number, or "random" for one picked now),
// else def.
func modelSeed(t *testing.T, def uint64) uint64 {
	t.Helper()
	switch s := os.Getenv("LUO_SEED"); s {
	case "":
		return def
	case "random":
		return rand.Uint64() % 1_000_000
	default:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("LUO_SEED: %v", err)
		}
		return n
	}
}

// envInt returns $name as a number, else def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}

// counterStatus is the counter's STATUS= line.
type counterStatus struct {
	gen, liveUpdates int
	size             int64
	origin, verified string
	mode             string // the rest of the line after mode=
}

func parseCounterStatus(s string) (counterStatus, error) {
	var st counterStatus
	head, mode, ok := strings.Cut(s, " mode=")
	if !ok {
		return st, fmt.Errorf("no mode= in %q", s)
	}
	st.mode = mode
	for _, f := range strings.Fields(head) {
		k, v, _ := strings.Cut(f, "=")
		var err error
		switch k {
		case "generation":
			st.gen, err = strconv.Atoi(v)
		case "live_updates":
			st.liveUpdates, err = strconv.Atoi(v)
		case "size":
			st.size, err = strconv.ParseInt(v, 10, 64)
		case "origin":
			st.origin = v
		case "verified":
			st.verified = v
		}
		if err != nil {
			return st, fmt.Errorf("%s in %q: %v", k, s, err)
		}
	}
	if st.gen == 0 {
		return st, fmt.Errorf("not a counter status: %q", s)
	}
	return st, nil
}

// observed is what luod says of a unit.
type observed struct {
	unit  control.Unit
	store control.FDStore
}

// checkUnit returns how a unit differs from the model (nil if it does
// not): its state, the counter's status and the fd store.
func checkUnit(mu modelUnit, want *unitModel, got observed) []string {
	var bad []string
	u := got.unit
	if want.running {
		if u.ActiveState != "active" || u.SubState != "running" {
			bad = append(bad, fmt.Sprintf("%s/%s (result %q, %d restarts), want active/running", u.ActiveState, u.SubState, u.Result, u.Restarts))
		}
		st, err := parseCounterStatus(u.Status)
		switch {
		case err != nil:
			bad = append(bad, err.Error())
		default:
			if st.gen != want.gen || st.origin != want.origin || st.verified != want.verified() || st.liveUpdates != want.liveUpdates {
				bad = append(bad, fmt.Sprintf("status %q, want %s", u.Status, want))
			}
			if st.size != modelRegionSize {
				bad = append(bad, fmt.Sprintf("region size %d, want %d", st.size, modelRegionSize))
			}
			if ok, want := mu.modeOK(st.mode); !ok {
				bad = append(bad, fmt.Sprintf("mode %q, want %s", st.mode, want))
			}
		}
	} else if u.ActiveState != "inactive" || u.SubState != "dead-resources-pinned" {
		bad = append(bad, fmt.Sprintf("%s/%s (result %q), want inactive/dead-resources-pinned (stopped, the store kept)", u.ActiveState, u.SubState, u.Result))
	}
	// The store holds what the mode needs, each entry one that survives a
	// kexec, never more than the limit. (After a live update luod shows
	// the memfds it got back as "reg": their path is no longer /memfd:.)
	have := map[string][]control.FDStoreEntry{}
	var all []string
	for _, e := range got.store.Entries {
		have[e.Name] = append(have[e.Name], e)
		if e.Name == "counter" && e.Size != modelRegionSize {
			bad = append(bad, fmt.Sprintf("stored region is %d bytes, want %d", e.Size, modelRegionSize))
		}
		all = append(all, e.Name+":"+e.Type)
	}
	var missing []string
	for name, typ := range mu.needs() {
		if !slices.ContainsFunc(have[name], func(e control.FDStoreEntry) bool {
			return e.Survives == "yes" && (e.Type == typ || typ == "memfd" && e.Type == "reg")
		}) {
			missing = append(missing, name+":"+typ)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		bad = append(bad, fmt.Sprintf("fd store lacks %v that survive a kexec (holds %v, FileDescriptorStoreMax=%d)", missing, all, mu.storeMax()))
	}
	if len(got.store.Entries) > mu.storeMax() || u.FDStoreCount > mu.storeMax() {
		bad = append(bad, fmt.Sprintf("fd store holds %d entries %v, over FileDescriptorStoreMax=%d", u.FDStoreCount, all, mu.storeMax()))
	}
	return bad
}

// droppedMarkers are what luod logs when it closes an fd a unit handed
// over, or drops a stored one, or keeps more than the limit.
var droppedMarkers = []string{"cannot store more fds", "dropping stored fd", "restored store exceeds"}

// droppedLines returns the lines of a luod log that say an fd of one of
// units was dropped (or kept over the limit).
func droppedLines(log string, units []modelUnit) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		for _, mk := range droppedMarkers {
			if !strings.Contains(l, mk) {
				continue
			}
			for _, u := range units {
				if strings.Contains(l, "unit="+u.name) {
					out = append(out, l)
				}
			}
		}
	}
	return out
}

// droppedUnit is the unit a line of droppedLines is about.
func droppedUnit(line string, units []modelUnit) string {
	for _, u := range units {
		if strings.Contains(line, "unit="+u.name) {
			return u.name
		}
	}
	return ""
}

// modelLuod is the luod a runner drives: on the host or in the VM.
type modelLuod interface {
	// call calls a control method.
	call(method string, params, reply any) error
	// luoctl runs luoctl with args and returns its output and exit code.
	luoctl(args ...string) (string, int)
	// newLog returns what luod logged since the last call ("" where its
	// log cannot be read: the VM's console, checked by the host).
	newLog() string
}

// runner executes a sequence on a luod and checks the model after each
// step.
type runner struct {
	t     *testing.T
	seed  uint64
	luod  modelLuod
	m     *model
	pids  map[string]int
	total int // steps in the whole sequence
	// broken are the units that failed a check, with the step it was in:
	// each is stopped, its store cleaned, and left out from then on, so
	// that the sequence goes on for the others.
	broken map[string]string
	// stage stages the update into the next stage (VM only).
	stage   func(i int, s modelStep)
	timeout time.Duration // for a unit to reach its state
	replay  string        // how to rerun the seed
	began   time.Time
}

func newRunner(t *testing.T, seed uint64, luod modelLuod, units []modelUnit, total int, timeout time.Duration, replay string) *runner {
	return &runner{t: t, seed: seed, luod: luod, m: newModel(units), pids: map[string]int{}, total: total,
		broken: map[string]string{}, timeout: timeout, replay: replay, began: time.Now()}
}

// fail reports a broken invariant of unit in step i and takes the unit
// out of the rest of the sequence.
func (r *runner) fail(i int, s string, unit string, problems []string) {
	r.t.Helper()
	r.t.Errorf("MODEL FAILURE seed %d, step %d/%d (%s): %s:\n\t%s\n\trerun: %s", r.seed, i+1, r.total, s, unit,
		strings.Join(problems, "\n\t"), r.replay)
	r.broken[unit] = fmt.Sprintf("step %d", i+1)
	r.t.Logf("model: %s is left out from now on: stopped and its fd store cleaned", unit)
	r.luod.call(control.MethodStopUnit, control.UnitName{Name: unit}, nil)
	r.luod.call(control.MethodCleanUnit, control.CleanParams{Name: unit, What: []string{"fdstore"}}, nil)
}

// fatal reports a failure of luod as a whole.
func (r *runner) fatal(i int, s modelStep, format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("MODEL FAILURE seed %d, step %d/%d (%s): %s\n\trerun: %s", r.seed, i+1, r.total, s, fmt.Sprintf(format, args...), r.replay)
}

// skip replays a step of an earlier stage on the model only.
func (r *runner) skip(s modelStep) { r.m.apply(s) }

// observe reads a unit from luod.
func (r *runner) observe(name string) (observed, error) {
	var o observed
	var ur control.UnitReply
	if err := r.luod.call(control.MethodGetUnit, control.UnitName{Name: name}, &ur); err != nil {
		return o, err
	}
	o.unit = ur.Unit
	if err := r.luod.call(control.MethodDumpFDStore, control.UnitName{Name: name}, &o.store); err != nil {
		return o, err
	}
	return o, nil
}

// settle waits until every unit that is not broken matches the model
// (or the timeout passes) and reports those that do not. restarted are
// the units the step started again: their main pid must be new; every
// other running unit must keep its main process.
func (r *runner) settle(i int, label string, restarted []string) {
	r.t.Helper()
	for _, mu := range r.m.units {
		if _, ok := r.broken[mu.name]; ok {
			continue
		}
		want := r.m.state[mu.name]
		deadline := time.Now().Add(r.timeout)
		var problems []string
		var got observed
		for {
			var err error
			got, err = r.observe(mu.name)
			if err != nil {
				problems = []string{err.Error()}
			} else {
				problems = checkUnit(mu, want, got)
			}
			if want.running && len(problems) == 0 {
				old, had := r.pids[mu.name]
				switch {
				case slices.Contains(restarted, mu.name) && had && got.unit.MainPID == old:
					problems = append(problems, fmt.Sprintf("main pid %d unchanged, want a new process", old))
				case !slices.Contains(restarted, mu.name) && had && old != 0 && got.unit.MainPID != old:
					problems = append(problems, fmt.Sprintf("main pid %d, was %d: restarted by a step that restarts nothing of it", got.unit.MainPID, old))
				}
			}
			if len(problems) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if len(problems) > 0 {
			r.fail(i, label, mu.name, problems)
			continue
		}
		r.pids[mu.name] = 0
		if want.running {
			r.pids[mu.name] = got.unit.MainPID
		}
	}
	if log := r.luod.newLog(); log != "" {
		for _, l := range droppedLines(log, r.m.units) {
			for _, mu := range r.m.units {
				if _, ok := r.broken[mu.name]; !ok && strings.Contains(l, "unit="+mu.name) {
					r.fail(i, label, mu.name, []string{"luod dropped an fd: " + l})
				}
			}
		}
	}
	var m control.Manager
	if err := r.luod.call(control.MethodGetManager, nil, &m); err != nil {
		r.t.Fatalf("seed %d, step %d (%s): GetManager: %v", r.seed, i+1, label, err)
	}
	if m.Reexecs != r.m.reexecs || m.LiveUpdates != r.m.kexecs {
		r.t.Errorf("MODEL FAILURE seed %d, step %d/%d (%s): luod: %d re-execs and %d live updates, want %d and %d\n\trerun: %s",
			r.seed, i+1, r.total, label, m.Reexecs, m.LiveUpdates, r.m.reexecs, r.m.kexecs, r.replay)
	}
}

// elapsed is the time since the runner began, for the step lines.
func (r *runner) elapsed() string {
	return "+" + time.Since(r.began).Round(100*time.Millisecond).String()
}

// logState logs the model's state of every unit on one line.
func (r *runner) logState() {
	r.t.Helper()
	var parts []string
	for _, mu := range r.m.units {
		if why, ok := r.broken[mu.name]; ok {
			parts = append(parts, mu.name+": left out since "+why)
			continue
		}
		parts = append(parts, mu.name+": "+r.m.state[mu.name].String())
	}
	r.t.Logf("model:   state: %s", strings.Join(parts, " | "))
}

// run executes step i (anything but a kexec), applies it to the model and
// checks every unit.
func (r *runner) run(i int, s modelStep) {
	r.t.Helper()
	if _, ok := r.broken[s.unit]; ok && s.unit != "" {
		r.t.Logf("model: step %d/%d: %s: skipped, the unit is left out", i+1, r.total, s)
		r.m.apply(s)
		return
	}
	r.t.Logf("model: step %d/%d [%s]: %s", i+1, r.total, r.elapsed(), s)
	luoctl := func(args ...string) {
		r.t.Helper()
		if out, code := r.luod.luoctl(args...); code != 0 {
			r.fatal(i, s, "luoctl %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
	}
	switch s.kind {
	case stepStart:
		luoctl("start", s.unit)
	case stepStop:
		luoctl("stop", s.unit)
	case stepRestart:
		luoctl("restart", s.unit)
	case stepKill:
		pid := r.pids[s.unit]
		if pid == 0 {
			r.fatal(i, s, "no main pid known")
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			r.fatal(i, s, "kill %d: %v", pid, err)
		}
	case stepReexec:
		luoctl("daemon-reexec")
	case stepSoft:
		luoctl("update", "run", "--no-kexec")
	case stepSoftRestart:
		luoctl("update", "run", "--no-kexec", "--restart-units")
	case stepStage:
		if r.stage == nil {
			r.fatal(i, s, "no way to stage here")
		}
		r.stage(i, s)
	case stepUnstage:
		luoctl("update", "unstage")
	default:
		r.fatal(i, s, "not a step the runner executes")
	}
	restarted := r.m.apply(s)
	r.settle(i, s.String(), restarted)
	r.logState()
}

// TestModelGenerate checks the generator: the same seed gives the same
// sequence, kexecs are where asked and alternate the kernels, every kind
// of step occurs, and no step applies to a unit in the wrong state.
func TestModelGenerate(t *testing.T) {
	a := generate(7, vmModelUnits, 90, 4)
	if b := generate(7, vmModelUnits, 90, 4); !slices.Equal(a, b) {
		t.Fatal("two sequences of one seed differ")
	}
	if c := generate(8, vmModelUnits, 90, 4); slices.Equal(a, c) {
		t.Error("seeds 7 and 8 give the same sequence")
	}
	seen := map[stepKind]int{}
	m := newModel(vmModelUnits)
	for i, s := range a {
		seen[s.kind]++
		if s.kind == stepStage && m.kexecs == 4 {
			t.Errorf("step %d stages after the last kexec", i)
		}
		if u := m.state[s.unit]; u != nil {
			if (s.kind == stepStart && u.running) || (s.kind == stepStop || s.kind == stepKill) && !u.running {
				t.Errorf("step %d (%s) with the unit %s", i, s, u)
			}
		}
		m.apply(s)
	}
	for k := stepStart; k <= stepUnstage; k++ {
		if seen[k] == 0 {
			t.Errorf("no step %v in %d steps", modelStep{kind: k, unit: "u"}, len(a))
		}
	}
	st := stages(a)
	if len(st) != 5 || seen[stepKexec] != 4 || a[len(a)-1].kind == stepKexec {
		t.Fatalf("%d stages, %d kexecs, last step %s", len(st), seen[stepKexec], a[len(a)-1])
	}
	for i, seg := range st[:4] {
		last := seg[len(seg)-1]
		if want := [2]string{"7.2", "7.3"}[(i+1)%2]; last.kind != stepKexec || last.stage != i+2 || last.release != want {
			t.Errorf("stage %d ends with %s, want a kexec into stage %d (%s)", i+1, last, i+2, want)
		}
	}
}

func unitNames(us []modelUnit) string {
	var names []string
	for _, u := range us {
		names = append(names, u.name+" ("+u.mode.String()+")")
	}
	return strings.Join(names, ", ")
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
