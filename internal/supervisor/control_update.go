//go:build linux

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/kexec"
	"github.com/liveupdate/luo/internal/update"
)

// The control edge of updates: PlanUpdate, RunUpdate and the report, and
// their wire types (see control.go).

// request turns the parameters of PlanUpdate and RunUpdate into an
// update.Request, reading this kernel's command line when asked to reuse
// it.
func request(p control.UpdateParams) (update.Request, error) {
	req := update.Request{Kind: update.Kexec, Target: kexec.Image{Kernel: p.Kernel, Initrd: p.Initrd, Cmdline: p.Cmdline},
		AllowLoss: p.AllowLoss, RestartUnits: p.RestartUnits}
	if p.NoKexec {
		req.Kind = update.Soft
	}
	if p.Staged {
		if p.Kernel != "" || p.Initrd != "" || p.Cmdline != "" || p.ReuseCmdline || p.NoKexec {
			return req, errors.New("a staged update uses the staged kernel, initrd and command line: give none of them, nor no_kexec")
		}
	}
	var err error
	if req.StopTimeout, err = duration("stop timeout", p.StopTimeout); err != nil {
		return req, err
	}
	if req.SlotWait, err = duration("slot wait", p.SlotWait); err != nil {
		return req, err
	}
	health, err := duration("health timeout", p.HealthTimeout)
	if err != nil {
		return req, err
	}
	if health > 0 {
		req.Health = &update.Health{Timeout: health}
	}
	if p.RollbackKernel != "" {
		if health == 0 {
			return req, errors.New("a rollback kernel is used by a health gate: give a health timeout too")
		}
		cmdline := p.RollbackCmdline
		if cmdline == "" {
			if cmdline, err = kexec.CurrentCmdline(); err != nil {
				return req, err
			}
		}
		req.Health.Rollback = &update.Boot{Image: p.RollbackKernel, Initrd: p.RollbackInitrd, Cmdline: cmdline}
	} else if p.RollbackInitrd != "" || p.RollbackCmdline != "" {
		return req, errors.New("a rollback initrd or command line needs a rollback kernel")
	}
	if req.Kind == update.Kexec && !p.Staged && (p.ReuseCmdline || p.Cmdline == "") {
		cur, err := kexec.CurrentCmdline()
		if err != nil {
			return req, err
		}
		req.Target.Cmdline = strings.TrimSpace(cur + " " + p.Cmdline)
	}
	return req, nil
}

// duration parses an optional, non-negative Go duration.
func duration(what, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err == nil && d < 0 {
		err = errors.New("negative")
	}
	if err != nil {
		return 0, fmt.Errorf("%s %q: %w", what, s, err)
	}
	return d, nil
}

// updateCall reads the parameters of PlanUpdate and RunUpdate; it
// answers and returns false when they are wrong.
func updateCall(call *control.Call) (update.Request, bool, bool) {
	var p control.UpdateParams
	if err := call.Params(&p); err != nil {
		return update.Request{}, false, false
	}
	req, err := request(p)
	if err != nil {
		call.ReplyError(control.ErrUpdateFailed, control.UpdateFailure{Phase: string(update.PhasePlan), Message: err.Error()})
		return req, false, false
	}
	return req, p.Staged, true
}

func (m *Manager) planUpdateCall(call *control.Call) {
	req, staged, ok := updateCall(call)
	switch {
	case !ok:
	case staged:
		st := m.stagedUpdate()
		if st == nil {
			call.ReplyError(control.ErrNotStaged, map[string]string{"message": errNotStaged.Error()})
			return
		}
		call.Reply(wirePlan(m.withGate(m.PlanStaged(st), req), req.AllowLoss))
	default:
		call.Reply(wirePlan(m.PlanUpdate(req), req.AllowLoss))
	}
}

func (m *Manager) runUpdateCall(ctx context.Context, call *control.Call) {
	req, staged, ok := updateCall(call)
	if !ok {
		return
	}
	progress := func(phase update.Phase, msg string) {
		if call.WantsMore() {
			call.ReplyMore(control.Progress{Phase: string(phase), Message: msg, Time: time.Now()})
		}
	}
	// The update must not be cut short by the client going away.
	replyUpdateError(call, m.RunUpdate(context.WithoutCancel(ctx), req, staged, progress))
}

