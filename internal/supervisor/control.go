//go:build linux

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/fdstore"
	"github.com/liveupdate/luo/internal/kexec"
)

// handle serves one control-API call. It runs in the connection's
// goroutine and reaches the state through do and waitFor.
func (m *Manager) handle(ctx context.Context, call *control.Call) {
	switch call.Method() {
	case control.MethodGetManager:
		var rep control.Manager
		m.do(func() { rep = m.managerInfo() })
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
		m.unitCall(ctx, call, func(u *Unit) (func() bool, string) {
			u.start("requested")
			return func() bool { return u.active != stateActivating || u.sub == subAutoRestart }, stateActive
		})
	case control.MethodStopUnit:
		m.unitCall(ctx, call, func(u *Unit) (func() bool, string) {
			u.stop("requested")
			return func() bool { return u.mainPID == 0 && u.active != stateDeactivating }, ""
		})
	case control.MethodRestartUnit:
		m.unitCall(ctx, call, func(u *Unit) (func() bool, string) {
			gen := u.startedAt
			if u.mainPID != 0 || u.active == stateActive {
				u.stop("restart")
				u.pendingStart = true
			} else {
				u.start("requested")
			}
			return func() bool {
				return u.startedAt != gen && (u.active != stateActivating || u.sub == subAutoRestart) && u.active != stateDeactivating
			}, stateActive
		})
	case control.MethodCleanUnit:
		m.cleanUnit(call)
	case control.MethodDumpFDStore:
		m.dumpFDStore(call)
	case control.MethodReload:
		var rep control.ReloadReply
		m.do(func() { rep = m.reload() })
		call.Reply(rep)
	case control.MethodReexec:
		call.Reply(struct{}{})
		m.do(func() { m.reexecReq = func(error) {} })
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
		var p control.UpdateParams
		if err := call.Params(&p); err != nil {
			return
		}
		plan, err := m.Plan(p)
		if err != nil {
			call.ReplyError(control.ErrUpdateFailed, control.UpdateFailure{Phase: "plan", Message: err.Error()})
			return
		}
		call.Reply(plan)
	case control.MethodRunUpdate:
		m.runUpdateCall(ctx, call)
	case control.MethodGetUpdateReport:
		var rep *control.Report
		m.do(func() {
			if m.report != nil {
				r := *m.report
				r.Timeline = slices.Clone(r.Timeline)
				slices.SortStableFunc(r.Timeline, func(a, b control.Event) int { return a.Time.Compare(b.Time) })
				rep = &r
			}
		})
		if rep == nil {
			call.ReplyError(control.ErrNoReport, map[string]string{"message": "no update since luod started on a cold boot"})
			return
		}
		call.Reply(rep)
	default:
		call.ReplyError("org.varlink.service.MethodNotFound", map[string]string{"method": call.Method()})
	}
}

