//go:build vmguest

package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/liveupdate/luo"
	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/kexec"
	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
	"github.com/liveupdate/luo/memfd"
)

func TestMain(m *testing.M) { vmtest.GuestMain(m) }

var counters = []string{"mem.service", "own.service", "luos.service", "tight.service", "sock.service"}

func call(t *testing.T, socket, method string, params, reply any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := control.Dial(ctx, socket)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Call(ctx, method, params, reply)
}

func mustCall(t *testing.T, method string, params, reply any) {
	t.Helper()
	if err := call(t, control.DefaultSocket, method, params, reply); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
}

// poll retries fn until it returns nil or the timeout passes.
func poll(t *testing.T, what string, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v (after %s)", what, err, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitLuod(t *testing.T, socket string) control.Manager {
	t.Helper()
	var m control.Manager
	poll(t, "luod answers", 2*time.Minute, func() error { return call(t, socket, control.MethodGetManager, nil, &m) })
	return m
}

func unit(t *testing.T, name string) control.Unit {
	t.Helper()
	var r control.UnitReply
	mustCall(t, control.MethodGetUnit, control.UnitName{Name: name}, &r)
	return r.Unit
}

// waitActive waits until every unit is active and has reported a status.
func waitActive(t *testing.T, names ...string) map[string]control.Unit {
	t.Helper()
	out := map[string]control.Unit{}
	for _, n := range names {
		poll(t, n+" active", 2*time.Minute, func() error {
			u := unit(t, n)
			if u.ActiveState != "active" || u.Status == "" {
				return fmt.Errorf("%s/%s status %q result %q", u.ActiveState, u.SubState, u.Status, u.Result)
			}
			out[n] = u
			return nil
		})
	}
	return out
}

// status is the counter's STATUS= line.
type status struct {
	gen, liveUpdates      int
	origin, verified, raw string
}

func parseStatus(t *testing.T, s string) status {
	t.Helper()
	st := status{raw: s}
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "generation":
			st.gen, _ = strconv.Atoi(v)
		case "live_updates":
			st.liveUpdates, _ = strconv.Atoi(v)
		case "origin":
			st.origin = v
		case "verified":
			st.verified = v
		}
	}
	if st.gen == 0 {
		t.Fatalf("not a counter status: %q", s)
	}
	return st
}

// luoctl runs the CLI and returns its output and exit code.
func luoctl(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("/vmtest/bin/luoctl", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("luoctl: %v", err)
	}
	t.Logf("$ luoctl %s  (exit %d)\n%s", strings.Join(args, " "), code, out.String())
	return out.String(), code
}

func updateArgs(t *testing.T, extra ...string) []string {
	t.Helper()
	kernel, initrd, cmdline, err := vm.NextBoot()
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"update", "run", "--kernel", kernel, "--initrd", initrd, "--cmdline", cmdline}, extra...)
}

// liveUpdate runs a real update into the next stage through luoctl.
func liveUpdate(t *testing.T) {
	t.Helper()
	vmtest.ExpectKexec(t)
	out, code := luoctl(t, updateArgs(t, "--allow-loss")...)
	if code != 0 || !strings.Contains(out, "reboot") {
		t.Fatalf("update run: exit %d\n%s", code, out)
	}
	time.Sleep(time.Minute) // the kexec takes this process with it
	t.Fatal("still running a minute after the update said it reboots")
}

func entryFates(p *control.Plan, unit string) map[string][]string {
	out := map[string][]string{}
	for _, u := range p.Units {
		if u.Name == unit {
			for _, e := range u.Entries {
				out[e.Name] = append(out[e.Name], e.Fate)
			}
		}
	}
	return out
}

func plan(t *testing.T) *control.Plan {
	t.Helper()
	kernel, initrd, cmdline, err := vm.NextBoot()
	if err != nil {
		t.Fatal(err)
	}
	var p control.Plan
	mustCall(t, control.MethodPlanUpdate, control.UpdateParams{Kernel: kernel, Initrd: initrd, Cmdline: cmdline}, &p)
	return &p
}

