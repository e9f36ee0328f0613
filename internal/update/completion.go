package update

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// Report is the account of an update: its timeline across the kexec (or
// re-exec), and per unit when it stopped, when it was ready again and what
// it got back.
type Report struct {
	// Count numbers the update: the kexec live updates since the last cold
	// boot for a kexec, the soft updates since luod started for a soft
	// update.
	Count    int          `json:"count"`
	Kind     Kind         `json:"kind"`
	From     string       `json:"from"` // kernel release before
	To       string       `json:"to"`   // kernel release after
	Timeline []Event      `json:"timeline"`
	Units    []ReportUnit `json:"units"`
	Problems []string     `json:"problems,omitempty"`
	// RolledBack is set when this update went back to the kernel of an
	// update whose health gate failed.
	RolledBack *RolledBack `json:"rolled_back,omitempty"`
}

// Result is r's result: rolled-back for a rollback, lost when some unit
// lost fds (or the manifest was unusable), problems when the report lists
// others, else ok.
func (r *Report) Result() string {
	if r.RolledBack != nil {
		return ResultRolledBack
	}
	for _, u := range r.Units {
		if len(u.Lost) > 0 {
			return ResultLost
		}
	}
	switch {
	case r.Kind == Kexec && len(r.Units) == 0 && len(r.Problems) > 0:
		return ResultLost
	case len(r.Problems) > 0:
		return ResultProblems
	}
	return ResultOK
}

// Event is one moment of an update: requested, slot-taken (in a fleet),
// loaded, stop-begin, last-stopped, preserved, reboot, kernel-up (a soft
// update: exec instead of these three), luod-up, restored, and per unit
// stopped and ready, then finished, and slot-released (in a fleet, when
// the units are healthy).
type Event struct {
	Name string    `json:"name"`
	Unit string    `json:"unit,omitempty"`
	Time time.Time `json:"time"`
}

// ReportUnit is one unit's part of a report.
type ReportUnit struct {
	Name     string        `json:"name"`
	Stopped  time.Time     `json:"stopped,omitzero"`
	Ready    time.Time     `json:"ready,omitzero"`
	Blackout time.Duration `json:"blackout,omitempty"` // Ready - Stopped
	// Delivered are the fd names handed back to the unit.
	Delivered []string `json:"delivered"`
	// Lost are the entries the update could not carry.
	Lost []Entry `json:"lost,omitempty"`
}

// NewReport starts the report of the update m describes, seen from the
// next luod: release is the running kernel's, kernelUp when it booted
// (zero for a re-exec). A soft update's report has the exec where a
// kexec's has preserved, reboot and kernel-up; its Count is the caller's
// to set (m.Count counts kexecs).
func NewReport(m *Manifest, release string, kernelUp time.Time) *Report {
	r := &Report{Count: m.Count, Kind: m.Kind, From: m.From.Release, To: release, RolledBack: m.RolledBack}
	tl := m.Timeline
	if m.Kind != Kexec && tl.Exec.IsZero() {
		tl.Exec = tl.Reboot // the manifest of an older luod
	}
	evs := []Event{{Name: "requested", Time: tl.Requested}, {Name: "slot-taken", Time: tl.SlotTaken}, {Name: "loaded", Time: tl.Loaded},
		{Name: "stop-begin", Time: tl.StopBegin}, {Name: "last-stopped", Time: tl.LastStopped}}
	if m.Kind == Kexec {
		evs = append(evs, Event{Name: "preserved", Time: tl.Preserved}, Event{Name: "reboot", Time: tl.Reboot}, Event{Name: "kernel-up", Time: kernelUp})
	} else {
		evs = append(evs, Event{Name: "exec", Time: tl.Exec})
	}
	for _, ev := range evs {
		r.Add(ev.Name, "", ev.Time)
	}
	for _, u := range m.Units {
		ru := r.Unit(u.Name)
		ru.Stopped = u.Stopped
		r.Add("stopped", u.Name, u.Stopped)
		for _, e := range u.Entries {
			if e.Fate == FateLost {
				ru.Lost = append(ru.Lost, Entry{Name: e.Name, Type: e.Type, Fate: e.Fate, Reason: e.Reason})
			}
		}
	}
	return r
}

// Add records an event, unless t is zero.
func (r *Report) Add(name, unit string, t time.Time) {
	if !t.IsZero() {
		r.Timeline = append(r.Timeline, Event{Name: name, Unit: unit, Time: t})
	}
}

// Unit returns the report of a unit, adding it if it is not there yet.
func (r *Report) Unit(name string) *ReportUnit {
	for i := range r.Units {
		if r.Units[i].Name == name {
			return &r.Units[i]
		}
	}
	r.Units = append(r.Units, ReportUnit{Name: name, Delivered: []string{}})
	return &r.Units[len(r.Units)-1]
}

// Sorted returns a copy of r with its timeline in time order and its units
// by name.
func (r *Report) Sorted() *Report {
	c := *r
	c.Timeline = slices.Clone(r.Timeline)
	slices.SortStableFunc(c.Timeline, func(a, b Event) int { return a.Time.Compare(b.Time) })
	c.Units = slices.Clone(r.Units)
	slices.SortFunc(c.Units, func(a, b ReportUnit) int { return strings.Compare(a.Name, b.Name) })
	return &c
}

