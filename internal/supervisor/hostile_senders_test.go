//go:build linux

package supervisor_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo/internal/cgroup"
	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/luodtest"
)

const (
	mainPIDRefused = "MAINPID= refused: process is not part of the unit"
	noUnit         = "cannot find unit for notify message, ignoring"
)

// TestHostileSenders sends from processes that are not the actor's main
// process: the test itself and a process that belong to no unit, a process
// moved into the bystander's cgroup; and MAINPID= naming processes that
// are not the sender's unit's, from a root and from a non-root service.
func TestHostileSenders(t *testing.T) {
	h := startHostile(t)
	d := h.d
	notifyPath := filepath.Join(d.Runtime, "notify")

	t.Run("from the test process, in no unit", func(t *testing.T) {
		b := h.before(t)
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		defer unix.Close(p[0])
		sendFrom(t, notifyPath, "FDSTORE=1\nFDNAME=stranger\nREADY=1", p[1])
		unix.Close(p[1])
		awaitEOF(t, p[0])
		h.after(t, b, nil)
		logLine(t, d, b.log, noUnit, fmt.Sprintf("pid=%d", os.Getpid()))
		logLine(t, d, b.log, extraFDs, fmt.Sprintf("pid=%d", os.Getpid()), "fds=1")
	})

	outsider, outsiderCtl := startOutsider(t, d)
	t.Run("from another process in no unit", func(t *testing.T) {
		b := h.before(t)
		mustRaw(t, outsiderCtl, "FDSTORE=1\nFDNAME=stranger\nSTOPPING=1", "memfd,pipe")
		ctlOK(t, outsiderCtl, "await-eof raw1")
		h.after(t, b, nil)
		logLine(t, d, b.log, noUnit, fmt.Sprintf("pid=%d", outsider))
		logLine(t, d, b.log, extraFDs, fmt.Sprintf("pid=%d", outsider), "fds=2")
	})

	t.Run("from a process moved into another unit's cgroup", func(t *testing.T) {
		moveIntoCgroupOf(t, outsider, h.bystander.MainPID)
		b := h.before(t)
		mustRaw(t, outsiderCtl, "FDSTORE=1\nFDNAME=planted\nMAINPID="+strconv.Itoa(outsider), "memfd,pipe")
		ctlOK(t, outsiderCtl, "await-eof raw1")
		h.after(t, b, nil)
		logLine(t, d, b.log, notAllowed, strconv.Itoa(h.bystander.MainPID), "unit="+bystanderUnit, fmt.Sprintf("pid=%d", outsider))
	})

	// A unit whose processes the others name, and which adopts one of its
	// own as its main process.
	d.WriteUnit("adopt.service", svc("-ctl @DIR@/adopt.ctl"))
	d.MustCall(control.MethodReload, nil, nil)
	d.MustCall(control.MethodStartUnit, control.UnitName{Name: "adopt.service"}, nil)
	adoptCtl := filepath.Join(d.Dir, "adopt.ctl")
	sleeper, _ := strconv.Atoi(ctlOK(t, adoptCtl, "spawn"))
	if sleeper == 0 {
		t.Fatal("no sleeper")
	}

	mainpid := []struct {
		name, value string
		log         []string
	}{
		{"MAINPID= of luod", strconv.Itoa(d.PID()), []string{mainPIDRefused, unitActor, fmt.Sprintf("pid=%d", d.PID())}},
		{"MAINPID=1", "1", []string{mainPIDRefused, unitActor, "pid=1"}},
		{"MAINPID= of no process", "2147483646", []string{mainPIDRefused, unitActor, "pid=2147483646"}},
		{"MAINPID= of another unit's main process", strconv.Itoa(h.bystander.MainPID), []string{mainPIDRefused, unitActor, fmt.Sprintf("pid=%d", h.bystander.MainPID)}},
		{"MAINPID= of another unit's other process", strconv.Itoa(sleeper), []string{mainPIDRefused, unitActor, fmt.Sprintf("pid=%d", sleeper)}},
		{"MAINPID= of a process in no unit", strconv.Itoa(os.Getpid()), []string{mainPIDRefused, unitActor, fmt.Sprintf("pid=%d", os.Getpid())}},
		{"MAINPID=0", "0", []string{"failed to parse MAINPID=0 field in notification message, ignoring", unitActor}},
		{"MAINPID=-1", "-1", []string{"failed to parse MAINPID=-1 field in notification message, ignoring", unitActor}},
		{"MAINPID=2^31", "2147483648", []string{"failed to parse MAINPID=2147483648 field in notification message, ignoring", unitActor}},
	}
	for _, c := range mainpid {
		t.Run(c.name+" from a root service", func(t *testing.T) {
			b := h.before(t)
			mustRaw(t, h.actorCtl, "MAINPID="+c.value, "-")
			h.after(t, b, nil)
			logLine(t, d, b.log, c.log...)
		})
	}

	// The same from a service running as nobody.
	nobody := startNobodyActor(t, d)
	nobodyCtl := filepath.Join(d.Dir, "nobody.ctl")
	for _, c := range mainpid[:5] {
		t.Run(c.name+" from a service running as nobody", func(t *testing.T) {
			b := h.before(t)
			mustRaw(t, nobodyCtl, "MAINPID="+c.value, "-")
			h.after(t, b, nil)
			if u := d.Unit("nobody.service"); u.MainPID != nobody.MainPID || u.ActiveState != "active" {
				t.Errorf("nobody.service: pid %d %s, was %d", u.MainPID, u.ActiveState, nobody.MainPID)
			}
			want := append([]string{}, c.log...)
			want[1] = "unit=nobody.service"
			logLine(t, d, b.log, want...)
		})
	}

	t.Run("forged SCM_CREDENTIALS from a service running as nobody", func(t *testing.T) {
		b := h.before(t)
		ans := raw(t, nobodyCtl, "FDSTOREREMOVE=1\nFDNAME=keep", "-", "pid="+strconv.Itoa(h.bystander.MainPID))
		if !strings.Contains(ans, "operation not permitted") {
			t.Errorf("the kernel let nobody send with another pid: %q", ans)
		}
		h.after(t, b, nil)
	})

	t.Run("MAINPID= of a process of the same unit", func(t *testing.T) {
		// An orphan, which luod reaps (see TestHostileMainPIDNotAChild).
		sleeper, _ := strconv.Atoi(ctlOK(t, adoptCtl, "spawn orphan"))
		b := h.before(t)
		old := d.Unit("adopt.service").MainPID
		ctlOK(t, adoptCtl, fmt.Sprintf("mainpid %d", sleeper))
		if u := d.Unit("adopt.service"); u.MainPID != sleeper || u.ActiveState != "active" {
			t.Errorf("adopt.service: main pid %d %s, want %d active", u.MainPID, u.ActiveState, sleeper)
		}
		h.after(t, b, nil)
		logLine(t, d, b.log, "main PID changed", "unit=adopt.service", fmt.Sprintf("old=%d", old), fmt.Sprintf("new=%d", sleeper))
		d.MustCall(control.MethodStopUnit, control.UnitName{Name: "adopt.service"}, nil)
		for deadline := time.Now().Add(10 * time.Second); !gone(sleeper) || !gone(old); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("stopping adopt.service left %d or %d running", sleeper, old)
			}
		}
		h.bystanderUntouched(t)
	})
}

