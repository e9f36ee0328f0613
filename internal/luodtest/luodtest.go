// Package luodtest runs a real luod for tests: it builds the binaries,
// writes unit files into a temporary directory, starts luod as a normal
// (root) process with its own runtime directory, and talks to it through
// the control API. testsvc is the service the tests run under it.
//
// Imported by tests only.
package luodtest

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/cgroup"
	"github.com/liveupdate/luo/internal/control"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Binaries builds luod, luoctl and testsvc once per test process and
// returns the directory holding them.
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "luodtest-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", buildDir+"/",
			"github.com/liveupdate/luo/cmd/luod",
			"github.com/liveupdate/luo/cmd/luod-exec",
			"github.com/liveupdate/luo/cmd/luoctl",
			"github.com/liveupdate/luo/internal/luodtest/testsvc",
			"github.com/liveupdate/luo/examples/counter")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

// Daemon is a running luod.
type Daemon struct {
	t       testing.TB
	Dir     string // temporary root of units, runtime and files
	Units   string
	Runtime string
	Bin     string // directory of the binaries
	Socket  string
	cmd     *exec.Cmd
	log     *SyncBuffer
	exited  chan struct{}
}

// Start writes units (file name -> contents; "@BIN@" is replaced by the
// binaries' directory, "@DIR@" by Dir) and starts luod.
func Start(t testing.TB, units map[string]string, args ...string) *Daemon {
	t.Helper()
	return StartBinary(t, "", units, args...)
}

// StartBinary is Start with another luod binary ("" for the one built).
func StartBinary(t testing.TB, luod string, units map[string]string, args ...string) *Daemon {
	t.Helper()
	return StartWith(t, Options{Binary: luod}, units, args...)
}

// Options are the less common ways to start luod.
type Options struct {
	// Binary is the luod to run ("" for the one built).
	Binary string
	// Inherit are files luod inherits (fd 3, 4, ... without
	// close-on-exec), as from a careless parent.
	Inherit []*os.File
	// Env is added to luod's environment.
	Env []string
	// Dir, when set, is the Dir of an earlier Daemon to start in again:
	// the same unit files and runtime directory, as after a restart.
	Dir string
	// Namespaced runs luod as a host of its own: in new mount and PID
	// namespaces (with their own /proc) under a shell as the namespace's
	// init, in a cgroup of its own, so that several luods on one machine
	// share neither processes nor cgroups. The sockets stay in Dir.
	Namespaced bool
}

// nsInit is the init of a Namespaced luod's PID namespace: it mounts the
// namespace's /proc, runs luod as its child, hands it SIGTERM, and exits
// with it.
const nsInit = `mount --make-rprivate / && mount -t proc proc /proc || exit 1
"$@" &
pid=$!
trap 'kill -TERM $pid' TERM INT
while kill -0 $pid 2>/dev/null; do wait $pid; done`

