//go:build linux

package supervisor

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/liveupdate/luo/internal/cgroup"
	"github.com/liveupdate/luo/internal/fdstore"
	"github.com/liveupdate/luo/internal/unit"
	"github.com/liveupdate/luo/internal/update"
)

// Results, as in systemd.
const (
	resultSuccess    = "success"
	resultExit       = "exit-code"
	resultSignal     = "signal"
	resultTimeout    = "timeout"
	resultExec       = "exec"
	resultResources  = "resources"
	resultStartLimit = "start-limit-hit"
)

// Unit is a unit's runtime state. Owned by the loop.
type Unit struct {
	m       *Manager
	name    string
	def     *unit.Unit // nil when the unit file is gone (store pinned)
	loadErr string

	state State
	since time.Time // last change of state.Active()

	mainPID int
	sid     int // session of the unit's processes (pid of the first one)
	execIdx int // oneshot: command running

	status   string
	errno    int
	result   string
	exitCode int
	exitSig  syscall.Signal

	restarts int // automatic restarts, total
	// startLimitHits counts the starts the start limit refused.
	startLimitHits       int
	consecutive          int  // automatic restarts since the unit last stayed up
	stopping             bool // STOPPING=1 seen
	notifyAccessOverride string
	startedAt, readyAt   time.Time

	// pendingStart is a queued start to run once the unit is dead
	// (restart, or start while stopping).
	pendingStart bool
	// stopReason is why the unit is being stopped ("" when not).
	stopReason string
	// holdStore keeps the store whatever FileDescriptorStorePreserve=
	// says while an update stops the unit: if the update aborts, the unit
	// starts again with its store intact.
	holdStore bool

	timer         *time.Timer
	timerGen      int
	timerKind     string
	timerDeadline time.Time

	store *fdstore.Store
	// refused counts the fds luod refused to store or dropped from the
	// store (full, duplicate, store released, a reload lowering the limit,
	// POLLHUP), lastRefused is the last of them: a service cannot tell, so
	// luoctl status does.
	refused     int
	lastRefused refusal
	// group is the unit's cgroup (see Manager.group), nil without cgroups.
	group *cgroup.Group
	// logLimit bounds the log lines its service's input makes (see say).
	logLimit logLimit
	// out is the output its processes write (StandardOutput=journal).
	out *output
	// mainWatch is a pidfd of a main process luod cannot wait for (see
	// watchMain).
	mainWatch *os.File
	// startWindow and starts count the starts of the current
	// StartLimitIntervalSec= window (see startLimitHit).
	startWindow time.Time
	starts      int
}

// refusal is one fd luod refused or dropped.
type refusal struct {
	fdname, why string
	at          time.Time
}

// refuse records that n fds named fdname were refused or dropped, and why.
func (u *Unit) refuse(fdname, why string, n int) {
	u.refused += n
	u.lastRefused = refusal{fdname: fdname, why: why, at: time.Now()}
}

func newUnit(m *Manager, name string) *Unit {
	return &Unit{m: m, name: name, state: StateDead, since: time.Now(), store: fdstore.New(0), out: newOutput(name, m.log)}
}

// setDef installs a (re)loaded definition.
func (u *Unit) setDef(d *unit.Unit) {
	u.def = d
	u.loadErr = ""
	u.logLimit.interval, u.logLimit.burst = d.LogRateLimitIntervalSec, int(min(d.LogRateLimitBurst, 1<<31-1))
	u.out.setLimit(u.logLimit.interval, u.logLimit.burst)
	for _, e := range u.store.SetLimits(int(d.EffectiveFileDescriptorStoreMax()), d.LUOSessions) {
		u.m.log.Warn(fmt.Sprintf("dropping stored fd %q to honor FileDescriptorStoreMax=%d", e.Name, d.EffectiveFileDescriptorStoreMax()), "unit", u.name)
		u.refuse(e.Name, fmt.Sprintf("dropped to honor FileDescriptorStoreMax=%d", d.EffectiveFileDescriptorStoreMax()), 1)
		u.closeEntry(e)
	}
	u.unpinIfEmpty()
}

func (u *Unit) preserve() unit.Preserve {
	if u.def == nil {
		return unit.PreserveYes // pinned until the unit file appears
	}
	return u.def.FileDescriptorStorePreserve
}

// preserveMax is the unit's [X-LUO] PreserveMaxBytes=; a unit without
// its file has no limit, as it has no say.
func (u *Unit) preserveMax() update.Quota {
	if u.def == nil {
		return update.Quota{}
	}
	return update.QuotaOf(u.def.PreserveMaxBytes)
}

// running reports whether the unit has a process or is stopping one.
func (u *Unit) running() bool { return u.mainPID != 0 || u.state.Active() == Deactivating }

// dead reports whether the unit has no process and nothing queued.
func (u *Unit) dead() bool {
	a := u.state.Active()
	return (a == Inactive || a == Failed) && !u.pendingStart
}

// setState moves the unit to state to, if the state machine allows it
// (see transitions); an illegal transition is refused and logged as the
// bug it is. It reports whether the unit is in state to.
func (u *Unit) setState(to State) bool {
	from := u.state
	if from == to {
		return true
	}
	if !from.CanBecome(to) {
		u.m.log.Error("illegal state transition refused (a bug in luod)", "unit", u.name, "from", string(from), "to", string(to))
		return false
	}
	if from.Active() != to.Active() {
		u.since = time.Now()
	}
	u.state = to
	attrs := []any{"unit", u.name, "state", string(to.Active()), "sub", string(to)}
	if u.mainPID != 0 {
		attrs = append(attrs, "pid", u.mainPID)
	}
	if (to == StateFailed || to == StateAutoRestart || to.Active() == Inactive) && u.result != "" {
		attrs = append(attrs, "result", u.result)
	}
	u.m.log.Info("unit state", attrs...)
	u.m.unitChanged(u)
	return true
}

