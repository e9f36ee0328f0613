//go:build linux

package cgroup

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tree opens luod's subtree as a non-PID-1 luod would, in this test
// process; it skips where the machine has no cgroup v2 hierarchy or the
// test is not root, and fails under $CI then.
func tree(t *testing.T) *Tree {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("cgroup tests need root")
	}
	tr, err := Open(false)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no cgroup v2 on this CI machine: %v", err)
		}
		t.Skip(err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Error(err)
		}
	})
	return tr
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not after 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startIn starts a shell script in g, through CLONE_INTO_CGROUP as luod
// does.
func startIn(t *testing.T, g *Group, script string) *exec.Cmd {
	t.Helper()
	dir, err := g.OpenDir()
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd()), Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// TestGroupKillsEscapees: a process that starts a child which calls
// setsid and double-forks stays in its group, is found there, and dies
// with the group.
func TestGroupKillsEscapees(t *testing.T) {
	tr := tree(t)
	if own, _ := Of(os.Getpid()); !strings.HasSuffix(own, "/luod-"+strconv.Itoa(os.Getpid())+".scope") {
		t.Errorf("this process is in %s, not in its leaf", own)
	}
	g, err := tr.Group("escape.service")
	if err != nil {
		t.Fatal(err)
	}
	pidFile := t.TempDir() + "/escapee"
	main := startIn(t, g, "setsid sh -c '(sleep 1000 & echo $! > "+pidFile+") &' ; sleep 1000")
	var escapee int
	poll(t, "the escapee's pid", func() bool {
		b, _ := os.ReadFile(pidFile)
		escapee, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return escapee > 0
	})
	if !g.Contains(escapee) || !g.Contains(main.Process.Pid) || tr.UnitOf(escapee) != "escape.service" {
		t.Fatalf("escapee %d in %v, unit %q", escapee, g.Contains(escapee), tr.UnitOf(escapee))
	}
	if tr.UnitOf(os.Getpid()) != "" {
		t.Error("luod itself is attributed to a unit")
	}
	ps, err := g.Processes()
	if err != nil || len(ps) < 2 {
		t.Fatalf("Processes = %+v, %v", ps, err)
	}
	if !g.Populated() {
		t.Error("not populated")
	}
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	poll(t, "the group empty", func() bool { return !g.Populated() })
	poll(t, "the escapee dead", func() bool { return gone(escapee) })
	if err := g.Remove(); err != nil {
		t.Error(err)
	}
}

// TestEnter: luod can run in a unit's group for a moment and come back.
func TestEnter(t *testing.T) {
	tr := tree(t)
	g, err := tr.Group("charged.service")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Remove()
	leave, err := tr.Enter(g)
	if err != nil {
		t.Fatal(err)
	}
	if !g.Contains(os.Getpid()) {
		t.Error("not in the group after Enter")
	}
	if err := leave(); err != nil {
		t.Fatal(err)
	}
	if g.Contains(os.Getpid()) || tr.UnitOf(os.Getpid()) != "" {
		t.Error("still in the group after leave")
	}
}

func TestInvalidGroupNames(t *testing.T) {
	tr := tree(t)
	for _, name := range []string{"", ".", "..", "a/b", "x\x00y"} {
		if _, err := tr.Group(name); err == nil {
			t.Errorf("Group(%q) succeeded", name)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`/sys/fs/cgroup`: "/sys/fs/cgroup", `/mnt/a\040b`: "/mnt/a b"} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

// gone reports whether pid has exited (it may be a zombie until its
// parent reaps it).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// TestDynmodsOptions: the remount that sets favordynmods keeps every other
// option of the hierarchy (a cgroup2 remount clears the flags it is not
// given, nsdelegate included), and is not done twice.
func TestDynmodsOptions(t *testing.T) {
	for _, c := range []struct {
		opts, want string
		remount    bool
	}{
		{"rw", "favordynmods", true},
		{"rw,nsdelegate,memory_recursiveprot", "nsdelegate,memory_recursiveprot,favordynmods", true},
		{"", "favordynmods", true},
		{"rw,nsdelegate,favordynmods", "", false},
	} {
		got, remount := dynmodsOptions(c.opts)
		if got != c.want || remount != c.remount {
			t.Errorf("dynmodsOptions(%q) = %q, %v; want %q, %v", c.opts, got, remount, c.want, c.remount)
		}
	}
}

// TestStartAfterKill: a group cleared by Kill takes new processes started
// into it with CLONE_INTO_CGROUP, as a unit's next start does. (With
// cgroup.kill, kernels such as 6.18.44 kill every such process at birth.)
// Its forking processes die too, and it is left thawed.
func TestStartAfterKill(t *testing.T) {
	tr := tree(t)
	g, err := tr.Group("again.service")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Remove()
	for round := range 3 {
		// A main process that keeps forking children while it is killed.
		forker := startIn(t, g, "while :; do sleep 1000 & sleep 0.001; done")
		poll(t, "children forked", func() bool { pids, _ := g.Procs(); return len(pids) > 3 })
		if err := g.Kill(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if pids, _ := g.Procs(); len(pids) > 0 {
			t.Errorf("round %d: Kill returned with %v in the group", round, pids)
		}
		poll(t, "the group empty", func() bool { return !g.Populated() })
		if err := forker.Wait(); err == nil || forker.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("round %d: the forker ended with %v, not SIGKILL", round, err)
		}
		if b, _ := os.ReadFile(g.Path() + "/cgroup.freeze"); strings.TrimSpace(string(b)) != "0" {
			t.Errorf("round %d: cgroup.freeze is %q after Kill", round, b)
		}
		next := startIn(t, g, "exit 7")
		if err := next.Wait(); next.ProcessState.ExitCode() != 7 {
			t.Fatalf("round %d: a process started into the group after Kill ended with %v, want exit status 7", round, err)
		}
	}
}

// TestGroupThawsLeftFreeze: a group a previous luod left frozen (it
// stopped inside Kill) is thawed when it is opened again, so that the
// unit's next process is not born frozen.
func TestGroupThawsLeftFreeze(t *testing.T) {
	tr := tree(t)
	g, err := tr.Group("frozen.service")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Remove()
	if err := tr.write(g.rel, "cgroup.freeze", "1"); err != nil {
		t.Skip("no cgroup.freeze:", err)
	}
	if g, err = tr.Group("frozen.service"); err != nil {
		t.Fatal(err)
	}
	next := startIn(t, g, "exit 3")
	done := make(chan error, 1)
	go func() { done <- next.Wait() }()
	select {
	case <-done:
		if next.ProcessState.ExitCode() != 3 {
			t.Fatalf("exit status %d, want 3", next.ProcessState.ExitCode())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a process started in the reopened group did not run: still frozen")
	}
}
