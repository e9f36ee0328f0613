//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/liveupdate/luo/internal/metrics/metricstest"
)

// luodDeb is where the host puts the luo package (interop.luod=1).
const luodDeb = "/var/cache/luo/luo.deb"

// luodCounters are the counters under luod: fd-store mode, as
// counter-mem, and session mode with a LUO session luod hands out
// (LUOSession=), as counter-luos.
var luodCounters = map[string]string{
	"counter.service": `[Unit]
Description=keep counter under luod: fd-store mode

[Service]
Type=notify
ExecStart=/usr/local/bin/counter -v
FileDescriptorStoreMax=8
FileDescriptorStorePreserve=yes
`,
	"counter-luos.service": `[Unit]
Description=keep counter under luod: session mode, session handed out by luod (LUOSession=)

[Service]
Type=notify
User=nobody
ExecStart=/usr/local/bin/counter -v -session state
LUOSession=state
FileDescriptorStoreMax=8
FileDescriptorStorePreserve=yes
`,
}

// luodRun is the run of luod as a systemd service (interop.luod=1 on the
// command line). Stage 1: install the luo package with dpkg, enable and
// start luod.service with the counter as its unit, reload it, restart it,
// kill -9 it. Every stage: systemctl kexec into the other kernel, but the
// last, which talks to luod's control socket with varlinkctl, stops luod
// and removes the package. Each step is reported
// as "event=luod step=NAME ok=BOOL" with what was seen; the host checks
// them (TestInteropLuod).
func luodRun(stages int, cmdline string) {
	begin(stages)
	last := stage == stages
	// luodKexec does not return (or powers off itself): every return
	// below ends the run.
	defer func() {
		emit("event=poweroff")
		poweroff()
	}()
	if stage == 1 && !luodFirst() {
		return
	}
	if stage > 1 {
		// After systemctl kexec: luod.service is enabled, and the counter
		// comes back with its state, one generation more.
		step, _, show := luodSteps()
		st, ok := countersAt(stage + 2)
		s := show("ActiveState", "MainPID", "StatusText")
		step(fmt.Sprintf("kexec-%d", stage), ok, append(counterFields(st), kv("release", readTrim("/proc/sys/kernel/osrelease")),
			kv("active", s["ActiveState"]), kv("luod_status", s["StatusText"]))...)
		metricsStep(step, fmt.Sprintf("metrics-%d", stage))
	}
	text("luod-fdstore", "", "systemd-analyze", "fdstore", "luod.service")
	if !last {
		luodKexec(cmdline)
		return
	}
	luodFinal()
}

