package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/liveupdate/luo/internal/cli"
	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/luodtest"
	"github.com/liveupdate/luo/internal/metrics/metricstest"
)

// freePort is a TCP port on 127.0.0.1 nothing listens on right now.
func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func families(t *testing.T, text []byte) metricstest.Families {
	t.Helper()
	fams, err := metricstest.Parse(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	return fams
}

func scrape(t *testing.T, addr string) metricstest.Families {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, b.String())
	}
	return families(t, b.Bytes())
}

func luoctlJSON(t *testing.T, d *luodtest.Daemon, v any, args ...string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cli.Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	if code := env.Main(context.Background(), append([]string{"--socket=" + d.Socket, "--json"}, args...)); code != 0 {
		t.Fatalf("luoctl %s: exit %d: %s\nluod log:\n%s", strings.Join(args, " "), code, errb.String(), d.Log())
	}
	if err := json.Unmarshal(out.Bytes(), v); err != nil {
		t.Fatalf("luoctl %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
}

// TestMetricsMatchLuoctl scrapes a real luod's /metrics, parses it with
// Prometheus's own parser and checks every value against what `luoctl
// --json` says of the same state: units with stores (one over its
// PreserveMaxBytes=), a unit that hits its start limit, a refused kexec
// update and a soft update with its report. The textfile for
// node_exporter must come to say the same.
func TestMetricsMatchLuoctl(t *testing.T) {
	addr := freePort(t)
	dir := t.TempDir()
	textfile := filepath.Join(dir, "luod.prom")
	d := luodtest.Start(t, map[string]string{
		"a.service": `[Service]
Type=notify
ExecStart=@BIN@/testsvc -store state=memfd:hello -store listen=socket
FileDescriptorStoreMax=4
FileDescriptorStorePreserve=yes

[X-LUO]
PreserveMaxBytes=4
`,
		"b.service": `[Service]
Type=notify
ExecStart=@BIN@/testsvc -store state=memfd:0123456789
FileDescriptorStoreMax=4
FileDescriptorStorePreserve=yes
`,
		"crash.service": `[Unit]
StartLimitBurst=2
StartLimitIntervalSec=1min

[Service]
ExecStart=@BIN@/testsvc -ready=false -exit 3
Restart=always
RestartSec=10ms
`,
	}, "--metrics-listen", addr, "--metrics-textfile", textfile, "--preserve-max-bytes", "1G")
	d.WaitUnit("a.service", "active with its store", func(u control.Unit) bool { return u.ActiveState == "active" && u.FDStoreCount == 2 })
	d.WaitUnit("b.service", "active with its store", func(u control.Unit) bool { return u.ActiveState == "active" && u.FDStoreCount == 1 })
	d.WaitUnit("crash.service", "failed on its start limit", func(u control.Unit) bool { return u.Result == "start-limit-hit" })

	// A kexec update refused by its plan (no such kernel), then a soft
	// update, which re-executes luod: the counters must survive that.
	var out, errb bytes.Buffer
	env := &cli.Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	if code := env.Main(context.Background(), []string{"--socket=" + d.Socket, "update", "run", "--kernel", filepath.Join(dir, "none"), "--cmdline=liveupdate=on"}); code == 0 {
		t.Fatalf("update run into a missing kernel succeeded: %s", out.String())
	}
	var rep control.Report
	out.Reset()
	if code := env.Main(context.Background(), []string{"--socket=" + d.Socket, "update", "run", "--no-kexec"}); code != 0 {
		t.Fatalf("update run --no-kexec: exit %d: %s %s", code, out.String(), errb.String())
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := d.Call(control.MethodGetUpdateReport, control.ReportParams{}, &rep); err == nil && hasEvent(rep, "finished") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no finished soft update report: %+v", rep)
		}
		time.Sleep(50 * time.Millisecond)
	}

	var mg control.Manager
	var units control.Units
	var sessions control.Sessions
	luoctlJSON(t, d, &mg, "status")
	luoctlJSON(t, d, &units, "list")
	luoctlJSON(t, d, &sessions, "sessions")
	luoctlJSON(t, d, &rep, "update", "report")
	fams := scrape(t, addr)

	check := func(what string, got float64, ok bool, want float64) {
		t.Helper()
		if !ok || got != want {
			t.Errorf("%s = %v (present %v), luoctl says %v", what, got, ok, want)
		}
	}
	absent := func(what string, _ float64, ok bool) {
		t.Helper()
		if ok {
			t.Errorf("%s is present, want absent", what)
		}
	}
	v, ok := fams.Value("luod_info", "version", mg.Version)
	check("luod_info", v, ok, 1)
	v, ok = fams.Value("luod_reexecs_total")
	check("luod_reexecs_total", v, ok, float64(mg.Reexecs))
	if mg.Reexecs != 1 {
		t.Errorf("luoctl status: reexecs %d, want 1 (the soft update)", mg.Reexecs)
	}
	v, ok = fams.Value("luod_live_updates_total")
	check("luod_live_updates_total", v, ok, float64(mg.LiveUpdates))
	v, ok = fams.Value("luod_units")
	check("luod_units", v, ok, float64(mg.Units))
	v, ok = fams.Value("luod_start_time_seconds")
	check("luod_start_time_seconds", v, ok, float64(mg.Started.UnixNano())/1e9)
	v, ok = fams.Value("luod_preserve_bytes")
	check("luod_preserve_bytes", v, ok, float64(mg.PreserveBytes))
	if mg.PreserveMaxBytes == nil || *mg.PreserveMaxBytes != 1<<30 {
		t.Errorf("luoctl status: preserve_max_bytes %v, want 1G", mg.PreserveMaxBytes)
	} else {
		v, ok = fams.Value("luod_preserve_max_bytes")
		check("luod_preserve_max_bytes", v, ok, float64(*mg.PreserveMaxBytes))
	}
	var in, outg int
	for _, s := range sessions.Sessions {
		if s.Direction == "incoming" {
			in++
		} else {
			outg++
		}
	}
	v, ok = fams.Value("luod_luo_sessions", "direction", "incoming")
	check("luod_luo_sessions{incoming}", v, ok, float64(in))
	v, ok = fams.Value("luod_luo_sessions", "direction", "outgoing")
	check("luod_luo_sessions{outgoing}", v, ok, float64(outg))

	if len(units.Units) != 3 {
		t.Fatalf("luoctl list: %d units", len(units.Units))
	}
	for _, u := range units.Units {
		n := u.Name
		for _, st := range []string{"active", "activating", "deactivating", "inactive", "failed"} {
			want := 0.0
			if u.ActiveState == st {
				want = 1
			}
			v, ok = fams.Value("luod_unit_state", "unit", n, "state", st)
			check(fmt.Sprintf("luod_unit_state{%s,%s}", n, st), v, ok, want)
		}
		for name, want := range map[string]int64{
			"luod_unit_restarts_total":          int64(u.Restarts),
			"luod_unit_start_limit_hits_total":  int64(u.StartLimitHits),
			"luod_unit_fdstore_entries":         int64(u.FDStoreCount),
			"luod_unit_fdstore_max_entries":     int64(u.FDStoreMax),
			"luod_unit_fdstore_bytes":           u.FDStoreBytes,
			"luod_unit_fdstore_kexec_survivors": int64(u.FDStoreSurvives),
			"luod_unit_fdstore_refused_total":   int64(u.FDStoreRefused),
			"luod_unit_preserve_bytes":          u.PreserveBytes,
		} {
			v, ok = fams.Value(name, "unit", n)
			check(name+"{"+n+"}", v, ok, float64(want))
		}
		if u.PreserveMaxBytes == nil {
			v, ok = fams.Value("luod_unit_preserve_max_bytes", "unit", n)
			absent("luod_unit_preserve_max_bytes{"+n+"}", v, ok)
			continue
		}
		v, ok = fams.Value("luod_unit_preserve_max_bytes", "unit", n)
		check("luod_unit_preserve_max_bytes{"+n+"}", v, ok, float64(*u.PreserveMaxBytes))
		over := 0.0
		if u.PreserveBytes > *u.PreserveMaxBytes {
			over = 1
		}
		v, ok = fams.Value("luod_unit_preserve_over_limit", "unit", n)
		check("luod_unit_preserve_over_limit{"+n+"}", v, ok, over)
	}
	// What luoctl shows is what the units did: a's 5 bytes are over its
	// limit of 4, so none of its 2 entries (a memfd, a socket) would
	// survive a kexec; crash.service hit its start limit once.
	byName := map[string]control.Unit{}
	for _, u := range units.Units {
		byName[u.Name] = u
	}
	if a := byName["a.service"]; a.PreserveBytes != 5 || a.FDStoreBytes != 5 || a.FDStoreSurvives != 0 || a.PreserveMaxBytes == nil || *a.PreserveMaxBytes != 4 {
		t.Errorf("a.service: %+v", a)
	}
	if b := byName["b.service"]; b.PreserveBytes != 10 || mg.PreserveBytes != 15 {
		t.Errorf("b.service preserve_bytes %d, manager %d; want 10 and 15", b.PreserveBytes, mg.PreserveBytes)
	}
	if c := byName["crash.service"]; c.StartLimitHits != 1 || c.Restarts < 1 {
		t.Errorf("crash.service: start_limit_hits %d, restarts %d", c.StartLimitHits, c.Restarts)
	}

	// The updates: one refused kexec, one soft update done, and the
	// report's steps and blackouts.
	v, ok = fams.Value("luod_updates_total", "kind", "kexec", "result", "refused")
	check("luod_updates_total{kexec,refused}", v, ok, 1)
	v, ok = fams.Value("luod_updates_total", "kind", "soft", "result", rep.Result)
	check("luod_updates_total{soft,"+rep.Result+"}", v, ok, 1)
	v, ok = fams.Value("luod_last_aborted_update_timestamp_seconds", "kind", "kexec", "result", "refused", "phase", "plan")
	if !ok || v <= 0 {
		t.Errorf("luod_last_aborted_update_timestamp_seconds{kexec,refused,plan} = %v, %v", v, ok)
	}
	v, ok = fams.Value("luod_last_update_info", "kind", "soft", "result", rep.Result, "from", rep.From, "to", rep.To)
	check("luod_last_update_info", v, ok, 1)
	v, ok = fams.Value("luod_last_update_count", "kind", "soft")
	check("luod_last_update_count", v, ok, float64(rep.Count))
	var first, last time.Time
	for _, ev := range rep.Timeline {
		if ev.Unit != "" {
			continue
		}
		if first.IsZero() {
			first = ev.Time
		}
		last = ev.Time
		v, ok = fams.Value("luod_last_update_event_timestamp_seconds", "kind", "soft", "event", ev.Name)
		check("luod_last_update_event_timestamp_seconds{"+ev.Name+"}", v, ok, float64(ev.Time.UnixNano())/1e9)
	}
	v, ok = fams.Value("luod_last_update_duration_seconds", "kind", "soft")
	check("luod_last_update_duration_seconds", v, ok, last.Sub(first).Seconds())
	for _, u := range rep.Units {
		v, ok = fams.Value("luod_last_update_unit_lost_entries", "kind", "soft", "unit", u.Name)
		check("luod_last_update_unit_lost_entries{"+u.Name+"}", v, ok, float64(len(u.Lost)))
		if u.Blackout > 0 {
			v, ok = fams.Value("luod_last_update_unit_blackout_seconds", "kind", "soft", "unit", u.Name)
			check("luod_last_update_unit_blackout_seconds{"+u.Name+"}", v, ok, u.Blackout.Seconds())
		}
	}
	// Every luod_ family has HELP text and follows the naming rules.
	for name, f := range fams {
		if !strings.HasPrefix(name, "luod_") {
			continue
		}
		if f.GetHelp() == "" {
			t.Errorf("%s has no HELP", name)
		}
		if f.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s does not end in _total", name)
		}
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}

	// The textfile comes to hold the same luod_ metrics (and only those).
	deadline = time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(textfile)
		if err == nil {
			tf := families(t, b)
			v, ok := tf.Value("luod_updates_total", "kind", "soft", "result", rep.Result)
			_, goOK := tf["go_goroutines"]
			if ok && v == 1 && !goOK {
				if w, _ := tf.Value("luod_unit_preserve_bytes", "unit", "b.service"); w != 10 {
					t.Errorf("textfile: luod_unit_preserve_bytes{b.service} = %v", w)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the textfile %s never showed the soft update (%v)", textfile, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func hasEvent(r control.Report, name string) bool {
	for _, ev := range r.Timeline {
		if ev.Name == name {
			return true
		}
	}
	return false
}

// TestMetricsHostileClients: clients of the metrics address that send
// junk, half a request, a huge header or the wrong method get an error or
// a timeout; meanwhile scrapes and the control API answer, and once they
// are gone luod's fd count is back to its baseline.
func TestMetricsHostileClients(t *testing.T) {
	addr := freePort(t)
	d := luodtest.Start(t, map[string]string{
		"a.service": "[Service]\nType=notify\nExecStart=@BIN@/testsvc -store state=memfd:x\nFileDescriptorStoreMax=2\n",
	}, "--metrics-listen", addr)
	d.WaitUnit("a.service", "active", func(u control.Unit) bool { return u.ActiveState == "active" })
	scrape(t, addr)
	base := luodtest.FDs(t, d.PID())

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 40 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		switch i % 4 {
		case 0: // nothing at all
		case 1:
			c.Write([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")) // half a header
		case 2:
			c.Write([]byte("\x00\xff\x16\x03\x01 not http at all\r\n\r\n"))
		case 3:
			c.Write([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 64<<10) + "\r\n\r\n"))
		}
	}
	for _, tc := range []struct {
		method, path string
		want         int
	}{{"GET", "/nope", 404}, {"DELETE", "/metrics", 200}, {"GET", "/", 200}} {
		req, _ := http.NewRequest(tc.method, "http://"+addr+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %s, want %d", tc.method, tc.path, resp.Status, tc.want)
		}
	}
	if v, ok := scrape(t, addr).Value("luod_unit_fdstore_entries", "unit", "a.service"); !ok || v != 1 {
		t.Errorf("scrape among hostile clients: luod_unit_fdstore_entries{a.service} = %v, %v", v, ok)
	}
	if u := d.Unit("a.service"); u.ActiveState != "active" {
		t.Errorf("a.service: %s", u.ActiveState)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	deadline := time.Now().Add(15 * time.Second)
	for luodtest.FDs(t, d.PID()) != base {
		if time.Now().After(deadline) {
			t.Fatalf("luod holds %d fds after the hostile clients left, %d before", luodtest.FDs(t, d.PID()), base)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
