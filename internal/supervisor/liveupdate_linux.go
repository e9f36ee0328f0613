//go:build linux

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/fdstore"
	"github.com/liveupdate/luo/internal/kexec"
	"github.com/liveupdate/luo/internal/manifest"
	"github.com/liveupdate/luo/internal/unit"
	"github.com/liveupdate/luo/internal/update"
)

// updateState is an update in progress (old side) or being completed (new
// side, until luod's incoming session is finished).
type updateState struct {
	running bool

	// New side.
	session  *luo.Session // luod's incoming session, unfinished
	held     string       // why the session is kept unfinished for good
	pending  map[string]bool
	deadline time.Time
	timer    *time.Timer
	soft     *manifest.Manifest // a soft update to complete after re-exec
}

// UpdateError is a failed update: the phase it failed in and whether every
// unit was brought back.
type UpdateError struct {
	Phase    string
	Err      error
	Restored bool
}

func (e *UpdateError) Error() string {
	s := fmt.Sprintf("update failed during %s: %v", e.Phase, e.Err)
	if e.Phase == "plan" {
		return s + "; nothing was changed"
	}
	if e.Restored {
		s += "; every unit was started again with its fd store intact"
	}
	return s
}

func (e *UpdateError) Unwrap() error { return e.Err }

// planItems snapshots the store entries of every unit as update items,
// each with its fate. Called in the loop.
func (m *Manager) planItems(soft bool) []update.Item {
	var items []update.Item
	for _, u := range m.sortedUnits() {
		carried := u.preserve() == unit.PreserveYes || u.preserve() == unit.PreserveOnSuccess
		var unitItems []update.Item
		for _, e := range u.store.Entries() {
			info, err := fdstore.Describe(e.File)
			it := update.Item{Unit: u.name, Name: e.Name, File: e.File, Poll: e.Poll, Size: info.Size, Type: info.Type}
			if info.Type == "luo-session" {
				it.Session, it.Incoming, it.LUOSession = info.Session, info.Incoming, e.Origin == "luo-session"
			}
			switch {
			case err != nil:
				it.Fate, it.Reason = control.FateLost, err.Error()
			case soft:
				it.Fate, it.Reason = control.FateInherit, "inherited by the re-executed luod"
			case !carried:
				it.Fate, it.Reason = control.FateLost, fmt.Sprintf("FileDescriptorStorePreserve=%s: only yes and on-success stores are carried across a kexec", u.preserve())
			case it.Session != "":
				it.Fate, it.Reason = control.FateSession, "LUO session "+strconv.Quote(it.Session)+", kept open and handed back"
				if p := update.SessionProblem(it); p != "" {
					it.Fate, it.Reason = control.FateLost, p
				}
			case info.Survives:
				it.Fate, it.Reason = control.FatePreserve, info.Why
			default:
				it.Fate, it.Reason = control.FateLost, info.Why
			}
			unitItems = append(unitItems, it)
		}
		for i, it := range unitItems {
			if update.Superseded(unitItems, it) {
				unitItems[i].Fate = control.FateDrop
				unitItems[i].Reason = "incoming LUO session, superseded by the outgoing session of the same name"
			}
		}
		if len(unitItems) == 0 {
			// Keep the unit in the plan.
			items = append(items, update.Item{Unit: u.name})
		}
		items = append(items, unitItems...)
	}
	return items
}

// planUnits turns items into the plan's per-unit view.
func (m *Manager) planUnits(items []update.Item) []control.PlanUnit {
	var units []control.PlanUnit
	for _, it := range items {
		if len(units) == 0 || units[len(units)-1].Name != it.Unit {
			pu := control.PlanUnit{Name: it.Unit, Entries: []control.PlanEntry{}}
			if u := m.units[it.Unit]; u != nil {
				pu.Active = u.mainPID != 0 || u.active == stateActive
				pu.Preserve = u.preserve().String()
			}
			units = append(units, pu)
		}
		if it.Fate == "" {
			continue // a unit without entries
		}
		pe := control.PlanEntry{Name: it.Name, Type: it.Type, Fate: it.Fate, Reason: it.Reason}
		if it.Fate == control.FatePreserve {
			pe.Bytes = it.Size
		}
		units[len(units)-1].Entries = append(units[len(units)-1].Entries, pe)
	}
	return units
}

