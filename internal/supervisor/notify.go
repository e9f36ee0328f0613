//go:build linux

package supervisor

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo/internal/fdstore"
	"github.com/liveupdate/luo/internal/notify"
	"github.com/liveupdate/luo/internal/unit"
)

// attribute finds the unit a notification comes from: the unit whose main
// process sent it (a main process cannot be replaced by another with the
// same pid before luod reaps it), else the unit whose cgroup (or, without
// cgroups, session) the sender is in, when the sender's pidfd (SCM_PIDFD)
// shows it still runs after that was read, so that a reused pid is not
// taken for it.
func (m *Manager) attribute(msg *notify.Message) *Unit {
	for _, u := range m.units {
		if u.mainPID == msg.PID {
			return u
		}
	}
	u := m.owner(msg.PID)
	if u == nil {
		return nil
	}
	if msg.PIDFD != nil && !alive(msg.PIDFD) {
		m.log.Debug("notify sender exited before it could be attributed", "pid", msg.PID)
		return nil
	}
	return u
}

// alive reports whether the process of a pidfd still runs.
func alive(pidfd *os.File) bool {
	ok := true
	withRawFd(pidfd, func(fd int) {
		ok = unix.PidfdSendSignal(fd, 0, nil, 0) == nil
	})
	return ok
}

// authorized applies NotifyAccess= (and a NOTIFYACCESS= override).
func (m *Manager) authorized(u *Unit, pid int) (bool, string) {
	access := unit.NotifyAccessNone
	if u.def != nil {
		access = u.def.EffectiveNotifyAccess()
	}
	switch u.notifyAccessOverride {
	case "none":
		access = unit.NotifyAccessNone
	case "main":
		access = unit.NotifyAccessMain
	case "exec":
		access = unit.NotifyAccessExec
	case "all":
		access = unit.NotifyAccessAll
	}
	switch access {
	case unit.NotifyAccessNone:
		return false, "reception is disabled (NotifyAccess=none)"
	case unit.NotifyAccessMain, unit.NotifyAccessExec:
		// luod runs no control processes, so exec means main.
		if u.mainPID == 0 {
			return false, "reception only permitted for main PID which is currently not known"
		}
		if pid != u.mainPID {
			return false, fmt.Sprintf("reception only permitted for main PID %d", u.mainPID)
		}
	}
	return true, ""
}

// handleNotify processes one datagram in systemd's order (docs/systemd-luo.md §A.3).
func (m *Manager) handleNotify(msg *notify.Message) {
	defer func() {
		if len(msg.Files) > 0 {
			m.log.Warn("got extra auxiliary fds with notification message, closing them", "pid", msg.PID, "fds", len(msg.Files))
		}
		msg.Close()
	}()
	if msg.Barrier {
		if ok, reason := msg.BarrierValid(); !ok {
			m.log.Warn("notify: "+reason, "pid", msg.PID)
		} else {
			m.log.Debug("received barrier notification message", "pid", msg.PID)
		}
		// Close everything else first: once the barrier fd is closed the
		// sender may look at what we hold.
		if pf := msg.TakePIDFD(); pf != nil {
			pf.Close()
		}
		for _, f := range msg.TakeFiles() {
			f.Close()
		}
		return
	}
	u := m.attribute(msg)
	gone := false
	if u == nil {
		// The sender may be a main process whose exit was reaped before its
		// last message was read (systemd reads notifications first).
		if u = m.recentlyExited(msg.PID); u == nil {
			m.log.Warn("cannot find unit for notify message, ignoring", "pid", msg.PID, "msg", msg.String())
			return
		}
		gone = true
	}
	if gone {
		m.lateNotify(u, msg)
		return
	}
	if ok, why := m.authorized(u, msg.PID); !ok {
		m.log.Warn("got notification message, but "+why, "unit", u.name, "pid", msg.PID)
		return
	}
	m.log.Debug("notification", "unit", u.name, "msg", msg.String())
	for _, p := range msg.Problems {
		m.log.Warn("notify: "+p, "unit", u.name, "pid", msg.PID)
	}

	if a := u.state.Active(); msg.MainPID > 0 && msg.MainPID != u.mainPID && (a == Activating || a == Active || a == Deactivating) {
		// Only a process of the unit, whoever asks: a service (root or
		// not) must not make another unit's process its own.
		if m.owner(msg.MainPID) == u {
			m.log.Info("main PID changed", "unit", u.name, "old", u.mainPID, "new", msg.MainPID)
			u.mainPID = msg.MainPID
		} else {
			m.log.Warn("MAINPID= refused: process is not part of the unit", "unit", u.name, "pid", msg.MainPID)
		}
	}
	switch {
	case msg.Stopping:
		u.stopping = true
		if u.state == StateRunning || u.state == StateStart {
			m.log.Info("service is stopping on its own", "unit", u.name)
		}
	case msg.Ready && !u.stopping:
		u.ready()
	case msg.Reloading && !u.stopping:
		m.log.Info("service is reloading", "unit", u.name)
	}
	if msg.Status != nil && *msg.Status != u.status {
		u.status = *msg.Status
		m.log.Info("status", "unit", u.name, "status", u.status)
	}
	if msg.NotifyAccess != "" {
		u.notifyAccessOverride = msg.NotifyAccess
	}
	if msg.HasErrno {
		u.errno = msg.Errno
	}
	if msg.HasExtendTimeout {
		u.extendTimer(time.Duration(msg.ExtendTimeoutUsec) * time.Microsecond)
	}
	if a := u.state.Active(); msg.RestartReset && (a == Active || a == Deactivating) {
		u.consecutive = 0
	}
	switch {
	case msg.FDStoreRemove:
		if !msg.HasFDName || !msg.FDNameValid {
			m.log.Warn("FDSTOREREMOVE=1 requested, but no valid file descriptor name passed, ignoring", "unit", u.name)
			break
		}
		for _, e := range u.store.RemoveName(msg.FDName) {
			m.log.Debug("got explicit request to remove fd, closing", "unit", u.name, "fdname", e.Name)
			u.closeEntry(e)
		}
		u.unpinIfEmpty()
	case msg.FDStore:
		if msg.HasFDName && !msg.FDNameValid {
			m.log.Warn("passed FDNAME= name is invalid, ignoring", "unit", u.name)
		}
		m.storeFiles(u, msg.StoreName(), msg.TakeFiles(), msg.FDPoll, fdstore.OriginNotify)
	}
}

// lateNotify handles a message of a main process that already exited: its
// status and fd-store changes count (a store the unit's stop released
// stays released), its state changes do not.
func (m *Manager) lateNotify(u *Unit, msg *notify.Message) {
	m.log.Debug("notification from an exited main process", "unit", u.name, "msg", msg.String())
	if u.def != nil && u.def.EffectiveNotifyAccess() == unit.NotifyAccessNone && u.notifyAccessOverride == "" {
		return
	}
	if msg.Status != nil {
		u.status = *msg.Status
	}
	switch {
	case msg.FDStoreRemove && msg.HasFDName && msg.FDNameValid:
		for _, e := range u.store.RemoveName(msg.FDName) {
			u.closeEntry(e)
		}
	case msg.FDStore && u.storeReleased():
		m.log.Info("closing fds stored after the unit stopped: its store was released", "unit", u.name, "fds", len(msg.Files))
	case msg.FDStore:
		m.storeFiles(u, msg.StoreName(), msg.TakeFiles(), msg.FDPoll, fdstore.OriginNotify)
	}
}