// replyUpdateError answers a failed update, staging or unstaging.
func replyUpdateError(call *control.Call, err error) {
	var uerr *update.Error
	switch {
	case errors.Is(err, errUpdateInProgress):
		call.ReplyError(control.ErrUpdateInProgress, map[string]string{"message": err.Error()})
	case errors.Is(err, errShuttingDown):
		call.ReplyError(control.ErrShuttingDown, map[string]string{"message": err.Error()})
	case errors.Is(err, errNotStaged):
		call.ReplyError(control.ErrNotStaged, map[string]string{"message": err.Error()})
	case errors.As(err, &uerr):
		call.ReplyError(control.ErrUpdateFailed, control.UpdateFailure{Phase: string(uerr.Phase), Message: uerr.Err.Error(), Restored: uerr.Restored})
	default:
		call.ReplyError(control.ErrUpdateFailed, control.UpdateFailure{Phase: "update", Message: fmt.Sprint(err)})
	}
}

// stageCall answers StageUpdate.
func (m *Manager) stageCall(call *control.Call) {
	var p control.StageParams
	if err := call.Params(&p); err != nil {
		return
	}
	req, err := request(control.UpdateParams{Kernel: p.Kernel, Initrd: p.Initrd, Cmdline: p.Cmdline, ReuseCmdline: p.ReuseCmdline, AllowLoss: p.AllowLoss})
	if err != nil {
		replyUpdateError(call, &update.Error{Phase: update.PhasePlan, Err: err, Restored: true})
		return
	}
	st, _, err := m.StageUpdate(req)
	if err != nil {
		replyUpdateError(call, err)
		return
	}
	call.Reply(wireStaged(st, nil, true))
}

// stagedCall answers GetStagedUpdate.
func (m *Manager) stagedCall(call *control.Call) {
	st, changes, loaded := m.Staged()
	if st == nil {
		call.ReplyError(control.ErrNotStaged, map[string]string{"message": errNotStaged.Error()})
		return
	}
	call.Reply(wireStaged(st, changes, loaded))
}

// unstageCall answers UnstageUpdate.
func (m *Manager) unstageCall(call *control.Call) {
	if err := m.Unstage(); err != nil {
		replyUpdateError(call, err)
		return
	}
	call.Reply(struct{}{})
}

func wireStaged(st *update.Staged, changes []string, loaded bool) control.Staged {
	w := control.Staged{Kernel: st.Target.Kernel, Initrd: st.Target.Initrd, Cmdline: st.Target.Cmdline, StagedAt: st.At,
		Loaded: loaded, Checks: wireChecks(st.Checks), Changes: changes, Replanned: st.Plan == nil}
	if w.Changes == nil {
		w.Changes = []string{}
	}
	c := st.Counts
	w.TotalBytes, w.Memfds, w.Preserved, w.Sessions, w.Lost = c.Bytes, c.Memfds, c.Preserved, c.Sessions, c.Lost
	return w
}

// wireChecks converts a plan's checks; never nil.
func wireChecks(cs []update.Check) []control.Check {
	w := []control.Check{}
	for _, ch := range cs {
		w = append(w, control.Check{Name: ch.Name, OK: ch.OK, Detail: ch.Detail})
	}
	return w
}

func wirePlan(p *update.Plan, allowLoss bool) control.Plan {
	c := p.Counts()
	w := control.Plan{Kind: string(p.Kind), Kernel: p.Target.Kernel, Initrd: p.Target.Initrd, Cmdline: p.Target.Cmdline,
		Checks: wireChecks(p.Checks), Units: []control.PlanUnit{}, TotalBytes: c.Bytes, Memfds: c.Memfds, Preserved: c.Preserved,
		Sessions: c.Sessions, Others: c.Others, Lost: c.Lost, OK: p.Refusal(allowLoss) == nil}
	if p.Kind != update.Kexec {
		w.Kernel, w.Initrd, w.Cmdline = "", "", ""
	}
	for _, u := range p.Units {
		pu := control.PlanUnit{Name: u.Name, Active: u.Active, Preserve: u.Preserve.String(), Entries: []control.PlanEntry{}}
		for _, e := range u.Entries {
			pe := control.PlanEntry{Name: e.Name, Type: e.Type, Fate: string(e.Fate), Reason: e.Reason}
			if e.IsMemfd() {
				pe.Bytes = e.Size
			}
			pu.Entries = append(pu.Entries, pe)
		}
		w.Units = append(w.Units, pu)
	}
	return w
}