// StartWith is Start with options.
func StartWith(t testing.TB, o Options, units map[string]string, args ...string) *Daemon {
	t.Helper()
	luod := o.Binary
	if os.Geteuid() != 0 {
		t.Skip("luod tests need root")
	}
	bin := Binaries(t)
	if luod == "" {
		luod = filepath.Join(bin, "luod")
	}
	d := &Daemon{t: t, Dir: cmp.Or(o.Dir, t.TempDir()), Bin: bin, log: &SyncBuffer{}}
	d.Units = filepath.Join(d.Dir, "units")
	d.Runtime = filepath.Join(d.Dir, "run")
	d.Socket = filepath.Join(d.Runtime, "io.luo.Manager")
	os.MkdirAll(d.Units, 0o755)
	for name, text := range units {
		d.WriteUnit(name, text)
	}
	d.cmd = exec.Command(luod, append([]string{"--units", d.Units, "--runtime-dir", d.Runtime,
		"-device", filepath.Join(d.Dir, "no-liveupdate"), "-log-level", "debug"}, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.ExtraFiles = o.Inherit
	if o.Env != nil {
		d.cmd.Env = append(os.Environ(), o.Env...)
	}
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if o.Namespaced {
		d.namespace(t)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.exited = make(chan struct{})
	go func() { d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(d.stop)
	d.waitSocket()
	return d
}

// WriteUnit writes a unit file (see Start for the substitutions).
func (d *Daemon) WriteUnit(name, text string) {
	text = strings.ReplaceAll(text, "@BIN@", d.Bin)
	text = strings.ReplaceAll(text, "@DIR@", d.Dir)
	if err := os.WriteFile(filepath.Join(d.Units, name), []byte(text), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// namespace makes d.cmd start luod under nsInit in new mount and PID
// namespaces and a new cgroup beside the test's, removed at the end.
func (d *Daemon) namespace(t testing.TB) {
	t.Helper()
	own, err := cgroup.Of(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	mount, err := cgroup.Mount()
	if err != nil {
		t.Fatal(err)
	}
	cg, err := os.MkdirTemp(filepath.Join(mount, own), "luodtest-host-")
	if err != nil {
		t.Fatalf("no cgroup of its own for a namespaced luod: %v", err)
	}
	dir, err := os.Open(cg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dir.Close()
		// luod removes the groups it made once its units are down;
		// the init's own goes when it exited.
		for range 50 {
			if removeCgroup(cg) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	d.cmd.Args = append([]string{"/bin/sh", "-c", nsInit, "luod-init"}, d.cmd.Args...)
	d.cmd.Path = "/bin/sh"
	d.cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWNS | syscall.CLONE_NEWPID
	d.cmd.SysProcAttr.UseCgroupFD, d.cmd.SysProcAttr.CgroupFD = true, int(dir.Fd())
}

// removeCgroup removes the cgroup dir and the groups under it, deepest
// first (cgroupfs removes a group with rmdir, and only once it is empty).
func removeCgroup(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	for _, e := range ents {
		if e.IsDir() {
			removeCgroup(filepath.Join(dir, e.Name()))
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (d *Daemon) waitSocket() {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := control.Dial(context.Background(), d.Socket)
		if err == nil {
			var m control.Manager
			err = c.Call(context.Background(), control.MethodGetManager, nil, &m)
			c.Close()
			if err == nil {
				return
			}
		}
		select {
		case <-d.exited:
			d.t.Fatalf("luod exited:\n%s", d.log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	d.t.Fatalf("luod did not answer within 30s:\n%s", d.log.String())
}

func (d *Daemon) stop() {
	select {
	case <-d.exited:
	default:
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(30 * time.Second):
			syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-d.exited
		}
	}
	// The unit state machine refuses illegal transitions and logs them:
	// any is a bug of luod, whatever the test looked at.
	if strings.Contains(d.log.String(), "illegal state transition") {
		d.t.Errorf("luod refused an illegal unit state transition")
	}
	if d.t.Failed() {
		d.t.Logf("luod log:\n%s", d.log.String())
	}
}

// Log returns what luod logged so far.
func (d *Daemon) Log() string { return d.log.String() }

// PID returns luod's pid.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// Exited is closed when luod exits.
func (d *Daemon) Exited() <-chan struct{} { return d.exited }

// Call calls a control method.
func (d *Daemon) Call(method string, params, reply any) error {
	return d.CallWithin(60*time.Second, method, params, reply)
}

// CallWithin is Call with a deadline: it fails when luod has not answered
// within timeout, connection included.
func (d *Daemon) CallWithin(timeout time.Duration, method string, params, reply any) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := control.Dial(ctx, d.Socket)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Call(ctx, method, params, reply)
}

// MustCall calls a control method and fails the test on error.
func (d *Daemon) MustCall(method string, params, reply any) {
	d.t.Helper()
	if err := d.Call(method, params, reply); err != nil {
		d.t.Fatalf("%s(%v): %v", method, params, err)
	}
}

// Luoctl runs luoctl against d and returns its output (stdout and stderr)
// and exit status.
func (d *Daemon) Luoctl(args ...string) (string, int) {
	d.t.Helper()
	return Output(d.t, exec.Command(filepath.Join(d.Bin, "luoctl"), append([]string{"--socket", d.Socket}, args...)...))
}

// Output runs cmd and returns its output (stdout and stderr) and exit
// status; a command that cannot run fails the test.
func Output(t testing.TB, cmd *exec.Cmd) (string, int) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return string(out), 0
}

// Unit returns a unit's state.
func (d *Daemon) Unit(name string) control.Unit {
	d.t.Helper()
	var r control.UnitReply
	d.MustCall(control.MethodGetUnit, control.UnitName{Name: name}, &r)
	return r.Unit
}

// WaitUnit polls a unit until cond holds (30 s at most).
func (d *Daemon) WaitUnit(name string, what string, cond func(control.Unit) bool) control.Unit {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var u control.Unit
	for time.Now().Before(deadline) {
		u = d.Unit(name)
		if cond(u) {
			return u
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatalf("%s: not %s within 30s: %+v", name, what, u)
	return u
}

// WaitLog waits until luod's log contains s (30 s at most).
func (d *Daemon) WaitLog(s string) {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(d.log.String(), s) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatalf("luod did not log %q within 30s", s)
}

// FDStore returns a unit's fd-store dump.
func (d *Daemon) FDStore(name string) control.FDStore {
	d.t.Helper()
	var r control.FDStore
	d.MustCall(control.MethodDumpFDStore, control.UnitName{Name: name}, &r)
	return r
}

// Report is what testsvc writes to its -report file on start.
type Report struct {
	PID       int               `json:"pid"`
	ListenPID string            `json:"listen_pid"`
	Names     []string          `json:"names"`
	Contents  map[string]string `json:"contents"` // memfd contents by name (first of each name)
	Env       map[string]string `json:"env"`
	UID       int               `json:"uid"`
	GID       int               `json:"gid"`
	Dir       string            `json:"dir"`
	Err       string            `json:"err,omitempty"`
	// FDs are the fds open when the service started, and what each was.
	FDs map[int]string `json:"fds"`
}

// ReadReport reads a report written by testsvc, waiting for it to appear
// with a pid other than notPID (30 s at most).
func (d *Daemon) ReadReport(path string, notPID int) Report {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var r Report
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(path)
		if err == nil && json.Unmarshal(b, &r) == nil && r.PID != notPID && r.PID != 0 {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatalf("no report at %s", path)
	return r
}

// SyncBuffer is a bytes.Buffer safe for a writer and a reader.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Ctl sends one command to the control socket of a testsvc started with
// -ctl path, and returns its answer ("ok" or an error text).
func Ctl(path, cmd string) (string, error) {
	c, err := net.DialTimeout("unix", path, 10*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintln(c, cmd); err != nil {
		return "", err
	}
	ans, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(ans), err
}

// FDs counts the open fds of process pid, once the count is stable.
func FDs(t testing.TB, pid int) int {
	t.Helper()
	prev := -1
	for range 100 {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) == prev {
			return prev
		}
		prev = len(ents)
		time.Sleep(50 * time.Millisecond)
	}
	return prev
}
