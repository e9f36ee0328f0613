//go:build linux

package supervisor

import (
	"fmt"
	"log/slog"
	"os"

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
		m.stranger(slog.LevelDebug, "notify sender exited before it could be attributed", "pid", msg.PID)
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
		if files := msg.TakeFiles(); len(files) > 0 {
			m.sayAbout(msg.PID, slog.LevelWarn, "got extra auxiliary fds with notification message, closing them", "fds", len(files))
			for _, f := range files {
				m.closer.close(f)
			}
		}
		msg.Close()
	}()
	if msg.Barrier {
		if ok, reason := msg.BarrierValid(); !ok {
			m.sayAbout(msg.PID, slog.LevelWarn, "notify: "+reason)
			for _, f := range msg.TakeFiles() {
				m.closer.close(f)
			}
			return
		}
		m.sayAbout(msg.PID, slog.LevelDebug, "received barrier notification message")
		// Every message before this one is handled: close the barrier's
		// fd, which the sender waits for (off the loop, as any fd a
		// service hands over).
		for _, f := range msg.TakeFiles() {
			m.closer.close(f)
		}
		return
	}
	u := m.attribute(msg)
	gone := false
	if u == nil {
		// The sender may be a main process whose exit was reaped before its
		// last message was read (systemd reads notifications first).
		if u = m.recentlyExited(msg.PID); u == nil {
			m.stranger(slog.LevelWarn, "cannot find unit for notify message, ignoring", "pid", msg.PID, "msg", msg)
			return
		}
		gone = true
	}
	if gone {
		m.lateNotify(u, msg)
		return
	}
	if ok, why := m.authorized(u, msg.PID); !ok {
		u.say(slog.LevelWarn, "got notification message, but "+why, "pid", msg.PID)
		return
	}
	u.say(slog.LevelDebug, "notification", "msg", msg)
	for _, p := range msg.Problems {
		u.say(slog.LevelWarn, "notify: "+p, "pid", msg.PID)
	}

	if a := u.state.Active(); msg.MainPID > 0 && msg.MainPID != u.mainPID && (a == Activating || a == Active || a == Deactivating) {
		// Only a process of the unit, whoever asks: a service (root or
		// not) must not make another unit's process its own.
		if m.owner(msg.MainPID) == u {
			u.say(slog.LevelInfo, "main PID changed", "old", u.mainPID, "new", msg.MainPID)
			u.mainPID = msg.MainPID
			m.watchMain(u)
		} else {
			u.say(slog.LevelWarn, "MAINPID= refused: process is not part of the unit", "pid", msg.MainPID)
		}
	}
	switch {
	case msg.Stopping:
		u.stopping = true
		if u.state == StateRunning || u.state == StateStart {
			u.say(slog.LevelInfo, "service is stopping on its own")
		}
	case msg.Ready && !u.stopping:
		u.ready()
	case msg.Reloading && !u.stopping:
		u.say(slog.LevelInfo, "service is reloading")
	}
	if msg.Status != nil && *msg.Status != u.status {
		u.status = *msg.Status
		u.say(slog.LevelDebug, "status", "status", u.status)
	}
	if msg.NotifyAccess != "" {
		u.notifyAccessOverride = msg.NotifyAccess
	}
	if msg.HasErrno {
		u.errno = msg.Errno
	}
	if msg.HasExtendTimeout {
		u.extendTimer(msg.ExtendTimeout())
	}
	if a := u.state.Active(); msg.RestartReset && (a == Active || a == Deactivating) {
		u.consecutive = 0
	}
	switch {
	case msg.FDStoreRemove:
		if !msg.HasFDName || !msg.FDNameValid {
			break // logged with msg.Problems
		}
		for _, e := range u.store.RemoveName(msg.FDName) {
			m.log.Debug("got explicit request to remove fd, closing", "unit", u.name, "fdname", e.Name)
			u.closeEntry(e)
		}
		u.unpinIfEmpty()
	case msg.FDStore: // an invalid FDNAME= is logged with msg.Problems
		m.storeFiles(u, msg.StoreName(), msg.TakeFiles(), msg.FDPoll, fdstore.OriginNotify)
	}
}

// lateNotify handles a message of a main process that already exited: its
// status and fd-store changes count (a store the unit's stop released
// stays released), its state changes do not.
func (m *Manager) lateNotify(u *Unit, msg *notify.Message) {
	u.say(slog.LevelDebug, "notification from an exited main process", "msg", msg)
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
		u.say(slog.LevelInfo, "closing fds stored after the unit stopped: its store was released", "fds", len(msg.Files))
		u.refuse(msg.StoreName(), "stored after the unit stopped, its store released", len(msg.Files))
		for _, f := range msg.TakeFiles() {
			m.closer.close(f)
		}
	case msg.FDStore:
		m.storeFiles(u, msg.StoreName(), msg.TakeFiles(), msg.FDPoll, fdstore.OriginNotify)
	}
}
