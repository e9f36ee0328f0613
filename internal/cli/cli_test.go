package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/cli"
	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/control/controltest"
)

// now is the clock of every test.
var now = time.Date(2026, 8, 4, 10, 0, 0, 0, time.UTC)

type result struct {
	code           int
	stdout, stderr string
}

// run runs luoctl against the socket (given through $LUOD_SOCKET).
func run(t *testing.T, socket string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cli.Env{
		Stdout: &out,
		Stderr: &errb,
		Getenv: func(k string) string {
			if k == cli.SocketEnv {
				return socket
			}
			return ""
		},
		Now:      func() time.Time { return now },
		Location: time.UTC,
	}
	code := env.Main(context.Background(), args)
	return result{code, out.String(), errb.String()}
}

// check compares a run's exit status and output with the wanted ones.
func check(t *testing.T, got result, code int, stdout, stderr string) {
	t.Helper()
	if got.code != code {
		t.Errorf("exit status %d, want %d (stderr %q)", got.code, code, got.stderr)
	}
	if got.stdout != stdout {
		t.Errorf("stdout:\n%s\nwant:\n%s\n(diff at %s)", got.stdout, stdout, firstDiff(got.stdout, stdout))
	}
	if got.stderr != stderr {
		t.Errorf("stderr:\n%q\nwant:\n%q", got.stderr, stderr)
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d: got %q, want %q", i+1, x, y)
		}
	}
	return "none"
}

// decodeJSON decodes a run's stdout strictly into v.
func decodeJSON(t *testing.T, stdout string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %T from:\n%s\n%v", v, stdout, err)
	}
	if !strings.HasPrefix(stdout, "{\n  \"") && !strings.HasPrefix(stdout, "[\n  {") && stdout != "[]\n" {
		t.Errorf("not indented JSON:\n%s", stdout)
	}
}

var (
	web = control.Unit{
		Name:            "web.service",
		Description:     "Web frontend",
		Path:            "/etc/luo/units/web.service",
		LoadState:       "loaded",
		ActiveState:     "active",
		SubState:        "running",
		Since:           now.Add(-3*time.Minute - 2*time.Second),
		Type:            "notify",
		MainPID:         1234,
		Status:          "serving 3 clients",
		Restarts:        1,
		FDStoreCount:    2,
		FDStoreMax:      16,
		FDStorePreserve: "yes",
		LUOSessions:     []string{"luod.web.service"},
	}
	db = control.Unit{
		Name:        "db.service",
		Path:        "/etc/luo/units/db.service",
		LoadState:   "loaded",
		ActiveState: "failed",
		SubState:    "failed",
		Since:       now.Add(-2*time.Hour - 5*time.Minute),
		Result:      "exit-code",
		ExitCode:    1,
		Errno:       int(syscall.ENOENT),
		Warnings:    []string{"FileDescriptorStoreMax=0: fds sent with FDSTORE=1 are closed"},
		// luod closed what the service stored: status says so.
		FDStoreRefused: 2,
		FDStoreLastRefused: &control.FDStoreRefusal{FDName: "keep.index", Reason: "full (FileDescriptorStoreMax=0)",
			Time: now.Add(-2*time.Hour - 5*time.Minute - time.Second)},
	}
	units = []control.Unit{db, web}
)

// unitHandler answers per-unit methods from units.
func unitHandler(c *control.Call) {
	var p control.UnitName
	if c.Params(&p) != nil {
		return
	}
	for _, u := range units {
		if u.Name == p.Name {
			_ = c.Reply(control.UnitReply{Unit: u})
			return
		}
	}
	_ = c.ReplyError(control.ErrNoSuchUnit, map[string]string{"name": p.Name})
}

func TestStatusManager(t *testing.T) {
	t.Parallel()
	sock := controltest.New(t, map[string]func(*control.Call){
		control.MethodGetManager: controltest.Reply(control.Manager{
			Version: "0.3.0", PID: 1, PID1: true, Started: now.Add(-26 * time.Hour), Reexecs: 2,
			UnitDir: "/etc/luo/units", NotifySocket: "/run/luod/notify", Units: 2, LiveUpdates: 1,
			LUO: control.LUOStatus{Device: true, Cmdline: true, Release: "7.2.13"},
		}),
		control.MethodListUnits: controltest.Reply(control.Units{Units: units}),
	})
	check(t, run(t, sock, "status"), 0, `luod 0.3.0
       State: running
         PID: 1 (init)
     Started: Mon 2026-08-03 08:00:00 UTC; 1 day 2h ago
     Reexecs: 2
    Unit dir: /etc/luo/units
      Notify: /run/luod/notify
       Units: 2
Live updates: 1 since the last cold boot
         LUO: ready (kernel 7.2.13)

UNIT         LOAD    ACTIVE  SUB      FDSTORE  DESCRIPTION
db.service   loaded  failed  failed   0/0      -
web.service  loaded  active  running  2/16     Web frontend

2 units listed.
`, "")

	r := run(t, sock, "status", "--json")
	var got control.Manager
	decodeJSON(t, r.stdout, &got)
	if got.Reexecs != 2 || got.Units != 2 || got.LUO.Release != "7.2.13" {
		t.Errorf("status --json = %+v", got)
	}
}