// target resolves the kernel command line of an update.
func target(p control.UpdateParams) (update.Target, error) {
	t := update.Target{Kernel: p.Kernel, Initrd: p.Initrd, Cmdline: p.Cmdline}
	if p.ReuseCmdline || p.Cmdline == "" {
		cur, err := kexec.CurrentCmdline()
		if err != nil {
			return t, err
		}
		t.Cmdline = strings.TrimSpace(cur + " " + p.Cmdline)
	}
	return t, nil
}

// Plan answers PlanUpdate: the fate of every fd and the kernel checks,
// changing nothing.
func (m *Manager) Plan(p control.UpdateParams) (*control.Plan, error) {
	return m.plan(p, true)
}

// plan computes a plan; trialLoad adds a trial kexec_file_load to the
// checks (RunUpdate skips it: it loads the kernel for real next, before
// anything is stopped, so a failure there changes nothing either).
func (m *Manager) plan(p control.UpdateParams, trialLoad bool) (*control.Plan, error) {
	plan := &control.Plan{Kind: "kexec"}
	if p.NoKexec {
		plan.Kind = "soft"
	}
	var items []update.Item
	m.do(func() { items = m.planItems(p.NoKexec) })
	if !p.NoKexec {
		t, err := target(p)
		if err != nil {
			return nil, err
		}
		plan.Kernel, plan.Initrd, plan.Cmdline = t.Kernel, t.Initrd, t.Cmdline
		// Ask the kernel which memfds it would take: a trial session that is
		// closed again, so nothing changes.
		m.do(func() {
			fails, err := update.TrialPreserve(m.cfg.LiveUpdate.Device, items)
			if err != nil {
				return // the device check below says why
			}
			for i, err := range fails {
				if update.InOwnSession(items, items[i], err) {
					items[i].Fate, items[i].Reason = control.FateSession, "already preserved (EBUSY): carried by the unit's own LUO session"
				} else {
					items[i].Fate, items[i].Reason = control.FateLost, "the kernel refused it: "+err.Error()
				}
			}
		})
		plan.Checks = update.Checks(m.cfg.LiveUpdate.Device, t, trialLoad)
	}
	m.do(func() { plan.Units = m.planUnits(items) })
	for _, it := range items {
		switch it.Fate {
		case control.FatePreserve:
			plan.Preserved++
			plan.TotalBytes += it.Size
		case control.FateSession:
			if it.Session != "" {
				plan.Sessions++
			}
		case control.FateLost:
			plan.Lost++
		case control.FateInherit:
			plan.Preserved++
		}
	}
	plan.OK = plan.Lost == 0 || p.AllowLoss
	for _, c := range plan.Checks {
		plan.OK = plan.OK && c.OK
	}
	return plan, nil
}

// RunUpdate performs a live update: load the next kernel, stop the units,
// preserve, write the manifest, reboot. Any failure before the reboot
// aborts: luod's session is closed (unpreserving everything), the kernel
// unloaded, every unit started again with its store. progress gets each
// phase as it happens. On success it does not return (the machine
// kexecs); a soft update (NoKexec) re-executes luod.
func (m *Manager) RunUpdate(ctx context.Context, p control.UpdateParams, progress func(phase, msg string)) error {
	busy := false
	m.do(func() {
		if m.update != nil && (m.update.running || m.update.session != nil && m.update.held == "") {
			busy = true
			return
		}
		m.update = &updateState{running: true}
	})
	if busy {
		return errUpdateInProgress
	}
	err := m.runUpdate(ctx, p, progress)
	m.do(func() { m.update = nil })
	return err
}

var errUpdateInProgress = errors.New("another update is in progress, or the last one is still being completed")

