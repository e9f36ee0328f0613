//go:build linux

package supervisor

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/fdstore"
	"github.com/liveupdate/luo/internal/kexec"
	"github.com/liveupdate/luo/internal/update"
	"github.com/liveupdate/luo/internal/version"
)

// This file is the control edge: it answers the calls of io.luo.Manager
// and is the one place that converts luod's state to wire types.

// handle serves one control-API call. It runs in the connection's
// goroutine and reaches the state through do and waitFor.
func (m *Manager) handle(ctx context.Context, call *control.Call) {
	switch call.Method() {
	case control.MethodGetManager:
		var rep control.Manager
		m.do(func() { rep = m.managerInfo(nil) })
		call.Reply(rep)
	case control.MethodListUnits:
		var rep control.Units
		m.do(func() {
			for _, u := range m.sortedUnits() {
				rep.Units = append(rep.Units, u.info())
			}
		})
		call.Reply(rep)
	case control.MethodGetUnit:
		m.unitCall(ctx, call, nil)
	case control.MethodStartUnit:
		m.unitCall(ctx, call, func(u *Unit) (func() bool, ActiveState) {
			u.start("requested")
			return u.settled, Active
		})
	case control.MethodStopUnit:
		m.unitCall(ctx, call, func(u *Unit) (func() bool, ActiveState) {
			u.stop("requested")
			return func() bool { return !u.running() }, ""
		})
	case control.MethodRestartUnit:
		m.unitCall(ctx, call, func(u *Unit) (func() bool, ActiveState) { return u.restart(), Active })
	case control.MethodCleanUnit:
		m.cleanUnit(call)
	case control.MethodResetFailed:
		m.resetFailedCall(call)
	case control.MethodDumpFDStore:
		m.dumpFDStore(call)
	case control.MethodReload:
		var r reloaded
		r = m.reload()
		rep := control.ReloadReply{Loaded: r.loaded, Warnings: r.warnings}
		for _, err := range r.errors {
			rep.Errors = append(rep.Errors, err.Error())
		}
		call.Reply(rep)
	case control.MethodReexec:
		var down bool
		m.do(func() { down = m.shuttingDown })
		if down {
			call.ReplyError(control.ErrShuttingDown, map[string]string{"message": errShuttingDown.Error()})
			return
		}
		// The reply goes out before the request: the loop re-executes
		// as soon as it has it, closing this connection. A shutdown
		// that begins in between still wins (see Run).
		call.Reply(struct{}{})
		m.do(func() { m.reexecReq = &reexecRequest{done: make(chan error, 1)} })
	case control.MethodPowerOff, control.MethodReboot:
		if !m.cfg.PID1 {
			call.ReplyError(control.ErrNotSupported, map[string]string{"message": "luod is not PID 1; stop it with SIGTERM instead"})
			return
		}
		call.Reply(struct{}{})
		how := shutdownPowerOff
		if call.Method() == control.MethodReboot {
			how = shutdownReboot
		}
		m.do(func() { m.shutdown(how) })
	case control.MethodListSessions:
		var rep control.Sessions
		m.do(func() { rep = m.sessions() })
		call.Reply(rep)
	case control.MethodPlanUpdate:
		m.planUpdateCall(call)
	case control.MethodRunUpdate:
		m.runUpdateCall(ctx, call)
	case control.MethodGetUpdateReport:
		m.reportCall(call)
	case control.MethodStageUpdate:
		m.stageCall(call)
	case control.MethodGetStagedUpdate:
		m.stagedCall(call)
	case control.MethodUnstageUpdate:
		m.unstageCall(call)
	case control.MethodGetLogs:
		m.logsCall(ctx, call)
	case control.MethodGetFleet:
		m.fleetCall(ctx, call)
	case control.MethodReleaseFleet:
		m.releaseFleetCall(ctx, call)
	default:
		call.ReplyError("org.varlink.service.MethodNotFound", map[string]string{"method": call.Method()})
	}
}