func TestStatusLUONotReady(t *testing.T) {
	t.Parallel()
	sock := controltest.New(t, map[string]func(*control.Call){
		control.MethodGetManager: controltest.Reply(control.Manager{
			Version: "0.3.0", PID: 812, Updating: true,
			LUO: control.LUOStatus{Release: "6.1.0", Problem: "CONFIG_LIVEUPDATE is off"},
		}),
		control.MethodListUnits: controltest.Reply(control.Units{}),
	})
	check(t, run(t, sock, "status"), 0, `luod 0.3.0
       State: updating
         PID: 812
     Reexecs: 0
    Unit dir: -
      Notify: -
       Units: 0
Live updates: 0 since the last cold boot
         LUO: not ready (kernel 6.1.0): no /dev/liveupdate; no liveupdate=on on the kernel command line; CONFIG_LIVEUPDATE is off

UNIT  LOAD  ACTIVE  SUB  FDSTORE  DESCRIPTION

0 units listed.
`, "")
}

func TestStatusUnits(t *testing.T) {
	t.Parallel()
	sock := controltest.New(t, map[string]func(*control.Call){control.MethodGetUnit: unitHandler})
	const webStatus = `* web.service - Web frontend
      Loaded: loaded (/etc/luo/units/web.service)
      Active: active (running) since Tue 2026-08-04 09:56:58 UTC; 3min 2s ago
    Main PID: 1234
      Status: "serving 3 clients"
    FD Store: 2/16 (preserve=yes)
LUO sessions: luod.web.service
    Restarts: 1
`
	check(t, run(t, sock, "status", "web.service", "db.service"), 0, webStatus+`
x db.service
      Loaded: loaded (/etc/luo/units/db.service)
      Active: failed (Result: exit-code) since Tue 2026-08-04 07:55:00 UTC; 2h 5min ago
        Exit: status 1
       Error: 2 (no such file or directory)
    FD Store: 0/0, 2 refused: full (FileDescriptorStoreMax=0), last fdname=keep.index at 2026-08-04 07:54:59 UTC
     Warning: FileDescriptorStoreMax=0: fds sent with FDSTORE=1 are closed
`, "")

	// A missing unit: the others are shown, the status says so.
	check(t, run(t, sock, "status", "nope.service", "web.service"), cli.ExitNoSuchUnit, webStatus,
		"luoctl: no such unit \"nope.service\"\n")

	r := run(t, sock, "--json", "status", "web.service", "nope.service")
	var got []control.UnitReply
	decodeJSON(t, r.stdout, &got)
	if r.code != cli.ExitNoSuchUnit || len(got) != 1 || got[0].Unit.Status != "serving 3 clients" || !got[0].Unit.Since.Equal(web.Since) {
		t.Errorf("status --json = %d %+v", r.code, got)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	sock := controltest.New(t, map[string]func(*control.Call){
		control.MethodListUnits: controltest.Reply(control.Units{Units: units}),
	})
	check(t, run(t, sock, "list"), 0, `UNIT         LOAD    ACTIVE  SUB      FDSTORE  DESCRIPTION
db.service   loaded  failed  failed   0/0      -
web.service  loaded  active  running  2/16     Web frontend

2 units listed.
`, "")
	var got control.Units
	decodeJSON(t, run(t, sock, "list", "--json").stdout, &got)
	if len(got.Units) != 2 || got.Units[0].Result != "exit-code" {
		t.Errorf("list --json = %+v", got)
	}
	check(t, run(t, sock, "list", "extra"), cli.ExitUsage, "", "luoctl: luoctl list takes no arguments\nSee 'luoctl list --help'.\n")
}

func TestJobs(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var calls []string
	job := func(c *control.Call) {
		var p control.UnitName
		if c.Params(&p) != nil {
			return
		}
		mu.Lock()
		calls = append(calls, fmt.Sprintf("%s %s no_block=%v", c.Method(), p.Name, p.NoBlock))
		mu.Unlock()
		switch p.Name {
		case "web.service":
			_ = c.Reply(control.UnitReply{Unit: web})
		case "db.service":
			_ = c.ReplyError(control.ErrJobFailed, control.UnitReply{Unit: db})
		default:
			_ = c.ReplyError(control.ErrNoSuchUnit, map[string]string{"name": p.Name})
		}
	}
	sock := controltest.New(t, map[string]func(*control.Call){
		control.MethodStartUnit:   job,
		control.MethodStopUnit:    job,
		control.MethodRestartUnit: job,
	})
	tests := []struct {
		args   []string
		code   int
		stderr string
		calls  string
	}{
		{[]string{"start", "web.service"}, 0, "", "StartUnit web.service no_block=false"},
		{[]string{"stop", "--no-block", "web.service"}, 0, "", "StopUnit web.service no_block=true"},
		{[]string{"restart", "db.service", "web.service"}, cli.ExitFailure,
			"luoctl: job for \"db.service\" failed: unit is failed (failed), result exit-code; see 'luoctl status db.service'\n",
			"RestartUnit db.service no_block=false|RestartUnit web.service no_block=false"},
		{[]string{"start", "x.service"}, cli.ExitNoSuchUnit, "luoctl: no such unit \"x.service\"\n", "StartUnit x.service no_block=false"},
		{[]string{"start"}, cli.ExitUsage, "luoctl: luoctl start needs at least one UNIT\nSee 'luoctl start --help'.\n", ""},
	}
	for _, tt := range tests {
		mu.Lock()
		calls = nil
		mu.Unlock()
		check(t, run(t, sock, tt.args...), tt.code, "", tt.stderr)
		mu.Lock()
		if got := strings.Join(calls, "|"); got != tt.calls {
			t.Errorf("%v: calls %q, want %q", tt.args, got, tt.calls)
		}
		mu.Unlock()
	}
	r := run(t, sock, "start", "--json", "web.service")
	var got []control.UnitReply
	decodeJSON(t, r.stdout, &got)
	if r.code != 0 || len(got) != 1 || got[0].Unit.MainPID != 1234 {
		t.Errorf("start --json = %d %+v", r.code, got)
	}
}

func TestFDStore(t *testing.T) {
	t.Parallel()
	sock := controltest.New(t, map[string]func(*control.Call){
		control.MethodDumpFDStore: func(c *control.Call) {
			var p control.UnitName
			if c.Params(&p) != nil {
				return
			}
			switch p.Name {
			case "web.service":
				_ = c.Reply(control.FDStore{Unit: "web.service", Max: 16, Preserve: "yes", Entries: []control.FDStoreEntry{
					{Name: "state", Type: "memfd", DevNo: [2]uint32{0, 1}, Inode: 2048, Path: "/memfd:state (deleted)", Flags: "rw", Size: 1536 * 1024,
						Survives: "yes", Why: "memfd, preserved in luod's session"},
					{Name: "listen", Type: "sock", DevNo: [2]uint32{0, 8}, Inode: 31337, Path: "socket:[31337]", Flags: "rw,nonblock",
						Survives: "no", Why: "sockets do not survive a kexec"},
					{Name: "tty", Type: "chr", DevNo: [2]uint32{0, 5}, Inode: 7, RDevNo: &[2]uint32{4, 1}, Path: "/dev/tty1", Flags: "wo", Survives: "no", Why: "device nodes do not survive a kexec"},
				}})
			case "db.service":
				_ = c.Reply(control.FDStore{Unit: "db.service", Max: 4, Preserve: "no"})
			default:
				_ = c.ReplyError(control.ErrNoSuchUnit, map[string]string{"name": p.Name})
			}
		},
	})
	check(t, run(t, sock, "fdstore", "web.service", "db.service"), 0, `web.service: 3/16, preserve=yes
FDNAME  TYPE   DEVNO  INODE  RDEVNO  PATH                    FLAGS        SIZE  KEXEC  WHY
state   memfd  0:1    2048   -       /memfd:state (deleted)  rw           1.5M  yes    memfd, preserved in luod's session
listen  sock   0:8    31337  -       socket:[31337]          rw,nonblock  -     no     sockets do not survive a kexec
tty     chr    0:5    7      4:1     /dev/tty1               wo           -     no     device nodes do not survive a kexec

db.service: 0/4, preserve=no
(empty)
`, "")
	r := run(t, sock, "fdstore", "--json", "web.service", "db.service")
	var got []control.FDStore
	decodeJSON(t, r.stdout, &got)
	if len(got) != 2 || len(got[0].Entries) != 3 || got[0].Entries[2].RDevNo == nil || got[0].Entries[0].RDevNo != nil {
		t.Errorf("fdstore --json = %+v", got)
	}
	// Optional fields without a value are left out, not null.
	if strings.Contains(r.stdout, "null") || strings.Count(r.stdout, `"rdevno"`) != 1 || strings.Count(r.stdout, `"entries"`) != 1 {
		t.Errorf("fdstore --json has nulls or empty optional fields:\n%s", r.stdout)
	}
	check(t, run(t, sock, "fdstore", "x.service"), cli.ExitNoSuchUnit, "", "luoctl: no such unit \"x.service\"\n")
}

func TestClean(t *testing.T) {
	t.Parallel()
	var got atomic.Value
	sock := controltest.New(t, map[string]func(*control.Call){
		control.MethodCleanUnit: func(c *control.Call) {
			var p control.CleanParams
			if c.Params(&p) != nil {
				return
			}
			got.Store(p)
			if p.Name == "web.service" {
				_ = c.ReplyError(control.ErrUnitBusy, map[string]string{"name": p.Name, "message": "stop it first"})
				return
			}
			_ = c.Reply(control.UnitReply{Unit: db})
		},
	})
	check(t, run(t, sock, "clean", "db.service"), 0, "", "")
	if p := got.Load().(control.CleanParams); p.Name != "db.service" || strings.Join(p.What, ",") != "fdstore" {
		t.Errorf("CleanUnit params %+v", p)
	}
	check(t, run(t, sock, "clean", "--what=fdstore", "web.service"), cli.ExitFailure, "", "luoctl: unit \"web.service\" is busy: stop it first\n")
	check(t, run(t, sock, "clean", "--what=cache", "db.service"), cli.ExitUsage, "",
		"luoctl: --what=cache: only fdstore is supported\nSee 'luoctl clean --help'.\n")
}

func TestDaemonReload(t *testing.T) {
	t.Parallel()
	reply := control.ReloadReply{
		Loaded:   []string{"db.service", "web.service"},
		Errors:   []string{"bad.service: line 3: unknown section [Servce]"},
		Warnings: []string{"web.service: unknown key Foo="},
	}
	sock := controltest.New(t, map[string]func(*control.Call){control.MethodReload: controltest.Reply(reply)})
	check(t, run(t, sock, "daemon-reload"), 0, `Loaded 2 units.
Error: bad.service: line 3: unknown section [Servce]
Warning: web.service: unknown key Foo=
`, "")
	var got control.ReloadReply
	decodeJSON(t, run(t, sock, "daemon-reload", "--json").stdout, &got)
	if len(got.Errors) != 1 {
		t.Errorf("daemon-reload --json = %+v", got)
	}
}

func TestDaemonReexec(t *testing.T) {
	t.Parallel()
	// luod's re-exec: after the Reexec call, GetManager answers with the
	// old count a few times, then with the new one.
	var reexecs, polls atomic.Int32
	var requested atomic.Bool
	sock := controltest.New(t, map[string]func(*control.Call){
		control.MethodGetManager: func(c *control.Call) {
			if requested.Load() && polls.Add(1) == 3 {
				reexecs.Add(1)
			}
			_ = c.Reply(control.Manager{PID: 1, Reexecs: int(reexecs.Load())})
		},
		control.MethodReexec: func(c *control.Call) {
			requested.Store(true)
			_ = c.Reply(nil)
		},
	})
	reexecs.Store(2)
	check(t, run(t, sock, "daemon-reexec"), 0, "luod re-executed: PID 1, 3 re-execs since it started.\n", "")
	if n := polls.Load(); n != 3 {
		t.Errorf("%d polls, want 3", n)
	}

	// It never comes back.
	polls.Store(-1000)
	r := run(t, sock, "daemon-reexec", "--timeout=300ms")
	if r.code != cli.ExitFailure || !strings.HasPrefix(r.stderr, "luoctl: gave up after 300ms (see --timeout): waiting for luod to come back after its re-exec: context deadline exceeded (last: luod still reports 3 re-execs)") {
		t.Errorf("daemon-reexec without a re-exec = %d %q", r.code, r.stderr)
	}
}

func TestSessions(t *testing.T) {
	t.Parallel()
	sock := controltest.New(t, map[string]func(*control.Call){
		control.MethodListSessions: controltest.Reply(control.Sessions{Sessions: []control.Session{
			{Name: "luod", Direction: "outgoing", Owner: "luod (manifest session)"},
			{Name: "luod.web.service", Unit: "web.service", Direction: "outgoing", Owner: "luod (LUOSession=)"},
			{Name: "vm-42", Unit: "vmm.service", FDName: "guest-mem", Direction: "incoming", Owner: "service"},
		}}),
	})
	check(t, run(t, sock, "sessions"), 0, `NAME              UNIT         FDNAME     DIRECTION  OWNER
luod              -            -          outgoing   luod (manifest session)
luod.web.service  web.service  -          outgoing   luod (LUOSession=)
vm-42             vmm.service  guest-mem  incoming   service

3 sessions listed.
`, "")
	var got control.Sessions
	decodeJSON(t, run(t, sock, "sessions", "--json").stdout, &got)
	if len(got.Sessions) != 3 {
		t.Errorf("sessions --json = %+v", got)
	}
}

func TestPower(t *testing.T) {
	t.Parallel()
	sock := controltest.New(t, map[string]func(*control.Call){
		control.MethodPowerOff: controltest.Error(control.ErrNotSupported, map[string]string{"message": "luod is not PID 1"}),
		control.MethodReboot:   controltest.Reply(nil),
	})
	check(t, run(t, sock, "poweroff"), cli.ExitFailure, "", "luoctl: not supported: luod is not PID 1\n")
	check(t, run(t, sock, "reboot"), 0, "", "")
}

func TestVersion(t *testing.T) {
	t.Parallel()
	sock := controltest.New(t, map[string]func(*control.Call){
		control.MethodGetManager: controltest.Reply(control.Manager{Version: "0.3.0"}),
	})
	r := run(t, sock, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "luoctl ") || !strings.HasSuffix(r.stdout, "\nluod 0.3.0\n") {
		t.Errorf("version = %d %q", r.code, r.stdout)
	}
	var got struct{ Luoctl, Luod string }
	decodeJSON(t, run(t, sock, "version", "--json").stdout, &got)
	if got.Luoctl == "" || got.Luod != "0.3.0" {
		t.Errorf("version --json = %+v", got)
	}
}

var plan = control.Plan{
	Kind:    "kexec",
	Kernel:  "/boot/vmlinuz-7.2.13",
	Initrd:  "/boot/initrd.img-7.2.13",
	Cmdline: "console=ttyS0 liveupdate=on",
	Checks: []control.Check{
		{Name: "luo-device", OK: true, Detail: "/dev/liveupdate"},
		{Name: "kexec-load", OK: true},
		{Name: "kho-scratch", OK: false, Detail: "needs 96M, has 64M (kho_scratch=)"},
	},
	Units: []control.PlanUnit{
		{Name: "web.service", Active: true, Preserve: "yes", Entries: []control.PlanEntry{
			{Name: "state", Type: "memfd", Fate: "preserve", Reason: "memfd, preserved in luod's session", Bytes: 1536 * 1024},
			{Name: "listen", Type: "sock", Fate: "lost", Reason: "sockets do not survive a kexec"},
		}},
		{Name: "vmm.service", Active: true, Preserve: "yes", Entries: []control.PlanEntry{
			{Name: "guest-mem", Type: "luo-session", Fate: "session", Reason: "LUO session vm-42, kept open"},
		}},
		{Name: "db.service", Preserve: "no"},
	},
	TotalBytes: 1536 * 1024,
	Memfds:     1,
	Preserved:  1,
	Sessions:   1,
	Lost:       1,
}

const planText = `Kexec update into /boot/vmlinuz-7.2.13
  initrd:  /boot/initrd.img-7.2.13
  cmdline: console=ttyS0 liveupdate=on

Checks:
  OK    luo-device: /dev/liveupdate
  OK    kexec-load
  FAIL  kho-scratch: needs 96M, has 64M (kho_scratch=)

UNIT         FDNAME     TYPE         FATE      SIZE  REASON
web.service  state      memfd        preserve  1.5M  memfd, preserved in luod's session
web.service  listen     sock         lost      -     sockets do not survive a kexec
vmm.service  guest-mem  luo-session  session   -     LUO session vm-42, kept open
db.service   -          -            -         -     fd store empty

Total: 1 memfd (1.5M), 1 session carried; 1 fd lost
`

func TestUpdatePlan(t *testing.T) {
	t.Parallel()
	var params atomic.Value
	sock := controltest.New(t, map[string]func(*control.Call){
		control.MethodPlanUpdate: func(c *control.Call) {
			var p control.UpdateParams
			if c.Params(&p) != nil {
				return
			}
			params.Store(p)
			reply := plan
			if p.AllowLoss {
				reply.Checks = reply.Checks[:2]
				reply.OK = true
			}
			if p.NoKexec {
				reply = control.Plan{Kind: "soft", OK: true, Units: []control.PlanUnit{{Name: "web.service", Entries: []control.PlanEntry{
					{Name: "state", Type: "memfd", Fate: "inherit", Reason: "inherited by the new luod", Bytes: 4096},
					{Name: "listen", Type: "sock", Fate: "inherit", Reason: "inherited by the new luod"},
				}}}, TotalBytes: 4096, Memfds: 1, Others: 1}
			}
			_ = c.Reply(reply)
		},
	})

	check(t, run(t, sock, "update", "plan", "--kernel", "/boot/vmlinuz-7.2.13", "--initrd", "/boot/initrd.img-7.2.13", "--reuse-cmdline", "--cmdline", "quiet"),
		cli.ExitUpdate, planText+"Plan: NOT OK: 1 check failed, 1 fd would be lost (--allow-loss accepts that)\n",
		"luoctl: the update plan is not OK\n")
	want := control.UpdateParams{Kernel: "/boot/vmlinuz-7.2.13", Initrd: "/boot/initrd.img-7.2.13", Cmdline: "quiet", ReuseCmdline: true}
	if got := params.Load().(control.UpdateParams); got != want {
		t.Errorf("PlanUpdate params %+v, want %+v", got, want)
	}

	r := run(t, sock, "update", "plan", "--kernel=/k", "--allow-loss")
	if r.code != 0 || !strings.HasSuffix(r.stdout, "Plan: OK\n") {
		t.Errorf("plan --allow-loss = %d\n%s", r.code, r.stdout)
	}

	check(t, run(t, sock, "update", "plan", "--no-kexec"), 0, `Soft update: re-execute luod, keep the kernel

UNIT         FDNAME  TYPE   FATE     SIZE  REASON
web.service  state   memfd  inherit  4.0K  inherited by the new luod
web.service  listen  sock   inherit  -     inherited by the new luod

Total: 1 memfd (4.0K), 0 sessions, 1 other fd inherited; 0 fds lost
Plan: OK
`, "")

	r = run(t, sock, "update", "plan", "--json", "--kernel=/k")
	var got control.Plan
	decodeJSON(t, r.stdout, &got)
	if r.code != cli.ExitUpdate || got.OK || len(got.Units) != 3 || got.Units[0].Entries[1].Fate != "lost" {
		t.Errorf("plan --json = %d %+v", r.code, got)
	}

	for _, bad := range [][]string{
		{"update", "plan"},
		{"update", "plan", "--no-kexec", "--kernel=/k"},
		{"update", "plan", "--kernel=/k", "--restart-units"},
		{"update", "plan", "--kernel=/k", "--stop-timeout=-1s"},
		{"update", "plan", "--kernel=/k", "--stop-timeout=soon"},
		{"update", "plan", "--kernel=/k", "extra"},
	} {
		if r := run(t, sock, bad...); r.code != cli.ExitUsage || !strings.Contains(r.stderr, "\nSee 'luoctl update plan --help'.\n") {
			t.Errorf("%q = %d %q, want a usage error", bad, r.code, r.stderr)
		}
	}
}

// progress is a RunUpdate reply at offset ms from now.
func progress(ms int, phase, msg string) control.Progress {
	return control.Progress{Phase: phase, Message: msg, Time: now.Add(time.Duration(ms) * time.Millisecond)}
}

func TestUpdateRun(t *testing.T) {
	t.Parallel()
	var params atomic.Value
	sock := controltest.New(t, map[string]func(*control.Call){
		control.MethodRunUpdate: func(c *control.Call) {
			var p control.UpdateParams
			if c.Params(&p) != nil {
				return
			}
			params.Store(p)
			if p.Kernel == "/bad" {
				_ = c.ReplyMore(progress(0, "load", "loading /bad"))
				_ = c.ReplyMore(progress(12, "abort", "kexec_file_load: exec format error"))
				_ = c.ReplyError(control.ErrUpdateFailed, control.UpdateFailure{Phase: "load", Message: "kexec_file_load /bad: exec format error", Restored: true})
				return
			}
			if p.Kernel == "/busy" {
				_ = c.ReplyError(control.ErrUpdateInProgress, nil)
				return
			}
			for _, pr := range []control.Progress{
				progress(0, "stop", "stopping 2 units"),
				progress(123, "exec", "re-executing luod"),
			} {
				_ = c.ReplyMore(pr)
			}
			done := progress(1500, "done", "2 units restored")
			done.Done = true
			_ = c.Reply(done)
		},
	})
	check(t, run(t, sock, "update", "run", "--no-kexec", "--restart-units", "--stop-timeout=90s"), 0, `[ 0.000s] stop: stopping 2 units
[ 0.123s] exec: re-executing luod
[ 1.500s] done: 2 units restored
`, "")
	want := control.UpdateParams{NoKexec: true, RestartUnits: true, StopTimeout: "1m30s"}
	if got := params.Load().(control.UpdateParams); got != want {
		t.Errorf("RunUpdate params %+v, want %+v", got, want)
	}

	check(t, run(t, sock, "update", "run", "--kernel=/bad"), cli.ExitUpdate, `[ 0.000s] load: loading /bad
[ 0.012s] abort: kexec_file_load: exec format error
`, "luoctl: update failed in phase \"load\": kexec_file_load /bad: exec format error; every unit was restored with its fd store\n")

	check(t, run(t, sock, "update", "run", "--kernel=/busy"), cli.ExitUpdate, "", "luoctl: another update is in progress\n")

	// JSON: one object per line.
	r := run(t, sock, "update", "run", "--no-kexec", "--json")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if r.code != 0 || len(lines) != 3 {
		t.Fatalf("update run --json = %d\n%s", r.code, r.stdout)
	}
	for i, l := range lines {
		var p control.Progress
		if err := json.Unmarshal([]byte(l), &p); err != nil || p.Phase == "" || p.Done != (i == 2) {
			t.Errorf("line %d: %s: %+v %v", i, l, p, err)
		}
	}
}

// hangupServer is a luod that streams replies to the first call and then
// vanishes, as luod does when the machine kexecs.
func hangupServer(t *testing.T, replies ...control.Progress) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "luoctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := bufio.NewReader(c).ReadString(0); err != nil {
			return
		}
		for _, p := range replies {
			b, _ := json.Marshal(map[string]any{"parameters": p, "continues": true})
			c.Write(append(b, 0))
		}
	}()
	return path
}

