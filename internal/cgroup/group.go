package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Group is one unit's cgroup. It holds no fd. Safe for concurrent use.
type Group struct {
	t   *Tree
	rel string
}

// Path returns the group's absolute path, such as
// /sys/fs/cgroup/system.slice/counter.service.
func (g *Group) Path() string { return filepath.Join(g.t.mount, g.rel) }

// Name returns the group's path in the hierarchy, as /proc/PID/cgroup
// shows it.
func (g *Group) Name() string { return g.rel }

// OpenDir opens the group's directory, to start a process in it
// (syscall.SysProcAttr.CgroupFD); the caller closes it.
func (g *Group) OpenDir() (*os.File, error) {
	dir, err := os.OpenFile(g.Path(), os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	return dir, nil
}

// Procs returns the processes in the group and the groups below it.
func (g *Group) Procs() ([]int, error) {
	var pids []int
	err := filepath.WalkDir(g.Path(), func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	slices.Sort(pids)
	return pids, nil
}

// Contains reports whether pid is in the group (or below it).
func (g *Group) Contains(pid int) bool {
	cg, err := Of(pid)
	return err == nil && (cg == g.rel || strings.HasPrefix(cg, g.rel+"/"))
}

// Populated reports whether a process is in the group or below it.
func (g *Group) Populated() bool {
	b, err := os.ReadFile(filepath.Join(g.Path(), "cgroup.events"))
	if err != nil {
		pids, _ := g.Procs()
		return len(pids) > 0
	}
	return strings.Contains(string(b), "populated 1")
}

// errSelf refuses to signal a group luod itself is in (see Tree.Enter).
var errSelf = errors.New("cgroup: luod itself is in the group")

// Signal sends sig to every process of the group.
func (g *Group) Signal(sig syscall.Signal) error {
	if g.Contains(os.Getpid()) {
		return errSelf
	}
	pids, err := g.Procs()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		syscall.Kill(pid, sig)
	}
	return nil
}

// Kill SIGKILLs every process of the group and of the groups below it,
// and returns once they are gone or after killWait. It freezes the group
// meanwhile (cgroup.freeze, Linux 5.2): a frozen process cannot fork or
// leave, and a child whose fork was under way when the group froze is born
// frozen and found by the next pass, while SIGKILL still ends a frozen
// process. The group is thawed before Kill returns, whatever happened.
//
// Kill does not write cgroup.kill. That bumps the group's kill sequence
// (Linux 6.14 and stable backports), and clone3 with CLONE_INTO_CGROUP
// compares the sequence of the parent's group with the target's on such
// kernels (6.18.44 does): once a group has been cleared with cgroup.kill,
// every process started into it that way, as luod starts a unit, is killed
// at birth (TestStartAfterKill).
func (g *Group) Kill() error {
	if g.Contains(os.Getpid()) {
		return errSelf
	}
	frozen := g.t.write(g.rel, "cgroup.freeze", "1") == nil
	var err error
	for deadline := time.Now().Add(killWait); g.Populated(); time.Sleep(time.Millisecond) {
		if err = g.Signal(syscall.SIGKILL); err != nil {
			break
		}
		if time.Now().After(deadline) {
			err = fmt.Errorf("cgroup: %s: processes still alive %v after SIGKILL", g.rel, killWait)
			break
		}
	}
	if frozen {
		if terr := g.thaw(); err == nil {
			err = terr
		}
	}
	return err
}

// killWait bounds how long Kill waits for the processes it killed: a
// process blocked in the kernel (D state) dies only when it gets out.
const killWait = 200 * time.Millisecond

// thaw unfreezes the group (see Kill).
func (g *Group) thaw() error {
	if err := g.t.write(g.rel, "cgroup.freeze", "0"); err != nil {
		return fmt.Errorf("cgroup: thaw %s: %w", g.rel, err)
	}
	return nil
}

// MemoryCurrent returns memory.current: the bytes charged to the group.
func (g *Group) MemoryCurrent() (int64, error) {
	b, err := os.ReadFile(filepath.Join(g.Path(), "memory.current"))
	if err != nil {
		return 0, fmt.Errorf("cgroup: %w", err)
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// Process is one process of a group.
type Process struct {
	PID, PPID int
	// Cmdline is its command line, arguments separated by spaces (or its
	// name in brackets when it has none).
	Cmdline string
}

// Processes lists the processes of the group, by pid.
func (g *Group) Processes() ([]Process, error) {
	pids, err := g.Procs()
	if err != nil {
		return nil, err
	}
	var ps []Process
	for _, pid := range pids {
		p := Process{PID: pid}
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
			s := string(b)
			if i := strings.LastIndexByte(s, ')'); i > 0 {
				if f := strings.Fields(s[i+1:]); len(f) > 1 {
					p.PPID, _ = strconv.Atoi(f[1])
				}
				if j := strings.IndexByte(s, '('); j >= 0 && j < i {
					p.Cmdline = "[" + s[j+1:i] + "]"
				}
			}
		}
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil && len(b) > 0 {
			p.Cmdline = strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// Remove removes the group, which must be empty.
func (g *Group) Remove() error {
	if err := syscall.Rmdir(g.Path()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cgroup: remove %s: %w", g.rel, err)
	}
	return nil
}
