//go:build linux

package fleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/etcdtest"
	"github.com/liveupdate/luo/internal/fleet"
	"github.com/liveupdate/luo/internal/kimage/kimagetest"
	"github.com/liveupdate/luo/internal/luodtest"
)

// counterUnit keeps a counter in its fd store; it fails to start while
// the file broken exists in the host's directory (the injected failure).
const counterUnit = `[Service]
Type=notify
ExecStart=/bin/sh -c 'test -e @DIR@/broken && exit 3; exec @BIN@/counter -size 4096'
FileDescriptorStoreMax=4
FileDescriptorStorePreserve=yes
`

// rolloutHost is one luod host of the rollout.
type rolloutHost struct {
	name string
	d    *luodtest.Daemon
}

// update runs a soft update that restarts the units on h, through luoctl.
func (h *rolloutHost) update(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return h.d.Luoctl(append([]string{"update", "run", "--no-kexec", "--restart-units"}, args...)...)
}

// generation is the counter's generation on h, from its status.
func (h *rolloutHost) generation(t *testing.T) (gen int, pid int) {
	t.Helper()
	u := h.d.Unit("counter.service")
	fmt.Sscanf(u.Status, "generation=%d", &gen)
	return gen, u.MainPID
}

// window waits for h's last soft update to have given its slot back, and
// returns when it took the slot, finished the update and released the slot.
// taken is recorded once etcd took the slot, finished before the release
// is asked of etcd, released once etcd answered: another host's take can
// be recorded before released, never before finished.
func (h *rolloutHost) window(t *testing.T, count int) (taken, finished, released time.Time) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var rep control.Report
		if err := h.d.Call(control.MethodGetUpdateReport, control.ReportParams{Kind: "soft"}, &rep); err == nil && rep.Count == count {
			for _, ev := range rep.Timeline {
				switch ev.Name {
				case "slot-taken":
					taken = ev.Time
				case "finished":
					finished = ev.Time
				case "slot-released":
					released = ev.Time
				}
			}
			if !released.IsZero() {
				return taken, finished, released
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: soft update %d did not give its slot back within 60s:\n%s", h.name, count, h.d.Log())
	return
}

// TestRollout: three luod hosts, each in its own mount and PID namespace,
// share one update slot in a real etcd. Updated all at once, they go one
// at a time: etcd's history of the semaphore never shows two holders, and
// luod's reports show update windows that do not overlap. Then a failure
// injected on the second host keeps its slot, which stops the third, until
// `luoctl fleet release` frees it. Every counter keeps its state.
func TestRollout(t *testing.T) {
	srv := etcdtest.Start(t)
	var hosts []*rolloutHost
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("host%d", i)
		d := luodtest.StartWith(t, luodtest.Options{Namespaced: true}, map[string]string{"counter.service": counterUnit},
			"--fleet-endpoints", srv.Endpoint, "--fleet-group", "rollout", "--fleet-host", name, "--fleet-slots", "1",
			"--health-timeout", "20s")
		hosts = append(hosts, &rolloutHost{name: name, d: d})
	}
	gens, pids := map[string]int{}, map[int]bool{}
	for _, h := range hosts {
		h.d.WaitUnit("counter.service", "active", func(u control.Unit) bool { return u.ActiveState == "active" })
		var m control.Manager
		h.d.MustCall(control.MethodGetManager, nil, &m)
		pids[m.PID] = true
		gens[h.name], _ = h.generation(t)
	}
	if len(pids) != 1 {
		t.Errorf("the three luods see themselves as pids %v: not in PID namespaces of their own", pids)
	}
	cli := srv.Client(t)
	start, _ := cli.Get(context.Background(), "/")

	// 1. All three at once: they take the slot in turn.
	t0 := time.Now()
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Go(func() {
			if out, code := h.update(t, "--slot-wait", "3m"); code != 0 {
				t.Errorf("%s: update run: exit %d\n%s", h.name, code, out)
			}
		})
	}
	wg.Wait()
	type window struct {
		host                      string
		taken, finished, released time.Time
	}
	var ws []window
	for _, h := range hosts {
		taken, finished, released := h.window(t, 1)
		ws = append(ws, window{h.name, taken, finished, released})
	}
	slices.SortFunc(ws, func(a, b window) int { return a.taken.Compare(b.taken) })
	for i, w := range ws {
		t.Logf("rollout 1: %s held the slot from +%.3fs, finished at +%.3fs, released at +%.3fs", w.host,
			w.taken.Sub(t0).Seconds(), w.finished.Sub(t0).Seconds(), w.released.Sub(t0).Seconds())
		if w.taken.IsZero() || !w.finished.After(w.taken) || !w.released.After(w.finished) {
			t.Errorf("%s: slot taken %v, update finished %v, slot released %v", w.host, w.taken, w.finished, w.released)
		}
		if i > 0 && !w.taken.After(ws[i-1].finished) {
			t.Errorf("%s took the slot at %v, before %s finished its update at %v", w.host, w.taken, ws[i-1].host, ws[i-1].finished)
		}
	}
	most, order := 0, []string{}
	for _, r := range history(t, cli, "rollout", start.Header.Revision+1) {
		most = max(most, len(r.holders))
		for _, h := range r.holders {
			if !slices.Contains(order, h.Host) {
				order = append(order, h.Host)
			}
		}
	}
	if most != 1 || len(order) != 3 {
		t.Errorf("etcd's history: at most %d holders at once (want 1), holders in turn %v", most, order)
	}
	for i, w := range ws {
		if i < len(order) && order[i] != w.host {
			t.Errorf("etcd's order %v differs from luod's reports %v", order, ws)
			break
		}
	}
	for _, h := range hosts {
		if g, _ := h.generation(t); g != gens[h.name]+1 {
			t.Errorf("%s: counter generation %d after the update, want %d (its state carried)", h.name, g, gens[h.name]+1)
		}
		gens[h.name]++
	}

	// 2. host1 updates; host2 breaks in its update and keeps the slot.
	h1, h2, h3 := hosts[0], hosts[1], hosts[2]
	if out, code := h1.update(t); code != 0 {
		t.Fatalf("host1: exit %d\n%s", code, out)
	}
	h1.window(t, 2)
	if err := os.WriteFile(filepath.Join(h2.d.Dir, "broken"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := h2.update(t); code != 0 {
		t.Fatalf("host2: exit %d\n%s", code, out)
	}
	var f control.Fleet
	deadline := time.Now().Add(60 * time.Second)
	for {
		f = control.Fleet{}
		h3.d.MustCall(control.MethodGetFleet, nil, &f)
		if len(f.Holders) == 1 && f.Holders[0].Host == "host2" && f.Holders[0].State == "failed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host2 does not keep its slot as failed: %+v\n%s", f, h2.d.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := f.Holders[0].Reason; !strings.Contains(r, "counter.service failed after the update") {
		t.Errorf("host2 keeps its slot because %q", r)
	}
	for _, args := range [][]string{{"fleet", "status"}, {"fleet", "status", "--json"}} {
		out, code := h3.d.Luoctl(args...)
		t.Logf("after host2 failed, luoctl %s (exit %d):\n%s", strings.Join(args, " "), code, out)
	}

	// host2 does not try again until its slot is released.
	if out, code := h2.update(t); code != 4 || !strings.Contains(out, "this host keeps its fleet slot after a failed update") ||
		!strings.Contains(out, "luoctl fleet release host2") {
		t.Errorf("host2 updating again while it keeps its slot: exit %d\n%s", code, out)
	}

	// host3 is stopped by it: refused, its counter untouched.
	_, pid := h3.generation(t)
	out, code := h3.update(t)
	if code != 4 || !strings.Contains(out, "host2 (failed since") || !strings.Contains(out, "nothing was changed") {
		t.Errorf("host3 while host2 holds the slot: exit %d\n%s", code, out)
	}
	t.Logf("host3 while host2 holds the slot (exit %d):\n%s", code, out)
	if g, p := h3.generation(t); p != pid || g != gens["host3"] {
		t.Errorf("host3's counter after the refusal: pid %d gen %d, was pid %d gen %d", p, g, pid, gens["host3"])
	}

	// An operator releases host2's slot; host3 goes on.
	out, code = h3.d.Luoctl("fleet", "release", "host2", "--json")
	if code != 0 || !strings.Contains(out, `"released": true`) {
		t.Fatalf("fleet release host2: exit %d\n%s", code, out)
	}
	t.Logf("luoctl fleet release host2 --json:\n%s", out)
	if out, _ := h3.d.Luoctl("fleet", "release", "host2"); !strings.Contains(out, "host2 holds no slot") {
		t.Errorf("fleet release host2 again:\n%s", out)
	}
	if out, code := h3.update(t); code != 0 {
		t.Fatalf("host3 after the release: exit %d\n%s", code, out)
	}
	taken, _, released := h3.window(t, 2)
	t.Logf("rollout 2: host3 held the slot from +%.3fs to +%.3fs", taken.Sub(t0).Seconds(), released.Sub(t0).Seconds())
	if g, _ := h3.generation(t); g != gens["host3"]+1 {
		t.Errorf("host3: generation %d, want %d", g, gens["host3"]+1)
	}
	f = control.Fleet{}
	h3.d.MustCall(control.MethodGetFleet, nil, &f)
	if len(f.Holders) != 0 {
		t.Errorf("slots held at the end: %+v", f.Holders)
	}
	var rep control.Report
	h2.d.MustCall(control.MethodGetUpdateReport, control.ReportParams{Kind: "soft"}, &rep)
	if rep.Result != "problems" || !strings.Contains(strings.Join(rep.Problems, ";"), "counter.service failed after the update") {
		t.Errorf("host2's report: %s %v", rep.Result, rep.Problems)
	}
	for _, r := range history(t, cli, "rollout", start.Header.Revision+1) {
		t.Logf("etcd %s", r)
	}
}

// revision is one change of the rollout's semaphore in etcd.
type revision struct {
	rev     int64
	holders []fleet.Holder
}

func (r revision) String() string {
	var hs []string
	for _, h := range r.holders {
		hs = append(hs, h.Host+" "+h.State)
	}
	return fmt.Sprintf("revision %d: [%s]", r.rev, strings.Join(hs, ", "))
}

// history reads every change of group's semaphore since revision from.
func history(t *testing.T, c *clientv3.Client, group string, from int64) []revision {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, fleet.Key(group))
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("get the semaphore: %v", err)
	}
	last := resp.Kvs[0].ModRevision
	var out []revision
	for wr := range c.Watch(ctx, fleet.Key(group), clientv3.WithRev(from)) {
		for _, ev := range wr.Events {
			var s fleet.Semaphore
			if err := json.Unmarshal(ev.Kv.Value, &s); err != nil {
				t.Fatal(err)
			}
			out = append(out, revision{ev.Kv.ModRevision, s.Holders})
			if ev.Kv.ModRevision == last {
				return out
			}
		}
	}
	t.Fatal("watch ended early")
	return nil
}

