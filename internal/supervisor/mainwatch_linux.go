//go:build linux

package supervisor

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A service may name another of its processes its main process
// (MAINPID=), one that luod did not fork and cannot wait for: its parent
// is the service. luod then watches it through a pidfd, which becomes
// readable when the process exits, as systemd does; otherwise the unit
// would keep a dead main PID, and later take a process that reused it
// for its own.

// watchMain watches u's main process when luod cannot wait for it.
// Called in the loop whenever the main PID changes.
func (m *Manager) watchMain(u *Unit) {
	if u.mainWatch != nil {
		u.mainWatch.Close() // ends the previous watch
		u.mainWatch = nil
	}
	pid := u.mainPID
	if pid == 0 || parentOf(pid) == os.Getpid() {
		return // reaped by wait4
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		// Gone already (ESRCH): it exited before it could be watched.
		go func() { m.events <- funcEvent{fn: func() { m.mainGone(u, pid, nil) }, done: make(chan struct{})} }()
		return
	}
	f := os.NewFile(uintptr(fd), "pidfd "+strconv.Itoa(pid))
	u.mainWatch = f
	go func() {
		rc, err := f.SyscallConn()
		if err != nil {
			return
		}
		err = rc.Read(func(fd uintptr) bool {
			n, _ := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
			return n > 0
		})
		if err != nil {
			return // closed: the watch ended
		}
		m.events <- funcEvent{fn: func() { m.mainGone(u, pid, f) }, done: make(chan struct{})}
	}()
}

// mainGone handles the exit of a main process watched through a pidfd:
// its status is unknown, so it counts as a clean exit.
func (m *Manager) mainGone(u *Unit, pid int, watch *os.File) {
	if watch != nil && u.mainWatch != watch || u.mainPID != pid || m.units[u.name] != u {
		return // the watch ended, or the exit was handled already
	}
	u.mainWatch.Close()
	u.mainWatch = nil
	m.log.Info("main process exited; luod did not fork it, so its status is unknown", "unit", u.name, "pid", pid)
	u.exited(0)
}

// parentOf returns the parent of pid (0 when it cannot tell).
func parentOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}
