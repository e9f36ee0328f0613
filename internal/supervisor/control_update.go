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
	if p.StopTimeout != "" {
		d, err := time.ParseDuration(p.StopTimeout)
		if err != nil {
			return req, fmt.Errorf("stop timeout: %w", err)
		}
		req.StopTimeout = d
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
		call.Reply(wirePlan(m.PlanStaged(st), req.AllowLoss))
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