// TestPlanShowsRollback: with a health gate, the plan names the kernel a
// failed gate goes back to: the running kernel's image found under
// --kernels by the release in its boot header, whatever its name; the run
// of a gate with nothing to go back to is refused, changing nothing.
func TestPlanShowsRollback(t *testing.T) {
	rel, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	release := strings.TrimSpace(string(rel))
	boot := t.TempDir()
	gz := []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00")
	for name, version := range map[string]string{"vmlinuz-a": release + " (builder@host) #1", "vmlinuz-" + release: "7.9.9 (builder@host) #1"} {
		if err := os.WriteFile(filepath.Join(boot, name), kimagetest.BzImage(version, gz), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := luodtest.Start(t, map[string]string{"counter.service": counterUnit}, "--kernels", filepath.Join(boot, "vmlinuz-*"))
	d.WaitUnit("counter.service", "active", func(u control.Unit) bool { return u.ActiveState == "active" })
	next := filepath.Join(boot, "vmlinuz-"+release)
	rollback := func(p control.Plan) control.Check {
		for _, c := range p.Checks {
			if c.Name == "rollback" {
				return c
			}
		}
		t.Fatalf("no rollback check in the plan: %+v", p.Checks)
		return control.Check{}
	}
	var p control.Plan
	d.MustCall(control.MethodPlanUpdate, control.UpdateParams{Kernel: next, HealthTimeout: "1m"}, &p)
	if c := rollback(p); !c.OK || !strings.Contains(c.Detail, filepath.Join(boot, "vmlinuz-a")) || !strings.Contains(c.Detail, "health gate 1m0s") {
		t.Errorf("rollback check %+v", c)
	}
	p = control.Plan{}
	d.MustCall(control.MethodPlanUpdate, control.UpdateParams{Kernel: next}, &p)
	for _, c := range p.Checks {
		if c.Name == "rollback" {
			t.Errorf("a plan without a gate has a rollback check: %+v", c)
		}
	}

	// Named by hand, it must be a kernel image; its release is read.
	p = control.Plan{}
	d.MustCall(control.MethodPlanUpdate, control.UpdateParams{Kernel: next, HealthTimeout: "1m", RollbackKernel: next}, &p)
	if c := rollback(p); !c.OK || !strings.Contains(c.Detail, "(7.9.9)") {
		t.Errorf("rollback check of a named kernel %+v", c)
	}
	for _, bad := range []control.UpdateParams{
		{Kernel: next, HealthTimeout: "1m", RollbackKernel: filepath.Join(boot, "missing")},
		{Kernel: next, HealthTimeout: "1m", RollbackKernel: "/proc/self/status"},
		{Kernel: next, HealthTimeout: "1m", RollbackKernel: next, RollbackInitrd: filepath.Join(boot, "missing-initrd")},
	} {
		p = control.Plan{}
		d.MustCall(control.MethodPlanUpdate, bad, &p)
		if c := rollback(p); c.OK || !strings.Contains(c.Detail, "rollback") {
			t.Errorf("rollback check of %+v: %+v", bad, c)
		}
	}

	os.Remove(filepath.Join(boot, "vmlinuz-a"))
	p = control.Plan{}
	d.MustCall(control.MethodPlanUpdate, control.UpdateParams{Kernel: next, HealthTimeout: "1m"}, &p)
	if c := rollback(p); c.OK || !strings.Contains(c.Detail, "no image of the running kernel "+release) {
		t.Errorf("rollback check without an image %+v", c)
	}
	pid := d.Unit("counter.service").MainPID
	out, code := d.Luoctl("update", "run", "--kernel", next, "--health-timeout", "1m")
	if code != 4 || !strings.Contains(out, "--rollback-kernel") || !strings.Contains(out, "nothing was changed") {
		t.Errorf("update run with a gate and no rollback kernel: exit %d\n%s", code, out)
	}
	if u := d.Unit("counter.service"); u.MainPID != pid || u.ActiveState != "active" {
		t.Errorf("counter after the refusal: %+v", u)
	}
	if out, code := d.Luoctl("update", "run", "--kernel", next, "--rollback-kernel", next); code != 2 || !strings.Contains(out, "--health-timeout") {
		t.Errorf("--rollback-kernel without a gate: exit %d\n%s", code, out)
	}
	// The same, and worse, straight to the control socket: refused in the
	// plan, luod and the unit unaffected.
	for _, p := range []control.UpdateParams{
		{Kernel: next, HealthTimeout: "-1s"}, {Kernel: next, HealthTimeout: "soon"}, {NoKexec: true, SlotWait: "forever"},
		{Kernel: next, RollbackKernel: next}, {Kernel: next, RollbackInitrd: next, HealthTimeout: "1m"},
		{Kernel: next, HealthTimeout: strings.Repeat("9", 4000) + "h"},
	} {
		err := d.Call(control.MethodRunUpdate, p, nil)
		var re *control.RemoteError
		if !errors.As(err, &re) || re.Name != control.ErrUpdateFailed || !strings.Contains(err.Error(), `phase "plan"`) {
			t.Errorf("RunUpdate(%+v) = %v", p, err)
		}
	}
	if u := d.Unit("counter.service"); u.MainPID != pid || u.ActiveState != "active" {
		t.Errorf("counter after the bad calls: %+v", u)
	}
}

// TestFleetUnavailable: with etcd gone, or a semaphore in it that is not
// luod's, an update is refused in phase slot and changes nothing, the
// fleet commands fail with a clear error, luod answers throughout and its
// fds are back to their baseline. A slot to give back while etcd is gone
// is given back once it returns.
func TestFleetUnavailable(t *testing.T) {
	srv := etcdtest.Start(t)
	slow := strings.Replace(counterUnit, "test -e @DIR@/broken && exit 3;", "test -e @DIR@/slow && sleep 2;", 1)
	d := luodtest.Start(t, map[string]string{"counter.service": slow},
		"--fleet-endpoints", srv.Endpoint, "--fleet-host", "h1", "--fleet-timeout", "2s")
	d.WaitUnit("counter.service", "active", func(u control.Unit) bool { return u.ActiveState == "active" })
	if out, code := d.Luoctl("fleet", "status"); code != 0 || !strings.Contains(out, "Slots: 0 of 1 held") {
		t.Fatalf("fleet status: exit %d\n%s", code, out)
	}
	baseline := luodtest.FDs(t, d.PID())
	pid := d.Unit("counter.service").MainPID
	refused := func(what, why string) {
		t.Helper()
		start := time.Now()
		out, code := d.Luoctl("update", "run", "--no-kexec", "--restart-units")
		if code != 4 || !strings.Contains(out, `phase "slot"`) || !strings.Contains(out, why) || !strings.Contains(out, "nothing was changed") {
			t.Errorf("%s: update run: exit %d after %v\n%s", what, code, time.Since(start), out)
		}
		t.Logf("%s: update run refused after %v", what, time.Since(start).Round(time.Millisecond))
		if out, code := d.Luoctl("fleet", "status"); code != 1 || !strings.Contains(out, why) {
			t.Errorf("%s: fleet status: exit %d\n%s", what, code, out)
		}
		if out, code := d.Luoctl("fleet", "release", "h2"); code != 1 || !strings.Contains(out, why) {
			t.Errorf("%s: fleet release: exit %d\n%s", what, code, out)
		}
		if u := d.Unit("counter.service"); u.MainPID != pid || u.ActiveState != "active" {
			t.Errorf("%s: counter %+v, was pid %d", what, u, pid)
		}
	}

	srv.Stop(t)
	refused("etcd gone", "etcd")
	srv.Restart(t)

	cli := srv.Client(t)
	if _, err := cli.Put(context.Background(), fleet.Key("default"), "{not json"); err != nil {
		t.Fatal(err)
	}
	refused("a foreign semaphore", "is not luod's")
	if _, err := cli.Delete(context.Background(), fleet.Key("default")); err != nil {
		t.Fatal(err)
	}
	if out, code := d.Luoctl("fleet", "status"); code != 0 {
		t.Fatalf("fleet status once etcd is back: exit %d\n%s", code, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for n := luodtest.FDs(t, d.PID()); n != baseline; n = luodtest.FDs(t, d.PID()) {
		if time.Now().After(deadline) {
			t.Errorf("luod has %d fds, %d before etcd went away", n, baseline)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The unit takes 2 s to be READY after the update; etcd is gone
	// meanwhile: the slot is given back once it returns.
	if err := os.WriteFile(filepath.Join(d.Dir, "slow"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := d.Luoctl("update", "run", "--no-kexec", "--restart-units"); code != 0 {
		t.Fatalf("update run: exit %d\n%s", code, out)
	}
	srv.Stop(t)
	d.WaitLog("cannot write the fleet slot to etcd; retrying")
	back := time.Now()
	srv.Restart(t)
	var f control.Fleet
	for deadline := time.Now().Add(60 * time.Second); ; {
		f = control.Fleet{}
		err := d.Call(control.MethodGetFleet, nil, &f)
		if err == nil && f.Revision > 0 && len(f.Holders) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot was not given back after etcd returned: %+v, %v", f, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("the slot was given back %v after etcd returned", time.Since(back))
	var rep control.Report
	released := false
	for deadline := time.Now().Add(5 * time.Second); !released && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		rep = control.Report{}
		d.MustCall(control.MethodGetUpdateReport, control.ReportParams{Kind: "soft"}, &rep)
		for _, ev := range rep.Timeline {
			released = released || ev.Name == "slot-released" && ev.Time.After(back)
		}
	}
	if !released {
		t.Errorf("the report has no slot-released after etcd came back: %+v\n%s", rep.Timeline, d.Log())
	}
}
