//go:build linux

package supervisor_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/luodtest"
)

// TestBadDatagramsLeakNothing sends 100,000 datagrams that luod must drop
// (embedded NUL, oversized, from no unit), each with an fd, and checks
// that luod's fd table is the same size afterwards.
func TestBadDatagramsLeakNothing(t *testing.T) {
	n := 100000
	if testing.Short() {
		n = 5000
	}
	d := luodtest.Start(t, map[string]string{"a.service": svc("") + "FileDescriptorStoreMax=4\n"}, "-log-level", "error")
	d.WaitUnit("a.service", "active", active)
	before := luodtest.FDs(t, d.PID())
	beforeList := fdList(t, d.PID())

	addr := &unix.SockaddrUnix{Name: filepath.Join(d.Runtime, "notify")}
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sock)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	big := []byte("FDSTORE=1\nSTATUS=" + strings.Repeat("x", 5000))
	for i := range n {
		var payload []byte
		switch i % 3 {
		case 0:
			payload = []byte("FDSTORE=1\nFDNAME=nul\x00x")
		case 1:
			payload = big
		case 2:
			payload = []byte("FDSTORE=1\nFDNAME=stranger") // from no unit
		}
		if err := unix.Sendmsg(sock, payload, unix.UnixRights(p[0], p[1]), addr, 0); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	// A barrier from the same socket: once luod closes its end, it has
	// processed every datagram sent before.
	var b [2]int
	if err := unix.Pipe2(b[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	if err := unix.Sendmsg(sock, []byte("BARRIER=1"), unix.UnixRights(b[1]), addr, 0); err != nil {
		t.Fatal(err)
	}
	unix.Close(b[1])
	pfd := []unix.PollFd{{Fd: int32(b[0]), Events: unix.POLLHUP}}
	for {
		n, err := unix.Poll(pfd, int((5 * time.Minute).Milliseconds()))
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			t.Fatalf("barrier: %v (n=%d)", err, n)
		}
		break
	}
	unix.Close(b[0])
	if after := luodtest.FDs(t, d.PID()); after != before {
		t.Fatalf("luod has %d fds after %d bad datagrams, %d before:\nbefore %v\nafter %v", after, n, before, beforeList, fdList(t, d.PID()))
	}
	if u := d.Unit("a.service"); u.FDStoreCount != 0 || u.ActiveState != "active" {
		t.Fatalf("unit changed: %+v", u)
	}
	t.Logf("%d bad datagrams with 2 fds each: luod's fd count stayed at %d", n, before)
}

// TestReexecUnderLoad re-executes luod three times while a service pushes
// 3000 memfds into its store, and checks that no fd, child or name is lost.
func TestReexecUnderLoad(t *testing.T) {
	const spam = 3000
	d := luodtest.Start(t, map[string]string{
		"spam.service":  svc(`-spam 3000 -report @DIR@/spam`) + "FileDescriptorStoreMax=5000\nFileDescriptorStorePreserve=yes\n",
		"quiet.service": svc(`-store keep=memfd:kept -store sock=socket`) + "FileDescriptorStoreMax=2\nFileDescriptorStorePreserve=yes\n",
	}, "-log-level", "info")
	d.WaitUnit("quiet.service", "active", active)
	pid := d.PID()
	first := d.ReadReport(filepath.Join(d.Dir, "spam"), 0)
	quietPID := d.Unit("quiet.service").MainPID
	for i := 1; i <= 3; i++ {
		var m control.Manager
		if err := d.Call(control.MethodReexec, nil, nil); err != nil {
			t.Fatalf("reexec %d: %v", i, err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := d.Call(control.MethodGetManager, nil, &m)
			if err == nil && m.Reexecs == i {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("reexec %d: luod did not come back: %v %+v", i, err, m)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if m.PID != pid {
			t.Fatalf("luod's pid changed from %d to %d", pid, m.PID)
		}
	}
	u := d.WaitUnit("spam.service", "active", active)
	if u.FDStoreCount != spam || u.MainPID != first.PID {
		t.Fatalf("spam.service after 3 re-execs: %d fds (want %d), main pid %d (want %d)", u.FDStoreCount, spam, u.MainPID, first.PID)
	}
	q := d.Unit("quiet.service")
	if q.MainPID != quietPID || q.FDStoreCount != 2 {
		t.Fatalf("quiet.service after re-execs: %+v", q)
	}
	fs := d.FDStore("quiet.service")
	if fs.Entries[0].Name != "keep" || fs.Entries[1].Name != "sock" || !fs.Entries[1].Poll {
		t.Fatalf("quiet store: %+v", fs.Entries)
	}
	// The children are still ours: stop works, and the restarted service
	// gets all 3000 fds back.
	d.MustCall(control.MethodRestartUnit, control.UnitName{Name: "spam.service"}, nil)
	second := d.ReadReport(filepath.Join(d.Dir, "spam"), first.PID)
	if len(second.Names) != spam || second.Contents["spam"] != "spam-0" {
		t.Fatalf("after restart: %d fds handed back (want %d), first spam %q", len(second.Names), spam, second.Contents["spam"])
	}
	// The socket entry is still watched: closing the peer drops it.
	d.MustCall(control.MethodStopUnit, control.UnitName{Name: "quiet.service"}, nil)
	d.WaitLog("received EPOLLHUP on stored fd")
	_ = context.Background
}

func fdList(t *testing.T, pid int) []string {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		out = append(out, e.Name()+"="+l)
	}
	return out
}

// TestRestartsLeakNothing restarts a service with a store 50 times and
// checks luod's fd count.
func TestRestartsLeakNothing(t *testing.T) {
	// 51 starts: far past the default start limit.
	d := luodtest.Start(t, map[string]string{"r.service": "[Unit]\nStartLimitIntervalSec=0\n" + svc(`-store a=memfd:x -store s=socket`) + "FileDescriptorStoreMax=8\n"})
	d.WaitUnit("r.service", "active", active)
	d.MustCall(control.MethodRestartUnit, control.UnitName{Name: "r.service"}, nil)
	before := luodtest.FDs(t, d.PID())
	storedBefore := d.Unit("r.service").FDStoreCount
	for range 50 {
		d.MustCall(control.MethodRestartUnit, control.UnitName{Name: "r.service"}, nil)
	}
	// Each instance stores 2 more entries up to the limit of 8 (socket
	// entries go when the old instance's peer closes), so luod's fd count
	// grows exactly as much as the store.
	u := d.Unit("r.service")
	after := luodtest.FDs(t, d.PID())
	if after-before != u.FDStoreCount-storedBefore {
		t.Fatalf("luod went from %d to %d fds over 50 restarts with %d stored (%d before): leak of %d",
			before, after, u.FDStoreCount, storedBefore, after-before-(u.FDStoreCount-storedBefore))
	}
}

// luoctl runs the CLI against d.
func luoctl(t *testing.T, d *luodtest.Daemon, args ...string) (string, int) {
	t.Helper()
	return d.Luoctl(args...)
}

func waitReexecs(t *testing.T, d *luodtest.Daemon, n int) control.Manager {
	t.Helper()
	var m control.Manager
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := d.Call(control.MethodGetManager, nil, &m)
		if err == nil && m.Reexecs == n {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("luod did not come back after re-exec %d: %v %+v", n, err, m)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSoftUpdate runs `update run --no-kexec`: luod re-executes itself
// through the update path; the units keep running with their stores.
func TestSoftUpdate(t *testing.T) {
	d := luodtest.Start(t, map[string]string{
		"a.service": svc(`-store m=memfd:data -store s=socket`) + "FileDescriptorStoreMax=4\n",
	})
	before := d.WaitUnit("a.service", "active", active)
	out, code := luoctl(t, d, "update", "plan", "--no-kexec")
	if code != 0 || !strings.Contains(out, "inherit") {
		t.Fatalf("soft plan: exit %d\n%s", code, out)
	}
	out, code = luoctl(t, d, "update", "run", "--no-kexec")
	if code != 0 || !strings.Contains(out, "exec") {
		t.Fatalf("soft update: exit %d\n%s", code, out)
	}
	m := waitReexecs(t, d, 1)
	if m.PID != d.PID() {
		t.Fatalf("pid changed")
	}
	u := d.WaitUnit("a.service", "active", active)
	if u.MainPID != before.MainPID || u.FDStoreCount != 2 {
		t.Fatalf("after a soft update: %+v (was pid %d)", u, before.MainPID)
	}
	var rep control.Report
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := d.Call(control.MethodGetUpdateReport, nil, &rep)
		if err == nil && len(rep.Timeline) > 0 && rep.Timeline[len(rep.Timeline)-1].Name == "finished" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no finished soft update report: %v %+v", err, rep)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rep.Kind != "soft" || len(rep.Units) != 1 || len(rep.Units[0].Delivered) != 2 {
		t.Errorf("report %+v", rep)
	}
	// It reports what a soft update does: an exec, nothing preserved, no
	// reboot; and it is soft update 1 (not "update 0"). A second one is 2.
	checkSoftReport(t, rep, 1)
	if out, code := luoctl(t, d, "update", "run", "--no-kexec"); code != 0 {
		t.Fatalf("second soft update: exit %d\n%s", code, out)
	}
	waitReexecs(t, d, 2)
	d.MustCall(control.MethodGetUpdateReport, nil, &rep)
	checkSoftReport(t, rep, 2)
	if out, code := luoctl(t, d, "update", "report"); code != 0 || !strings.HasPrefix(out, "Soft update 2: luod re-executed itself") {
		t.Errorf("luoctl update report: exit %d\n%s", code, out)
	}
	if err := d.Call(control.MethodGetUpdateReport, control.ReportParams{Kind: "kexec"}, &rep); err == nil {
		t.Errorf("a kexec report without a kexec: %+v", rep)
	}
}

func checkSoftReport(t *testing.T, rep control.Report, count int) {
	t.Helper()
	var events []string
	for _, ev := range rep.Timeline {
		events = append(events, ev.Name)
	}
	if rep.Count != count || slices.Contains(events, "preserved") || slices.Contains(events, "reboot") || !slices.Contains(events, "exec") {
		t.Errorf("soft update report: count %d (want %d), events %v (want exec, no preserved or reboot)", rep.Count, count, events)
	}
}

// TestSoftUpdateRestartUnits also stops and starts the units around the
// re-exec: they come back with their stores, and the report has their
// blackout.
func TestSoftUpdateRestartUnits(t *testing.T) {
	d := luodtest.Start(t, map[string]string{
		"a.service": svc(`-report @DIR@/a -store m=memfd:data`) + "FileDescriptorStoreMax=4\n",
	})
	d.WaitUnit("a.service", "active", active)
	first := d.ReadReport(filepath.Join(d.Dir, "a"), 0)
	out, code := luoctl(t, d, "update", "run", "--no-kexec", "--restart-units")
	if code != 0 {
		t.Fatalf("soft update: exit %d\n%s", code, out)
	}
	waitReexecs(t, d, 1)
	second := d.ReadReport(filepath.Join(d.Dir, "a"), first.PID)
	if strings.Join(second.Names, ",") != "m" || second.Contents["m"] != "data" {
		t.Fatalf("restarted unit got %v %v", second.Names, second.Contents)
	}
	var rep control.Report
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := d.Call(control.MethodGetUpdateReport, nil, &rep)
		if err == nil && len(rep.Units) == 1 && !rep.Units[0].Ready.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no soft update report with ready: %v %+v", err, rep)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rep.Units[0].Blackout <= 0 || rep.Units[0].Stopped.IsZero() {
		t.Errorf("report unit %+v", rep.Units[0])
	}
}

// TestReexecUpgradesBinary replaces luod's binary on disk and re-executes:
// the new binary runs (another version string), nothing is lost.
func TestReexecUpgradesBinary(t *testing.T) {
	bin := t.TempDir()
	build := func(version string) {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, "luod.new"),
			"-ldflags", "-X github.com/liveupdate/luo/internal/version.set="+version, "github.com/liveupdate/luo/cmd/luod")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
		if err := os.Rename(filepath.Join(bin, "luod.new"), filepath.Join(bin, "luod")); err != nil {
			t.Fatal(err)
		}
	}
	build("old")
	d := luodtest.StartBinary(t, filepath.Join(bin, "luod"), map[string]string{
		"a.service": svc(`-store m=memfd:data`) + "FileDescriptorStoreMax=4\n",
	})
	before := d.WaitUnit("a.service", "active", active)
	var m control.Manager
	d.MustCall(control.MethodGetManager, nil, &m)
	if m.Version != "old" {
		t.Fatalf("version %q", m.Version)
	}
	build("new")
	out, code := luoctl(t, d, "daemon-reexec")
	if code != 0 {
		t.Fatalf("daemon-reexec: exit %d\n%s", code, out)
	}
	m = waitReexecs(t, d, 1)
	if m.Version != "new" {
		t.Fatalf("after re-exec luod reports version %q, want the new binary's", m.Version)
	}
	if u := d.Unit("a.service"); u.MainPID != before.MainPID || u.FDStoreCount != 1 {
		t.Fatalf("unit after upgrade: %+v", u)
	}
}
