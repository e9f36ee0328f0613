//go:build linux

package supervisor_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/luodtest"
)

func svc(extra string) string {
	return `[Unit]
Description=test service

[Service]
Type=notify
ExecStart=@BIN@/testsvc ` + extra + "\n"
}

func active(u control.Unit) bool { return u.ActiveState == "active" }
func dead(u control.Unit) bool {
	return u.MainPID == 0 && u.ActiveState != "deactivating" && u.ActiveState != "activating"
}
func failed(u control.Unit) bool { return u.ActiveState == "failed" }

func TestNotifyReadyAndStatus(t *testing.T) {
	d := luodtest.Start(t, map[string]string{"a.service": svc("-status hello")})
	u := d.WaitUnit("a.service", "active", active)
	if u.SubState != "running" || u.Status != "hello" || u.MainPID == 0 || u.Type != "notify" || u.NotifyAccess != "main" {
		t.Fatalf("unit %+v", u)
	}
}

func TestFDStoreHandedBack(t *testing.T) {
	d := luodtest.Start(t, map[string]string{"a.service": svc(`-report @DIR@/report -store a=memfd:hello -store b=memfd:world -store a=memfd:again`) +
		"FileDescriptorStoreMax=4\n"})
	rep := filepath.Join(d.Dir, "report")
	first := d.ReadReport(rep, 0)
	if len(first.Names) != 0 || first.Env["FDSTORE"] != "4" {
		t.Fatalf("first start: %+v", first)
	}
	d.WaitUnit("a.service", "active", active)
	if n := d.Unit("a.service").FDStoreCount; n != 3 {
		t.Fatalf("store has %d entries, want 3", n)
	}
	fs := d.FDStore("a.service")
	if len(fs.Entries) != 3 || fs.Entries[0].Type != "memfd" || fs.Entries[0].Survives != "no" ||
		!strings.Contains(fs.Entries[0].Why, "FileDescriptorStorePreserve=restart") || fs.Entries[1].Name != "b" || fs.Entries[1].Size != 5 {
		t.Errorf("fdstore dump %+v", fs)
	}
	d.MustCall(control.MethodRestartUnit, control.UnitName{Name: "a.service"}, nil)
	second := d.ReadReport(rep, first.PID)
	// Names are kept, in insertion order, duplicates of a name included.
	if got := strings.Join(second.Names, ","); got != "a,b,a" {
		t.Errorf("names after restart %q, want a,b,a", got)
	}
	if second.Contents["a"] != "hello" || second.Contents["b"] != "world" {
		t.Errorf("contents %v", second.Contents)
	}
	if second.ListenPID != fmt.Sprint(second.PID) || second.Env["LISTEN_FDS"] != "3" || second.Env["LISTEN_FDNAMES"] != "a:b:a" {
		t.Errorf("LISTEN_* %+v (pid %d)", second.Env, second.PID)
	}
	if second.Err != "" {
		t.Errorf("activation in the service: %s", second.Err)
	}
	// The second instance stored three more: one fits (4 = max). luod
	// closed the other two, which the service cannot notice: status says
	// so.
	u := d.Unit("a.service")
	if u.FDStoreCount != 4 {
		t.Errorf("after the second instance: %d entries, want 4", u.FDStoreCount)
	}
	if r := u.FDStoreLastRefused; u.FDStoreRefused != 2 || r == nil || r.FDName != "a" || r.Reason != "full (FileDescriptorStoreMax=4)" || r.Time.IsZero() {
		t.Errorf("refused %d, last %+v; want 2, the last a: full (FileDescriptorStoreMax=4)", u.FDStoreRefused, r)
	}
}