func (m *Manager) runUpdate(ctx context.Context, p control.UpdateParams, progress func(phase, msg string)) error {
	m.testFault = ""
	path := filepath.Join(m.cfg.RuntimeDir, "test-fault")
	if b, err := os.ReadFile(path); err == nil {
		os.Remove(path)
		m.testFault = strings.TrimSpace(string(b))
		m.log.Warn("fault injection for this update", "fault", m.testFault)
	}
	mf := &manifest.Manifest{Version: manifest.Version, Kind: "kexec", Units: map[string]*manifest.Unit{}}
	mf.Timeline.Requested = time.Now()
	mf.From.Release, _ = release()
	mf.From.Cmdline, _ = kexec.CurrentCmdline()
	if p.NoKexec {
		mf.Kind = "soft"
	}
	plan, err := m.plan(p, false)
	if err != nil {
		return &UpdateError{Phase: "plan", Err: err, Restored: true}
	}
	if !plan.OK {
		return &UpdateError{Phase: "plan", Err: planProblem(plan), Restored: true}
	}
	progress("plan", fmt.Sprintf("%d memfds (%s), %d sessions to carry, %d lost", plan.Preserved, update.HumanSize(plan.TotalBytes), plan.Sessions, plan.Lost))

	t := update.Target{}
	if !p.NoKexec {
		t, _ = target(p)
		mf.To = manifest.Kernel{Image: t.Kernel, Initrd: t.Initrd, Cmdline: t.Cmdline}
		if err := kexec.Load(kexec.Image{Kernel: t.Kernel, Initrd: t.Initrd, Cmdline: t.Cmdline}); err != nil {
			return &UpdateError{Phase: "load", Err: err, Restored: true}
		}
		mf.Timeline.Loaded = time.Now()
		progress("load", "loaded "+t.Kernel)
	}
	abort := func(phase string, err error) error {
		progress("abort", fmt.Sprintf("%s failed: %v; restoring", phase, err))
		if !p.NoKexec {
			if uerr := kexec.Unload(); uerr != nil {
				m.log.Warn("unload kexec image", "err", uerr)
			}
		}
		m.do(func() {
			for _, u := range m.sortedUnits() {
				u.holdStore = false
				if mu := mf.Units[u.name]; mu != nil && mu.Active {
					u.start("update aborted")
				}
			}
		})
		m.log.Error("live update aborted", "phase", phase, "err", err)
		return &UpdateError{Phase: phase, Err: err, Restored: true}
	}

	// Stop.
	stopUnits := !p.NoKexec || p.RestartUnits
	mf.Timeline.StopBegin = time.Now()
	m.do(func() {
		for _, u := range m.sortedUnits() {
			active := u.mainPID != 0 || u.active == stateActive || u.active == stateActivating
			mf.Units[u.name] = &manifest.Unit{Active: active, Entries: []manifest.Entry{}}
			if stopUnits && active {
				u.holdStore = true
				u.stop("live update")
			}
		}
	})
	if stopUnits {
		progress("stop", "stopping units")
		sctx, cancel := ctx, context.CancelFunc(func() {})
		if d, err := time.ParseDuration(p.StopTimeout); err == nil && d > 0 {
			sctx, cancel = context.WithTimeout(ctx, d)
		}
		err := m.waitFor(sctx, func() bool {
			for _, u := range m.units {
				if mu := mf.Units[u.name]; mu != nil && mu.Active && mu.Stopped.IsZero() && u.mainPID == 0 && u.active != stateDeactivating {
					mu.Stopped = time.Now()
				}
				if u.mainPID != 0 || u.active == stateDeactivating {
					return false
				}
			}
			return true
		})
		cancel()
		if err != nil {
			var still []string
			m.do(func() {
				for _, u := range m.sortedUnits() {
					if u.mainPID != 0 || u.active == stateDeactivating {
						still = append(still, u.name)
					}
				}
			})
			return abort("stop", fmt.Errorf("units did not stop in time: %s", strings.Join(still, ", ")))
		}
		mf.Timeline.LastStopped = time.Now()
		progress("stop", "all units stopped")
	}

	if p.NoKexec {
		return m.softUpdate(mf, progress, abort)
	}

	// Preserve.
	var prepared *update.Prepared
	m.do(func() {
		items := m.planItems(false)
		mf.Count = m.liveUpdates + 1
		prepared, err = update.Preserve(m.cfg.LiveUpdate.Device, mf, items, m.fault("preserve"))
	})
	if err != nil {
		return abort("preserve", err)
	}
	mf.Timeline.Preserved = time.Now()
	var n int
	for _, u := range mf.Units {
		n += len(u.Entries)
	}
	progress("preserve", fmt.Sprintf("%d entries carried in LUO session %q, manifest at token 0", n, update.SessionName))
	if m.faultSpec() == "hang=preserved" {
		m.log.Warn("fault injection: hanging after preserve")
		select {}
	}

	// Reboot.
	progress("reboot", "rebooting into "+t.Kernel)
	if err := prepared.Finalize(time.Now()); err != nil {
		prepared.Abort()
		return abort("manifest", err)
	}
	if ferr := m.fault("reboot"); ferr != nil {
		err = &kexec.Error{Op: "exec", Err: ferr}
	} else {
		err = kexec.Exec()
	}
	// Still here: the reboot failed. Sessions are still preserved; close
	// ours to unpreserve and bring everything back.
	prepared.Abort()
	return abort("reboot", err)
}

