//go:build linux

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/liveupdate/luo/internal/fdstore"
	"github.com/liveupdate/luo/internal/kexec"
	"github.com/liveupdate/luo/internal/update"
)

// An update, from request to FINISH:
//
//	old luod  (StageUpdate → update.Stage: plan and load while units run)
//	          RunUpdate → update.Run, with updateHost as its hands in the loop
//	          (the kexec does not return; a soft update re-executes luod)
//	new luod  New → restore: update.Open (manifest, sessions), beside the setup
//	          Run → startAll → startUpdated: per unit, update.Retrieve in its
//	          cgroup, the store rebuilt, the unit started; then a Completion
//	          unitChanged → Completion.Ready/Failed → finish → FINISH

var errUpdateInProgress = errors.New("another update is in progress, or the last one is still being completed")

// errShuttingDown refuses a re-exec or an update once a shutdown began.
var errShuttingDown = errors.New("luod is shutting down: it stops its units and exits")

// PlanUpdate answers what an update would do, changing nothing.
func (m *Manager) PlanUpdate(req update.Request) *update.Plan {
	return m.withGate(update.MakePlan(m.kernel, updateHost{m: m}, req.Kind, req.Target, true), req)
}

// withGate adds the check of req's health gate to p, when it has one.
func (m *Manager) withGate(p *update.Plan, req update.Request) *update.Plan {
	if gerr := m.gate(&req); req.Health != nil || gerr != nil {
		p.Checks = append(p.Checks, gateCheck(req, gerr))
	}
	return p
}

// errNotStaged is returned for a staged run, or an unstaging, with nothing
// staged.
var errNotStaged = errors.New("no update is staged (luoctl update stage)")

// beginUpdate marks an update (or a staging) as running, unless one is, or
// the last one is still being completed; end unmarks it.
func (m *Manager) beginUpdate() (end func(), err error) {
	busy, down := false, false
	m.do(func() {
		if down = m.shuttingDown; down {
			return
		}
		if busy = m.updating || m.completion != nil && m.completion.Session() != nil; !busy {
			m.updating = true
		}
	})
	switch {
	case down:
		return nil, errShuttingDown
	case busy:
		return nil, errUpdateInProgress
	}
	return func() { m.do(func() { m.updating = false }) }, nil
}

// PlanStaged is the plan of the staged update st, as a staged run would
// start from it: decided again with the staging's answers, with its checks.
func (m *Manager) PlanStaged(st *update.Staged) *update.Plan {
	p := st.Decide(m.kernel, updateHost{m: m})
	if st.Plan != nil {
		p.Checks = slices.Clone(st.Checks)
	}
	return p
}

// RunUpdate performs an update (see update.Run); progress gets each step.
// A kexec that succeeds does not return, nor does a soft update that
// re-executes luod; so it always returns an error, an *update.Error when
// the update was aborted. With staged, it runs the staged update; an
// unstaged kexec replaces what was staged.
func (m *Manager) RunUpdate(ctx context.Context, req update.Request, staged bool, progress func(update.Phase, string)) error {
	end, err := m.beginUpdate()
	if err != nil {
		return err
	}
	defer end()
	m.do(func() {
		req.Count, req.Outcomes = m.liveUpdates, slices.Clone(m.outcomes)
		switch {
		case staged:
			req.Staged = m.staged
		case req.Kind == update.Kexec:
			m.staged = nil
		}
	})
	if staged && req.Staged == nil {
		return errNotStaged
	}
	if req.Kind == update.Kexec {
		req.Count++
	}
	if err := m.gate(&req); err != nil {
		err = &update.Error{Phase: update.PhasePlan, Err: err, Restored: true}
		m.countAbort(req.Kind, err.(*update.Error))
		return err
	}
	if m.cfg.Fleet != nil {
		req.Slots = m.cfg.Fleet
	}
	req.From.Release = release()
	req.From.Cmdline, _ = kexec.CurrentCmdline()
	err = update.Run(ctx, m.kernel, updateHost{m: m, progress: progress}, req)
	m.log.Error("update did not complete", "err", err)
	var uerr *update.Error
	if errors.As(err, &uerr) {
		m.countAbort(req.Kind, uerr)
	}
	return err
}

// countAbort counts an update that ended before the point of no return.
func (m *Manager) countAbort(kind update.Kind, uerr *update.Error) {
	result := update.ResultAborted
	if uerr.Phase == update.PhasePlan || uerr.Phase == update.PhaseSlot {
		result = update.ResultRefused
	}
	m.do(func() {
		m.outcomes = update.CountOutcome(m.outcomes, kind, result)
		m.lastAbort = &update.Abort{Kind: kind, Phase: uerr.Phase, Result: result, Time: time.Now()}
	})
}