// luodFirst is stage 1 of luodRun; it reports whether to go on.
func luodFirst() bool {
	step, cmd, show := luodSteps()
	if _, ok := cmd("install", "dpkg", "-i", luodDeb); !ok {
		return false
	}
	version, _ := run(time.Minute, "luod", "--version")
	ctlVersion, _ := run(time.Minute, "luoctl", "--version")
	step("install", true, kv("luod", strings.TrimSpace(version)), kv("luoctl", strings.TrimSpace(ctlVersion)))
	text("luod-man", "", "sh", "-c", "man -w luod luod.service luoctl luoctl-update-run 2>&1 || true")

	// luod's options come from /etc/default/luod (luod.service's
	// EnvironmentFile=): metrics on 127.0.0.1, a host limit.
	if err := os.WriteFile("/etc/default/luod", []byte("LUOD_OPTS=\"--metrics-listen "+luodMetrics+" --preserve-max-bytes 1G\"\n"), 0o644); err != nil {
		step("options", false, kv("msg", err.Error()))
		return false
	}
	os.MkdirAll("/etc/luod/system", 0o755)
	for name, text := range luodCounters {
		if err := os.WriteFile("/etc/luod/system/"+name, []byte(text), 0o644); err != nil {
			step("unit", false, kv("msg", err.Error()))
			return false
		}
	}
	if _, ok := cmd("start", "systemctl", "enable", "--now", "luod.service"); !ok {
		text("luod-journal", "", "journalctl", "-b", "0", "-u", "luod.service", "-o", "cat", "--no-pager")
		return false
	}
	s := show("ActiveState", "SubState", "Type", "MainPID", "StatusText", "NRestarts")
	step("start", s["ActiveState"] == "active", kv("active", s["ActiveState"]), kv("sub", s["SubState"]), kv("type", s["Type"]),
		kv("mainpid", s["MainPID"]), kv("status", s["StatusText"]))

	// The counter comes up under luod.
	st, ok := countersAt(1)
	step("counter", ok, counterFields(st)...)
	cmd("luoctl-status", "luoctl", "status", "counter.service", "counter-luos.service")
	// Its stdout reaches journald as its own message (luod logs there).
	ok, fields := journalLine("counter.service", "counter: generation=")
	step("journal", ok, fields...)
	metricsStep(step, "metrics")

	if _, ok := cmd("reload", "systemctl", "reload", "luod.service"); ok {
		s = show("ActiveState", "MainPID", "StatusText")
		step("reload", s["ActiveState"] == "active", kv("active", s["ActiveState"]), kv("mainpid", s["MainPID"]), kv("status", s["StatusText"]))
	}

	// The counter's store lives in luod's fd store in systemd too: it
	// survives a restart of luod and a kill -9 of luod, one generation
	// more each time.
	text("luod-fdstore", "", "systemd-analyze", "fdstore", "luod.service")
	if _, ok := cmd("restart", "systemctl", "restart", "luod.service"); ok {
		st, ok := countersAt(2)
		step("restart", ok, append(counterFields(st), kv("mainpid", show("MainPID")["MainPID"]))...)
	}
	before := show("MainPID")["MainPID"]
	if _, ok := cmd("kill9", "systemctl", "kill", "--kill-whom=main", "--signal=SIGKILL", "luod.service"); ok {
		st, ok := countersAt(3)
		after := show("MainPID", "NRestarts")
		step("kill9", ok && after["MainPID"] != before, append(counterFields(st),
			kv("mainpid_before", before), kv("mainpid", after["MainPID"]), kv("restarts", after["NRestarts"]))...)
	}
	return true
}

// luodKexec live-updates with systemctl kexec into the other kernel: 7.3
// from an odd stage, 7.2 from an even one.
func luodKexec(cmdline string) {
	next := "/boot/vmlinuz-7.3"
	if stage%2 == 0 {
		next = "/boot/vmlinuz-7.2"
	}
	kexecInto(next, cmdline)
}

// luodFinal is the last stage's part of luodRun: varlinkctl against luod's
// socket, stop, and removal of the package.
func luodFinal() {
	step, cmd, show := luodSteps()
	s := show("ActiveState", "MainPID", "StatusText")

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
		// A dry run: the plan of a soft update changes nothing.
		{"PlanUpdate", `{"no_kexec":true}`, `"kind":"soft"`},
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

// counterFields are the counters' status lines as a step's fields:
// status (fd-store mode) and status_luos (session mode).
func counterFields(st map[string]string) []string {
	return []string{kv("status", st["counter.service"]), kv("status_luos", st["counter-luos.service"])}
}

// countersAt waits (2 minutes at most) until every counter runs under
// luod at generation gen, and returns their status lines by unit; ok when
// they all came, verified (but at generation 1, which starts fresh).
func countersAt(gen int) (map[string]string, bool) {
	prefix := fmt.Sprintf("generation=%d ", gen)
	st := map[string]string{}
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		for name := range luodCounters {
			if strings.HasPrefix(st[name], prefix) {
				continue
			}
			o, err := run(time.Minute, "luoctl", "--json", "status", name)
			// An array of GetUnit replies (docs/luoctl-json.md).
			var r []struct {
				Unit struct {
					ActiveState string `json:"active_state"`
					Status      string `json:"status"`
				} `json:"unit"`
			}
			if err == nil && json.Unmarshal([]byte(o), &r) == nil && len(r) == 1 && r[0].Unit.ActiveState == "active" {
				st[name] = r[0].Unit.Status
			}
		}
		all := true
		for name := range luodCounters {
			all = all && strings.HasPrefix(st[name], prefix)
		}
		if all {
			break
		}
	}
	ok := true
	for name := range luodCounters {
		ok = ok && strings.HasPrefix(st[name], prefix) && (gen == 1 || strings.Contains(st[name], "verified=ok"))
	}
	return st, ok
}