func planProblem(plan *control.Plan) error {
	var probs []string
	for _, c := range plan.Checks {
		if !c.OK {
			probs = append(probs, c.Name+": "+c.Detail)
		}
	}
	if plan.Lost > 0 {
		var lost []string
		for _, u := range plan.Units {
			for _, e := range u.Entries {
				if e.Fate == control.FateLost {
					lost = append(lost, fmt.Sprintf("%s %q (%s)", u.Name, e.Name, e.Reason))
				}
			}
		}
		probs = append(probs, fmt.Sprintf("%d fds would be lost (use --allow-loss to proceed): %s", plan.Lost, strings.Join(lost, "; ")))
	}
	return errors.New(strings.Join(probs, "; "))
}

// softUpdate finishes a --no-kexec update: re-exec luod with the manifest.
func (m *Manager) softUpdate(mf *manifest.Manifest, progress func(phase, msg string), abort func(string, error) error) error {
	mf.Count = 0
	mf.Timeline.Preserved = time.Now()
	progress("exec", "re-executing luod")
	errc := make(chan error, 1)
	m.do(func() {
		m.update.soft = mf
		m.update.running = false
		mf.Timeline.Reboot = time.Now()
		m.reexecReq = func(err error) { errc <- err }
	})
	err := <-errc
	m.do(func() { m.update.soft = nil; m.update.running = true })
	return abort("exec", err)
}

// restoreLiveUpdate runs at start: if the previous kernel left luod's
// session, rebuild the stores from it.
func (m *Manager) restoreLiveUpdate() {
	r, err := update.Restore(m.cfg.LiveUpdate.Device)
	if errors.Is(err, update.ErrNoUpdate) {
		m.log.Info("no live update to restore", "why", err.Error())
		return
	}
	if err != nil {
		m.log.Error("cannot restore the live update", "err", err)
		return
	}
	restoredAt := time.Now()
	st := &updateState{session: r.Session, pending: map[string]bool{}}
	m.update = st
	if r.Manifest == nil {
		// Keep the session unfinished: nothing more is discarded, and a
		// luod that understands the manifest can take over (daemon-reexec).
		st.held = r.Err.Error()
		m.log.Error("live update manifest unusable; keeping luod's LUO session open and unfinished so that nothing more is lost",
			"err", r.Err, "hint", "upgrade luod and run luoctl daemon-reexec")
		m.report = &control.Report{Kind: "kexec", To: releaseOr(), Problems: []string{"manifest unusable: " + r.Err.Error() +
			"; luod's session is kept unfinished (upgrade luod and run luoctl daemon-reexec)"}}
		return
	}
	mf := r.Manifest
	m.liveUpdates = mf.Count
	rep := newReport(mf)
	rep.Problems = append(rep.Problems, r.Problems...)
	for name, mu := range mf.Units {
		u := m.units[name]
		entries := r.Units[name]
		if u == nil {
			if len(entries) == 0 {
				continue
			}
			u = newUnit(m, name)
			u.loadErr = "unit file not found"
			u.store = fdstore.New(len(entries))
			m.units[name] = u
			m.log.Warn("unit file of a restored store is missing; keeping its entries pinned until it appears", "unit", name, "fds", len(entries))
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: unit file missing, %d entries kept pinned", name, len(entries)))
		}
		for _, e := range entries {
			ent := u.store.Adopt(e.Name, e.File, e.Poll, "luo")
			if e.Poll {
				m.poller.Watch(ent)
			}
		}
		if u.store.Max() < u.store.Len() {
			m.log.Warn("restored store exceeds FileDescriptorStoreMax=; keeping every entry", "unit", name, "fds", u.store.Len())
		}
		ru := findReportUnit(rep, name)
		for _, e := range entries {
			ru.Delivered = append(ru.Delivered, e.Name)
		}
		for _, l := range mu.Lost {
			ru.Lost = append(ru.Lost, control.PlanEntry{Name: l.Name, Fate: control.FateLost, Reason: l.Reason})
		}
		if u.def != nil && (mu.Active || len(entries) > 0) {
			st.pending[name] = true
		}
		if u.def == nil || !mu.Active {
			if u.store.Len() > 0 {
				u.setState(stateInactive, subPinned)
			}
		}
	}
	rep.Timeline = append(rep.Timeline, control.Event{Name: "luod-up", Time: m.started}, control.Event{Name: "restored", Time: restoredAt})
	m.report = rep
	m.log.Info("live update restored", "count", mf.Count, "from", mf.From.Release, "units", len(r.Units), "problems", len(r.Problems))
}