// Completion is the new side of an update until luod's incoming session is
// finished: it waits for the units the update restored to be up (or to
// fail), records when, and then finishes the session (FINISH frees what
// was not retrieved). After a soft update there is no session, only the
// report to complete. Not safe for concurrent use.
type Completion struct {
	// Report is the report of the update, completed as units come up.
	Report *Report
	// Deadline is when Finish should be called even if units are not up.
	Deadline time.Time
	// Terms are the manifest's: what to do once finished (see Next).
	Terms
	session  Session
	pending  map[string]bool
	failed   []string
	finished bool
}

// Terms are what an update was made under, as its manifest says: its
// kind, the fleet slot it holds, its health gate, and whether it is a
// rollback. They decide what follows it (Completion.Next).
type Terms struct {
	Kind       Kind        `json:"kind,omitempty"`
	Slot       *Slot       `json:"slot,omitempty"`
	Health     *Health     `json:"health,omitempty"`
	RolledBack *RolledBack `json:"rolled_back,omitempty"`
}

// NewCompletion waits for the pending units of the update m describes,
// then finishes s (nil after a soft update). The deadline is finish after
// start, or m's health gate when it is shorter.
func NewCompletion(s Session, m *Manifest, rep *Report, pending []string, start time.Time, finish time.Duration) *Completion {
	if h := m.Health; h != nil && h.Timeout > 0 {
		finish = min(finish, h.Timeout)
	}
	terms := Terms{Kind: m.Kind, Slot: m.Slot, Health: m.Health, RolledBack: m.RolledBack}
	return newCompletion(s, rep, terms, pending, nil, start.Add(finish))
}

func newCompletion(s Session, rep *Report, terms Terms, pending, failed []string, deadline time.Time) *Completion {
	c := &Completion{Report: rep, Deadline: deadline, Terms: terms, session: s, pending: map[string]bool{}, failed: failed}
	for _, u := range pending {
		c.pending[u] = true
	}
	return c
}

// Session returns luod's incoming session, nil once finished or after a
// soft update.
func (c *Completion) Session() Session { return c.session }

// Pending returns the units not up yet, by name.
func (c *Completion) Pending() []string { return slices.Sorted(maps.Keys(c.pending)) }

// Waiting reports whether unit is one the completion waits for.
func (c *Completion) Waiting(unit string) bool { return c.pending[unit] }

// Ready records that a pending unit is up since at.
func (c *Completion) Ready(unit string, at time.Time) {
	if !c.pending[unit] {
		return
	}
	delete(c.pending, unit)
	ru := c.Report.Unit(unit)
	ru.Ready = at
	if !ru.Stopped.IsZero() {
		ru.Blackout = at.Sub(ru.Stopped)
	}
	c.Report.Add("ready", unit, at)
}

// Failed records that a pending unit failed after the update.
func (c *Completion) Failed(unit, result string) {
	if !c.pending[unit] {
		return
	}
	delete(c.pending, unit)
	why := fmt.Sprintf("%s failed after the update: %s", unit, result)
	c.failed = append(c.failed, why)
	c.Report.Problems = append(c.Report.Problems, why)
}

// Done reports whether every pending unit is up or failed, so Finish is
// due.
func (c *Completion) Done() bool { return !c.finished && len(c.pending) == 0 }

// Finish finishes luod's session and closes it, at now. Units still
// pending (the deadline passed) are named in the report. A second call
// does nothing.
func (c *Completion) Finish(now time.Time) error {
	if c.finished {
		return nil
	}
	c.finished = true
	if p := c.Pending(); len(p) > 0 {
		c.Report.Problems = append(c.Report.Problems, "finished after the timeout; not up: "+strings.Join(p, ", "))
	}
	var err error
	if s := c.session; s != nil {
		c.session = nil
		if ferr := s.Finish(); ferr != nil {
			err = fmt.Errorf("finish luod's LUO session: %w", ferr)
		}
		s.Close()
	}
	c.Report.Add("finished", "", now)
	return err
}

// Finished reports whether Finish ran.
func (c *Completion) Finished() bool { return c.finished }

// CompletionState is a Completion carried across a re-exec.
type CompletionState struct {
	SessionFD int       `json:"session_fd,omitempty"` // luod's incoming session
	Pending   []string  `json:"pending,omitempty"`
	Failed    []string  `json:"failed,omitempty"`
	Deadline  time.Time `json:"deadline,omitzero"`
	Terms
}

// Save returns c's state for a re-exec; fdOf gives the number the next
// luod inherits a file under.
func (c *Completion) Save(fdOf func(*os.File) int) *CompletionState {
	st := &CompletionState{Pending: c.Pending(), Failed: c.failed, Deadline: c.Deadline, Terms: c.Terms}
	if c.session != nil {
		st.SessionFD = fdOf(c.session.File())
	}
	return st
}

// ResumeCompletion rebuilds a Completion saved by the luod that
// re-executed into this one; s is its session, adopted from SessionFD (nil
// when there is none).
func ResumeCompletion(st *CompletionState, s Session, rep *Report) *Completion {
	if rep == nil {
		rep = &Report{}
	}
	return newCompletion(s, rep, st.Terms, st.Pending, st.Failed, st.Deadline)
}

// HeldState is luod's incoming session kept unfinished for good, carried
// across a re-exec: the manifest in it could not be used (Why), so nothing
// more is discarded.
type HeldState struct {
	SessionFD int    `json:"session_fd"`
	Why       string `json:"why"`
}
