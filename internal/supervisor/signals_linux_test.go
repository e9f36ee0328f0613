//go:build linux

package supervisor

import (
	"io"
	"log/slog"
	"os"
	"slices"
	"syscall"
	"testing"
)

// TestSignalsHandOver: the stop signals queued when luod re-executes
// reach the new luod's queue through SignalsEnv, once each and in order,
// SIGCHLD and anything else in the variable left out.
func TestSignalsHandOver(t *testing.T) {
	old := &Signals{ch: make(chan os.Signal, 64)}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGHUP} {
		old.ch <- sig
	}
	pending := old.pending()
	if !slices.Equal(pending, []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP}) || len(old.ch) != 0 {
		t.Fatalf("pending = %v (%d left queued)", pending, len(old.ch))
	}
	v := signalsValue(pending)
	if v != "15,1" {
		t.Errorf("signalsValue = %q", v)
	}
	t.Setenv(SignalsEnv, v+",9,x")
	next := &Signals{ch: make(chan os.Signal, 64)}
	next.inherit(slog.New(slog.NewTextHandler(io.Discard, nil)))
	var got []os.Signal
	for len(next.ch) > 0 {
		got = append(got, <-next.ch)
	}
	if !slices.Equal(got, []os.Signal{syscall.SIGTERM, syscall.SIGHUP}) {
		t.Errorf("inherited %v, want SIGTERM, SIGHUP (SIGKILL and junk refused)", got)
	}
	if _, ok := os.LookupEnv(SignalsEnv); ok {
		t.Errorf("%s still set", SignalsEnv)
	}
}
