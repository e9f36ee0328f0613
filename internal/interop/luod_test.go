//go:build linux

package interop

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/liveupdate/luo/internal/vmtest"
)

// TestInteropLuod boots Debian sid with systemd 262 on the 7.2 LUO kernel,
// installs the luo package made by make deb with dpkg -i, and runs luod as
// luod.service with two counters as its units (fd-store mode, and session
// mode with LUOSession=): systemd sees it READY
// (Type=notify-reload) with its status, a systemctl reload goes through
// luod's RELOADING=1/READY=1, the counter's state survives systemctl
// restart luod and a kill -9 of luod (luod mirrors it in its own fd store
// in systemd), and three consecutive systemctl kexec, 7.2 -> 7.3 -> 7.2 ->
// 7.3 (systemd carries luod's fd store), one generation more each time;
// in the last stage varlinkctl introspects luod's control socket
// and calls each of its read methods, systemctl stop stops the counter
// with luod, and dpkg -r removes the package cleanly. Like TestInterop it
// runs with LUO_INTEROP=1 only.
func TestInteropLuod(t *testing.T) {
	if os.Getenv("LUO_INTEROP") == "" {
		t.Skip("set LUO_INTEROP=1 (make interop) to run the systemd 262 interop tests")
	}
	if testing.Short() {
		t.Skip("interop: not with -short")
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		unavailable(t, "interop: dpkg-deb not found")
	}
	k72, k73 := vmtest.Kernel(t, "7.2"), vmtest.Kernel(t, "7.3")
	mod, cache, rootfs := Setup(t)

	debDir := t.TempDir()
	build := exec.Command(filepath.Join(mod, "packaging", "deb.sh"), debDir)
	build.Dir = mod
	build.Env = append(os.Environ(), "VERSION=v0.0.0-interop")
	out, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("packaging/deb.sh: %v\n%s", err, out)
	}
	deb := strings.TrimSpace(string(out))

	run := filepath.Join(cache, "run-luod")
	disk := MakeDiskWith(t, mod, rootfs, run, map[string]string{"7.2": k72, "7.3": k73},
		map[string]string{"interop-driver.service": DriverUnitAfter("interop test driver: luod as a systemd service")}, map[string]string{"/var/cache/luo/luo.deb": deb})
	cmdline := "root=/dev/vda rw console=ttyS0 liveupdate=on no_timer_check panic=-1 systemd.show_status=1 interop.stage=1 interop.stages=4 interop.luod=1"
	events, _ := Boot(t, run, k72, disk, cmdline)

	steps := map[string]Event{}
	var order []string
	for _, ev := range events {
		if ev.Fields["event"] == "error" {
			t.Errorf("driver error: %s", ev.Line)
		}
		if ev.Fields["event"] != "luod" {
			continue
		}
		name := ev.Fields["step"]
		if _, seen := steps[name]; !seen {
			order = append(order, name)
		}
		steps[name] = ev
		if ev.Fields["ok"] != "true" {
			t.Errorf("step %s failed: %s", name, ev.Line)
		}
	}
	for _, want := range []string{"install", "start", "counter", "journal", "metrics", "reload", "restart", "kill9", "kexec-2", "kexec-3", "kexec-4", "metrics-2", "metrics-3", "metrics-4", "introspect",
		"call-GetManager", "call-ListUnits", "call-GetUnit", "call-DumpFDStore", "call-ListSessions", "call-PlanUpdate",
		"call-GetUpdateReport", "call-GetStagedUpdate", "stop", "remove"} {
		if _, ok := steps[want]; !ok {
			t.Errorf("no %s step (steps seen: %v)", want, order)
		}
	}
	if ev := steps["install"]; ev.Fields["luod"] != "luod v0.0.0-interop" || ev.Fields["luoctl"] != "luoctl v0.0.0-interop" {
		t.Errorf("installed versions: %s", ev.Line)
	}
	if ev := steps["start"]; ev.Fields["type"] != "notify-reload" || ev.Fields["sub"] != "running" || ev.Fields["mainpid"] == "0" || !strings.HasPrefix(ev.Fields["status"], "2 units: ") {
		t.Errorf("luod.service after start: %s", ev.Line)
	}
	if ev := steps["reload"]; ev.Fields["status"] != "2 units: 2 active, 0 failed" || ev.Fields["mainpid"] != steps["start"].Fields["mainpid"] {
		t.Errorf("luod.service after reload: %s", ev.Line)
	}
	// Both counters, one generation more after each step: fd-store mode,
	// and session mode in the LUO session luod handed out (LUOSession=).
	for i, name := range []string{"counter", "restart", "kill9", "kexec-2", "kexec-3", "kexec-4"} {
		ev := steps[name]
		gen := fmt.Sprintf("generation=%d ", i+1)
		if !strings.HasPrefix(ev.Fields["status"], gen) || !strings.Contains(ev.Fields["status"], "mode=fd-store") ||
			!strings.HasPrefix(ev.Fields["status_luos"], gen) || !strings.Contains(ev.Fields["status_luos"], "mode=session") {
			t.Errorf("the counters after %s: %s", name, ev.Line)
		}
	}
}