// start starts the unit unless it runs already. why is logged.
func (u *Unit) start(why string) {
	if u.def == nil {
		u.m.log.Warn("cannot start: unit file not found", "unit", u.name)
		return
	}
	switch u.state.Active() {
	case Deactivating:
		u.pendingStart = true
		return
	case Active:
		return
	case Activating:
		if u.state != StateAutoRestart {
			return
		}
	}
	u.pendingStart = false
	u.stopping = false
	u.stopReason = ""
	if u.startLimitHit(time.Now()) {
		u.m.log.Warn("start request repeated too quickly, refusing to start", "unit", u.name,
			"burst", u.def.StartLimitBurst, "interval", u.def.StartLimitIntervalSec.String())
		u.result = resultStartLimit
		u.startLimitHits++
		u.enterDead(false)
		return
	}
	if why != "auto-restart" {
		u.consecutive = 0
	}
	u.result = ""
	u.exitCode, u.exitSig = 0, 0
	u.status = ""
	u.execIdx = 0
	u.startedAt, u.readyAt = time.Now(), time.Time{}
	u.m.handOutLUOSessions(u)
	u.m.log.Debug("starting", "unit", u.name, "why", why)
	if err := u.spawn(); err != nil {
		u.m.log.Error("failed to start", "unit", u.name, "err", err)
		u.result = resultResources
		u.enterDead(false)
		return
	}
	if u.def.Type == unit.TypeSimple {
		u.readyAt = time.Now()
		u.setState(StateRunning)
		return
	}
	u.setState(StateStart)
	if u.def.TimeoutStartSec > 0 {
		u.setTimer("start", u.def.TimeoutStartSec)
	}
}

// startLimitHit applies StartLimitIntervalSec= and StartLimitBurst= to a
// start at now, as systemd's ratelimit_below: at most burst starts in a
// window that begins with the first of them. It reports whether this start
// is one too many.
func (u *Unit) startLimitHit(now time.Time) bool {
	if u.def == nil || !u.def.StartLimitEnabled() {
		return false
	}
	if u.startWindow.IsZero() || u.def.StartLimitIntervalSec != unit.Infinity && now.Sub(u.startWindow) > u.def.StartLimitIntervalSec {
		u.startWindow, u.starts = now, 0
	}
	if u.starts >= int(min(u.def.StartLimitBurst, 1<<31-1)) {
		return true
	}
	u.starts++
	return false
}

// resetFailed forgets that the unit failed and how often it started
// (systemctl reset-failed).
func (u *Unit) resetFailed() {
	u.startWindow, u.starts, u.consecutive = time.Time{}, 0, 0
	if u.state != StateFailed {
		return
	}
	u.result = ""
	if u.store.Len() > 0 {
		u.setState(StatePinned)
	} else {
		u.setState(StateDead)
	}
}

// spawn starts the current command.
func (u *Unit) spawn() error {
	cmd := u.def.ExecStart[u.execIdx]
	pid, err := u.m.spawn(u, cmd)
	if err != nil {
		return err
	}
	u.mainPID = pid
	if u.sid == 0 || u.execIdx == 0 {
		u.setSID(pid)
	}
	return nil
}

func (u *Unit) setSID(sid int) {
	if u.sid != 0 && u.m.bySID[u.sid] == u {
		delete(u.m.bySID, u.sid)
	}
	u.sid = sid
	if sid != 0 {
		u.m.bySID[sid] = u
	}
}

// stop stops the unit's processes: KillSignal, then SIGKILL after
// TimeoutStopSec. reason is logged.
func (u *Unit) stop(reason string) {
	u.pendingStart = false
	switch {
	case u.state == StateAutoRestart:
		u.stopTimer()
		u.enterDead(false)
		return
	case u.state.Active() == Deactivating:
		return
	case u.mainPID == 0:
		if u.state == StateExited { // oneshot exited, RemainAfterExit
			u.result = resultSuccess
			u.enterDead(false)
		}
		return
	}
	u.stopReason = reason
	sig := unit.DefaultKillSignal
	if u.def != nil {
		sig = u.def.KillSignal
	}
	u.m.log.Info("stopping", "unit", u.name, "pid", u.mainPID, "signal", sig.String(), "why", reason)
	u.m.killUnit(u, sig)
	u.setState(StateStopSigterm)
	if t := u.stopTimeout(); t > 0 {
		u.setTimer("stop", t)
	} else {
		u.stopTimer()
	}
}

// restart stops the unit and starts it again, or starts it if it does not
// run. It returns the condition of the restart being over.
func (u *Unit) restart() func() bool {
	gen := u.startedAt
	if u.mainPID != 0 || u.state.Active() == Active {
		u.stop("restart")
		u.pendingStart = true
	} else {
		u.start("requested")
	}
	return func() bool {
		refused := u.state == StateFailed && u.result == resultStartLimit
		return refused || u.startedAt != gen && u.settled() && u.state.Active() != Deactivating
	}
}

// settled reports whether a start is over: the unit is not activating, or
// only waiting to restart.
func (u *Unit) settled() bool { return u.state.Active() != Activating || u.state == StateAutoRestart }

func (u *Unit) stopTimeout() time.Duration {
	if u.def == nil {
		return unit.DefaultTimeout
	}
	return u.def.TimeoutStopSec
}

// ready handles READY=1.
func (u *Unit) ready() {
	if u.state == StateStart {
		u.stopTimer()
		u.readyAt = time.Now()
		u.setState(StateRunning)
	}
}

func sigName(s syscall.Signal) string {
	if s == 0 {
		return ""
	}
	return s.String()
}