// afterStart arms the finish of a restored update, or completes a soft one.
func (m *Manager) afterStart() {
	st := m.update
	if st == nil {
		return
	}
	if st.soft != nil {
		mf := st.soft
		st.soft = nil
		rep := newReport(mf)
		rep.Timeline = append(rep.Timeline, control.Event{Name: "luod-up", Time: time.Now()})
		st.pending = map[string]bool{}
		for name, mu := range mf.Units {
			u := m.units[name]
			if u == nil {
				continue
			}
			u.holdStore = false
			ru := findReportUnit(rep, name)
			for _, e := range u.store.Entries() {
				ru.Delivered = append(ru.Delivered, e.Name)
			}
			if mu.Active && u.mainPID == 0 {
				st.pending[name] = true
				u.start("soft update")
			}
		}
		m.report = rep
		m.maybeFinish()
		return
	}
	if st.session == nil || st.held != "" {
		return
	}
	if st.deadline.IsZero() {
		st.deadline = time.Now().Add(m.cfg.LiveUpdate.FinishTimeout)
	}
	st.timer = time.AfterFunc(time.Until(st.deadline), func() {
		m.events <- funcEvent{fn: func() { m.finish(true) }, done: make(chan struct{})}
	})
	for name := range st.pending {
		if u := m.units[name]; u != nil {
			st.unitChanged(m, u)
		}
	}
	m.maybeFinish()
}

// unitChanged records READY and delivery of restored units.
func (st *updateState) unitChanged(m *Manager, u *Unit) {
	if st.pending == nil || !st.pending[u.name] {
		return
	}
	switch {
	case u.active == stateActive:
		if m.report != nil {
			ru := findReportUnit(m.report, u.name)
			if ru.Ready.IsZero() {
				ru.Ready = u.readyAt
				if ru.Ready.IsZero() {
					ru.Ready = time.Now()
				}
				if !ru.Stopped.IsZero() {
					ru.Blackout = ru.Ready.Sub(ru.Stopped)
				}
				m.report.Timeline = append(m.report.Timeline, control.Event{Name: "ready", Unit: u.name, Time: ru.Ready})
			}
		}
		delete(st.pending, u.name)
	case u.active == stateFailed:
		if m.report != nil {
			m.report.Problems = append(m.report.Problems, u.name+" failed after the update: "+u.result)
		}
		delete(st.pending, u.name)
	default:
		return
	}
	m.maybeFinish()
}

// maybeFinish finishes luod's incoming session once every restored unit
// got its fds and is up (or failed).
func (m *Manager) maybeFinish() {
	if st := m.update; st != nil && len(st.pending) == 0 && !st.running {
		m.finish(false)
	}
}

func (m *Manager) finish(timeout bool) {
	st := m.update
	if st == nil || st.running {
		return
	}
	if st.timer != nil {
		st.timer.Stop()
	}
	if st.session != nil && st.held == "" {
		if timeout {
			var names []string
			for n := range st.pending {
				names = append(names, n)
			}
			slices.Sort(names)
			m.log.Warn("finishing the live update although units are not up yet", "units", strings.Join(names, ", "))
			if m.report != nil {
				m.report.Problems = append(m.report.Problems, "finished after the timeout; not up: "+strings.Join(names, ", "))
			}
		}
		if err := st.session.Finish(); err != nil {
			m.log.Error("finish luod's LUO session", "err", err)
		}
		st.session.Close()
		m.log.Info("live update finished", "count", m.liveUpdates)
	}
	if m.report != nil {
		m.report.Timeline = append(m.report.Timeline, control.Event{Name: "finished", Time: time.Now()})
	}
	if st.held == "" {
		m.update = nil
	}
}

