//go:build linux

package supervisor

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/liveupdate/luo/internal/fdstore"
	"github.com/liveupdate/luo/internal/unit"
)

// ActiveState values, as in systemd.
const (
	stateInactive     = "inactive"
	stateActivating   = "activating"
	stateActive       = "active"
	stateDeactivating = "deactivating"
	stateFailed       = "failed"
)

// SubState values, as in systemd's service sub-states.
const (
	subDead        = "dead"
	subPinned      = "dead-resources-pinned"
	subStart       = "start"
	subRunning     = "running"
	subExited      = "exited"
	subStopSigterm = "stop-sigterm"
	subStopSigkill = "stop-sigkill"
	subAutoRestart = "auto-restart"
	subFailed      = "failed"
)

// Results, as in systemd.
const (
	resultSuccess   = "success"
	resultExit      = "exit-code"
	resultSignal    = "signal"
	resultTimeout   = "timeout"
	resultExec      = "exec"
	resultResources = "resources"
)

// Unit is a unit's runtime state. Owned by the loop.
type Unit struct {
	m       *Manager
	name    string
	def     *unit.Unit // nil when the unit file is gone (store pinned)
	loadErr string

	active, sub string
	since       time.Time

	mainPID int
	sid     int // session of the unit's processes (pid of the first one)
	execIdx int // oneshot: command running

	status   string
	errno    int
	result   string
	exitCode int
	exitSig  syscall.Signal

	restarts             int  // automatic restarts, total
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
	// says while a live update stops the unit: if the update aborts, the
	// unit starts again with its store intact.
	holdStore bool

	timer         *time.Timer
	timerGen      int
	timerKind     string
	timerDeadline time.Time

	store *fdstore.Store
}

func newUnit(m *Manager, name string) *Unit {
	return &Unit{m: m, name: name, active: stateInactive, sub: subDead, since: time.Now(), store: fdstore.New(0)}
}

// setDef installs a (re)loaded definition.
func (u *Unit) setDef(d *unit.Unit) {
	u.def = d
	u.loadErr = ""
	for _, e := range u.store.SetMax(int(d.EffectiveFileDescriptorStoreMax())) {
		u.m.log.Warn(fmt.Sprintf("dropping stored fd %q to honor FileDescriptorStoreMax=%d", e.Name, d.EffectiveFileDescriptorStoreMax()), "unit", u.name)
		u.closeEntry(e)
	}
}

func (u *Unit) preserve() unit.Preserve {
	if u.def == nil {
		return unit.PreserveYes // pinned until the unit file appears
	}
	return u.def.FileDescriptorStorePreserve
}

// dead reports whether the unit has no process and nothing queued.
func (u *Unit) dead() bool {
	return (u.active == stateInactive || u.active == stateFailed) && !u.pendingStart
}

func (u *Unit) setState(active, sub string) {
	if u.active == active && u.sub == sub {
		return
	}
	if u.active != active {
		u.since = time.Now()
	}
	u.active, u.sub = active, sub
	attrs := []any{"unit", u.name, "state", active, "sub", sub}
	if u.mainPID != 0 {
		attrs = append(attrs, "pid", u.mainPID)
	}
	if (active == stateFailed || sub == subAutoRestart || active == stateInactive) && u.result != "" {
		attrs = append(attrs, "result", u.result)
	}
	u.m.log.Info("unit state", attrs...)
	u.m.unitChanged(u)
}

// start starts the unit unless it runs already. why is logged.
func (u *Unit) start(why string) {
	if u.def == nil {
		u.m.log.Warn("cannot start: unit file not found", "unit", u.name)
		return
	}
	switch {
	case u.active == stateDeactivating:
		u.pendingStart = true
		return
	case u.active == stateActivating && u.sub != subAutoRestart, u.active == stateActive:
		return
	}
	u.pendingStart = false
	u.stopping = false
	u.stopReason = ""
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
	switch u.def.Type {
	case unit.TypeSimple:
		u.readyAt = time.Now()
		u.setState(stateActive, subRunning)
	default:
		u.setState(stateActivating, subStart)
		if u.def.TimeoutStartSec > 0 {
			u.setTimer("start", u.def.TimeoutStartSec)
		}
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
	case u.active == stateActivating && u.sub == subAutoRestart:
		u.stopTimer()
		u.enterDead(false)
		return
	case u.mainPID == 0 && u.active != stateDeactivating:
		if u.active == stateActive { // oneshot exited, RemainAfterExit
			u.result = resultSuccess
			u.enterDead(false)
		}
		return
	case u.active == stateDeactivating:
		return
	}
	u.stopReason = reason
	sig := unit.DefaultKillSignal
	if u.def != nil {
		sig = u.def.KillSignal
	}
	u.m.log.Info("stopping", "unit", u.name, "pid", u.mainPID, "signal", sig.String(), "why", reason)
	u.m.killUnit(u, sig)
	u.setState(stateDeactivating, subStopSigterm)
	if t := u.stopTimeout(); t > 0 {
		u.setTimer("stop", t)
	} else {
		u.stopTimer()
	}
}