// TestPreserveModes runs each FileDescriptorStorePreserve= value through a
// restart, a stop and start, a failure and a clean.
func TestPreserveModes(t *testing.T) {
	type want struct{ restart, stopStart, failure int }
	for _, tc := range []struct {
		mode string
		want want
		sub  string // sub-state after a stop
	}{
		{"no", want{0, 0, 0}, "dead"},
		{"restart", want{1, 0, 0}, "dead"},
		{"yes", want{1, 1, 1}, "dead-resources-pinned"},
		{"on-success", want{1, 1, 0}, "dead-resources-pinned"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			unit := svc(`-store s=memfd:x`) + "FileDescriptorStoreMax=2\nFileDescriptorStorePreserve=" + tc.mode + "\n"
			d := luodtest.Start(t, map[string]string{"p.service": unit})
			d.WaitUnit("p.service", "active", active)
			count := func() int { return d.Unit("p.service").FDStoreCount }
			if count() != 1 {
				t.Fatalf("stored %d", count())
			}
			// Restart: the new instance stores a second entry unless the
			// first one was kept (a duplicate name is fine: names are not
			// unique), so count how many survived before the new store.
			d.WriteUnit("p.service", svc(`-ready`)+"FileDescriptorStoreMax=2\nFileDescriptorStorePreserve="+tc.mode+"\n")
			d.MustCall(control.MethodReload, nil, nil)
			d.MustCall(control.MethodRestartUnit, control.UnitName{Name: "p.service"}, nil)
			if got := count(); got != tc.want.restart {
				t.Errorf("after restart: %d entries, want %d", got, tc.want.restart)
			}
			// Put one back, then stop and start.
			d.WriteUnit("p.service", svc(`-store s=memfd:y`)+"FileDescriptorStoreMax=2\nFileDescriptorStorePreserve="+tc.mode+"\n")
			d.MustCall(control.MethodReload, nil, nil)
			d.MustCall(control.MethodRestartUnit, control.UnitName{Name: "p.service"}, nil)
			before := count()
			d.MustCall(control.MethodStopUnit, control.UnitName{Name: "p.service"}, nil)
			u := d.Unit("p.service")
			if u.SubState != tc.sub && !(before == 0 && u.SubState == "dead") {
				t.Errorf("after stop: sub-state %q, want %q", u.SubState, tc.sub)
			}
			d.WriteUnit("p.service", svc(``)+"FileDescriptorStoreMax=2\nFileDescriptorStorePreserve="+tc.mode+"\n")
			d.MustCall(control.MethodReload, nil, nil)
			d.MustCall(control.MethodStartUnit, control.UnitName{Name: "p.service"}, nil)
			if got := count(); (got > 0) != (tc.want.stopStart > 0) {
				t.Errorf("after stop+start: %d entries, want kept=%v", got, tc.want.stopStart > 0)
			}
			// A failure: exit 1, no restart.
			d.WriteUnit("p.service", svc(`-store f=memfd:z -exit 1 -exit-delay 100ms`)+"FileDescriptorStoreMax=4\nFileDescriptorStorePreserve="+tc.mode+"\n")
			d.MustCall(control.MethodReload, nil, nil)
			d.MustCall(control.MethodRestartUnit, control.UnitName{Name: "p.service"}, nil)
			u = d.WaitUnit("p.service", "failed", failed)
			if (u.FDStoreCount > 0) != (tc.want.failure > 0) {
				t.Errorf("after failure (%s): %d entries, want kept=%v", u.Result, u.FDStoreCount, tc.want.failure > 0)
			}
			// Clean empties the store of a stopped unit.
			d.MustCall(control.MethodCleanUnit, control.CleanParams{Name: "p.service", What: []string{"fdstore"}}, nil)
			if u := d.Unit("p.service"); u.FDStoreCount != 0 || u.SubState == "dead-resources-pinned" {
				t.Errorf("after clean: %+v", u)
			}
		})
	}
}

func TestCleanRunningUnitRefused(t *testing.T) {
	d := luodtest.Start(t, map[string]string{"c.service": svc(`-store s=memfd:x`) + "FileDescriptorStoreMax=1\n"})
	d.WaitUnit("c.service", "active", active)
	err := d.Call(control.MethodCleanUnit, control.CleanParams{Name: "c.service", What: []string{"fdstore"}}, nil)
	if !errors.Is(err, &control.RemoteError{Name: control.ErrUnitBusy}) {
		t.Fatalf("clean of a running unit: %v, want UnitBusy", err)
	}
	if d.Unit("c.service").FDStoreCount != 1 {
		t.Fatal("store changed")
	}
}