// unitCall runs a per-unit method: job (if any) in the loop, then, unless
// NoBlock, waits for the returned condition and replies with the unit,
// or JobFailed when it did not reach the wanted active state.
func (m *Manager) unitCall(ctx context.Context, call *control.Call, job func(*Unit) (func() bool, ActiveState)) {
	var p control.UnitName
	if err := call.Params(&p); err != nil {
		return
	}
	var u *Unit
	var done func() bool
	var want ActiveState
	var failed string
	m.do(func() {
		u = m.units[p.Name]
		if u == nil || job == nil {
			return
		}
		if u.def == nil && call.Method() != control.MethodStopUnit {
			failed = "unit file not found"
			return
		}
		done, want = job(u)
	})
	if u == nil {
		call.ReplyError(control.ErrNoSuchUnit, map[string]string{"name": p.Name})
		return
	}
	if failed != "" {
		call.ReplyError(control.ErrJobFailed, map[string]any{"unit": m.unitInfo(u), "message": failed})
		return
	}
	if done != nil && !p.NoBlock {
		if err := m.waitFor(ctx, done); err != nil {
			// The client hung up (or half-closed): the job goes on.
			call.ReplyError(control.ErrJobFailed, map[string]any{"unit": m.unitInfo(u), "message": "the call ended before the job: " + err.Error()})
			return
		}
	}
	var info control.Unit
	m.do(func() {
		if info = u.info(); job == nil {
			info.Processes = processes(u)
			info.Log = logLines(u.out.last(control.StatusLogLines))
		}
	})
	if want != "" && !p.NoBlock && info.ActiveState != string(want) {
		call.ReplyError(control.ErrJobFailed, control.UnitReply{Unit: info})
		return
	}
	call.Reply(control.UnitReply{Unit: info})
}

func (m *Manager) unitInfo(u *Unit) control.Unit {
	var info control.Unit
	m.do(func() { info = u.info() })
	return info
}

func (u *Unit) info() control.Unit {
	i := control.Unit{
		Name: u.name, LoadState: "loaded", LoadError: u.loadErr, ActiveState: string(u.state.Active()), SubState: string(u.state), Since: u.since,
		MainPID: u.mainPID, Status: u.status, Errno: u.errno, Result: u.result, ExitCode: u.exitCode,
		ExitSignal: sigName(u.exitSig), Restarts: u.restarts, StartLimitHits: u.startLimitHits, FDStoreCount: u.store.Used(), FDStoreMax: u.store.Max(),
		FDStorePreserve: u.preserve().String(), FDStoreRefused: u.refused,
		PreserveMaxBytes: bytesLimit(u.preserveMax()),
	}
	if u.store.Len() > 0 {
		sum := update.Summarize(u.snapshot(true))
		i.FDStoreBytes, i.FDStoreSurvives, i.PreserveBytes = sum.Bytes, sum.Survives, sum.Usage
	}
	if r := u.lastRefused; u.refused > 0 {
		i.FDStoreLastRefused = &control.FDStoreRefusal{FDName: r.fdname, Reason: r.why, Time: r.at}
	}
	if u.group != nil {
		i.CGroup = u.group.Name()
	}
	if u.def == nil {
		i.LoadState = "not-found"
		return i
	}
	d := u.def
	i.Description, i.Path, i.Type = d.Description, d.Path, d.Type.String()
	i.NotifyAccess = d.EffectiveNotifyAccess().String()
	if u.notifyAccessOverride != "" {
		i.NotifyAccess = u.notifyAccessOverride
	}
	i.LUOSessions = d.LUOSessions
	for _, w := range d.Warnings {
		i.Warnings = append(i.Warnings, w.String())
	}
	return i
}

// bytesLimit is q on the wire: nil for no limit.
func bytesLimit(q update.Quota) *int64 {
	if !q.Set {
		return nil
	}
	return &q.Max
}

// processes lists the processes of a unit's cgroup.
func processes(u *Unit) []control.Process {
	var ps []control.Process
	if g := u.group; g != nil {
		list, _ := g.Processes()
		for _, p := range list {
			ps = append(ps, control.Process{PID: p.PID, PPID: p.PPID, Command: p.Cmdline})
		}
	}
	return ps
}