// TestLiveUpdate runs in every stage of TestVMLiveUpdate: check the state
// every counter carried, the plan and the report, then update again.
func TestLiveUpdate(t *testing.T) {
	stage := vm.Stage()
	m := waitLuod(t, control.DefaultSocket)
	if m.LiveUpdates != stage-1 || !m.PID1 {
		t.Errorf("manager: %d live updates (want %d), pid1=%v", m.LiveUpdates, stage-1, m.PID1)
	}
	us := waitActive(t, counters...)
	for _, name := range counters {
		st := parseStatus(t, us[name].Status)
		wantGen, origin, verified := stage, "luo", "ok"
		switch {
		case stage == 1:
			origin, verified = "fresh", "fresh"
		case stage >= 3:
			wantGen++ // restarted once in stage 2
		}
		if st.gen != wantGen || st.origin != origin || st.verified != verified || st.liveUpdates != stage-1 {
			t.Errorf("stage %d %s: %q; want generation=%d origin=%s verified=%s live_updates=%d",
				stage, name, st.raw, wantGen, origin, verified, stage-1)
		}
		checkNothingRefused(t, us[name])
	}
	if stage >= 2 {
		checkReport(t, stage)
		checkRestoredMemfds(t)
	}
	if stage < vm.Stages() {
		checkPlan(t, plan(t), stage)
	}
	if stage == 2 {
		// A plain restart after a live update: state from the fd store.
		// tight.service's store is sized as keep's docs say: keep.index
		// was not refused, so it comes back (it crash-looped when it was).
		for _, name := range counters {
			if out, code := luoctl(t, "restart", name); code != 0 {
				t.Errorf("luoctl restart %s: exit %d\n%s", name, code, out)
				continue
			}
			u := waitActive(t, name)[name]
			st := parseStatus(t, u.Status)
			if st.gen != stage+1 || st.origin != "fdstore" || st.verified != "ok" {
				t.Errorf("%s after restart: %q", name, st.raw)
			}
			checkNothingRefused(t, u)
		}
		softUpdateKeepsKexecReport(t, stage)
	}
	if stage == 3 {
		// The next kernel is staged before the re-exec: the staging
		// survives it (its plan is made again at the run).
		stageNext(t)
		// luod re-executes itself holding LUO sessions (own, LUOSession=,
		// an incoming one) and memfds: the next update must not notice.
		out, code := luoctl(t, "daemon-reexec")
		if code != 0 {
			t.Fatalf("daemon-reexec: exit %d\n%s", code, out)
		}
		var m control.Manager
		mustCall(t, control.MethodGetManager, nil, &m)
		if m.Reexecs != 1 || m.PID != 1 {
			t.Errorf("after daemon-reexec: %+v", m)
		}
		for _, n := range counters {
			if u := unit(t, n); u.MainPID != us[n].MainPID || u.FDStoreCount != us[n].FDStoreCount {
				t.Errorf("%s after daemon-reexec: pid %d fds %d, was pid %d fds %d", n, u.MainPID, u.FDStoreCount, us[n].MainPID, us[n].FDStoreCount)
			}
		}
	}
	if stage == 4 && stage < vm.Stages() {
		stagingChangesNothing(t, us)
	}
	if t.Failed() || stage == vm.Stages() {
		return
	}
	if stage == 3 || stage == 4 {
		st := stagedStatus(t)
		if !st.Loaded || st.Replanned != (stage == 3) || len(st.Changes) != 0 {
			t.Errorf("update status before the staged run: loaded=%v replanned=%v changes=%q; want loaded, replanned=%v, no changes",
				st.Loaded, st.Replanned, st.Changes, stage == 3)
		}
		vmtest.ExpectKexec(t)
		out, code := luoctl(t, "update", "run", "--staged", "--allow-loss")
		t.Fatalf("update run --staged returned (exit %d), no kexec:\n%s", code, out)
	}
	liveUpdate(t)
}

// stageNext stages the update into the next stage's kernel.
func stageNext(t *testing.T) control.Staged {
	t.Helper()
	kernel, initrd, cmdline, err := vm.NextBoot()
	if err != nil {
		t.Fatal(err)
	}
	// sock.service's socket cannot cross a kexec.
	out, code := luoctl(t, "update", "stage", "--kernel", kernel, "--initrd", initrd, "--cmdline", cmdline, "--allow-loss", "--json")
	t.Logf("luoctl update stage --json:\n%s", out)
	var st control.Staged
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil {
		t.Fatalf("update stage: exit %d, %v\n%s", code, err, out)
	}
	if st.Kernel != kernel || !st.Loaded || st.Lost != 1 || st.Memfds == 0 {
		t.Errorf("staged %+v", st)
	}
	return st
}

// stagedStatus is luoctl update status --json.
func stagedStatus(t *testing.T) control.Staged {
	t.Helper()
	out, code := luoctl(t, "update", "status", "--json")
	t.Logf("luoctl update status --json:\n%s", out)
	var st control.Staged
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil {
		t.Fatalf("update status: exit %d, %v\n%s", code, err, out)
	}
	return st
}