func TestStoreLimits(t *testing.T) {
	d := luodtest.Start(t, map[string]string{
		"full.service":     svc(`-store a=memfd:1 -store b=memfd:2 -store c=memfd:3`) + "FileDescriptorStoreMax=2\n",
		"disabled.service": svc(`-store a=memfd:1`) + "NotifyAccess=main\n",
		"dup.service":      svc(`-store a=memfd-twice:1`) + "FileDescriptorStoreMax=4\n",
		"hup.service":      svc(`-store s=socket-closed -store t=socket`) + "FileDescriptorStoreMax=4\n",
		"nopoll.service":   svc(`-store s=socket-closed -nopoll`) + "FileDescriptorStoreMax=4\n",
		"remove.service":   svc(`-store a=memfd:1 -store b=memfd:2 -store a=memfd:3 -remove a`) + "FileDescriptorStoreMax=4\n",
	})
	for name, want := range map[string]int{"full.service": 2, "disabled.service": 0, "dup.service": 1, "hup.service": 1, "nopoll.service": 1, "remove.service": 1} {
		// Waited for, not read once: luod drops a hung-up socket when
		// its POLLHUP arrives, after the service may be active.
		want := want
		d.WaitUnit(name, fmt.Sprintf("active with %d entries", want), func(u control.Unit) bool {
			return active(u) && u.FDStoreCount == want
		})
	}
	d.WaitLog("cannot store more fds than FileDescriptorStoreMax=2")
	d.WaitLog("cannot store more fds than FileDescriptorStoreMax=0")
	d.WaitLog("received EPOLLHUP on stored fd, closing")
	if got := d.FDStore("remove.service").Entries; len(got) != 1 || got[0].Name != "b" {
		t.Errorf("after FDSTOREREMOVE: %+v", got)
	}
	if got := d.FDStore("hup.service").Entries; len(got) != 1 || got[0].Name != "t" || got[0].Type != "sock" || got[0].Survives != "no" {
		t.Errorf("hup store: %+v", got)
	}
}

// TestNotifyAccess checks who may send: the main process, a child of it,
// and a process outside every unit, for each NotifyAccess= value.
func TestNotifyAccess(t *testing.T) {
	units := map[string]string{}
	type want struct{ main, child bool }
	cases := map[string]want{"main": {true, false}, "exec": {true, false}, "all": {true, true}, "none": {false, false}}
	for access := range cases {
		for _, from := range []string{"main", "child"} {
			// With NotifyAccess=none luod does not set $NOTIFY_SOCKET:
			// tell the service where it is so it can try anyway.
			units[access+"-"+from+".service"] = svc("-socket @DIR@/run/notify -from "+from+" -status from-"+from) +
				"NotifyAccess=" + access + "\nTimeoutStartSec=3s\n"
		}
	}
	d := luodtest.Start(t, units)
	for access, w := range cases {
		for _, from := range []string{"main", "child"} {
			name := access + "-" + from + ".service"
			ok := w.main
			if from == "child" {
				ok = w.child
			}
			u := d.WaitUnit(name, "settled", func(u control.Unit) bool { return u.ActiveState == "active" || u.ActiveState == "failed" })
			if got := u.ActiveState == "active"; got != ok {
				t.Errorf("%s: active=%v (status %q, result %q), want %v", name, got, u.Status, u.Result, ok)
			}
		}
	}
	d.WaitLog("reception is disabled (NotifyAccess=none)")
	d.WaitLog("reception only permitted for main PID")

	// A process outside every unit.
	n := notifyFromOutside(t, d)
	d.WaitLog("cannot find unit for notify message")
	_ = n
}

func TestMainPIDChange(t *testing.T) {
	d := luodtest.Start(t, map[string]string{"m.service": svc(`-report @DIR@/first -mainpid-child`) + "TimeoutStopSec=5s\n"})
	first := d.ReadReport(filepath.Join(d.Dir, "first"), 0).PID
	u := d.WaitUnit("m.service", "main pid changed", func(u control.Unit) bool {
		return u.MainPID != 0 && u.MainPID != first && u.ActiveState == "active"
	})
	d.MustCall(control.MethodStopUnit, control.UnitName{Name: "m.service"}, nil)
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", u.MainPID)); err == nil {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", u.MainPID)); !strings.Contains(string(b), ") Z") {
			t.Errorf("new main process %d still alive after stop", u.MainPID)
		}
	}
}

