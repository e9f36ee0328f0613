package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Textfile writes reg's metrics to path, for node_exporter's textfile
// collector (the file is replaced atomically), at start and after each
// Changed, at most once per interval, until ctx is done.
type Textfile struct {
	path     string
	reg      *prometheus.Registry
	log      *slog.Logger
	interval time.Duration
	changed  chan struct{}
}

// NewTextfile makes a Textfile; run it with Run.
func NewTextfile(path string, reg *prometheus.Registry, interval time.Duration, log *slog.Logger) *Textfile {
	return &Textfile{path: path, reg: reg, log: log, interval: interval, changed: make(chan struct{}, 1)}
}

// Changed says that something the metrics show changed. It never blocks:
// changes that come while a write is due are written together.
func (t *Textfile) Changed() {
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// Run writes the file at start and after every change until ctx is done.
func (t *Textfile) Run(ctx context.Context) {
	failing := false
	for {
		err := prometheus.WriteToTextfile(t.path, t.reg)
		switch {
		case err != nil && !failing:
			t.log.Warn("cannot write the metrics textfile", "path", t.path, "err", err)
		case err == nil && failing:
			t.log.Info("metrics textfile written again", "path", t.path)
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return
		case <-time.After(t.interval):
		}
		select {
		case <-ctx.Done():
			return
		case <-t.changed:
		}
	}
}
