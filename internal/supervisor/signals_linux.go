//go:build linux

package supervisor

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

type signals struct {
	ch   chan os.Signal
	stop func()
}

func (m *Manager) watchSignals() *signals {
	ch := make(chan os.Signal, 64)
	signal.Notify(ch, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	return &signals{ch: ch, stop: func() { signal.Stop(ch) }}
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
	if m.quit != nil {
		return
	}
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
