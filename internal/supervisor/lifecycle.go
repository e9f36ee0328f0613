//go:build linux

package supervisor

import (
	"syscall"
	"time"

	"github.com/liveupdate/luo/internal/unit"
)

// exited handles the exit of the main process.
func (u *Unit) exited(status syscall.WaitStatus) {
	pid := u.mainPID
	u.mainPID = 0
	u.m.watchMain(u) // ends a watch
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

	if u.state.Active() == Deactivating {
		// Expected: we asked it to stop. The kill signal counts as clean.
		if u.result == "" {
			u.result = resultSuccess
		}
		u.stopTimer()
		u.enterDead(u.stopReason == "")
		return
	}
	if u.def != nil && u.def.Type == unit.TypeOneshot && u.state == StateStart {
		if clean || u.def.ExecStart[u.execIdx].IgnoreFailure {
			u.nextCommand()
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

// nextCommand runs a oneshot's next ExecStart=, or finishes it.
func (u *Unit) nextCommand() {
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
		u.setState(StateExited)
		return
	}
	u.enterDead(true)
}

// enterDead moves the unit to dead, pinned, failed or auto-restart, and
// applies FileDescriptorStorePreserve=.
func (u *Unit) enterDead(allowRestart bool) {
	u.mainPID = 0
	u.m.killStragglers(u)
	u.out.release()
	u.stopping = false
	u.notifyAccessOverride = ""
	if allowRestart && !u.pendingStart && u.shouldRestart() {
		u.consecutive++
		u.restarts++
		delay := u.restartDelay()
		u.setState(StateAutoRestart)
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
		u.setState(StateDead)
		u.start("queued start")
		return
	}
	switch {
	case failed:
		u.setState(StateFailed)
	case u.store.Len() > 0:
		u.setState(StatePinned)
	default:
		u.setState(StateDead)
	}
	if u.def == nil && u.store.Len() == 0 {
		u.m.forget(u)
	}
}

// storeReleased reports whether the last end of the unit's main process
// released its store (the rules of enterDead), so that what that process
// stored too late to be handled before its exit is not kept either.
func (u *Unit) storeReleased() bool {
	if u.holdStore || u.pendingStart {
		return false
	}
	switch u.preserve() {
	case unit.PreserveNo:
		return u.dead() || u.state == StateAutoRestart
	case unit.PreserveRestart:
		return u.dead()
	case unit.PreserveOnSuccess:
		return u.state == StateFailed
	}
	return false
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

// timerEvent fires a unit's timer: "start", "stop", "kill" or "restart".
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
		u.setTimer(u.timerKind, d)
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
		u.setState(StateStopSigkill)
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