func TestRestartPolicy(t *testing.T) {
	d := luodtest.Start(t, map[string]string{
		"onfail.service": svc(`-exit 1 -exit-delay 50ms`) + "Restart=on-failure\nRestartSec=50ms\n",
		"always.service": svc(`-exit 0 -exit-delay 50ms`) + "Restart=always\nRestartSec=50ms\n",
		"no.service":     svc(`-exit 3 -exit-delay 50ms`) + "Restart=no\n",
		"clean.service":  svc(`-exit 0 -exit-delay 50ms`) + "Restart=on-failure\n",
	})
	d.WaitUnit("onfail.service", "restarted twice", func(u control.Unit) bool { return u.Restarts >= 2 })
	d.WaitUnit("always.service", "restarted twice", func(u control.Unit) bool { return u.Restarts >= 2 })
	u := d.WaitUnit("no.service", "failed", failed)
	if u.Result != "exit-code" || u.ExitCode != 3 || u.Restarts != 0 {
		t.Errorf("no.service %+v", u)
	}
	u = d.WaitUnit("clean.service", "dead", func(u control.Unit) bool { return u.ActiveState == "inactive" })
	if u.Result != "success" || u.Restarts != 0 {
		t.Errorf("clean.service %+v", u)
	}
	d.MustCall(control.MethodStopUnit, control.UnitName{Name: "onfail.service"}, nil)
	d.MustCall(control.MethodStopUnit, control.UnitName{Name: "always.service"}, nil)
	if u := d.Unit("always.service"); u.ActiveState == "activating" || u.MainPID != 0 {
		t.Errorf("always.service kept restarting after stop: %+v", u)
	}
}

func TestStopTimeoutKills(t *testing.T) {
	d := luodtest.Start(t, map[string]string{"stubborn.service": svc(`-ignore-term`) + "TimeoutStopSec=500ms\n"})
	d.WaitUnit("stubborn.service", "active", active)
	d.Call(control.MethodStopUnit, control.UnitName{Name: "stubborn.service"}, nil)
	u := d.WaitUnit("stubborn.service", "dead", dead)
	if u.Result != "timeout" || u.ActiveState != "failed" {
		t.Errorf("after stop timeout: %+v", u)
	}
	d.WaitLog("stop timed out, killing")
}

func TestStartTimeout(t *testing.T) {
	d := luodtest.Start(t, map[string]string{"slow.service": svc(`-ready=false`) + "TimeoutStartSec=300ms\n"})
	u := d.WaitUnit("slow.service", "failed", failed)
	if u.Result != "timeout" {
		t.Errorf("result %q, want timeout", u.Result)
	}
}

func TestOneshot(t *testing.T) {
	d := luodtest.Start(t, map[string]string{"once.service": `[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=@BIN@/testsvc -ready=false -exit 0
ExecStart=@BIN@/testsvc -ready=false -report @DIR@/once -exit 0
`})
	u := d.WaitUnit("once.service", "active", active)
	if u.SubState != "exited" {
		t.Errorf("sub-state %q, want exited", u.SubState)
	}
	if r := d.ReadReport(filepath.Join(d.Dir, "once"), 0); r.PID == 0 {
		t.Error("second command did not run")
	}
}

func TestUnitFileProblems(t *testing.T) {
	d := luodtest.Start(t, map[string]string{
		"warn.service": svc("") + "Frobnicate=yes\n",
		"bad.service":  svc("") + "Restart=sometimes\n",
	})
	d.WaitLog(`warn.service:7: [Service] Frobnicate`)
	var rep control.ReloadReply
	d.MustCall(control.MethodReload, nil, &rep)
	if !slices.Contains(rep.Loaded, "warn.service") || slices.Contains(rep.Loaded, "bad.service") ||
		len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0], "Restart=sometimes") {
		t.Fatalf("reload: %+v", rep)
	}
	err := d.Call(control.MethodStartUnit, control.UnitName{Name: "bad.service"}, nil)
	if !errors.Is(err, &control.RemoteError{Name: control.ErrNoSuchUnit}) {
		t.Errorf("start of a unit that failed to load: %v", err)
	}
	d.WaitUnit("warn.service", "active", active)
}

// TestLastWordsBeforeExit: a service stores an fd and exits at once,
// without a barrier. luod must store the fd before it handles the exit,
// every time (systemd handles notifications before SIGCHLD).
func TestLastWordsBeforeExit(t *testing.T) {
	d := luodtest.Start(t, map[string]string{"last.service": "[Unit]\nStartLimitIntervalSec=0\n" + svc(`-ready=false -store last=memfd:final -no-barrier -exit 0`) +
		"Type=simple\nFileDescriptorStoreMax=1\nFileDescriptorStorePreserve=yes\n"})
	for i := range 20 {
		u := d.WaitUnit("last.service", "dead", func(u control.Unit) bool { return u.ActiveState == "inactive" })
		if u.FDStoreCount != 1 {
			t.Fatalf("round %d: the fd stored right before exit is missing: %+v", i, u)
		}
		d.MustCall(control.MethodCleanUnit, control.CleanParams{Name: "last.service", What: []string{"fdstore"}}, nil)
		d.MustCall(control.MethodStartUnit, control.UnitName{Name: "last.service"}, nil)
	}
}