// stagingChangesNothing: staging, unstaging and staging again leave every
// unit running as it was; what is staged shows in update status and the
// staged plan, and unstaging unloads the kernel.
func stagingChangesNothing(t *testing.T, before map[string]control.Unit) {
	t.Helper()
	stageNext(t)
	if st := stagedStatus(t); !st.Loaded || st.Replanned || len(st.Changes) != 0 {
		t.Errorf("update status right after staging: %+v", st)
	}
	loaded := func() string {
		b, _ := os.ReadFile("/sys/kernel/kexec_loaded")
		return strings.TrimSpace(string(b))
	}
	if l := loaded(); l != "1" {
		t.Errorf("kexec_loaded after staging: %q", l)
	}
	out, code := luoctl(t, "update", "unstage", "--json")
	t.Logf("luoctl update unstage --json:\n%s", out)
	if code != 0 || loaded() != "0" {
		t.Errorf("update unstage: exit %d, kexec_loaded %q\n%s", code, loaded(), out)
	}
	if out, code := luoctl(t, "update", "status"); code != 1 || !strings.Contains(out, "no update is staged") {
		t.Errorf("update status with nothing staged: exit %d\n%s", code, out)
	}
	if out, code := luoctl(t, "update", "run", "--staged"); code != 1 || !strings.Contains(out, "no update is staged") {
		t.Errorf("update run --staged with nothing staged: exit %d\n%s", code, out)
	}
	stageNext(t)
	if out, code := luoctl(t, "update", "plan", "--staged"); code != 4 || !strings.Contains(out, "1 fd would be lost") {
		t.Errorf("update plan --staged without --allow-loss: exit %d\n%s", code, out)
	}
	out, code = luoctl(t, "update", "plan", "--staged", "--allow-loss")
	if code != 0 || !strings.Contains(out, "Plan: OK") || !strings.Contains(out, "loaded: staged") {
		t.Errorf("update plan --staged: exit %d\n%s", code, out)
	}
	for name, u := range before {
		if now := unit(t, name); now.MainPID != u.MainPID || now.Status != u.Status || now.ActiveState != "active" {
			t.Errorf("%s after staging: pid %d %s %q, was pid %d %q", name, now.MainPID, now.ActiveState, now.Status, u.MainPID, u.Status)
		}
	}
}

// softUpdateKeepsKexecReport: a soft update after a kexec reports itself
// as soft update 1 (an exec, no preserve or reboot), and the kexec's
// report stays available.
func softUpdateKeepsKexecReport(t *testing.T, stage int) {
	t.Helper()
	if out, code := luoctl(t, "update", "run", "--no-kexec"); code != 0 {
		t.Fatalf("soft update: exit %d\n%s", code, out)
	}
	var rep control.Report
	poll(t, "soft update report", time.Minute, func() error {
		if err := call(t, control.DefaultSocket, control.MethodGetUpdateReport, nil, &rep); err != nil {
			return err
		}
		if rep.Kind != "soft" {
			return fmt.Errorf("report of a %s update", rep.Kind)
		}
		return nil
	})
	var events []string
	for _, ev := range rep.Timeline {
		events = append(events, ev.Name)
	}
	if rep.Count != 1 || !slices.Contains(events, "exec") || slices.Contains(events, "reboot") || slices.Contains(events, "preserved") ||
		!slices.Equal(rep.Also, []string{"kexec"}) {
		t.Errorf("soft update report: count %d, events %v, also %v; want 1, exec without preserved or reboot, also kexec", rep.Count, events, rep.Also)
	}
	var kx control.Report
	mustCall(t, control.MethodGetUpdateReport, control.ReportParams{Kind: "kexec"}, &kx)
	if kx.Kind != "kexec" || kx.Count != stage-1 {
		t.Errorf("the kexec report after a soft update: %s %d, want kexec %d", kx.Kind, kx.Count, stage-1)
	}
	if out, code := luoctl(t, "update", "report"); code != 0 || !strings.Contains(out, "Soft update 1") || !strings.Contains(out, "--kind=kexec") {
		t.Errorf("luoctl update report after a soft update: exit %d", code)
	}
}

// checkRestoredMemfds: the memfds luod restored after the kexec are
// memfds, shown with the names they had (the kernel restores them
// nameless: "/ (deleted)"), in luoctl fdstore and in the plan.
func checkRestoredMemfds(t *testing.T) {
	t.Helper()
	var fs control.FDStore
	mustCall(t, control.MethodDumpFDStore, control.UnitName{Name: "mem.service"}, &fs)
	for _, e := range fs.Entries {
		if want := "/memfd:" + e.Name + " (deleted)"; e.Type != "memfd" || e.Path != want {
			t.Errorf("mem.service %q after the kexec: type %s path %q, want memfd %q", e.Name, e.Type, e.Path, want)
		}
	}
	if out, code := luoctl(t, "fdstore", "mem.service"); code != 0 || strings.Contains(out, "/ (deleted)") || strings.Contains(out, " reg ") {
		t.Errorf("luoctl fdstore mem.service: exit %d\n%s", code, out)
	}
}

// checkNothingRefused: luod stored every fd the unit handed over.
func checkNothingRefused(t *testing.T, u control.Unit) {
	t.Helper()
	if u.FDStoreRefused != 0 || u.FDStoreCount > u.FDStoreMax {
		t.Errorf("%s: fd store %d/%d, %d refused, last %+v", u.Name, u.FDStoreCount, u.FDStoreMax, u.FDStoreRefused, u.FDStoreLastRefused)
	}
}