// managerInfo is GetManager's reply. Its PreserveBytes sums the units'
// (see Unit.info); units, when not nil, are their infos already made.
func (m *Manager) managerInfo(units []control.Unit) control.Manager {
	cmd, _ := kexec.CurrentCmdline()
	_, devErr := os.Stat(m.cfg.LiveUpdate.Device)
	info := control.Manager{
		Version: version.String(), PID: os.Getpid(), PID1: m.cfg.PID1, Started: m.started, Reexecs: m.reexecs,
		UnitDir: strings.Join(m.cfg.UnitDirs, ":"), NotifySocket: m.notify.Path(), Units: len(m.units), LiveUpdates: m.liveUpdates,
		LUO:      control.LUOStatus{Device: devErr == nil, Cmdline: kexec.CmdlineHas(cmd, "liveupdate"), Release: release()},
		Updating: m.updating, PreserveMaxBytes: bytesLimit(m.cfg.LiveUpdate.PreserveMax),
	}
	if units == nil {
		for _, u := range m.units {
			units = append(units, u.info())
		}
	}
	for _, u := range units {
		info.PreserveBytes += u.PreserveBytes
	}
	switch {
	case !info.LUO.Cmdline:
		info.LUO.Problem = "liveupdate=on is not on this kernel's command line"
	case !info.LUO.Device:
		info.LUO.Problem = fmt.Sprintf("%s is missing: kernel without CONFIG_LIVEUPDATE, or KHO disabled", m.cfg.LiveUpdate.Device)
	}
	return info
}

func (m *Manager) cleanUnit(call *control.Call) {
	var p control.CleanParams
	if err := call.Params(&p); err != nil {
		return
	}
	for _, w := range p.What {
		if w != "fdstore" {
			call.ReplyError("org.varlink.service.InvalidParameter", map[string]string{"parameter": "what"})
			return
		}
	}
	var u *Unit
	var err error
	m.do(func() { u, err = m.clean(p.Name) })
	switch {
	case u == nil:
		call.ReplyError(control.ErrNoSuchUnit, map[string]string{"name": p.Name})
	case err != nil:
		call.ReplyError(control.ErrUnitBusy, map[string]string{"name": p.Name, "message": err.Error()})
	default:
		call.Reply(control.UnitReply{Unit: m.unitInfo(u)})
	}
}

func (m *Manager) resetFailedCall(call *control.Call) {
	var p control.ResetFailedParams
	if err := call.Params(&p); err != nil {
		return
	}
	var rep control.Units
	found := true
	m.do(func() {
		for _, u := range m.sortedUnits() {
			if p.Name == "" || u.name == p.Name {
				u.resetFailed()
				rep.Units = append(rep.Units, u.info())
			}
		}
		found = p.Name == "" || m.units[p.Name] != nil
	})
	if !found {
		call.ReplyError(control.ErrNoSuchUnit, map[string]string{"name": p.Name})
		return
	}
	call.Reply(rep)
}

// dumpFDStore answers DumpFDStore.
func (m *Manager) dumpFDStore(call *control.Call) {
	var p control.UnitName
	if err := call.Params(&p); err != nil {
		return
	}
	var rep *control.FDStore
	m.do(func() {
		if u := m.units[p.Name]; u != nil {
			rep = m.fdStoreDump(u)
		}
	})
	if rep == nil {
		call.ReplyError(control.ErrNoSuchUnit, map[string]string{"name": p.Name})
		return
	}
	call.Reply(rep)
}

// fdStoreDump describes each entry of u's store, with what a kexec would
// do with it, decided as a plan decides it (update.DecideTried, the kernel
// asked), so that both say the same. While an update runs, the kernel is
// not asked: the update holds the memfds. Called in the loop.
func (m *Manager) fdStoreDump(u *Unit) *control.FDStore {
	rep := &control.FDStore{Unit: u.name, Max: u.store.Max(), Preserve: u.preserve().String(), Entries: []control.FDStoreEntry{}}
	s := update.Snapshot{Kind: update.Kexec, Units: []update.Unit{u.snapshot(true)}}
	var fates []update.Entry
	if m.updating {
		fates = update.Decide(s)[0].Entries
	} else {
		fates = update.DecideTried(m.kernel, s)[0].Entries
	}
	for i, e := range u.store.Entries() {
		info, _ := e.Describe()
		ent := control.FDStoreEntry{Name: e.Name, Type: info.Type, DevNo: info.Dev, Inode: info.Inode, RDevNo: info.RDev,
			Path: info.Path, Flags: info.Flags, Size: info.Size, Poll: e.Poll, Survives: "no", Why: fates[i].Reason}
		if fates[i].Fate.Carried() {
			ent.Survives = "yes"
		}
		rep.Entries = append(rep.Entries, ent)
	}
	return rep
}

