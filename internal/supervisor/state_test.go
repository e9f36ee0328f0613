package supervisor

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestStateMachine tries every pair of states on a unit: the transitions
// the table allows happen, every other one is refused, logged, and leaves
// the unit as it was.
func TestStateMachine(t *testing.T) {
	var states []State
	for s := range activeOf {
		states = append(states, s)
	}
	if len(states) != len(transitions) {
		t.Fatalf("%d states but transitions for %d", len(states), len(transitions))
	}
	allowed, refused := 0, 0
	for _, from := range states {
		for _, to := range states {
			if from == to {
				continue
			}
			var log bytes.Buffer
			m := &Manager{log: slog.New(slog.NewTextHandler(&log, nil)), units: map[string]*Unit{}}
			u := newUnit(m, "x.service")
			u.state = from
			ok := u.setState(to)
			if ok != from.CanBecome(to) {
				t.Errorf("%s -> %s: setState = %v, CanBecome = %v", from, to, ok, from.CanBecome(to))
			}
			if ok {
				allowed++
				if u.state != to {
					t.Errorf("%s -> %s: state is %s", from, to, u.state)
				}
				continue
			}
			refused++
			if u.state != from || !strings.Contains(log.String(), "illegal state transition") {
				t.Errorf("%s -> %s refused, but the state is %s and the log %q", from, to, u.state, log.String())
			}
		}
	}
	if allowed == 0 || refused == 0 {
		t.Errorf("%d allowed, %d refused", allowed, refused)
	}
	t.Logf("%d transitions allowed, %d refused", allowed, refused)
}

func TestStateNames(t *testing.T) {
	for s, a := range activeOf {
		got, err := ParseState(string(s))
		if err != nil || got != s || got.Active() != a {
			t.Errorf("ParseState(%q) = %v, %v (active %s)", s, got, err, got.Active())
		}
	}
	if _, err := ParseState("running-ish"); err == nil {
		t.Error("ParseState accepted an unknown name")
	}
}