func TestUpdateRunHangup(t *testing.T) {
	t.Parallel()
	sock := hangupServer(t,
		progress(0, "load", "loaded /boot/vmlinuz-7.2.13"),
		progress(2000, "stop", "stopped 2 units"),
		progress(2100, "preserve", "preserved 3 fds in 2 sessions"),
		progress(2200, "reboot", "rebooting into 7.2.13"))
	check(t, run(t, sock, "update", "run", "--kernel=/boot/vmlinuz-7.2.13"), 0, `[ 0.000s] load: loaded /boot/vmlinuz-7.2.13
[ 2.000s] stop: stopped 2 units
[ 2.100s] preserve: preserved 3 fds in 2 sessions
[ 2.200s] reboot: rebooting into 7.2.13
Rebooting into the new kernel; 'luoctl update report' shows the outcome once it is up.
`, "")

	// Dropping earlier is a failure.
	sock = hangupServer(t, progress(0, "load", "loaded"), progress(10, "stop", "stopping"))
	r := run(t, sock, "update", "run", "--kernel=/k")
	if r.code != cli.ExitFailure || !strings.HasPrefix(r.stderr, "luoctl: lost the connection to luod during phase stop; see 'luoctl status': RunUpdate: luod closed the connection") {
		t.Errorf("update run dropped during stop = %d %q", r.code, r.stderr)
	}
}