func checkPlan(t *testing.T, p *control.Plan, stage int) {
	t.Helper()
	for _, c := range p.Checks {
		if !c.OK {
			t.Errorf("plan check %q failed: %s", c.Name, c.Detail)
		}
	}
	if p.OK || p.Lost != 1 {
		t.Errorf("plan: ok=%v lost=%d, want not ok with the one socket lost", p.OK, p.Lost)
	}
	want := map[string]map[string][]string{
		"mem.service":   {"keep.index": {"preserve"}, "counter": {"preserve"}},
		"own.service":   {"keep.index": {"session"}, "counter": {"session"}, "own": {"session"}},
		"luos.service":  {"keep.index": {"session"}, "counter": {"session"}, "state": {"session"}},
		"tight.service": {"keep.index": {"session"}, "counter": {"session"}, "state": {"session"}},
		"sock.service":  {"keep.index": {"preserve"}, "counter": {"preserve"}, "socket": {"lost"}},
	}
	// After a live update luod hands the incoming session back next to a
	// new outgoing one; keep stores the outgoing one back alone, so one
	// session is left under the name.
	// luoctl fdstore says of every entry what the plan says (session-mode
	// regions are carried by the unit's own session in both).
	for _, pu := range p.Units {
		var fs control.FDStore
		mustCall(t, control.MethodDumpFDStore, control.UnitName{Name: pu.Name}, &fs)
		if len(fs.Entries) != len(pu.Entries) {
			t.Errorf("%s: fdstore lists %d entries, the plan %d", pu.Name, len(fs.Entries), len(pu.Entries))
			continue
		}
		for i, fe := range fs.Entries {
			pe := pu.Entries[i]
			if fe.Name != pe.Name || fe.Why != pe.Reason || (fe.Survives == "yes") != (pe.Fate == "preserve" || pe.Fate == "session") {
				t.Errorf("%s %q: fdstore says %s (%s), the plan %s (%s)", pu.Name, fe.Name, fe.Survives, fe.Why, pe.Fate, pe.Reason)
			}
		}
	}
	for _, pu := range p.Units {
		for _, e := range pu.Entries {
			if pu.Name == "mem.service" && (e.Type != "memfd" || e.Bytes == 0 || !strings.HasPrefix(e.Reason, "memfd,")) {
				t.Errorf("plan mem.service %q: type %s, %d bytes, %q; want a memfd with its size", e.Name, e.Type, e.Bytes, e.Reason)
			}
		}
	}
	for u, w := range want {
		got := entryFates(p, u)
		for name, fates := range w {
			g := slices.Clone(got[name])
			slices.Sort(g)
			if !slices.Equal(g, fates) {
				t.Errorf("plan %s %q: fates %v, want %v (all: %v)", u, name, got[name], fates, got)
			}
		}
	}
}

// waitEvent waits until the last update's report has the event, and
// returns it.
func waitEvent(t *testing.T, event string, timeout time.Duration) control.Report {
	t.Helper()
	var rep control.Report
	poll(t, "update report with "+event, timeout, func() error {
		rep = control.Report{}
		if err := call(t, control.DefaultSocket, control.MethodGetUpdateReport, nil, &rep); err != nil {
			return err
		}
		if eventTime(rep, event).IsZero() {
			return fmt.Errorf("no %s event yet (%d events)", event, len(rep.Timeline))
		}
		return nil
	})
	return rep
}

func checkReport(t *testing.T, stage int) {
	t.Helper()
	// The report is complete once luod finished its session.
	rep := waitReport(t, time.Minute)
	if rep.Count != stage-1 || rep.Kind != "kexec" || rep.To != vm.Release() {
		t.Errorf("report: count %d kind %s to %s", rep.Count, rep.Kind, rep.To)
	}
	seen := map[string]bool{}
	for _, ev := range rep.Timeline {
		seen[ev.Name+"/"+ev.Unit] = true
	}
	for _, ev := range []string{"requested/", "loaded/", "stop-begin/", "last-stopped/", "preserved/", "reboot/", "kernel-up/", "luod-up/", "restored/", "finished/"} {
		if !seen[ev] {
			t.Errorf("report timeline lacks %s: %+v", ev, rep.Timeline)
		}
	}
	delivered := map[string][]string{
		"mem.service": {"counter", "keep.index"}, "own.service": {"own"}, "luos.service": {"state"}, "tight.service": {"state"}, "sock.service": {"counter", "keep.index"},
	}
	for _, ru := range rep.Units {
		want, ok := delivered[ru.Name]
		if !ok {
			continue
		}
		got := slices.Clone(ru.Delivered)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("report %s delivered %v, want %v", ru.Name, ru.Delivered, want)
		}
		if ru.Blackout <= 0 || ru.Blackout > 5*time.Minute || ru.Ready.IsZero() {
			t.Errorf("report %s blackout %v ready %v", ru.Name, ru.Blackout, ru.Ready)
		}
		if !seen["ready/"+ru.Name] {
			t.Errorf("report timeline lacks ready of %s", ru.Name)
		}
		if ru.Name == "sock.service" && (len(ru.Lost) != 1 || ru.Lost[0].Name != "socket") {
			t.Errorf("report sock.service lost %+v, want the socket", ru.Lost)
		}
		t.Logf("%s: blackout %v, delivered %v", ru.Name, ru.Blackout, ru.Delivered)
	}
	// luod's incoming session is finished and closed.
	var ss control.Sessions
	mustCall(t, control.MethodListSessions, nil, &ss)
	handedOut := 0
	for _, s := range ss.Sessions {
		if s.Name == "luod" {
			t.Errorf("luod's session still listed after finish: %+v", s)
		}
		// The sessions luod handed out for LUOSession=state, the incoming
		// one and the outgoing one next to it, are luod's.
		if (s.Unit == "luos.service" || s.Unit == "tight.service") && s.FDName == "state" {
			handedOut++
			if s.Owner != "luod, handed out for LUOSession=state" {
				t.Errorf("session %+v: owner %q, want luod, handed out for LUOSession=state", s, s.Owner)
			}
		}
	}
	if handedOut == 0 {
		t.Errorf("no LUOSession= session listed: %+v", ss.Sessions)
	}
	luoctl(t, "sessions")
	out, code := luoctl(t, "update", "report")
	if code != 0 || !strings.Contains(out, "mem.service") {
		t.Errorf("luoctl update report: exit %d", code)
	}
}