// luodSteps returns luodRun's helpers: step reports a step, cmd runs a
// command and reports its output (and the step as failed when it fails),
// show reads properties of luod.service.
func luodSteps() (step func(string, bool, ...string) bool, cmd func(string, ...string) (string, bool), show func(...string) map[string]string) {
	step = func(name string, ok bool, fields ...string) bool {
		emit(append([]string{"event=luod", kv("step", name), kv("ok", fmt.Sprint(ok))}, fields...)...)
		return ok
	}
	cmd = func(name string, argv ...string) (string, bool) {
		o, err := run(3*time.Minute, argv[0], argv[1:]...)
		writeText("luod-"+name, "", "$ "+strings.Join(argv, " ")+"\n"+o, err)
		if err != nil {
			step(name, false, kv("msg", fmt.Sprintf("%s: %v", strings.Join(argv, " "), err)))
			return o, false
		}
		return o, true
	}
	show = func(props ...string) map[string]string {
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

	return step, cmd, show
}

// journalLine looks in the journal (10 s at most) for a line the unit
// wrote to stdout that starts with prefix, as luod sends it: the unit's own
// message with UNIT=, SYSLOG_IDENTIFIER= and LUOD_STREAM=. It reports
// whether it found one, and its fields.
func journalLine(unit, prefix string) (bool, []string) {
	ident := strings.TrimSuffix(unit, ".service")
	var last map[string]any
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		o, _ := run(time.Minute, "journalctl", "-b", "0", "-o", "json", "--no-pager", "UNIT="+unit)
		for _, l := range strings.Split(o, "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) != nil {
				continue
			}
			if msg, _ := m["MESSAGE"].(string); strings.HasPrefix(msg, prefix) {
				last = m
				if m["SYSLOG_IDENTIFIER"] == ident && m["UNIT"] == unit && m["LUOD_STREAM"] == "stdout" && m["PRIORITY"] == "6" {
					break
				}
			}
		}
		if last != nil {
			break
		}
	}
	f := func(k string) string { return fmt.Sprint(last[k]) }
	ok := last != nil && f("SYSLOG_IDENTIFIER") == ident && f("UNIT") == unit && f("LUOD_STREAM") == "stdout" && f("PRIORITY") == "6"
	return ok, []string{kv("message", f("MESSAGE")), kv("unit", f("UNIT")), kv("identifier", f("SYSLOG_IDENTIFIER")),
		kv("stream", f("LUOD_STREAM")), kv("priority", f("PRIORITY"))}
}

// luodMetrics is where luod serves its metrics in the VM.
const luodMetrics = "127.0.0.1:9561"

// metricsStep scrapes luod's metrics, as Prometheus would, and reports
// what they say of the counters: both units active, their stores, the
// host limit luod was given in /etc/default/luod.
func metricsStep(step func(string, bool, ...string) bool, name string) {
	var fams metricstest.Families
	var err error
	for try := 0; try < 50; try++ {
		var resp *http.Response
		if resp, err = http.Get("http://" + luodMetrics + "/metrics"); err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if fams, err = metricstest.Parse(b); rerr != nil {
				err = rerr
			}
		}
		if err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		step(name, false, kv("msg", err.Error()))
		return
	}
	units, _ := fams.Value("luod_units")
	limit, _ := fams.Value("luod_preserve_max_bytes")
	fields := []string{kv("units", fmt.Sprint(units)), kv("preserve_max_bytes", fmt.Sprint(limit))}
	ok := units == 2 && limit == 1<<30
	for _, u := range []string{"counter.service", "counter-luos.service"} {
		active, _ := fams.Value("luod_unit_state", "unit", u, "state", "active")
		entries, _ := fams.Value("luod_unit_fdstore_entries", "unit", u)
		fields = append(fields, kv(u+"_active", fmt.Sprint(active)), kv(u+"_entries", fmt.Sprint(entries)))
		ok = ok && active == 1 && entries > 0
	}
	step(name, ok, fields...)
}
