//go:build vmguest

package e2e_test

import (
	"bytes"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/metrics/metricstest"
	"github.com/liveupdate/luo/internal/vm"
)

// guestScrape reads luod's /metrics in the VM.
func guestScrape(t *testing.T) metricstest.Families {
	t.Helper()
	var fams metricstest.Families
	poll(t, "luod's /metrics", 20*time.Second, func() error {
		resp, err := http.Get("http://" + quotaMetricsAddr + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		fams, err = metricstest.Parse(b.Bytes())
		return err
	})
	return fams
}

func wantSample(t *testing.T, fams metricstest.Families, want float64, name string, labels ...string) {
	t.Helper()
	if v, ok := fams.Value(name, labels...); !ok || v != want {
		t.Errorf("%s%q = %v (present %v), want %v", name, labels, v, ok, want)
	}
}

// TestQuota is the guest side of TestVMQuotaAndMetrics.
func TestQuota(t *testing.T) {
	names := []string{"mem.service", "big.service"}
	waitLuod(t, control.DefaultSocket)
	us := waitActive(t, names...)
	if vm.Stage() == 1 {
		quotaStage1(t, us)
		return
	}
	// The new kernel: mem.service's state came back, big.service's did
	// not, and the report says why.
	for name, origin := range map[string]string{"mem.service": "luo", "big.service": "fresh"} {
		if st := parseStatus(t, us[name].Status); st.origin != origin {
			t.Errorf("%s after the update: %q, want origin=%s", name, st.raw, origin)
		}
	}
	rep := waitReport(t, time.Minute)
	if rep.Result != "lost" {
		t.Errorf("report result %q, want lost", rep.Result)
	}
	lost := map[string]int{}
	var memBlackout time.Duration
	for _, u := range rep.Units {
		lost[u.Name] = len(u.Lost)
		for _, e := range u.Lost {
			if u.Name != "big.service" || !strings.Contains(e.Reason, "PreserveMaxBytes=65536") {
				t.Errorf("%s lost %q: %s", u.Name, e.Name, e.Reason)
			}
		}
		if u.Name == "mem.service" {
			memBlackout = u.Blackout
		}
	}
	if lost["big.service"] == 0 || lost["mem.service"] != 0 || memBlackout <= 0 {
		t.Errorf("report: lost %v, mem.service blackout %v", lost, memBlackout)
	}

	// The metrics of the new luod show the previous kernel's update.
	fams := guestScrape(t)
	wantSample(t, fams, 1, "luod_live_updates_total")
	wantSample(t, fams, 1, "luod_updates_total", "kind", "kexec", "result", "refused")
	wantSample(t, fams, 1, "luod_updates_total", "kind", "kexec", "result", "lost")
	wantSample(t, fams, 1, "luod_last_update_info", "kind", "kexec", "result", "lost", "from", rep.From, "to", rep.To)
	wantSample(t, fams, float64(lost["big.service"]), "luod_last_update_unit_lost_entries", "kind", "kexec", "unit", "big.service")
	wantSample(t, fams, 0, "luod_last_update_unit_lost_entries", "kind", "kexec", "unit", "mem.service")
	wantSample(t, fams, memBlackout.Seconds(), "luod_last_update_unit_blackout_seconds", "kind", "kexec", "unit", "mem.service")
	for _, ev := range rep.Timeline {
		if ev.Unit == "" {
			wantSample(t, fams, float64(ev.Time.UnixNano())/1e9, "luod_last_update_event_timestamp_seconds", "kind", "kexec", "event", ev.Name)
		}
	}
	for _, ev := range []string{"requested", "preserved", "reboot", "kernel-up", "luod-up", "restored", "finished"} {
		if v, ok := fams.Value("luod_last_update_event_timestamp_seconds", "kind", "kexec", "event", ev); !ok || v <= 0 {
			t.Errorf("no %s step in the metrics", ev)
		}
	}
	if v, ok := fams.Value("luod_last_update_phase_seconds", "kind", "kexec", "phase", "kernel-up"); !ok || v <= 0 {
		t.Errorf("luod_last_update_phase_seconds{kernel-up} = %v, %v", v, ok)
	}
	wantSample(t, fams, 1, "luod_unit_preserve_over_limit", "unit", "big.service")
	b, err := os.ReadFile("/run/luod/metrics.prom")
	if err != nil || !strings.Contains(string(b), `luod_updates_total{kind="kexec",result="lost"} 1`) {
		t.Errorf("metrics textfile: %v\n%s", err, b)
	}
}

// quotaStage1: the plan names big.service over its limit, the update is
// refused without --allow-loss and changes nothing, then runs with it.
func quotaStage1(t *testing.T, us map[string]control.Unit) {
	p := plan(t)
	for name, want := range map[string]string{"mem.service": "preserve", "big.service": "lost"} {
		for _, u := range p.Units {
			if u.Name != name {
				continue
			}
			for _, e := range u.Entries {
				if e.Type == "memfd" && e.Fate != want {
					t.Errorf("plan: %s %q %s (%s), want %s", name, e.Name, e.Fate, e.Reason, want)
				}
				if name == "big.service" && !strings.Contains(e.Reason, "over its [X-LUO] PreserveMaxBytes=65536") {
					t.Errorf("plan: %s %q: reason %q", name, e.Name, e.Reason)
				}
			}
		}
	}
	if p.OK {
		t.Error("plan OK without --allow-loss")
	}
	out, code := luoctl(t, append([]string{"update", "plan"}, updateArgs(t)[2:]...)...)
	if !strings.Contains(out, "PreserveMaxBytes=65536") {
		t.Errorf("luoctl update plan does not say why big.service's state would be lost (exit %d)", code)
	}
	out, code = luoctl(t, updateArgs(t)...)
	if code != 4 || !strings.Contains(out, "big.service") || !strings.Contains(out, "--allow-loss") {
		t.Errorf("update run without --allow-loss: exit %d, want 4 naming big.service and --allow-loss", code)
	}
	for _, n := range []string{"mem.service", "big.service"} {
		if u := unit(t, n); u.MainPID != us[n].MainPID || u.ActiveState != "active" {
			t.Errorf("%s after the refusal: pid %d %s, was pid %d", n, u.MainPID, u.ActiveState, us[n].MainPID)
		}
	}
	if kexecLoaded(t) {
		t.Error("a kexec image is loaded after the refusal")
	}
	fams := guestScrape(t)
	wantSample(t, fams, 1, "luod_updates_total", "kind", "kexec", "result", "refused")
	wantSample(t, fams, 1, "luod_unit_preserve_over_limit", "unit", "big.service")
	wantSample(t, fams, 65536, "luod_unit_preserve_max_bytes", "unit", "big.service")
	if v, ok := fams.Value("luod_unit_preserve_bytes", "unit", "big.service"); !ok || v < 1<<20 {
		t.Errorf("luod_unit_preserve_bytes{big.service} = %v, %v; want at least 1 MiB", v, ok)
	}
	if t.Failed() {
		return
	}
	liveUpdate(t)
}
