//go:build linux

package supervisor

import (
	"github.com/liveupdate/luo/internal/metrics"
)

// Observe is luod's state for its metrics: the answers of GetManager,
// ListUnits, ListSessions and GetUpdateReport, taken together in one turn
// of the loop, and the updates' outcomes. It changes nothing, so it is no
// change for Config.Changed.
func (m *Manager) Observe() metrics.Snapshot {
	var s metrics.Snapshot
	m.read(func() {
		for _, u := range m.sortedUnits() {
			s.Units = append(s.Units, u.info())
		}
		s.Manager = m.managerInfo(s.Units)
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
	})
	return s
}