// TestHostileMainPIDNotAChild: a service makes a child of its own, which
// it reaps itself, its main process with MAINPID= (accepted: the child is
// in the unit). When that process exits, luod is not told (it is not
// luod's child) and keeps its pid as the unit's main PID: the unit stays
// active with no main process, a stop waits for TimeoutStopSec and then
// gives up, and once the pid is reused luod takes the new process's
// notifications for the unit's and signals it on stop. systemd watches
// such a main process through a pidfd.
func TestHostileMainPIDNotAChild(t *testing.T) {
	if testing.Short() {
		t.Skip("not in -short")
	}
	d := luodtest.Start(t, map[string]string{"adopt.service": svc("-ctl @DIR@/adopt.ctl") + "TimeoutStopSec=1s\n"})
	d.WaitUnit("adopt.service", "active", active)
	ctl := filepath.Join(d.Dir, "adopt.ctl")
	sleeper, _ := strconv.Atoi(ctlOK(t, ctl, "spawn"))
	ctlOK(t, ctl, fmt.Sprintf("mainpid %d", sleeper))
	if u := d.Unit("adopt.service"); u.MainPID != sleeper {
		t.Fatalf("MAINPID= of the unit's own process refused: %+v", u)
	}
	mustDo(t, syscall.Kill(sleeper, syscall.SIGKILL))
	for deadline := time.Now().Add(10 * time.Second); !gone(sleeper); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d did not die", sleeper)
		}
	}
	u := d.Unit("adopt.service")
	for deadline := time.Now().Add(5 * time.Second); u.MainPID == sleeper && time.Now().Before(deadline); u = d.Unit("adopt.service") {
		time.Sleep(20 * time.Millisecond)
	}
	if u.MainPID == sleeper {
		t.Errorf("5 s after its main process %d died, luod still has it as the main process: %s/%s", sleeper, u.ActiveState, u.SubState)
	}
}