func (u *Unit) stopTimeout() time.Duration {
	if u.def == nil {
		return unit.DefaultTimeout
	}
	return u.def.TimeoutStopSec
}

// exited handles the exit of the main process.
func (u *Unit) exited(status syscall.WaitStatus) {
	pid := u.mainPID
	u.mainPID = 0
	code, sig := 0, syscall.Signal(0)
	switch {
	case status.Exited():
		code = status.ExitStatus()
	case status.Signaled():
		sig = status.Signal()
	}
	u.exitCode, u.exitSig = code, sig
	clean := code == 0 && sig == 0
	u.m.log.Info("main process exited", "unit", u.name, "pid", pid, "code", code, "signal", sigName(sig))

	if u.active == stateDeactivating {
		// Expected: we asked it to stop. The kill signal counts as clean.
		if u.result == "" {
			u.result = resultSuccess
		}
		u.stopTimer()
		u.enterDead(u.stopReason == "")
		return
	}
	if u.def != nil && u.def.Type == unit.TypeOneshot && u.active == stateActivating {
		ignore := u.def.ExecStart[u.execIdx].IgnoreFailure
		if clean || ignore {
			u.execIdx++
			if u.execIdx < len(u.def.ExecStart) {
				if err := u.spawn(); err != nil {
					u.m.log.Error("failed to start", "unit", u.name, "err", err)
					u.result = resultResources
					u.enterDead(true)
				}
				return
			}
			u.stopTimer()
			u.result = resultSuccess
			u.readyAt = time.Now()
			u.m.killStragglers(u)
			if u.def.RemainAfterExit {
				u.setState(stateActive, subExited)
				return
			}
			u.enterDead(true)
			return
		}
	}
	switch {
	case code == 203 || code == 200:
		u.result = resultExec
	case sig != 0:
		u.result = resultSignal
	case code != 0:
		u.result = resultExit
	default:
		u.result = resultSuccess
	}
	u.stopTimer()
	u.enterDead(true)
}

// enterDead moves the unit to dead, failed or auto-restart, and applies
// FileDescriptorStorePreserve=.
func (u *Unit) enterDead(allowRestart bool) {
	u.mainPID = 0
	u.m.killStragglers(u)
	u.stopping = false
	u.notifyAccessOverride = ""
	if allowRestart && !u.pendingStart && u.shouldRestart() {
		u.consecutive++
		u.restarts++
		delay := u.restartDelay()
		u.setState(stateActivating, subAutoRestart)
		u.setTimer("restart", delay)
		u.m.log.Info("scheduled restart", "unit", u.name, "in", delay.String(), "restarts", u.restarts)
		if u.preserve() == unit.PreserveNo && !u.holdStore {
			u.flushStore("FileDescriptorStorePreserve=no")
		}
		return
	}
	failed := u.result != resultSuccess && u.result != ""
	switch p := u.preserve(); {
	case u.holdStore:
	case p == unit.PreserveNo:
		u.flushStore("FileDescriptorStorePreserve=no")
	case p == unit.PreserveRestart:
		if !u.pendingStart {
			u.flushStore("FileDescriptorStorePreserve=restart and the unit stopped")
		}
	case p == unit.PreserveOnSuccess:
		if failed && !u.pendingStart {
			u.flushStore("FileDescriptorStorePreserve=on-success and the unit failed")
		}
	}
	u.setSID(0)
	if u.pendingStart {
		u.setState(stateInactive, subDead)
		u.start("queued start")
		return
	}
	switch {
	case failed:
		u.setState(stateFailed, subFailed)
	case u.store.Len() > 0:
		u.setState(stateInactive, subPinned)
	default:
		u.setState(stateInactive, subDead)
	}
	if u.def == nil && u.store.Len() == 0 {
		u.m.forget(u)
	}
}

