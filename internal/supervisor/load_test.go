//go:build linux

package supervisor_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/luodtest"
)

// countFDs counts the entries of /proc/PID/fd once the count is steady
// (a control connection luod is still closing does not count).
func countFDs(t *testing.T, pid int) int {
	t.Helper()
	prev := -1
	for i := 0; i < 100; i++ {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) == prev {
			return prev
		}
		prev = len(ents)
		time.Sleep(100 * time.Millisecond)
	}
	return prev
}

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
	before := countFDs(t, d.PID())
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
	if after := countFDs(t, d.PID()); after != before {
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
	d := luodtest.Start(t, map[string]string{"r.service": svc(`-store a=memfd:x -store s=socket`) + "FileDescriptorStoreMax=8\n"})
	d.WaitUnit("r.service", "active", active)
	d.MustCall(control.MethodRestartUnit, control.UnitName{Name: "r.service"}, nil)
	before := countFDs(t, d.PID())
	storedBefore := d.Unit("r.service").FDStoreCount
	for range 50 {
		d.MustCall(control.MethodRestartUnit, control.UnitName{Name: "r.service"}, nil)
	}
	// Each instance stores 2 more entries up to the limit of 8 (socket
	// entries go when the old instance's peer closes), so luod's fd count
	// grows exactly as much as the store.
	u := d.Unit("r.service")
	after := countFDs(t, d.PID())
	if after-before != u.FDStoreCount-storedBefore {
		t.Fatalf("luod went from %d to %d fds over 50 restarts with %d stored (%d before): leak of %d",
			before, after, u.FDStoreCount, storedBefore, after-before-(u.FDStoreCount-storedBefore))
	}
}