// unitCall runs a per-unit method: job (if any) in the loop, then, unless
// NoBlock, waits for the returned condition and replies with the unit.
func (m *Manager) unitCall(ctx context.Context, call *control.Call, job func(*Unit) (func() bool, string)) {
	var p control.UnitName
	if err := call.Params(&p); err != nil {
		return
	}
	var u *Unit
	var done func() bool
	var want string
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
			return
		}
	}
	info := m.unitInfo(u)
	if want != "" && !p.NoBlock && info.ActiveState != want {
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
		Name: u.name, LoadState: "loaded", LoadError: u.loadErr, ActiveState: u.active, SubState: u.sub, Since: u.since,
		MainPID: u.mainPID, Status: u.status, Errno: u.errno, Result: u.result, ExitCode: u.exitCode,
		ExitSignal: sigName(u.exitSig), Restarts: u.restarts, FDStoreCount: u.store.Len(), FDStoreMax: u.store.Max(),
		FDStorePreserve: u.preserve().String(),
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

func (m *Manager) managerInfo() control.Manager {
	rel, _ := release()
	cmd, _ := kexec.CurrentCmdline()
	_, devErr := os.Stat(m.cfg.LiveUpdate.Device)
	info := control.Manager{
		Version: Version, PID: os.Getpid(), PID1: m.cfg.PID1, Started: m.started, Reexecs: m.reexecs,
		UnitDir: strings.Join(m.cfg.UnitDirs, ":"), NotifySocket: m.notify.Path(), Units: len(m.units), LiveUpdates: m.liveUpdates,
		LUO:      control.LUOStatus{Device: devErr == nil, Cmdline: kexec.CmdlineHas(cmd, "liveupdate"), Release: rel},
		Updating: m.update != nil && m.update.running,
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
	busy := false
	m.do(func() {
		if u = m.units[p.Name]; u == nil {
			return
		}
		if u.mainPID != 0 || u.active == stateActive || u.active == stateActivating || u.active == stateDeactivating {
			busy = true
			return
		}
		u.flushStore("clean --what=fdstore")
		if u.sub == subPinned {
			u.setState(stateInactive, subDead)
		}
		if u.def == nil {
			m.forget(u)
		}
	})
	switch {
	case u == nil:
		call.ReplyError(control.ErrNoSuchUnit, map[string]string{"name": p.Name})
	case busy:
		call.ReplyError(control.ErrUnitBusy, map[string]string{"name": p.Name, "message": "the unit must be stopped to clean its fd store"})
	default:
		call.Reply(control.UnitReply{Unit: m.unitInfo(u)})
	}
}

func (m *Manager) dumpFDStore(call *control.Call) {
	var p control.UnitName
	if err := call.Params(&p); err != nil {
		return
	}
	var rep *control.FDStore
	m.do(func() {
		u := m.units[p.Name]
		if u == nil {
			return
		}
		rep = &control.FDStore{Unit: u.name, Max: u.store.Max(), Preserve: u.preserve().String(), Entries: []control.FDStoreEntry{}}
		carried := u.preserve().String() == "yes" || u.preserve().String() == "on-success"
		for _, e := range u.store.Entries() {
			info, err := fdstore.Describe(e.File)
			ent := control.FDStoreEntry{Name: e.Name, Type: info.Type, DevNo: info.Dev, Inode: info.Inode, RDevNo: info.RDev,
				Path: info.Path, Flags: info.Flags, Size: info.Size, Poll: e.Poll, Survives: "no", Why: info.Why}
			switch {
			case err != nil:
				ent.Why = err.Error()
			case !carried:
				ent.Why = fmt.Sprintf("FileDescriptorStorePreserve=%s: only yes and on-success stores are carried", u.preserve())
			case info.Survives:
				ent.Survives = "yes"
			}
			rep.Entries = append(rep.Entries, ent)
		}
	})
	if rep == nil {
		call.ReplyError(control.ErrNoSuchUnit, map[string]string{"name": p.Name})
		return
	}
	call.Reply(rep)
}

func (m *Manager) sessions() control.Sessions {
	var rep control.Sessions
	rep.Sessions = []control.Session{}
	if st := m.update; st != nil && st.session != nil {
		owner := "luod (manifest session, awaiting finish)"
		if st.held != "" {
			owner = "luod (held unfinished: " + st.held + ")"
		}
		rep.Sessions = append(rep.Sessions, control.Session{Name: st.session.Name(), Direction: "incoming", Owner: owner})
	}
	for _, u := range m.sortedUnits() {
		for _, e := range u.store.Entries() {
			info, err := fdstore.Describe(e.File)
			if err != nil || info.Type != "luo-session" {
				continue
			}
			dir, owner := "outgoing", "service"
			if info.Incoming {
				dir = "incoming"
			}
			if e.Origin == "luo-session" {
				owner = "luod (LUOSession=)"
			}
			rep.Sessions = append(rep.Sessions, control.Session{Name: info.Session, Unit: u.name, FDName: e.Name, Direction: dir, Owner: owner})
		}
	}
	return rep
}

func (m *Manager) runUpdateCall(ctx context.Context, call *control.Call) {
	var p control.UpdateParams
	if err := call.Params(&p); err != nil {
		return
	}
	progress := func(phase, msg string) {
		m.log.Info("update: "+msg, "phase", phase)
		if call.WantsMore() {
			call.ReplyMore(control.Progress{Phase: phase, Message: msg, Time: time.Now()})
		}
	}
	// The update must not be cut short by the client going away.
	err := m.RunUpdate(context.WithoutCancel(ctx), p, progress)
	var uerr *UpdateError
	switch {
	case err == nil:
		call.Reply(control.Progress{Phase: "done", Message: "update complete", Time: time.Now(), Done: true})
	case errors.Is(err, errUpdateInProgress):
		call.ReplyError(control.ErrUpdateInProgress, map[string]string{"message": err.Error()})
	case errors.As(err, &uerr):
		call.ReplyError(control.ErrUpdateFailed, control.UpdateFailure{Phase: uerr.Phase, Message: uerr.Err.Error(), Restored: uerr.Restored})
	default:
		call.ReplyError(control.ErrUpdateFailed, control.UpdateFailure{Phase: "update", Message: err.Error()})
	}
}