// sendFrom sends payload with fd to the notify socket at path from the
// test process itself, then waits for a barrier.
func sendFrom(t *testing.T, path, payload string, fd int) {
	t.Helper()
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sock)
	to := &unix.SockaddrUnix{Name: path}
	if err := unix.Sendmsg(sock, []byte(payload), unix.UnixRights(fd), to, 0); err != nil {
		t.Fatal(err)
	}
	var b [2]int
	if err := unix.Pipe2(b[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(b[0])
	err = unix.Sendmsg(sock, []byte("BARRIER=1"), unix.UnixRights(b[1]), &unix.SockaddrUnix{Name: path}, 0)
	unix.Close(b[1])
	if err != nil {
		t.Fatal(err)
	}
	awaitEOF(t, b[0])
}

// awaitEOF waits (10 s at most) until the read end of a pipe sees
// end-of-file.
func awaitEOF(t *testing.T, fd int) {
	t.Helper()
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for deadline := time.Now().Add(10 * time.Second); ; {
		n, err := unix.Poll(pfd, 100)
		if err == nil && n > 0 && pfd[0].Revents&unix.POLLHUP != 0 {
			return
		}
		if err != nil && err != unix.EINTR {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("luod kept a copy of the pipe's write end")
		}
	}
}

// startOutsider runs a testsvc that belongs to no unit, with a ctl
// socket, and returns its pid and socket.
func startOutsider(t *testing.T, d *luodtest.Daemon) (int, string) {
	t.Helper()
	ctl := filepath.Join(d.Dir, "outsider.ctl")
	cmd := exec.Command(filepath.Join(d.Bin, "testsvc"), "-socket", filepath.Join(d.Runtime, "notify"), "-ready=false", "-ctl", ctl)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if ans, _ := luodtest.Ctl(ctl, "no-such-command"); strings.Contains(ans, "unknown command") {
			return cmd.Process.Pid, ctl
		}
		if time.Now().After(deadline) {
			t.Fatal("the outsider's ctl socket does not answer")
		}
	}
}

// moveIntoCgroupOf moves process pid into the cgroup v2 group of process
// of.
func moveIntoCgroupOf(t *testing.T, pid, of int) {
	t.Helper()
	group, err := cgroup.Of(of)
	if err != nil || group == "/" {
		t.Skipf("no cgroup v2 group for %d: %v", of, err)
	}
	mount := cgroup2Mount(t)
	if err := os.WriteFile(filepath.Join(mount, group, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		t.Fatal(err)
	}
	if g, _ := cgroup.Of(pid); g != group {
		t.Fatalf("%d is in %q, not %q", pid, g, group)
	}
}

// cgroup2Mount returns where the cgroup2 hierarchy is mounted.
func cgroup2Mount(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		before, after, ok := strings.Cut(sc.Text(), " - ")
		fields, fs := strings.Fields(before), strings.Fields(after)
		if ok && len(fields) >= 5 && len(fs) > 0 && fs[0] == "cgroup2" && fields[3] == "/" {
			return fields[4]
		}
	}
	t.Skip("no cgroup2 hierarchy")
	return ""
}

// startNobodyActor starts nobody.service, a testsvc with a ctl socket
// running as nobody, and returns it.
func startNobodyActor(t *testing.T, d *luodtest.Daemon) control.Unit {
	t.Helper()
	// nobody must reach the binaries and create its socket in d.Dir (see
	// TestExecEnvironment).
	openUpTo(d.Dir, d.Bin)
	os.Chmod(d.Dir, 0o777)
	d.WriteUnit("nobody.service", svc("-ctl @DIR@/nobody.ctl")+"User=nobody\nGroup=nogroup\n")
	d.MustCall(control.MethodReload, nil, nil)
	d.MustCall(control.MethodStartUnit, control.UnitName{Name: "nobody.service"}, nil)
	u := d.WaitUnit("nobody.service", "active", active)
	if st, err := os.Stat(fmt.Sprintf("/proc/%d", u.MainPID)); err != nil || st.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Fatalf("nobody.service does not run as nobody: %v", err)
	}
	return u
}

// openUpTo makes each of dirs and their parents up to the temporary
// directory (not beyond) mode 0755.
func openUpTo(dirs ...string) {
	tmp := filepath.Clean(os.TempDir())
	for _, start := range dirs {
		for dir := start; dir != tmp && dir != "/" && dir != "."; dir = filepath.Dir(dir) {
			os.Chmod(dir, 0o755)
		}
	}
}