// writeUnit puts a unit in /run/luod/system (gone after a kexec) and
// reloads.
func writeUnit(t *testing.T, name, text string) {
	t.Helper()
	os.MkdirAll("/run/luod/system", 0o755)
	if err := os.WriteFile(filepath.Join("/run/luod/system", name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCall(t, control.MethodReload, nil, nil)
}

func pids(t *testing.T) map[string]int {
	out := map[string]int{}
	for _, n := range counters {
		out[n] = unit(t, n).MainPID
	}
	return out
}

func kexecLoaded(t *testing.T) bool {
	b, err := os.ReadFile("/sys/kernel/kexec_loaded")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b)) == "1"
}

// sessionFree checks that no outgoing session named luod is left: creating
// one succeeds (and it is closed again at once).
func sessionFree(t *testing.T) {
	t.Helper()
	var dev *luo.Device
	poll(t, "open /dev/liveupdate", 30*time.Second, func() (err error) { dev, err = luo.Open(); return err })
	defer dev.Close()
	s, err := dev.CreateSession("luod")
	if err != nil {
		t.Fatalf("a %q session is still preserved after the abort: %v", "luod", err)
	}
	s.Close()
}

// checkAborted checks the state after an aborted update: the right phase
// reported, nothing loaded, no session left, every counter restarted with
// its store (origin fdstore).
func checkAborted(t *testing.T, out string, code int, phase string, before map[string]int) {
	t.Helper()
	if code != 4 || !strings.Contains(out, phase) || !strings.Contains(out, "restored") && !strings.Contains(out, "started again") {
		t.Errorf("want exit 4 and an abort in phase %q:\n%s", phase, out)
	}
	if kexecLoaded(t) {
		t.Error("a kexec image is still loaded after the abort")
	}
	sessionFree(t)
	us := waitActive(t, counters...)
	for _, n := range counters {
		st := parseStatus(t, us[n].Status)
		if us[n].MainPID == before[n] || st.origin != "fdstore" || st.verified != "ok" {
			t.Errorf("%s after the abort: pid %d (was %d), %q; want restarted from its fd store", n, us[n].MainPID, before[n], st.raw)
		}
	}
}

// checkUntouched checks an update refused or aborted before any unit
// stopped: the phase in the error, every unit still running as it was,
// nothing loaded, no session of luod's left.
func checkUntouched(t *testing.T, out string, code int, phase string, before map[string]int) {
	t.Helper()
	if code != 4 || !strings.Contains(out, fmt.Sprintf("in phase %q", phase)) {
		t.Errorf("want exit 4 and a failure in phase %q:\n%s", phase, out)
	}
	if got := pids(t); !maps(got, before) {
		t.Errorf("units changed: %v -> %v", before, got)
	}
	if kexecLoaded(t) {
		t.Error("a kexec image is loaded after the refusal")
	}
	sessionFree(t)
}

// otherKernel returns the update arguments for the next stage, with
// another kernel image.
func otherKernel(t *testing.T, kernel string) []string {
	t.Helper()
	_, initrd, cmdline, err := vm.NextBoot()
	if err != nil {
		t.Fatal(err)
	}
	return []string{"--kernel", kernel, "--initrd", initrd, "--cmdline", cmdline}
}

// planInto asks luod for a plan into kernel.
func planInto(t *testing.T, kernel string, allowLoss bool) *control.Plan {
	t.Helper()
	_, initrd, cmdline, err := vm.NextBoot()
	if err != nil {
		t.Fatal(err)
	}
	var p control.Plan
	mustCall(t, control.MethodPlanUpdate, control.UpdateParams{Kernel: kernel, Initrd: initrd, Cmdline: cmdline, AllowLoss: allowLoss}, &p)
	return &p
}

// TestFaults runs in the stages of TestVMFaults.
func TestFaults(t *testing.T) {
	switch vm.Stage() {
	case 1:
		faultsStage1(t)
	case 2:
		faultsStage2(t)
	case 3:
		faultsStage3(t)
	case 4:
		faultsStage4(t)
	}
}