// StageUpdate stages a kexec update into req.Target (see update.Stage),
// replacing what was staged. It returns the plan, refused or staged.
func (m *Manager) StageUpdate(req update.Request) (*update.Staged, *update.Plan, error) {
	end, err := m.beginUpdate()
	if err != nil {
		return nil, nil, err
	}
	defer end()
	m.do(func() { m.staged = nil })
	st, plan, err := update.Stage(m.kernel, updateHost{m: m}, req.Target, req.AllowLoss)
	if err != nil {
		m.log.Warn("update not staged", "kernel", req.Target.Kernel, "err", err)
		return nil, plan, err
	}
	m.do(func() { m.staged = st })
	m.log.Info("update staged", "kernel", req.Target.Kernel, "plan", plan.Summary())
	return st, plan, nil
}

// stagedUpdate is the staged update, nil when none.
func (m *Manager) stagedUpdate() (st *update.Staged) {
	m.do(func() { st = m.staged })
	return st
}

// Staged is the staged update, nil when none, with what changed in the
// stores since (see update.Staged.Changes) and whether its kernel is still
// loaded.
func (m *Manager) Staged() (st *update.Staged, changes []string, loaded bool) {
	m.do(func() {
		if st = m.staged; st != nil {
			changes = st.Changes(m.snapshot(true), m.cfg.LiveUpdate.PreserveMax)
		}
	})
	if st != nil {
		loaded, _ = m.kernel.Loaded()
	}
	return st, changes, loaded
}

// Unstage drops the staged update and unloads its kernel.
func (m *Manager) Unstage() error {
	end, err := m.beginUpdate()
	if err != nil {
		return err
	}
	defer end()
	var st *update.Staged
	m.do(func() { st, m.staged = m.staged, nil })
	if st == nil {
		return errNotStaged
	}
	if err := update.Unstage(m.kernel); err != nil {
		return fmt.Errorf("unload the staged kernel: %w", err)
	}
	m.log.Info("update unstaged", "kernel", st.Target.Kernel)
	return nil
}

// updateHost is the supervisor's side of an update: each method is one
// step in the loop.
type updateHost struct {
	m        *Manager
	progress func(update.Phase, string)
}

func (h updateHost) HostQuota() update.Quota { return h.m.cfg.LiveUpdate.PreserveMax }

func (h updateHost) Locked(fn func([]update.Unit)) {
	h.m.do(func() { fn(h.m.snapshot(true)) })
}

func (h updateHost) Stop(ctx context.Context, names []string) (map[string]time.Time, error) {
	m := h.m
	m.do(func() {
		for _, n := range names {
			if u := m.units[n]; u != nil {
				u.holdStore = true
				u.stop("live update")
			}
		}
	})
	stopped := map[string]time.Time{}
	err := m.waitFor(ctx, func() bool {
		done := true
		for _, n := range names {
			switch u := m.units[n]; {
			case u != nil && u.running():
				done = false
			case stopped[n].IsZero():
				stopped[n] = time.Now()
			}
		}
		return done
	})
	if err == nil {
		return stopped, nil
	}
	var still []string
	m.do(func() {
		for _, n := range names {
			if u := m.units[n]; u != nil && u.running() {
				still = append(still, n)
			}
		}
	})
	return stopped, fmt.Errorf("units did not stop in time: %s", strings.Join(still, ", "))
}

func (h updateHost) Resume(names []string) {
	m := h.m
	m.do(func() {
		for _, u := range m.units {
			u.holdStore = false
		}
		for _, n := range names {
			if u := m.units[n]; u != nil {
				u.start("update aborted")
			}
		}
	})
}

func (h updateHost) Reexec(mf *update.Manifest) error {
	done := make(chan error, 1)
	h.m.do(func() { h.m.reexecReq = &reexecRequest{soft: mf, done: done} })
	return <-done
}

func (h updateHost) Progress(p update.Phase, msg string) {
	h.m.log.Info("update: "+msg, "phase", string(p))
	h.m.up.status("live update: " + msg)
	if h.progress != nil {
		h.progress(p, msg)
	}
}

// heldSession is luod's incoming session kept unfinished for good: the
// manifest in it could not be used, so nothing more is discarded.
type heldSession struct {
	session update.Session
	why     string
}

