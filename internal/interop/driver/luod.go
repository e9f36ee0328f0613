//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// luodDeb is where the host puts the luo package (interop.luod=1).
const luodDeb = "/var/cache/luo/luo.deb"

// luodCounter is the counter under luod: fd-store mode, as counter-mem.
const luodCounter = `[Unit]
Description=keep counter under luod

[Service]
Type=notify
ExecStart=/usr/local/bin/counter -v
FileDescriptorStoreMax=8
FileDescriptorStorePreserve=yes
`

// luodRun is the run of luod as a systemd service (interop.luod=1 on the
// command line): install the luo package with dpkg, start luod.service
// with the counter as its unit, reload it, talk to its control socket
// with varlinkctl, stop it, and remove the package. Each step is reported
// as "event=luod step=NAME ok=BOOL" with what was seen; the host checks
// them (TestInteropLuod).
func luodRun(stages int) {
	begin(stages)
	defer func() {
		emit("event=poweroff")
		poweroff()
	}()
	step := func(name string, ok bool, fields ...string) bool {
		emit(append([]string{"event=luod", kv("step", name), kv("ok", fmt.Sprint(ok))}, fields...)...)
		return ok
	}
	cmd := func(name string, argv ...string) (string, bool) {
		o, err := run(3*time.Minute, argv[0], argv[1:]...)
		writeText("luod-"+name, "", "$ "+strings.Join(argv, " ")+"\n"+o, err)
		if err != nil {
			step(name, false, kv("msg", fmt.Sprintf("%s: %v", strings.Join(argv, " "), err)))
			return o, false
		}
		return o, true
	}
	show := func(props ...string) map[string]string {
		args := []string{"systemctl", "show", "luod.service"}
		for _, p := range props {
			args = append(args, "-p", p)
		}
		o, _ := run(time.Minute, args[0], args[1:]...)
		m := map[string]string{}
		for _, line := range strings.Split(o, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				m[k] = v
			}
		}
		return m
	}

	if _, ok := cmd("install", "dpkg", "-i", luodDeb); !ok {
		return
	}
	version, _ := run(time.Minute, "luod", "--version")
	ctlVersion, _ := run(time.Minute, "luoctl", "--version")
	step("install", true, kv("luod", strings.TrimSpace(version)), kv("luoctl", strings.TrimSpace(ctlVersion)))
	text("luod-man", "", "sh", "-c", "man -w luod luod.service luoctl luoctl-update-run 2>&1 || true")

	os.MkdirAll("/etc/luod/system", 0o755)
	if err := os.WriteFile("/etc/luod/system/counter.service", []byte(luodCounter), 0o644); err != nil {
		step("unit", false, kv("msg", err.Error()))
		return
	}
	if _, ok := cmd("start", "systemctl", "start", "luod.service"); !ok {
		text("luod-journal", "", "journalctl", "-b", "0", "-u", "luod.service", "-o", "cat", "--no-pager")
		return
	}
	s := show("ActiveState", "SubState", "Type", "MainPID", "StatusText", "NRestarts")
	step("start", s["ActiveState"] == "active", kv("active", s["ActiveState"]), kv("sub", s["SubState"]), kv("type", s["Type"]),
		kv("mainpid", s["MainPID"]), kv("status", s["StatusText"]))

	// The counter comes up under luod.
	var status string
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		o, err := run(time.Minute, "luoctl", "--json", "status", "counter.service")
		// An array of GetUnit replies (docs/luoctl-json.md).
		var r []struct {
			Unit struct {
				ActiveState string `json:"active_state"`
				Status      string `json:"status"`
			} `json:"unit"`
		}
		if err == nil && json.Unmarshal([]byte(o), &r) == nil && len(r) == 1 && r[0].Unit.ActiveState == "active" {
			status = r[0].Unit.Status
			break
		}
	}
	step("counter", status != "", kv("status", status))
	cmd("luoctl-status", "luoctl", "status", "counter.service")

	if _, ok := cmd("reload", "systemctl", "reload", "luod.service"); ok {
		s = show("ActiveState", "MainPID", "StatusText")
		step("reload", s["ActiveState"] == "active", kv("active", s["ActiveState"]), kv("mainpid", s["MainPID"]), kv("status", s["StatusText"]))
	}

	// varlinkctl, systemd's own Varlink client, against luod's socket.
	const sock = "/run/luod/io.luo.Manager"
	if o, ok := cmd("introspect", "varlinkctl", "introspect", sock); ok {
		step("introspect", strings.Contains(o, "interface io.luo.Manager"), kv("lines", fmt.Sprint(strings.Count(o, "\n"))))
	}
	for _, c := range []struct{ method, params, want string }{
		{"GetManager", `{}`, `"pid":` + s["MainPID"] + `,`},
		{"ListUnits", `{}`, `"name":"counter.service"`},
		{"GetUnit", `{"name":"counter.service"}`, `"active_state":"active"`},
		{"DumpFDStore", `{"name":"counter.service"}`, `"entries":`},
		{"ListSessions", `{}`, `"sessions":`},
		// No update since this cold boot, none staged: the documented
		// errors come back.
		{"GetUpdateReport", `{}`, `io.luo.Manager.NoReport`},
		{"GetStagedUpdate", `{}`, `io.luo.Manager.NotStaged`},
	} {
		o, err := run(time.Minute, "varlinkctl", "call", sock, "io.luo.Manager."+c.method, c.params)
		writeText("luod-varlinkctl", "", "$ varlinkctl call "+sock+" io.luo.Manager."+c.method+" "+c.params+"\n"+o, err)
		errText := ""
		if err != nil {
			errText = err.Error()
		}
		step("call-"+c.method, strings.Contains(strings.ReplaceAll(o, " ", ""), c.want), kv("want", c.want), kv("err", errText))
	}

	if _, ok := cmd("stop", "systemctl", "stop", "luod.service"); ok {
		s = show("ActiveState", "Result")
		left := processes("/usr/local/bin/counter")
		step("stop", s["ActiveState"] == "inactive" && len(left) == 0, kv("active", s["ActiveState"]),
			kv("result", s["Result"]), kv("counter_left", strings.Join(left, " ")))
	}
	text("luod-journal", "", "journalctl", "-b", "0", "-u", "luod.service", "-o", "cat", "--no-pager")

	if _, ok := cmd("remove", "dpkg", "-r", "luo"); ok {
		var left []string
		for _, f := range []string{"/usr/sbin/luod", "/usr/sbin/luod-exec", "/usr/bin/luoctl", "/usr/lib/systemd/system/luod.service", "/usr/share/man/man8/luod.8.gz"} {
			if _, err := os.Stat(f); err == nil {
				left = append(left, f)
			}
		}
		_, known := run(time.Minute, "systemctl", "cat", "luod.service")
		step("remove", len(left) == 0 && known != nil, kv("left", strings.Join(left, " ")), kv("unit_gone", fmt.Sprint(known != nil)))
	}
}

// processes returns the pids of the processes whose command line starts
// with exe (the minimal root file system has no pgrep).
func processes(exe string) []string {
	var pids []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && strings.HasPrefix(string(b), exe+"\x00") {
			pids = append(pids, e.Name())
		}
	}
	return pids
}