func faultsStage1(t *testing.T) {
	waitLuod(t, control.DefaultSocket)
	waitActive(t, counters...)
	before := pids(t)

	t.Run("kernel_fails_to_load", func(t *testing.T) {
		_, initrd, cmdline, _ := vm.NextBoot()
		out, code := luoctl(t, "update", "run", "--kernel", "/vmtest/bin/luoctl", "--initrd", initrd, "--cmdline", cmdline, "--allow-loss")
		if code != 4 || !strings.Contains(out, "load") {
			t.Errorf("exit %d", code)
		}
		if got := pids(t); !maps(got, before) {
			t.Errorf("units changed: %v -> %v", before, got)
		}
	})
	t.Run("loss_refused", func(t *testing.T) {
		out, code := luoctl(t, updateArgs(t)...)
		if code != 4 || !strings.Contains(out, "socket") || !strings.Contains(out, "--allow-loss") {
			t.Errorf("exit %d", code)
		}
		if got := pids(t); !maps(got, before) {
			t.Errorf("units changed: %v -> %v", before, got)
		}
		out, code = luoctl(t, "update", "plan", "--kernel", "/vmtest/boot/stage-2.bzImage")
		if code != 4 || !strings.Contains(out, "socket") {
			t.Errorf("plan: exit %d", code)
		}
	})
	t.Run("unit_will_not_stop", func(t *testing.T) {
		writeUnit(t, "stubborn.service", "[Service]\nType=notify\nExecStart=/vmtest/bin/testsvc -ignore-term\nTimeoutStopSec=20s\n")
		mustCall(t, control.MethodStartUnit, control.UnitName{Name: "stubborn.service"}, nil)
		out, code := luoctl(t, updateArgs(t, "--allow-loss", "--stop-timeout", "3s")...)
		checkAborted(t, out, code, "stop", before)
		if !strings.Contains(out, "stubborn.service") {
			t.Errorf("the error does not name the unit that did not stop")
		}
		mustCall(t, control.MethodStopUnit, control.UnitName{Name: "stubborn.service"}, nil)
	})
	t.Run("preserve_ebusy", func(t *testing.T) {
		writeUnit(t, "busy.service", "[Service]\nType=notify\nExecStart=/vmtest/bin/testsvc -store b=memfd-busy:x\nFileDescriptorStoreMax=2\nFileDescriptorStorePreserve=yes\n")
		mustCall(t, control.MethodStartUnit, control.UnitName{Name: "busy.service"}, nil)
		p := plan(t)
		if f := entryFates(p, "busy.service")["b"]; len(f) != 1 || f[0] != "lost" {
			t.Errorf("busy memfd fate %v", f)
		}
		for _, u := range p.Units {
			for _, e := range u.Entries {
				if u.Name == "busy.service" && !strings.Contains(e.Reason, "busy") {
					t.Errorf("busy.service %q reason %q does not say EBUSY", e.Name, e.Reason)
				}
			}
		}
		out, code := luoctl(t, updateArgs(t)...)
		if code != 4 || !strings.Contains(out, "busy.service") {
			t.Errorf("update with an EBUSY memfd: exit %d", code)
		}
		mustCall(t, control.MethodStopUnit, control.UnitName{Name: "busy.service"}, nil)
		mustCall(t, control.MethodCleanUnit, control.CleanParams{Name: "busy.service", What: []string{"fdstore"}}, nil)
	})
	t.Run("preserve_enospc", func(t *testing.T) {
		before := pids(t)
		os.WriteFile("/run/luod/test-fault", []byte("preserve=ENOSPC"), 0o644)
		out, code := luoctl(t, updateArgs(t, "--allow-loss")...)
		checkAborted(t, out, code, "preserve", before)
		if !strings.Contains(out, "no space") {
			t.Errorf("the error does not say ENOSPC")
		}
	})
	t.Run("reboot_fails", func(t *testing.T) {
		before := pids(t)
		os.WriteFile("/run/luod/test-fault", []byte("reboot=EBUSY"), 0o644)
		out, code := luoctl(t, updateArgs(t, "--allow-loss")...)
		checkAborted(t, out, code, "reboot", before)
	})
	t.Run("load_fails", func(t *testing.T) {
		before := pids(t)
		os.WriteFile("/run/luod/test-fault", []byte("load=ENOEXEC"), 0o644)
		out, code := luoctl(t, updateArgs(t, "--allow-loss")...)
		checkUntouched(t, out, code, "load", before)
	})
	t.Run("other_memfd_format", func(t *testing.T) {
		before := pids(t)
		args := otherKernel(t, "/vmtest/images/memfd-v9.bzImage")
		out, code := luoctl(t, append([]string{"update", "plan"}, args...)...)
		if code != 4 || !strings.Contains(out, "memfd-v9") || !strings.Contains(out, "EIO") {
			t.Errorf("plan into a memfd-v9 kernel: exit %d, want 4 naming memfd-v9 and EIO", code)
		}
		// Allowed, the loss is every fd of every unit.
		p := planInto(t, args[1], true)
		if !p.OK {
			t.Errorf("plan with --allow-loss is not OK: %+v", p.Checks)
		}
		for _, u := range p.Units {
			for _, e := range u.Entries {
				if e.Fate != "lost" || !strings.Contains(e.Reason, "memfd-v9") {
					t.Errorf("%s %q: %s (%s), want lost to the formats", u.Name, e.Name, e.Fate, e.Reason)
				}
			}
		}
		out, code = luoctl(t, append([]string{"update", "run"}, args...)...)
		checkUntouched(t, out, code, "plan", before)
	})
	t.Run("other_luo_format", func(t *testing.T) {
		before := pids(t)
		args := otherKernel(t, "/vmtest/images/luo-v9.bzImage")
		if p := planInto(t, args[1], true); p.OK {
			t.Errorf("a plan into a luo-v9 kernel is OK with --allow-loss: %+v", p.Checks)
		}
		out, code := luoctl(t, append(append([]string{"update", "run"}, args...), "--allow-loss")...)
		checkUntouched(t, out, code, "plan", before)
		if !strings.Contains(out, "panics at boot") {
			t.Errorf("the refusal does not say the next kernel would panic")
		}
	})
	t.Run("unit_file_vanishes", func(t *testing.T) {
		writeUnit(t, "ephemeral.service", ephemeral)
		mustCall(t, control.MethodStartUnit, control.UnitName{Name: "ephemeral.service"}, nil)
		if n := unit(t, "ephemeral.service").FDStoreCount; n != 1 {
			t.Fatalf("ephemeral stored %d", n)
		}
	})
	if t.Failed() {
		return
	}
	liveUpdate(t)
}

