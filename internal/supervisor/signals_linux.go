//go:build linux

package supervisor

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Signals are the signals luod handles (SIGTERM, SIGINT, SIGHUP,
// SIGCHLD), queued from the moment CatchSignals is called until Run
// handles them.
//
// Across luod's re-exec, the stop signals (SIGTERM, SIGINT, SIGHUP) the
// Go runtime queued for the loop are handed to the new luod in
// SignalsEnv. What Go does not let luod cover: a signal that arrives in
// the microseconds between that hand-over and the exec is lost, and one
// that reaches the new luod before CatchSignals kills it (the Go runtime
// unblocks SIGTERM, SIGINT and SIGHUP in every thread and exits on them
// until os/signal asks for them), as PID 1 it is ignored. luod's main
// calls CatchSignals first thing to keep that window short.
type Signals struct {
	ch chan os.Signal
}

// CatchSignals starts queueing the signals luod handles, for
// Config.Signals.
func CatchSignals() *Signals {
	s := &Signals{ch: make(chan os.Signal, 64)}
	signal.Notify(s.ch, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	return s
}

func (s *Signals) stop() { signal.Stop(s.ch) }

// stopSignals are the signals that stop or reload luod.
var stopSignals = []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP}

// SignalsEnv carries to a re-executed luod the signals the luod it
// replaces received and had not handled, such as a SIGTERM sent while it
// was writing its state: the Go runtime takes a signal in at once, and an
// exec would drop what it queued.
const SignalsEnv = "LUOD_PENDING_SIGNALS"

// pending takes the signals received and not handled yet out of the queue:
// SIGTERM, SIGINT and SIGHUP, once each, in the order received. SIGCHLD is
// left out: a luod reaps at start anyway.
func (s *Signals) pending() []syscall.Signal {
	var sigs []syscall.Signal
	for {
		select {
		case sig := <-s.ch:
			if n, ok := sig.(syscall.Signal); ok && n != syscall.SIGCHLD && !slices.Contains(sigs, n) {
				sigs = append(sigs, n)
			}
		default:
			return sigs
		}
	}
}

// requeue puts signals back in the queue (a re-exec that failed).
func (s *Signals) requeue(sigs []syscall.Signal) {
	for _, sig := range sigs {
		select {
		case s.ch <- sig:
		default:
		}
	}
}

// signalsValue is sigs for SignalsEnv: "15,1".
func signalsValue(sigs []syscall.Signal) string {
	var b strings.Builder
	for i, sig := range sigs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(sig)))
	}
	return b.String()
}

// inherit queues the signals of SignalsEnv, if set, and unsets it.
func (s *Signals) inherit(log *slog.Logger) {
	v, ok := os.LookupEnv(SignalsEnv)
	if !ok {
		return
	}
	os.Unsetenv(SignalsEnv)
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(f)
		sig := syscall.Signal(n)
		if err != nil || !slices.Contains(stopSignals, sig) {
			log.Warn("ignoring a signal carried across the re-exec", "value", f)
			continue
		}
		log.Info("handling a signal received while re-executing", "signal", sig.String())
		s.requeue([]syscall.Signal{sig})
	}
}

func (m *Manager) signal(sig os.Signal) {
	switch sig {
	case syscall.SIGCHLD:
		m.drainNotify()
		m.reap()
	case syscall.SIGHUP:
		go m.reload()
	case syscall.SIGTERM, syscall.SIGINT:
		m.log.Info("shutting down", "signal", sig.String())
		if m.cfg.PID1 {
			how := shutdownPowerOff
			if sig == syscall.SIGINT {
				how = shutdownReboot
			}
			m.shutdown(how)
			return
		}
		m.shutdown(shutdownExit)
	}
}

type shutdownKind int

const (
	shutdownExit shutdownKind = iota
	shutdownPowerOff
	shutdownReboot
)

// shutdown stops every unit (in parallel, honouring their timeouts) and then
// ends the loop: luod exits, or as PID 1 powers off or reboots.
func (m *Manager) shutdown(how shutdownKind) {
	if m.quit != nil || m.shuttingDown {
		return
	}
	m.shuttingDown = true
	m.up.stopping("stopping " + m.statusLine())
	for _, u := range m.sortedUnits() {
		u.stop("shutdown")
	}
	// Keep handling events until every unit is dead; the loop continues
	// with this waiter installed.
	w := &waiter{ch: make(chan struct{}), pred: func() bool {
		for _, u := range m.units {
			if u.running() {
				return false
			}
		}
		return true
	}}
	m.waiters = append(m.waiters, w)
	go func() {
		<-w.ch
		m.events <- funcEvent{fn: func() {
			m.quit = func() error {
				m.log.Info("all units stopped")
				m.up.close()
				m.control.Close()
				m.notify.Close()
				if m.cgroups != nil {
					if err := m.cgroups.Close(); err != nil {
						m.log.Warn("cgroups left behind", "err", err)
					}
				}
				switch how {
				case shutdownPowerOff:
					unix.Sync()
					return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
				case shutdownReboot:
					unix.Sync()
					return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
				}
				return nil
			}
		}, done: make(chan struct{})}
	}()
}

// setupPID1 mounts what a minimal system lacks.
func setupPID1(log *slog.Logger) error {
	mounts := []struct {
		fstype, target string
		flags          uintptr
		data           string
	}{
		{"proc", "/proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"devtmpfs", "/dev", unix.MS_NOSUID, "mode=0755"},
		{"tmpfs", "/run", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
		{"tmpfs", "/tmp", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		{"debugfs", "/sys/kernel/debug", 0, ""},
	}
	for _, mt := range mounts {
		if mounted(mt.target) {
			continue
		}
		if err := os.MkdirAll(mt.target, 0o755); err != nil {
			return fmt.Errorf("pid1: %w", err)
		}
		if err := unix.Mount(mt.fstype, mt.target, mt.fstype, mt.flags, mt.data); err != nil && !errors.Is(err, unix.EBUSY) {
			log.Warn("pid1: mount failed", "target", mt.target, "err", err)
		}
	}
	if err := loopbackUp(); err != nil {
		log.Warn("pid1: cannot bring up the loopback interface", "err", err)
	}
	return nil
}

// loopbackUp brings up lo, as systemd does at boot (loopback_setup()):
// services, and luod's own metrics, may listen on 127.0.0.1.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	if ifr.Uint16()&unix.IFF_UP != 0 {
		return nil
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// mounted reports whether dir is a mount point (a different device than
// its parent, or the root of a filesystem of its own).
func mounted(dir string) bool {
	var st, pst unix.Stat_t
	if unix.Stat(dir, &st) != nil || unix.Stat(dir+"/..", &pst) != nil {
		return false
	}
	return st.Dev != pst.Dev || st.Ino == pst.Ino
}

func rawFd(f *os.File) (uintptr, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var fd uintptr
	if err := rc.Control(func(x uintptr) { fd = x }); err != nil {
		return 0, err
	}
	return fd, nil
}

// withRawFd runs fn with f's fd, keeping it valid meanwhile.
func withRawFd(f *os.File, fn func(fd int)) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) { fn(int(fd)) })
}
