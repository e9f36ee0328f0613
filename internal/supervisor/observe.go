//go:build linux

package supervisor

import (
	"github.com/liveupdate/luo/internal/metrics"
)

// observeEvent asks the loop for a metrics.Snapshot. It changes nothing,
// so it does not count as a change (Config.Changed).
type observeEvent struct {
	fn   func()
	done chan struct{}
}

// Observe is luod's state for its metrics: the answers of GetManager,
// ListUnits, ListSessions and GetUpdateReport, taken together in one turn
// of the loop, and the updates' outcomes.
func (m *Manager) Observe() metrics.Snapshot {
	var s metrics.Snapshot
	done := make(chan struct{})
	m.events <- observeEvent{fn: func() {
		s.Manager = m.managerInfo()
		for _, u := range m.sortedUnits() {
			s.Units = append(s.Units, u.info())
		}
		s.Sessions = m.sessions().Sessions
		if m.report != nil {
			r := wireReport(m.report.Sorted())
			s.Report = &r
		}
		for _, o := range m.outcomes {
			s.Outcomes = append(s.Outcomes, metrics.Outcome{Kind: string(o.Kind), Result: o.Result, Count: o.Count})
		}
		if a := m.lastAbort; a != nil {
			s.LastAbort = &metrics.Abort{Kind: string(a.Kind), Phase: string(a.Phase), Result: a.Result, Time: a.Time}
		}
	}, done: done}
	<-done
	return s
}