const ephemeral = "[Service]\nType=notify\nExecStart=/vmtest/bin/testsvc -store e=memfd:ephemeral-data -report /run/eph.json\nFileDescriptorStoreMax=2\nFileDescriptorStorePreserve=yes\n"

func maps(a, b map[string]int) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return len(a) == len(b)
}

func faultsStage2(t *testing.T) {
	waitLuod(t, control.DefaultSocket)
	us := waitActive(t, counters...)
	for _, n := range counters {
		if st := parseStatus(t, us[n].Status); st.origin != "luo" || st.verified != "ok" || st.liveUpdates != 1 {
			t.Errorf("%s: %q", n, st.raw)
		}
	}
	t.Run("unit_file_vanished", func(t *testing.T) {
		u := unit(t, "ephemeral.service")
		if u.LoadState != "not-found" || u.FDStoreCount != 1 || u.SubState != "dead-resources-pinned" {
			t.Errorf("ephemeral after the kexec: %+v", u)
		}
		var rep control.Report
		mustCall(t, control.MethodGetUpdateReport, nil, &rep)
		if !strings.Contains(strings.Join(rep.Problems, "\n"), "ephemeral.service") {
			t.Errorf("report problems do not mention the missing unit: %v", rep.Problems)
		}
		writeUnit(t, "ephemeral.service", ephemeral)
		mustCall(t, control.MethodStartUnit, control.UnitName{Name: "ephemeral.service"}, nil)
		var r struct {
			Contents map[string]string `json:"contents"`
		}
		poll(t, "ephemeral report", time.Minute, func() error {
			b, err := os.ReadFile("/run/eph.json")
			if err != nil {
				return err
			}
			return json.Unmarshal(b, &r)
		})
		if r.Contents["e"] != "ephemeral-data" {
			t.Errorf("ephemeral got %v back", r.Contents)
		}
	})
	t.Run("corrupt_manifest", func(t *testing.T) {
		// Leave a "luod" session whose manifest is garbage, and kexec
		// without luod (this test does it, holding the session).
		holdFakeManifest(t, "this is not a manifest")
	})
	if t.Failed() {
		return
	}
	t.Run("plan_keeps_operator_image", func(t *testing.T) {
		// An operator loaded the next kernel (with a marker of its own);
		// luod's plan must neither replace nor unload it: the next stage
		// boots from this image and finds the marker.
		kernel, initrd, cmdline, err := vm.NextBoot()
		if err != nil {
			t.Fatal(err)
		}
		if err := kexec.Load(kexec.Image{Kernel: kernel, Initrd: initrd, Cmdline: cmdline + " " + operatorMarker}); err != nil {
			t.Fatal(err)
		}
		out, _ := luoctl(t, "update", "plan", "--kernel", kernel, "--initrd", initrd, "--cmdline", cmdline)
		if !strings.Contains(out, "another kexec image is loaded") {
			t.Errorf("the plan does not say it left the loaded image alone")
		}
		if !kexecLoaded(t) {
			t.Fatal("the plan unloaded the operator's image")
		}
		vmtest.ExpectKexec(t)
		err = kexec.Exec()
		t.Fatalf("kexec into the operator's image: %v", err)
	})
}

// operatorMarker is on the command line of the image an operator loaded
// in stage 2 (see plan_keeps_operator_image).
const operatorMarker = "luo.e2e.operator=1"

