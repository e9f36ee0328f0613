package supervisor

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"

	"github.com/liveupdate/luo/sdnotify"
)

// upstream is luod's own service manager, when luod runs as a service of
// one (systemd's Type=notify: $NOTIFY_SOCKET is set and luod is not PID 1).
// luod tells it its main PID and when it is ready, reloading and stopping,
// with a status line, as any notify service does. Without a manager every
// method does nothing, and so does a nil *upstream. Safe for concurrent use.
//
// $NOTIFY_SOCKET stays in luod's environment, so that a re-executed luod
// tells the manager it is ready again; no unit inherits it (each unit's
// environment is built afresh, with luod's own socket).
type upstream struct {
	n    *sdnotify.Notifier
	log  *slog.Logger
	once sync.Once // the first send error is logged, not the next ones

	// The mirror of the units' stores (mirror.go): the size of luod's own
	// store ($FDSTORE), the number of the next luod-N, the generation of
	// the map stored last, and whether the map must be stored again.
	// Used in the loop only.
	storeMax     int
	next, mapGen uint64
	dirty        bool
	// lastStatus is the last STATUS= sent (loop only).
	lastStatus string
}

// openUpstream opens the manager's socket named by $NOTIFY_SOCKET; PID 1
// has no manager.
func openUpstream(pid1 bool, log *slog.Logger) *upstream {
	up := &upstream{log: log}
	if pid1 {
		return up
	}
	n, err := sdnotify.Open()
	switch {
	case errors.Is(err, sdnotify.ErrNoSocket):
	case err != nil:
		log.Warn("cannot notify luod's own service manager ($NOTIFY_SOCKET)", "err", err)
	default:
		up.n = n
		up.storeMax, _ = strconv.Atoi(os.Getenv("FDSTORE"))
	}
	return up
}

func (up *upstream) send(state ...string) {
	if up == nil || up.n == nil {
		return
	}
	up.warnOnce("cannot notify luod's own service manager", up.n.Notify(state...))
}

// warnOnce logs the first failure to reach the manager, not the next ones
// (a manager gone away would fail every send).
func (up *upstream) warnOnce(msg string, err error, args ...any) {
	if err != nil {
		up.once.Do(func() { up.log.Warn(msg, append(args, "err", err)...) })
	}
}

// ready says luod is up (or back from a reload or a re-exec), with its
// main PID and status.
func (up *upstream) ready(status string) {
	up.setStatus(status)
	up.send("READY=1", fmt.Sprintf("MAINPID=%d", os.Getpid()), "STATUS="+status)
}

// setStatus records status as the last one sent.
func (up *upstream) setStatus(status string) {
	if up != nil {
		up.lastStatus = status
	}
}

// reloading says luod is re-reading its units; ready follows.
func (up *upstream) reloading() {
	if up == nil || up.n == nil {
		return
	}
	up.warnOnce("cannot notify luod's own service manager", up.n.Reloading())
}

// stopping says luod is stopping its units to exit.
func (up *upstream) stopping(status string) {
	up.setStatus(status)
	up.send("STOPPING=1", "STATUS="+status)
}

// status sets the status line.
func (up *upstream) status(status string) {
	up.setStatus(status)
	up.send("STATUS=" + status)
}

// follow sets the status line when it changed: `systemctl status luod`
// then shows how many units are active and failed as they change, not as
// they were at the last READY=1. status is only asked when there is a
// manager to tell.
func (up *upstream) follow(status func() string) {
	if up == nil || up.n == nil {
		return
	}
	if s := status(); s != up.lastStatus {
		up.status(s)
	}
}

// close releases the socket.
func (up *upstream) close() {
	if up != nil && up.n != nil {
		up.n.Close()
	}
}

// statusLine is luod's status for its own manager: how many units and how
// many of them are active and failed. Called in the loop.
func (m *Manager) statusLine() string {
	var n, active, failed int
	for _, u := range m.units {
		if u.def == nil {
			continue
		}
		n++
		switch u.state.Active() {
		case Active:
			active++
		case Failed:
			failed++
		}
	}
	return fmt.Sprintf("%d units: %d active, %d failed", n, active, failed)
}
