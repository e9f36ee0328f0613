package supervisor

import (
	"fmt"
	"slices"
)

// ActiveState is a unit's ActiveState, as in systemd.
type ActiveState string

// The active states.
const (
	Inactive     ActiveState = "inactive"
	Activating   ActiveState = "activating"
	Active       ActiveState = "active"
	Deactivating ActiveState = "deactivating"
	Failed       ActiveState = "failed"
)

// State is a unit's state: systemd's SubState of a service. Each belongs
// to one ActiveState.
type State string

// The states of a unit.
const (
	StateDead        State = "dead"                  // inactive: no process, empty store
	StatePinned      State = "dead-resources-pinned" // inactive: no process, the store holds fds
	StateStart       State = "start"                 // activating: started, not READY yet (notify, oneshot)
	StateRunning     State = "running"               // active: the main process runs
	StateExited      State = "exited"                // active: a oneshot finished, RemainAfterExit=yes
	StateStopSigterm State = "stop-sigterm"          // deactivating: KillSignal= sent
	StateStopSigkill State = "stop-sigkill"          // deactivating: SIGKILL sent after TimeoutStopSec=
	StateAutoRestart State = "auto-restart"          // activating: waiting RestartSec= to start again
	StateFailed      State = "failed"                // failed: no process
)

// activeOf maps each state to its ActiveState.
var activeOf = map[State]ActiveState{
	StateDead:        Inactive,
	StatePinned:      Inactive,
	StateStart:       Activating,
	StateRunning:     Active,
	StateExited:      Active,
	StateStopSigterm: Deactivating,
	StateStopSigkill: Deactivating,
	StateAutoRestart: Activating,
	StateFailed:      Failed,
}

// transitions lists, for each state, the states a unit may move to from
// it. Every state change goes through setState, which refuses the others.
var transitions = map[State][]State{
	// Started (notify/oneshot: start, simple: running), failed to start,
	// or given a store (after a live update).
	StateDead:   {StateStart, StateRunning, StateFailed, StatePinned},
	StatePinned: {StateStart, StateRunning, StateFailed, StateDead},
	// READY=1 or a oneshot's last command; stopped or timed out; exited.
	StateStart:   {StateRunning, StateExited, StateStopSigterm, StateAutoRestart, StateDead, StatePinned, StateFailed},
	StateRunning: {StateStopSigterm, StateAutoRestart, StateDead, StatePinned, StateFailed},
	StateExited:  {StateDead, StatePinned},
	// The stop ends in SIGKILL, or with the main process gone.
	StateStopSigterm: {StateStopSigkill, StateAutoRestart, StateDead, StatePinned, StateFailed},
	StateStopSigkill: {StateAutoRestart, StateDead, StatePinned, StateFailed},
	// RestartSec= passed (or the start failed), or stopped meanwhile.
	StateAutoRestart: {StateStart, StateRunning, StateDead, StatePinned, StateFailed},
	StateFailed:      {StateStart, StateRunning, StateDead, StatePinned},
}

// Active returns the ActiveState s belongs to.
func (s State) Active() ActiveState { return activeOf[s] }

// CanBecome reports whether a unit in state s may move to t.
func (s State) CanBecome(t State) bool { return slices.Contains(transitions[s], t) }

// ParseState returns the State named name (a SubState name).
func ParseState(name string) (State, error) {
	s := State(name)
	if _, ok := activeOf[s]; !ok {
		return "", fmt.Errorf("unknown unit state %q", name)
	}
	return s, nil
}