// holdFakeManifest creates luod's session itself with data at token 0 and
// a memfd at token 1, and keeps it open for the harness's kexec.
func holdFakeManifest(t *testing.T, data string) {
	t.Helper()
	var dev *luo.Device
	poll(t, "open /dev/liveupdate", 30*time.Second, func() (err error) { dev, err = luo.Open(); return err })
	defer dev.Close()
	s, err := dev.CreateSession("luod")
	if err != nil {
		t.Fatal(err)
	}
	for tok, d := range []string{data, "precious"} {
		f, err := memfd.New("fake", 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(d)
		if err := s.PreserveFD(f, uint64(tok)); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	vm.Hold(s)
}

func checkHeld(t *testing.T, want string) {
	t.Helper()
	var rep control.Report
	mustCall(t, control.MethodGetUpdateReport, nil, &rep)
	if !strings.Contains(strings.Join(rep.Problems, "\n"), want) {
		t.Errorf("report problems %v do not say %q", rep.Problems, want)
	}
	var ss control.Sessions
	mustCall(t, control.MethodListSessions, nil, &ss)
	held := false
	for _, s := range ss.Sessions {
		held = held || s.Name == "luod" && s.Direction == "incoming" && strings.Contains(s.Owner, "held")
	}
	if !held {
		t.Errorf("luod's session is not listed as held: %+v", ss.Sessions)
	}
	// Nothing was finished: the session still holds its files, so the
	// device reports it retrieved (EINVAL), not gone (ENOENT).
	var dev *luo.Device
	poll(t, "open /dev/liveupdate", 30*time.Second, func() (err error) { dev, err = luo.Open(); return err })
	defer dev.Close()
	if _, err := dev.RetrieveSession("luod"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("RetrieveSession(luod) = %v, want EINVAL (held by luod)", err)
	}
	out, code := luoctl(t, "update", "report")
	if code != 0 || !strings.Contains(out, want) {
		t.Errorf("luoctl update report does not show the problem (exit %d)", code)
	}
}

func faultsStage3(t *testing.T) {
	if b, err := os.ReadFile("/proc/cmdline"); err != nil || !strings.Contains(string(b), operatorMarker) {
		t.Errorf("stage 3 did not boot the image the operator loaded in stage 2 (command line %q): luod's plan replaced it", b)
	}
	waitLuod(t, control.DefaultSocket)
	checkHeld(t, "not valid JSON")
	// The units started anyway, fresh.
	us := waitActive(t, counters...)
	if st := parseStatus(t, us["mem.service"].Status); st.origin != "fresh" {
		t.Errorf("mem.service %q", st.raw)
	}
	holdFakeManifest(t, `{"version":99,"kind":"kexec","units":{}}`)
}

func faultsStage4(t *testing.T) {
	waitLuod(t, control.DefaultSocket)
	checkHeld(t, "version 99")
	waitActive(t, counters...)
	t.Run("luod_killed_mid_preparation", killMidPreparation)
}

// killMidPreparation runs a second luod (not PID 1, so it can be killed),
// makes its update hang right after preserving, kills it with SIGKILL, and
// checks what is left: luoctl says the connection was lost before the
// reboot, and the kernel dropped luod's session with the process (no
// stale preserved state).
func killMidPreparation(t *testing.T) {
	dir := t.TempDir()
	units, run := filepath.Join(dir, "units"), filepath.Join(dir, "run")
	os.MkdirAll(units, 0o755)
	os.WriteFile(filepath.Join(units, "c.service"), []byte(
		"[Service]\nType=notify\nExecStart=/vmtest/bin/counter -size 4096\nFileDescriptorStoreMax=4\nFileDescriptorStorePreserve=yes\n"), 0o644)
	luod := exec.Command("/vmtest/bin/luod", "-units", units, "-runtime", run)
	luod.Env = append(os.Environ(), "LUOD_TEST_FAULT=hang=preserved")
	var log bytes.Buffer
	luod.Stdout, luod.Stderr = &log, &log
	if err := luod.Start(); err != nil {
		t.Fatal(err)
	}
	defer luod.Process.Kill()
	socket := filepath.Join(run, "io.luo.Manager")
	waitLuod(t, socket)
	var u control.UnitReply
	poll(t, "c.service active", time.Minute, func() error {
		if err := call(t, socket, control.MethodGetUnit, control.UnitName{Name: "c.service"}, &u); err != nil {
			return err
		}
		if u.Unit.ActiveState != "active" {
			return fmt.Errorf("%s", u.Unit.ActiveState)
		}
		return nil
	})
	// This is the last stage: "update" into the current kernel (it never
	// gets that far).
	vp, err := vm.ReadPlan()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--socket", socket, "update", "run", "--kernel", vp.Stages[vm.Stage()-1].Kernel,
		"--initrd", vp.Initrd, "--cmdline", vp.StageCmdline(vm.Stage()), "--allow-loss"}
	ctl := exec.Command("/vmtest/bin/luoctl", args...)
	var out bytes.Buffer
	ctl.Stdout, ctl.Stderr = &out, &out
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	poll(t, "the update preserved", 2*time.Minute, func() error {
		if !strings.Contains(log.String(), "hanging after preserve") {
			return errors.New("not yet")
		}
		return nil
	})
	luod.Process.Signal(syscall.SIGKILL)
	luod.Wait()
	err = ctl.Wait()
	t.Logf("luoctl after luod was killed: %v\n%s", err, out.String())
	if err == nil || strings.Contains(out.String(), "Rebooting") {
		t.Errorf("luoctl did not report the failure")
	}
	sessionFree(t)
	kexecLoaded(t) // the loaded image stays; the next update replaces it
}
