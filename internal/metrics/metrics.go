// Package metrics exports luod's state to Prometheus. At every scrape a
// collector reads a Snapshot of luod, made of the answers its control API
// gives luoctl (so `luoctl --json` and /metrics agree), and turns it into
// the luod_* metrics. Serve answers scrapes on /metrics; Textfile writes
// the same metrics for node_exporter's textfile collector whenever luod
// says something changed.
//
// Imported by luod only (cmd/luod); the supervisor fills a Snapshot.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveupdate/luo/internal/control"
)

// Snapshot is luod's state at one moment, as the control API describes it.
type Snapshot struct {
	Manager control.Manager
	Units   []control.Unit
	// Sessions are the LUO sessions luod knows of (ListSessions).
	Sessions []control.Session
	// Report is the last update's report (GetUpdateReport), nil before
	// the first.
	Report *control.Report
	// Outcomes count the updates since the last cold boot by kind and
	// result: ok, lost, problems, rolled-back, refused, aborted.
	Outcomes []Outcome
	// LastAbort is the last update that ended before the point of no
	// return, nil if none did.
	LastAbort *Abort
}

// Outcome counts the updates of one kind with one result.
type Outcome struct {
	Kind, Result string
	Count        int
}

// Abort is an update that ended before the point of no return.
type Abort struct {
	Kind, Phase, Result string
	Time                time.Time
}

// Source gives the current Snapshot; it is called at every scrape.
type Source func() Snapshot

// NewRegistry is a registry of luod's metrics read from src, and nothing
// else (the Go runtime's and the process's are added by Handler).
func NewRegistry(src Source) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(&collector{src: src})
	return r
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("luod_"+name, help, labels, nil)
}

// The metrics. Per unit ones carry the label unit; the last update's
// carry kind.
var (
	infoDesc        = desc("info", "luod's version, always 1.", "version")
	startDesc       = desc("start_time_seconds", "When this luod started (kept across its re-exec), in Unix seconds.")
	reexecsDesc     = desc("reexecs_total", "Times luod re-executed itself since it started.")
	liveUpdatesDesc = desc("live_updates_total", "kexec live updates since the last cold boot.")
	updatingDesc    = desc("updating", "1 while an update (or a staging) runs.")
	unitsDesc       = desc("units", "Units luod knows.")
	sessionsDesc    = desc("luo_sessions", "LUO sessions luod holds: its own incoming ones and those in the units' fd stores.", "direction")
	preserveDesc    = desc("preserve_bytes", "Bytes of memfds a kexec live update would pin in memory for the next kernel, all units together.")
	preserveMaxDesc = desc("preserve_max_bytes", "The host's limit on luod_preserve_bytes (--preserve-max-bytes); absent when there is none.")
	luoDesc         = desc("luo_available", "1 when this kernel can do a live update (LUO device present and liveupdate=on).")

	unitStateDesc     = desc("unit_state", "The unit's active state: 1 for the current one, 0 for the others.", "unit", "state")
	unitRestartsDesc  = desc("unit_restarts_total", "Automatic restarts of the unit.", "unit")
	unitLimitDesc     = desc("unit_start_limit_hits_total", "Starts of the unit refused by its start limit.", "unit")
	unitEntriesDesc   = desc("unit_fdstore_entries", "Entries in the unit's fd store.", "unit")
	unitMaxDesc       = desc("unit_fdstore_max_entries", "The unit's FileDescriptorStoreMax=.", "unit")
	unitBytesDesc     = desc("unit_fdstore_bytes", "Size of the files in the unit's fd store (memfds and regular files).", "unit")
	unitSurvivesDesc  = desc("unit_fdstore_kexec_survivors", "Entries of the unit's fd store a kexec live update would carry.", "unit")
	unitRefusedDesc   = desc("unit_fdstore_refused_total", "fds luod refused to store for the unit or dropped from its store.", "unit")
	unitPreserveDesc  = desc("unit_preserve_bytes", "Bytes of the unit's memfds a kexec live update would pin in memory for the next kernel in luod's session, decided without asking the kernel (a memfd the unit's own LUO session carries may count; an update plan asks).", "unit")
	unitPreserveMax   = desc("unit_preserve_max_bytes", "The unit's [X-LUO] PreserveMaxBytes=; absent when it has none.", "unit")
	unitOverLimitDesc = desc("unit_preserve_over_limit", "1 when the unit's memfds are over its PreserveMaxBytes=: an update would lose them.", "unit")

	updatesDesc      = desc("updates_total", "Updates since the last cold boot by kind (kexec, soft) and result (ok, lost, problems, rolled-back, refused, aborted).", "kind", "result")
	lastInfoDesc     = desc("last_update_info", "The last update that reached the next luod: 1, with its kind, result and kernels.", "kind", "result", "from", "to")
	lastCountDesc    = desc("last_update_count", "The number of the last update among those of its kind.", "kind")
	lastEventDesc    = desc("last_update_event_timestamp_seconds", "When each step of the last update happened, in Unix seconds: requested, loaded, stop-begin, last-stopped, preserved, reboot, kernel-up or exec, luod-up, restored, finished.", "kind", "event")
	lastPhaseDesc    = desc("last_update_phase_seconds", "Duration of each phase of the last update: from the step before to the step named, per luod_last_update_event_timestamp_seconds.", "kind", "phase")
	lastDurationDesc = desc("last_update_duration_seconds", "The last update from its request to its last step (finished, when it finished).", "kind")
	lastBlackout     = desc("last_update_unit_blackout_seconds", "How long each unit was down in the last update: from its main process's exit to READY=1.", "kind", "unit")
	lastLostDesc     = desc("last_update_unit_lost_entries", "fd-store entries each unit lost in the last update.", "kind", "unit")
	lastAbortDesc    = desc("last_aborted_update_timestamp_seconds", "When the last update that ended before the point of no return ended, with its kind, result (refused, aborted) and phase.", "kind", "result", "phase")
)

