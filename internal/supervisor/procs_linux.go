//go:build linux

package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo/internal/cgroup"
)

// killUnit sends sig to the unit's processes: its main process and every
// process of its cgroup, or, without cgroups, of its process group and
// session.
func (m *Manager) killUnit(u *Unit, sig syscall.Signal) {
	if u.mainPID != 0 {
		syscall.Kill(u.mainPID, sig)
	}
	if g := m.group(u); g != nil {
		if err := g.Signal(sig); err != nil {
			m.log.Warn("cannot signal the unit's processes", "unit", u.name, "err", err)
		}
		return
	}
	if u.sid != 0 {
		syscall.Kill(-u.sid, sig)
		for _, pid := range m.sessionMembers(u.sid) {
			syscall.Kill(pid, sig)
		}
	}
}

// killStragglers SIGKILLs what is left of the unit's processes once its
// main process is gone (systemd's KillMode=control-group): its whole
// cgroup, or, without cgroups, its session.
func (m *Manager) killStragglers(u *Unit) {
	if g := m.group(u); g != nil {
		if pids, _ := g.Procs(); len(pids) > 0 {
			m.log.Info("killing remaining processes", "unit", u.name, "pids", fmt.Sprint(pids))
			if err := g.Kill(); err != nil {
				m.log.Warn("cannot kill the unit's processes", "unit", u.name, "err", err)
			}
		}
		return
	}
	if u.sid == 0 {
		return
	}
	syscall.Kill(-u.sid, syscall.SIGKILL)
	if left := m.sessionMembers(u.sid); len(left) > 0 {
		m.log.Info("killing remaining processes", "unit", u.name, "pids", fmt.Sprint(left))
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// group returns the unit's cgroup, creating it if needed; nil when luod
// has no cgroups (or the group cannot be made: that is logged).
func (m *Manager) group(u *Unit) *cgroup.Group {
	if m.cgroups == nil {
		return nil
	}
	if u.group == nil {
		g, err := m.cgroups.Group(u.name)
		if err != nil {
			m.log.Error("cannot create the unit's cgroup", "unit", u.name, "err", err)
			return nil
		}
		u.group = g
	}
	return u.group
}

// owner returns the unit a process belongs to: the unit whose cgroup it
// is in, or, without cgroups, the unit whose session it is in; nil when
// none.
func (m *Manager) owner(pid int) *Unit {
	if m.cgroups != nil {
		return m.units[m.cgroups.UnitOf(pid)]
	}
	if sid, _, ok := procSession(pid); ok {
		return m.bySID[sid]
	}
	return nil
}

// sessionMembers lists the live processes of session sid. One scan of
// /proc serves every unit for a few milliseconds (stopping 100 units at
// once must not read /proc 100 times); each pid taken from it is checked
// again before it is returned, so a pid reused since the scan is not.
func (m *Manager) sessionMembers(sid int) []int {
	if time.Since(m.procScan.at) > 20*time.Millisecond {
		m.procScan.at = time.Now()
		m.procScan.bySID = scanSessions()
	}
	var out []int
	for _, pid := range m.procScan.bySID[sid] {
		if s, state, ok := procSession(pid); ok && s == sid && state != 'Z' {
			out = append(out, pid)
		}
	}
	return out
}

// scanSessions maps session ids to the pids in /proc.
func scanSessions() map[int][]int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, state, ok := procSession(pid); ok && state != 'Z' {
			out[s] = append(out[s], pid)
		}
	}
	return out
}

// procSession reads the session id and state of pid from /proc/PID/stat.
func procSession(pid int) (sid int, state byte, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid pgrp session ...; comm may contain spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 4 {
		return 0, 0, false
	}
	sid, err = strconv.Atoi(f[3])
	if err != nil || len(f[0]) == 0 {
		return 0, 0, false
	}
	return sid, f[0][0], true
}

// reap collects every exited child (wait4(-1, WNOHANG)) and hands the
// exits of main processes to their units.
func (m *Manager) reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		if !ws.Exited() && !ws.Signaled() {
			continue
		}
		for _, u := range m.units {
			if u.mainPID == pid {
				m.exited[pid] = exitedMain{unit: u, at: time.Now()}
				u.exited(ws)
				break
			}
		}
	}
}

// exitedMain is a main process reaped a moment ago.
type exitedMain struct {
	unit *Unit
	at   time.Time
}

// exitedGrace is how long a reaped main process's notifications are still
// attributed to its unit.
const exitedGrace = 10 * time.Second

// recentlyExited returns the unit of a main process reaped within the
// grace period, forgetting older ones.
func (m *Manager) recentlyExited(pid int) *Unit {
	for p, e := range m.exited {
		if time.Since(e.at) > exitedGrace {
			delete(m.exited, p)
		}
	}
	if e, ok := m.exited[pid]; ok && m.units[e.unit.name] == e.unit {
		return e.unit
	}
	return nil
}

func becomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// raiseFDLimit lifts luod's own RLIMIT_NOFILE as far as the kernel allows
// (fs.nr_open): every stored fd is an open fd of luod.
func raiseFDLimit() (uint64, error) {
	n := uint64(1 << 20)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			n = v
		}
	}
	lim := unix.Rlimit{Cur: n, Max: n}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		// Not root: take what the hard limit allows.
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
		lim.Cur = lim.Max
		return lim.Cur, unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
	return n, nil
}