func (m *Manager) sessions() control.Sessions {
	rep := control.Sessions{Sessions: []control.Session{}}
	if c := m.completion; c != nil && c.Session() != nil {
		rep.Sessions = append(rep.Sessions, control.Session{Name: c.Session().Name(), Direction: "incoming", Owner: "luod (manifest session, awaiting finish)"})
	}
	if h := m.held; h != nil {
		rep.Sessions = append(rep.Sessions, control.Session{Name: h.session.Name(), Direction: "incoming", Owner: "luod (held unfinished: " + h.why + ")"})
	}
	for _, u := range m.sortedUnits() {
		for _, e := range u.store.Entries() {
			info, err := fdstore.Describe(e.File)
			if err != nil || info.Session == "" {
				continue
			}
			dir, owner := "outgoing", "service"
			if info.Incoming {
				dir = "incoming"
			}
			// luod's mark, or its name for the session (a store of a luod
			// that did not mark them): incoming ones after a kexec too.
			if e.LUOSession || info.Session == update.LUOSessionName(u.name, e.Name) {
				owner = "luod, handed out for LUOSession=" + e.Name
			}
			rep.Sessions = append(rep.Sessions, control.Session{Name: info.Session, Unit: u.name, FDName: e.Name, Direction: dir, Owner: owner})
		}
	}
	return rep
}

// logLines converts captured lines to wire types.
func logLines(ls []Line) []control.LogLine {
	out := make([]control.LogLine, len(ls))
	for i, l := range ls {
		out[i] = control.LogLine{Time: l.Time, Stream: l.Stream, Priority: l.Priority, Message: l.Text}
	}
	return out
}

// followBatch bounds the lines of one streamed GetLogs reply.
const followBatch = 256

// logsCall answers GetLogs: the last lines, then, with follow, each line
// as it comes. A follower runs in its connection's goroutine and gets the
// lines from a queue that never blocks the unit's reader (see follower);
// a client that stops reading is cut off by the server's write timeout.
func (m *Manager) logsCall(ctx context.Context, call *control.Call) {
	var p control.LogsParams
	if err := call.Params(&p); err != nil {
		return
	}
	if p.Lines < 0 {
		call.ReplyError(control.VarlinkInvalidParameter, map[string]string{"parameter": "lines"})
		return
	}
	if p.Follow && !call.WantsMore() {
		call.ReplyError(control.VarlinkExpectedMore, nil)
		return
	}
	var out *output
	m.do(func() {
		if u := m.units[p.Name]; u != nil {
			out = u.out
		}
	})
	if out == nil {
		call.ReplyError(control.ErrNoSuchUnit, map[string]string{"name": p.Name})
		return
	}
	n := p.Lines
	if n == 0 {
		n = -1
	}
	if !p.Follow {
		call.Reply(control.LogLines{Lines: logLines(out.last(n))})
		return
	}
	lines, f := out.follow(n)
	if f == nil { // removed meanwhile
		call.Reply(control.LogLines{Lines: logLines(lines)})
		return
	}
	defer out.unfollow(f)
	if call.ReplyMore(control.LogLines{Lines: logLines(lines)}) != nil {
		return
	}
	for {
		var batch []Line
		select {
		case l := <-f.ch:
			batch = append(batch, l)
		case <-f.gone:
			// The unit is gone: what is still queued, then the end.
			for len(batch) < followBatch && len(f.ch) > 0 {
				batch = append(batch, <-f.ch)
			}
			call.Reply(control.LogLines{Lines: logLines(batch)})
			return
		case <-ctx.Done():
			return
		}
	more:
		for len(batch) < followBatch {
			select {
			case l := <-f.ch:
				batch = append(batch, l)
			default:
				break more
			}
		}
		if lost := f.lost.Swap(0); lost > 0 {
			note := Line{Time: time.Now(), Stream: "luod", Priority: 4, Text: fmt.Sprintf("luod: %d lines not sent: the client read too slowly", lost)}
			batch = append([]Line{note}, batch...)
		}
		if call.ReplyMore(control.LogLines{Lines: logLines(batch)}) != nil {
			return
		}
	}
}