// activeStates are the values of luod_unit_state's state label.
var activeStates = []string{"active", "activating", "deactivating", "inactive", "failed"}

type collector struct{ src Source }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{infoDesc, startDesc, reexecsDesc, liveUpdatesDesc, updatingDesc, unitsDesc,
		sessionsDesc, preserveDesc, preserveMaxDesc, luoDesc, unitStateDesc, unitRestartsDesc, unitLimitDesc,
		unitEntriesDesc, unitMaxDesc, unitBytesDesc, unitSurvivesDesc, unitRefusedDesc, unitPreserveDesc,
		unitPreserveMax, unitOverLimitDesc, updatesDesc, lastInfoDesc, lastCountDesc, lastEventDesc,
		lastPhaseDesc, lastDurationDesc, lastBlackout, lastLostDesc, lastAbortDesc} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src()
	emit := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, t, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) { emit(d, prometheus.GaugeValue, v, labels...) }
	counter := func(d *prometheus.Desc, v float64, labels ...string) { emit(d, prometheus.CounterValue, v, labels...) }

	mg := s.Manager
	gauge(infoDesc, 1, mg.Version)
	gauge(startDesc, unixSeconds(mg.Started))
	counter(reexecsDesc, float64(mg.Reexecs))
	counter(liveUpdatesDesc, float64(mg.LiveUpdates))
	gauge(updatingDesc, boolValue(mg.Updating))
	gauge(unitsDesc, float64(mg.Units))
	gauge(luoDesc, boolValue(mg.LUO.Device && mg.LUO.Cmdline))
	gauge(preserveDesc, float64(mg.PreserveBytes))
	if mg.PreserveMaxBytes != nil {
		gauge(preserveMaxDesc, float64(*mg.PreserveMaxBytes))
	}
	dirs := map[string]int{"incoming": 0, "outgoing": 0}
	for _, se := range s.Sessions {
		dirs[se.Direction]++
	}
	for dir, n := range dirs {
		gauge(sessionsDesc, float64(n), dir)
	}

	for _, u := range s.Units {
		for _, st := range activeStates {
			gauge(unitStateDesc, boolValue(u.ActiveState == st), u.Name, st)
		}
		counter(unitRestartsDesc, float64(u.Restarts), u.Name)
		counter(unitLimitDesc, float64(u.StartLimitHits), u.Name)
		gauge(unitEntriesDesc, float64(u.FDStoreCount), u.Name)
		gauge(unitMaxDesc, float64(u.FDStoreMax), u.Name)
		gauge(unitBytesDesc, float64(u.FDStoreBytes), u.Name)
		gauge(unitSurvivesDesc, float64(u.FDStoreSurvives), u.Name)
		counter(unitRefusedDesc, float64(u.FDStoreRefused), u.Name)
		gauge(unitPreserveDesc, float64(u.PreserveBytes), u.Name)
		if u.PreserveMaxBytes != nil {
			gauge(unitPreserveMax, float64(*u.PreserveMaxBytes), u.Name)
			gauge(unitOverLimitDesc, boolValue(u.PreserveBytes > *u.PreserveMaxBytes), u.Name)
		}
	}

	for _, o := range s.Outcomes {
		counter(updatesDesc, float64(o.Count), o.Kind, o.Result)
	}
	if a := s.LastAbort; a != nil {
		gauge(lastAbortDesc, unixSeconds(a.Time), a.Kind, a.Result, a.Phase)
	}
	if r := s.Report; r != nil {
		collectReport(r, gauge)
	}
}

// collectReport exports the last update's report: its steps, the phases
// between them, each unit's blackout and losses.
func collectReport(r *control.Report, gauge func(*prometheus.Desc, float64, ...string)) {
	gauge(lastInfoDesc, 1, r.Kind, r.Result, r.From, r.To)
	gauge(lastCountDesc, float64(r.Count), r.Kind)
	var first, prev control.Event
	seen := map[string]bool{}
	for _, ev := range r.Timeline {
		if ev.Unit != "" || ev.Time.IsZero() || seen[ev.Name] {
			continue
		}
		seen[ev.Name] = true
		gauge(lastEventDesc, unixSeconds(ev.Time), r.Kind, ev.Name)
		if prev.Name != "" {
			gauge(lastPhaseDesc, ev.Time.Sub(prev.Time).Seconds(), r.Kind, ev.Name)
		} else {
			first = ev
		}
		prev = ev
	}
	if first.Name != "" {
		gauge(lastDurationDesc, prev.Time.Sub(first.Time).Seconds(), r.Kind)
	}
	for _, u := range r.Units {
		if u.Blackout > 0 {
			gauge(lastBlackout, u.Blackout.Seconds(), r.Kind, u.Name)
		}
		gauge(lastLostDesc, float64(len(u.Lost)), r.Kind, u.Name)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