// save serializes the update across a re-exec.
func (st *updateState) save(fdOf func(*os.File) int) *savedUpdate {
	su := &savedUpdate{Soft: st.soft, Held: st.held, Deadline: st.deadline}
	if st.session != nil {
		su.SessionFD = fdOf(st.session.File())
	}
	for n := range st.pending {
		su.Pending = append(su.Pending, n)
	}
	return su
}

func resumeUpdate(m *Manager, su *savedUpdate, adopt func(int, string) *os.File) *updateState {
	st := &updateState{soft: su.Soft, held: su.Held, deadline: su.Deadline, pending: map[string]bool{}}
	for _, n := range su.Pending {
		st.pending[n] = true
	}
	if su.SessionFD > 0 {
		s, err := luo.SessionFromFile(adopt(su.SessionFD, "luod session"))
		if err != nil {
			m.log.Error("re-adopt luod's LUO session", "err", err)
		} else {
			st.session = s
		}
	}
	return st
}

func newReport(mf *manifest.Manifest) *control.Report {
	rep := &control.Report{Count: mf.Count, Kind: mf.Kind, From: mf.From.Release, To: releaseOr()}
	tl := mf.Timeline
	for _, ev := range []struct {
		name string
		t    time.Time
	}{{"requested", tl.Requested}, {"loaded", tl.Loaded}, {"stop-begin", tl.StopBegin}, {"last-stopped", tl.LastStopped}, {"preserved", tl.Preserved}, {"reboot", tl.Reboot}} {
		if !ev.t.IsZero() {
			rep.Timeline = append(rep.Timeline, control.Event{Name: ev.name, Time: ev.t})
		}
	}
	if mf.Kind == "kexec" {
		if up, err := bootTime(); err == nil {
			rep.Timeline = append(rep.Timeline, control.Event{Name: "kernel-up", Time: up})
		}
	}
	for _, n := range slices.Sorted(maps.Keys(mf.Units)) {
		mu := mf.Units[n]
		rep.Units = append(rep.Units, control.ReportUnit{Name: n, Stopped: mu.Stopped, Delivered: []string{}})
		if !mu.Stopped.IsZero() {
			rep.Timeline = append(rep.Timeline, control.Event{Name: "stopped", Unit: n, Time: mu.Stopped})
		}
	}
	slices.SortStableFunc(rep.Timeline, func(a, b control.Event) int { return a.Time.Compare(b.Time) })
	return rep
}

func findReportUnit(rep *control.Report, name string) *control.ReportUnit {
	for i := range rep.Units {
		if rep.Units[i].Name == name {
			return &rep.Units[i]
		}
	}
	rep.Units = append(rep.Units, control.ReportUnit{Name: name, Delivered: []string{}})
	return &rep.Units[len(rep.Units)-1]
}

func release() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b)), err
}

func releaseOr() string {
	r, _ := release()
	return r
}

// bootTime is when this kernel started, in wall-clock time.
func bootTime() (time.Time, error) {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return time.Time{}, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return time.Time{}, errors.New("empty /proc/uptime")
	}
	up, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Now().Add(-time.Duration(up * float64(time.Second))), nil
}

// fault returns the errno injected for phase by LiveUpdateConfig.Fault or,
// for one update, by the file RuntimeDir/test-fault (VM tests write it).
func (m *Manager) fault(phase string) error {
	p, name, ok := strings.Cut(m.faultSpec(), "=")
	if !ok || p != phase {
		return nil
	}
	for e := unix.Errno(1); e < 4096; e++ {
		if unix.ErrnoName(e) == name {
			return e
		}
	}
	return fmt.Errorf("injected fault %q", name)
}

func (m *Manager) faultSpec() string {
	if m.testFault != "" {
		return m.testFault
	}
	return m.cfg.LiveUpdate.Fault
}