// restore runs at a normal start: if the previous kernel left luod's
// session, it reads the manifest and retrieves the LUO sessions listed;
// startUpdated then gets each unit's memfds back and starts it. New runs it
// while it sets up the rest, before the loop runs: it only sets
// m.incoming, m.liveUpdates, m.held and the report.
func (m *Manager) restore() {
	r, err := update.Open(m.kernel)
	switch {
	case errors.Is(err, update.ErrNoUpdate):
		m.log.Info("no live update to restore", "why", err.Error())
		return
	case err != nil:
		m.log.Error("cannot restore the live update", "err", err)
		return
	case r.Manifest == nil:
		m.held = &heldSession{session: r.Session, why: r.Err.Error()}
		m.log.Error("live update manifest unusable; keeping luod's LUO session open and unfinished so that nothing more is lost", "err", r.Err)
		m.setReport(&update.Report{Kind: update.Kexec, To: release(), Problems: []string{"manifest unusable: " + r.Err.Error() +
			"; luod's LUO session is kept unfinished, so nothing more of it is discarded"}})
		return
	}
	m.liveUpdates, m.outcomes = r.Manifest.Count, r.Manifest.Outcomes
	m.incoming = r
}

// startUpdated rebuilds the stores from the live update restore read and
// starts their units, one unit at a time: each starts as soon as its own
// memfds are back, while luod retrieves the next unit's. A Completion then
// waits for them to be up. It returns the units it started. Called by
// startAll, before the loop runs.
func (m *Manager) startUpdated() map[string]bool {
	r := m.incoming
	m.incoming = nil
	started := map[string]bool{}
	if r == nil {
		return started
	}
	rep := update.NewReport(r.Manifest, release(), bootTime())
	rep.Add("luod-up", "", m.started)
	var pending []string
	var next *Unit
	c := m.charger()
	for i, mu := range r.Units {
		// Only memfds have pages to charge; luod must leave the previous
		// unit's group before that unit starts, either way.
		if slices.ContainsFunc(mu.Entries, func(e update.Entry) bool { return e.Fate == update.FatePreserve }) {
			c.to(mu.Name)
		} else {
			c.done()
		}
		r.Retrieve(i)
		u := m.restoreUnit(r.Units[i], rep)
		// The previous unit starts once luod left its cgroup.
		if next != nil {
			next.start("live update")
		}
		next = nil
		if u == nil || u.def == nil {
			continue
		}
		if mu.Active || u.store.Len() > 0 {
			pending = append(pending, u.name)
		}
		next, started[u.name] = u, true
	}
	c.done()
	restoredAt := time.Now()
	if next != nil {
		next.start("live update")
	}
	rep.Problems = append(rep.Problems, r.Problems...)
	rep.Add("restored", "", restoredAt)
	m.setReport(rep)
	m.completion = update.NewCompletion(r.Session, r.Manifest, rep, pending, restoredAt, m.cfg.LiveUpdate.FinishTimeout)
	m.log.Info("live update restored", "count", r.Manifest.Count, "from", r.Manifest.From.Release, "units", len(r.Units), "problems", len(r.Problems))
	return started
}

// charger moves luod from one unit's cgroup to the next while their memfds
// are retrieved, so that their pages are charged to the unit, not to luod
// (see update.Restore): one move per unit, and one back at the end. No
// unit runs in a group luod is in: each starts once luod left its group.
type charger struct {
	m     *Manager
	leave func() error
	in    string
}

func (m *Manager) charger() *charger { return &charger{m: m} }

// to moves luod into unit's cgroup; without a memory controller, or when
// that fails, luod stays where it is and the pages are charged to it.
func (c *charger) to(unit string) {
	t := c.m.cgroups
	if t == nil || !t.Memory() {
		return
	}
	g, err := t.Group(unit)
	if err == nil {
		var leave func() error
		if leave, err = t.Enter(g); err == nil {
			if c.leave == nil {
				c.leave = leave
			}
			c.in = unit
			return
		}
	}
	c.m.log.Warn("cannot charge the unit's memory to it", "unit", unit, "err", err)
	c.done()
}

// done moves luod back into its own cgroup.
func (c *charger) done() {
	if c.leave == nil {
		return
	}
	if err := c.leave(); err != nil {
		c.m.log.Error("cannot leave the unit's cgroup", "unit", c.in, "err", err)
		return
	}
	c.leave, c.in = nil, ""
}