func (u *Unit) shouldRestart() bool {
	if u.def == nil || u.stopReason != "" {
		return false
	}
	switch u.def.Restart {
	case unit.RestartAlways:
		return true
	case unit.RestartOnFailure:
		return u.result != resultSuccess
	}
	return false
}

// restartDelay is RestartSec= doubled for each consecutive automatic
// restart, up to 30s (or RestartSec= when that is longer).
func (u *Unit) restartDelay() time.Duration {
	d := u.def.RestartSec
	limit := max(30*time.Second, d)
	for i := 1; i < u.consecutive && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// ready handles READY=1.
func (u *Unit) ready() {
	if u.active == stateActivating && u.sub == subStart {
		u.stopTimer()
		u.readyAt = time.Now()
		u.setState(stateActive, subRunning)
	}
}

// timer kinds: "start", "stop", "kill", "restart".
type timerEvent struct {
	unit string
	gen  int
}

func (u *Unit) setTimer(kind string, d time.Duration) {
	u.stopTimer()
	u.timerGen++
	u.timerKind = kind
	u.timerDeadline = time.Now().Add(d)
	ev := timerEvent{unit: u.name, gen: u.timerGen}
	u.timer = time.AfterFunc(d, func() { u.m.events <- ev })
}

func (u *Unit) stopTimer() {
	if u.timer != nil {
		u.timer.Stop()
		u.timer = nil
	}
	u.timerGen++
	u.timerKind = ""
	u.timerDeadline = time.Time{}
}

// extendTimer handles EXTEND_TIMEOUT_USEC=: the running start or stop
// timeout now ends d from now, if that is later.
func (u *Unit) extendTimer(d time.Duration) {
	if u.timerKind != "start" && u.timerKind != "stop" {
		return
	}
	if deadline := time.Now().Add(d); deadline.After(u.timerDeadline) {
		kind := u.timerKind
		u.setTimer(kind, d)
	}
}

func (m *Manager) handleTimer(ev timerEvent) {
	u := m.units[ev.unit]
	if u == nil || u.timerGen != ev.gen {
		return
	}
	kind := u.timerKind
	u.timer, u.timerKind = nil, ""
	switch kind {
	case "start":
		m.log.Warn("start timed out", "unit", u.name)
		u.result = resultTimeout
		u.stop("start timeout")
		u.stopReason = "" // a timed-out start may restart
	case "stop":
		m.log.Warn("stop timed out, killing", "unit", u.name, "pid", u.mainPID)
		if u.result == "" {
			u.result = resultTimeout
		}
		m.killUnit(u, syscall.SIGKILL)
		u.setState(stateDeactivating, subStopSigkill)
		u.setTimer("kill", 10*time.Second)
	case "kill":
		// SIGKILL did not end it (uninterruptible sleep): give up on it.
		m.log.Error("main process survived SIGKILL, abandoning it", "unit", u.name, "pid", u.mainPID)
		u.result = resultTimeout
		u.enterDead(false)
	case "restart":
		u.start("auto-restart")
	}
}

// flushStore closes every entry of the store.
func (u *Unit) flushStore(why string) {
	es := u.store.Take()
	if len(es) == 0 {
		return
	}
	u.m.log.Info("releasing fd store", "unit", u.name, "fds", len(es), "why", why)
	for _, e := range es {
		u.closeEntry(e)
	}
}

func (u *Unit) closeEntry(e *fdstore.Entry) {
	u.m.poller.Unwatch(e)
	e.File.Close()
}

func sigName(s syscall.Signal) string {
	if s == 0 {
		return ""
	}
	return s.String()
}

// forget drops a unit whose file is gone and which holds nothing.
func (m *Manager) forget(u *Unit) {
	if m.units[u.name] == u {
		delete(m.units, u.name)
		m.log.Info("unit removed", "unit", u.name)
	}
}

// unitChanged is called on every state change; the update code watches
// READY for its report.
func (m *Manager) unitChanged(u *Unit) {
	if m.update != nil {
		m.update.unitChanged(m, u)
	}
}

// openFiles returns the store's files in order, for LISTEN_FDS.
func (u *Unit) storeFiles() ([]*os.File, []string) {
	var fs []*os.File
	var names []string
	for _, e := range u.store.Entries() {
		fs = append(fs, e.File)
		names = append(names, e.Name)
	}
	return fs, names
}