// TestExecEnvironment checks what a service is started with: Environment=,
// EnvironmentFile= (quotes, comments, a missing optional file), User=,
// Group=, WorkingDirectory=, and specifiers and variables in ExecStart=.
func TestExecEnvironment(t *testing.T) {
	d := luodtest.Start(t, nil)
	envFile := filepath.Join(d.Dir, "env")
	os.WriteFile(envFile, []byte("# comment\nBAR=from-file\nexport QUOTED=\"a b\"\n"), 0o644)
	os.MkdirAll(filepath.Join(d.Dir, "work"), 0o755)
	d.WriteUnit("env.service", `[Service]
Type=notify
Environment=FOO=foo "BAR=overridden"
EnvironmentFile=@DIR@/env
EnvironmentFile=-@DIR@/missing
WorkingDirectory=@DIR@/work
User=nobody
Group=nogroup
ExecStart=@BIN@/testsvc -report @DIR@/report-%n -status $FOO
`)
	// nobody must reach the binaries and the report directory: open the
	// test's own directories up to the temporary directory (not beyond).
	tmp := filepath.Clean(os.TempDir())
	for _, start := range []string{d.Dir, d.Bin} {
		for dir := start; dir != tmp && dir != "/" && dir != "."; dir = filepath.Dir(dir) {
			os.Chmod(dir, 0o755)
		}
	}
	os.Chmod(d.Dir, 0o777)
	d.MustCall(control.MethodReload, nil, nil)
	d.MustCall(control.MethodStartUnit, control.UnitName{Name: "env.service"}, nil)
	r := d.ReadReport(filepath.Join(d.Dir, "report-env.service"), 0)
	if r.Env["FOO"] != "foo" || r.Env["BAR"] != "from-file" || r.Env["QUOTED"] != "a b" {
		t.Errorf("environment %v", r.Env)
	}
	if r.UID != 65534 || r.Dir != filepath.Join(d.Dir, "work") || r.Env["LUOD_UNIT"] != "env.service" || r.Env["INVOCATION_ID"] == "" {
		t.Errorf("uid %d dir %q env %v", r.UID, r.Dir, r.Env)
	}
	if u := d.Unit("env.service"); u.Status != "foo" {
		t.Errorf("$FOO in ExecStart= gave status %q", u.Status)
	}
	// A missing required EnvironmentFile= fails the start with a clear log.
	d.WriteUnit("noenv.service", "[Service]\nExecStart=@BIN@/testsvc\nEnvironmentFile=@DIR@/nope\n")
	d.MustCall(control.MethodReload, nil, nil)
	d.Call(control.MethodStartUnit, control.UnitName{Name: "noenv.service"}, nil)
	d.WaitUnit("noenv.service", "failed", failed)
	d.WaitLog("EnvironmentFile=" + filepath.Join(d.Dir, "nope"))
}

// TestSoftPlanCountsByKind: a soft update inherits every fd; the plan
// counts the memfds as memfds, with their sizes, and the pipe and socket
// as other fds (it once called all of them memfds of 0 B).
func TestSoftPlanCountsByKind(t *testing.T) {
	d := luodtest.Start(t, map[string]string{"a.service": svc(`-store m=memfd:hello -store p=pipe -store s=socket`) +
		"FileDescriptorStoreMax=4\n"})
	d.WaitUnit("a.service", "three fds stored", func(u control.Unit) bool { return active(u) && u.FDStoreCount == 3 })
	var p control.Plan
	d.MustCall(control.MethodPlanUpdate, control.UpdateParams{NoKexec: true}, &p)
	if p.Memfds != 1 || p.TotalBytes != 5 || p.Preserved != 0 || p.Sessions != 0 || p.Others != 2 || p.Lost != 0 {
		t.Errorf("soft plan: %d memfds (%d B), %d preserved, %d sessions, %d others, %d lost; want 1 (5 B), 0, 0, 2, 0",
			p.Memfds, p.TotalBytes, p.Preserved, p.Sessions, p.Others, p.Lost)
	}
	for _, u := range p.Units {
		for _, e := range u.Entries {
			if want := map[string]int64{"m": 5}[e.Name]; e.Bytes != want {
				t.Errorf("entry %s (%s): %d bytes, want %d", e.Name, e.Type, e.Bytes, want)
			}
		}
	}
}