// restoreUnit puts the entries that came back for one unit into its store;
// a unit whose file is gone keeps them pinned until it appears.
func (m *Manager) restoreUnit(mu update.Unit, rep *update.Report) *Unit {
	var back []update.Entry
	for _, e := range mu.Entries {
		if e.File != nil {
			back = append(back, e)
		}
	}
	u := m.units[mu.Name]
	if u == nil {
		if len(back) == 0 {
			return nil
		}
		u = newUnit(m, mu.Name)
		u.loadErr = "unit file not found"
		u.store = fdstore.New(len(back))
		m.units[mu.Name] = u
		m.log.Warn("unit file of a restored store is missing; keeping its entries pinned until it appears", "unit", mu.Name, "fds", len(back))
		rep.Problems = append(rep.Problems, fmt.Sprintf("%s: unit file missing, %d entries kept pinned", mu.Name, len(back)))
	}
	ru := rep.Unit(mu.Name)
	for _, e := range back {
		se := m.adopt(u, e.Name, e.File, e.Poll, fdstore.OriginLUO)
		if !e.Added.IsZero() {
			se.Added = e.Added
		}
		// The session luod handed out before the kexec keeps sharing its
		// LUOSession= name's slot with the one handed out now (a manifest
		// of an older luod only has the origin).
		se.LUOSession = e.LUOSession || e.Origin == fdstore.OriginHandedOut
		se.MemfdPath = e.Path
		m.up.add(se)
		ru.Delivered = append(ru.Delivered, e.Name)
	}
	if u.store.Max() < u.store.Used() {
		m.log.Warn("restored store exceeds FileDescriptorStoreMax=; keeping every entry", "unit", mu.Name, "fds", u.store.Len())
	}
	if (u.def == nil || !mu.Active) && u.store.Len() > 0 {
		u.setState(StatePinned)
	}
	return u
}

// completeSoft runs after luod re-executed for a soft update: the units
// that were active and are not running are started again.
func (m *Manager) completeSoft(mf *update.Manifest) {
	rep := update.NewReport(mf, release(), time.Time{})
	rep.Count = m.softUpdates
	rep.Add("luod-up", "", time.Now())
	var pending []string
	for _, mu := range mf.Units {
		u := m.units[mu.Name]
		if u == nil {
			continue
		}
		u.holdStore = false
		ru := rep.Unit(mu.Name)
		for _, e := range u.store.Entries() {
			ru.Delivered = append(ru.Delivered, e.Name)
		}
		if mu.Active && u.mainPID == 0 {
			pending = append(pending, mu.Name)
		}
	}
	m.setReport(rep)
	m.completion = update.NewCompletion(nil, mf, rep, pending, time.Now(), m.cfg.LiveUpdate.FinishTimeout)
	for _, n := range pending {
		m.units[n].start("soft update")
	}
}

// setReport makes r the report of the last update. A soft update's does
// not replace the last kexec's: that one is kept as kexecReport.
func (m *Manager) setReport(r *update.Report) {
	m.outcomes = update.CountOutcome(m.outcomes, r.Kind, r.Result())
	switch {
	case r.Kind == update.Kexec:
		m.kexecReport = nil
	case m.report != nil && m.report.Kind == update.Kexec:
		m.kexecReport = m.report
	}
	m.report = r
}

// armFinish starts the timer that finishes the completion at its
// deadline, and finishes at once if nothing is pending.
func (m *Manager) armFinish() {
	c := m.completion
	if c == nil {
		return
	}
	for _, n := range c.Pending() {
		if u := m.units[n]; u != nil {
			m.unitChanged(u)
		}
	}
	if m.completion == nil {
		return
	}
	m.finishTimer = time.AfterFunc(time.Until(c.Deadline), func() {
		m.events <- funcEvent{fn: func() { m.finish(c) }, done: make(chan struct{})}
	})
	m.maybeFinish()
}

// unitChanged is called on every state change: the completion of an
// update waits for its units to be up.
func (m *Manager) unitChanged(u *Unit) {
	c := m.completion
	if c == nil || !c.Waiting(u.name) {
		return
	}
	switch u.state.Active() {
	case Active:
		at := u.readyAt
		if at.IsZero() {
			at = time.Now()
		}
		c.Ready(u.name, at)
	case Failed:
		c.Failed(u.name, u.result)
	default:
		return
	}
	m.maybeFinish()
}

// maybeFinish finishes the completion once every unit it waits for is up.
func (m *Manager) maybeFinish() {
	if c := m.completion; c != nil && c.Done() && !m.updating {
		m.finish(c)
	}
}

// finish finishes c (luod's incoming session), at its deadline or when
// every unit is up.
func (m *Manager) finish(c *update.Completion) {
	if m.completion != c {
		return
	}
	if m.finishTimer != nil {
		m.finishTimer.Stop()
	}
	if p := c.Pending(); len(p) > 0 {
		m.log.Warn("finishing the live update although units are not up yet", "units", strings.Join(p, ", "))
	}
	if err := c.Finish(time.Now()); err != nil {
		m.log.Error("finish the update", "err", err)
	}
	m.completion = nil
	m.log.Info("update finished", "count", m.liveUpdates)
	m.up.status(fmt.Sprintf("live update %d finished; %s", m.liveUpdates, m.statusLine()))
	m.settle(c)
}

func release() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

// bootTime is when this kernel started, in wall-clock time (zero when
// unknown).
func bootTime() time.Time {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return time.Time{}
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return time.Time{}
	}
	up, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return time.Time{}
	}
	return time.Now().Add(-time.Duration(up * float64(time.Second)))
}