func TestUpdateReport(t *testing.T) {
	t.Parallel()
	at := func(ms int) time.Time { return now.Add(time.Duration(ms) * time.Millisecond) }
	report := control.Report{
		Count: 1, Kind: "kexec", From: "7.2.12", To: "7.2.13",
		Timeline: []control.Event{
			{Name: "requested", Time: at(0)},
			{Name: "loaded", Time: at(350)},
			{Name: "stop-begin", Time: at(400)},
			{Name: "last-stopped", Time: at(1400)},
			{Name: "reboot", Time: at(1650)},
			{Name: "kernel-up", Time: at(4100)},
			{Name: "ready", Unit: "web.service", Time: at(5200)},
			{Name: "finished", Time: at(5600)},
		},
		Units: []control.ReportUnit{
			{Name: "web.service", Stopped: at(900), Ready: at(5200), Blackout: 4300 * time.Millisecond,
				Delivered: []string{"state"}, Lost: []control.PlanEntry{{Name: "listen", Type: "sock", Fate: "lost"}}},
			{Name: "db.service", Stopped: at(1400)},
		},
		Problems: []string{"db.service did not become ready"},
	}
	sock := controltest.New(t, map[string]func(*control.Call){control.MethodGetUpdateReport: controltest.Reply(report)})
	check(t, run(t, sock, "update", "report"), 0, `Live update 1 (kexec): 7.2.12 -> 7.2.13

EVENT         UNIT         TIME                         OFFSET
requested     -            2026-08-04 10:00:00.000 UTC  +0.000s
loaded        -            2026-08-04 10:00:00.350 UTC  +0.350s
stop-begin    -            2026-08-04 10:00:00.400 UTC  +0.400s
last-stopped  -            2026-08-04 10:00:01.400 UTC  +1.400s
reboot        -            2026-08-04 10:00:01.650 UTC  +1.650s
kernel-up     -            2026-08-04 10:00:04.100 UTC  +4.100s
ready         web.service  2026-08-04 10:00:05.200 UTC  +5.200s
finished      -            2026-08-04 10:00:05.600 UTC  +5.600s

UNIT         STOPPED  READY    BLACKOUT  DELIVERED  LOST
web.service  +0.900s  +5.200s  4.300s    state      listen
db.service   +1.400s  -        -         -          -

Problems:
  db.service did not become ready
`, "")
	var got control.Report
	decodeJSON(t, run(t, sock, "update", "report", "--json").stdout, &got)
	if got.Units[0].Blackout != 4300*time.Millisecond || !got.Units[1].Ready.IsZero() {
		t.Errorf("update report --json = %+v", got)
	}

	sock = controltest.New(t, map[string]func(*control.Call){control.MethodGetUpdateReport: controltest.Error(control.ErrNoReport, nil)})
	check(t, run(t, sock, "update", "report"), cli.ExitFailure, "", "luoctl: no update report: no live update since the last cold boot\n")

	// A soft update's report says what a soft update does and where the
	// last kexec's report is; --kind asks for that one.
	var kinds atomic.Value
	soft := control.Report{Count: 2, Kind: "soft", From: "7.2.13", To: "7.2.13", Also: []string{"kexec"},
		Timeline: []control.Event{{Name: "requested", Time: at(0)}, {Name: "exec", Time: at(20)}, {Name: "luod-up", Time: at(90)}, {Name: "finished", Time: at(100)}},
		Units:    []control.ReportUnit{{Name: "web.service", Delivered: []string{"state"}}}}
	sock = controltest.New(t, map[string]func(*control.Call){control.MethodGetUpdateReport: func(c *control.Call) {
		var p control.ReportParams
		if c.Params(&p) != nil {
			return
		}
		kinds.Store(p.Kind)
		_ = c.Reply(map[string]control.Report{"": soft, "kexec": report}[p.Kind])
	}})
	check(t, run(t, sock, "update", "report"), 0, `Soft update 2: luod re-executed itself, kernel 7.2.13 kept

EVENT      UNIT  TIME                         OFFSET
requested  -     2026-08-04 10:00:00.000 UTC  +0.000s
exec       -     2026-08-04 10:00:00.020 UTC  +0.020s
luod-up    -     2026-08-04 10:00:00.090 UTC  +0.090s
finished   -     2026-08-04 10:00:00.100 UTC  +0.100s

UNIT         STOPPED  READY  BLACKOUT  DELIVERED  LOST
web.service  -        -      -         state      -

The last kexec update has a report too: luoctl update report --kind=kexec
`, "")
	if r := run(t, sock, "update", "report", "--kind=kexec"); r.code != 0 || kinds.Load() != "kexec" || !strings.HasPrefix(r.stdout, "Live update 1 (kexec)") {
		t.Errorf("update report --kind=kexec = %d %q (asked for %v)", r.code, r.stdout, kinds.Load())
	}
	if r := run(t, sock, "update", "report", "--kind=other"); r.code != cli.ExitUsage {
		t.Errorf("update report --kind=other = %d, want a usage error", r.code)
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "none")
	check(t, run(t, missing, "list"), cli.ExitUnreachable, "", "luoctl: luod is not running? no socket at "+missing+"\n")

	stale := hangupServer(t) // listens, answers nothing: close it to leave a stale socket
	os.Remove(stale)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	check(t, run(t, stale, "list"), cli.ExitUnreachable, "", "luoctl: luod is not running? nothing listens on "+stale+"\n")

	sock := controltest.New(t, map[string]func(*control.Call){
		control.MethodListUnits:    controltest.Error(control.VarlinkPermissionDenied, map[string]string{"message": "luod's control socket is root-only"}),
		control.MethodListSessions: controltest.Error("io.luo.Manager.SomethingNew", map[string]int{"code": 7}),
		control.MethodGetManager: func(c *control.Call) {
			time.Sleep(500 * time.Millisecond)
			_ = c.Reply(nil)
		},
	})
	check(t, run(t, sock, "list"), cli.ExitPermission, "", "luoctl: permission denied: luod's control socket is root-only\n")
	check(t, run(t, sock, "sessions"), cli.ExitFailure, "", "luoctl: luod replied error SomethingNew {\"code\":7}\n")
	check(t, run(t, sock, "--timeout=50ms", "status"), cli.ExitFailure, "",
		"luoctl: gave up after 50ms (see --timeout): GetManager: context deadline exceeded\n")
	check(t, run(t, sock, "reboot"), cli.ExitFailure, "", "luoctl: luod does not implement \"io.luo.Manager.Reboot\"\n")
	// --socket beats $LUOD_SOCKET.
	check(t, run(t, missing, "--socket", sock, "list"), cli.ExitPermission, "", "luoctl: permission denied: luod's control socket is root-only\n")

	usage := []struct {
		args   []string
		stderr string
	}{
		{nil, "luoctl: missing command\nSee 'luoctl --help'.\n"},
		{[]string{"frobnicate"}, "luoctl: unknown command \"frobnicate\" for \"luoctl\"\nSee 'luoctl --help'.\n"},
		{[]string{"list", "--frob"}, "luoctl: unknown flag: --frob\nSee 'luoctl list --help'.\n"},
		{[]string{"--timeout=soon", "list"}, "luoctl: invalid argument \"soon\" for \"--timeout\" flag: time: invalid duration \"soon\"\nSee 'luoctl list --help'.\n"},
		{[]string{"update", "frob"}, "luoctl: unknown command \"frob\" for \"luoctl update\"\nSee 'luoctl update --help'.\n"},
	}
	for _, tt := range usage {
		check(t, run(t, sock, tt.args...), cli.ExitUsage, "", tt.stderr)
	}

	// Help is not an error.
	if r := run(t, sock, "--help"); r.code != 0 || !strings.Contains(r.stdout, "Exit status:\n  0  success\n") {
		t.Errorf("--help = %d\n%s", r.code, r.stdout)
	}
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("x"), 1},
		{&control.DialError{Path: "/s", Err: syscall.ENOENT}, 5},
		{&control.DialError{Path: "/s", Err: syscall.ECONNREFUSED}, 5},
		{&control.DialError{Path: "/s", Err: syscall.EACCES}, 6},
		{fmt.Errorf("wrapped: %w", &control.RemoteError{Name: control.ErrNoSuchUnit}), 3},
		{&control.RemoteError{Name: control.ErrUpdateFailed}, 4},
		{&control.RemoteError{Name: control.ErrUpdateInProgress}, 4},
		{&control.RemoteError{Name: control.VarlinkPermissionDenied}, 6},
		{&control.RemoteError{Name: control.ErrJobFailed}, 1},
		{errors.Join(&control.RemoteError{Name: control.ErrNoSuchUnit}, errors.New("x")), 3},
	}
	for _, tt := range tests {
		if got := cli.ExitCode(tt.err); got != tt.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestLogs(t *testing.T) {
	t.Parallel()
	lines := []control.LogLine{
		{Time: now.Add(-2 * time.Second), Stream: "stdout", Priority: 6, Message: "listening on :8080"},
		{Time: now.Add(-time.Second), Stream: "stderr", Priority: 3, Message: "bad request \x1b[31mred\x1b[0m"},
	}
	var got atomic.Value
	withLog := web
	withLog.Log = lines
	sock := controltest.New(t, map[string]func(*control.Call){
		control.MethodGetUnit: controltest.Reply(control.UnitReply{Unit: withLog}),
		control.MethodGetLogs: func(c *control.Call) {
			var p control.LogsParams
			if c.Params(&p) != nil {
				return
			}
			got.Store(p)
			if p.Name != "web.service" {
				_ = c.ReplyError(control.ErrNoSuchUnit, map[string]string{"name": p.Name})
				return
			}
			if !p.Follow {
				_ = c.Reply(control.LogLines{Lines: lines[len(lines)-p.Lines:]})
				return
			}
			_ = c.ReplyMore(control.LogLines{Lines: lines[:1]})
			_ = c.ReplyMore(control.LogLines{Lines: lines[1:]})
			_ = c.Reply(control.LogLines{})
		},
	})
	// status UNIT: the last lines under the status block.
	r := run(t, sock, "status", "web.service")
	if want := "\nAug 04 09:59:58 web: listening on :8080\nAug 04 09:59:59 web[stderr]: bad request \\x1b[31mred\\x1b[0m\n"; r.code != 0 || !strings.HasSuffix(r.stdout, want) {
		t.Errorf("status web.service = %d:\n%s\nwant it to end with:\n%s", r.code, r.stdout, want)
	}
	check(t, run(t, sock, "logs", "web.service", "-n", "1"), 0, "Aug 04 09:59:59 web[stderr]: bad request \\x1b[31mred\\x1b[0m\n", "")
	if p := got.Load().(control.LogsParams); p != (control.LogsParams{Name: "web.service", Lines: 1}) {
		t.Errorf("GetLogs params %+v", p)
	}
	var rep control.LogLines
	decodeJSON(t, run(t, sock, "logs", "web.service", "--lines=2", "--json").stdout, &rep)
	if len(rep.Lines) != 2 || rep.Lines[1].Message != lines[1].Message || rep.Lines[1].Priority != 3 {
		t.Errorf("logs --json = %+v", rep)
	}
	// -f prints each reply as it comes, until luod ends the call.
	check(t, run(t, sock, "logs", "-f", "web.service"), 0, `Aug 04 09:59:58 web: listening on :8080
Aug 04 09:59:59 web[stderr]: bad request \x1b[31mred\x1b[0m
`, "")
	if p := got.Load().(control.LogsParams); !p.Follow {
		t.Errorf("logs -f: GetLogs params %+v", p)
	}
	r = run(t, sock, "logs", "-f", "--json", "web.service")
	if n := strings.Count(r.stdout, "\n"); r.code != 0 || n != 3 || !strings.HasPrefix(r.stdout, `{"lines":[{"time":`) {
		t.Errorf("logs -f --json = %d:\n%s", r.code, r.stdout)
	}
	check(t, run(t, sock, "logs", "nope.service"), cli.ExitNoSuchUnit, "", "luoctl: no such unit \"nope.service\"\n")
	if r := run(t, sock, "logs", "web.service", "-n", "-1"); r.code != cli.ExitUsage {
		t.Errorf("logs -n -1: exit %d", r.code)
	}
	if r := run(t, sock, "logs"); r.code != cli.ExitUsage {
		t.Errorf("logs without a unit: exit %d", r.code)
	}
}