// reportCall answers GetUpdateReport: the last update's report, or the
// last one of the kind asked for.
func (m *Manager) reportCall(call *control.Call) {
	var p control.ReportParams
	if err := call.Params(&p); err != nil {
		return
	}
	if p.Kind != "" && p.Kind != string(update.Kexec) && p.Kind != string(update.Soft) {
		call.ReplyError("org.varlink.service.InvalidParameter", map[string]string{"parameter": "kind"})
		return
	}
	var rep, kexec *update.Report
	m.do(func() { rep, kexec = m.report, m.kexecReport })
	var also []string
	switch {
	case p.Kind == string(update.Kexec) && rep != nil && rep.Kind != update.Kexec:
		rep = kexec
	case p.Kind != "" && rep != nil && string(rep.Kind) != p.Kind:
		rep = nil
	case kexec != nil:
		also = []string{string(update.Kexec)}
	}
	if rep == nil {
		msg := "no update since luod started on a cold boot"
		if p.Kind != "" {
			msg = fmt.Sprintf("no %s update since luod started on a cold boot", p.Kind)
		}
		call.ReplyError(control.ErrNoReport, map[string]string{"message": msg})
		return
	}
	w := wireReport(rep.Sorted())
	w.Also = also
	call.Reply(w)
}

func wireReport(r *update.Report) control.Report {
	w := control.Report{Count: r.Count, Kind: string(r.Kind), Result: r.Result(), From: r.From, To: r.To, Problems: r.Problems,
		Timeline: []control.Event{}, Units: []control.ReportUnit{}}
	if rb := r.RolledBack; rb != nil {
		w.RolledBack = &control.RolledBack{From: rb.From, To: rb.To, Reason: rb.Reason}
	}
	for _, ev := range r.Timeline {
		w.Timeline = append(w.Timeline, control.Event{Name: ev.Name, Unit: ev.Unit, Time: ev.Time})
	}
	for _, u := range r.Units {
		ru := control.ReportUnit{Name: u.Name, Stopped: u.Stopped, Ready: u.Ready, Blackout: u.Blackout, Delivered: u.Delivered}
		for _, e := range u.Lost {
			ru.Lost = append(ru.Lost, control.PlanEntry{Name: e.Name, Type: e.Type, Fate: string(e.Fate), Reason: e.Reason})
		}
		w.Units = append(w.Units, ru)
	}
	return w
}

// fleetCall answers GetFleet: the group's slots as etcd has them.
func (m *Manager) fleetCall(ctx context.Context, call *control.Call) {
	f := m.cfg.Fleet
	if f == nil {
		call.ReplyError(control.ErrFleetUnavailable, map[string]string{"message": errNoFleet.Error()})
		return
	}
	st, err := f.Status(ctx)
	if err != nil {
		call.ReplyError(control.ErrFleetUnavailable, map[string]string{"message": err.Error()})
		return
	}
	w := control.Fleet{Group: st.Group, Host: f.Host(), Endpoints: f.Endpoints(), Key: st.Key, Max: st.Max, Revision: st.Revision}
	for _, h := range st.Holders {
		w.Holders = append(w.Holders, control.FleetHolder{Host: h.Host, Since: h.Since, Kind: h.Kind, From: h.From, To: h.To,
			State: h.State, Reason: h.Reason, Changed: h.Changed})
	}
	call.Reply(w)
}

// releaseFleetCall answers ReleaseFleetSlot.
func (m *Manager) releaseFleetCall(ctx context.Context, call *control.Call) {
	var p control.FleetHost
	if err := call.Params(&p); err != nil {
		return
	}
	f := m.cfg.Fleet
	if f == nil {
		call.ReplyError(control.ErrFleetUnavailable, map[string]string{"message": errNoFleet.Error()})
		return
	}
	if p.Host == "" {
		call.ReplyError("org.varlink.service.InvalidParameter", map[string]string{"parameter": "host"})
		return
	}
	ok, err := f.ReleaseHost(ctx, p.Host)
	if err != nil {
		call.ReplyError(control.ErrFleetUnavailable, map[string]string{"message": err.Error()})
		return
	}
	m.log.Info("fleet slot released by hand", "host", p.Host, "held", ok)
	call.Reply(control.FleetReleased{Released: ok})
}

// errNoFleet answers the fleet calls of a luod without fleet settings.
var errNoFleet = errors.New("luod has no fleet settings (--fleet-endpoints)")
