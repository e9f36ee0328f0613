//go:build vmguest

package e2e_test

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo/activation"
	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
	"github.com/liveupdate/luo/memfd"
	"github.com/liveupdate/luo/sdnotify"
)

// memsvc is a service built into the guest test binary: a unit whose
// ExecStart= is /vmtest/test.bin and that sets LUO_E2E_MEMSVC=ID runs it
// instead of the tests (see init). On a fresh start it stores N memfds
// named m00000, m00001, ... with contents unique to the unit and the index;
// when its store comes back (restart or live update) it checks every fd it
// got and stores nothing. It reports through STATUS= and on stdout:
//
//	memsvc id=ID origin=fresh fds=N
//	memsvc id=ID origin=restored fds=N ok=N bad=0
//
// ok counts the fds whose name is m<index> with 0 <= index < fds, each
// index once, and whose contents are exactly memsvcData(ID, index); so ok
// == fds == the stored count means the unit got exactly its fds back.
const (
	memsvcEnv = "LUO_E2E_MEMSVC"
	// memsvcNEnv is how many memfds a fresh start stores, unless
	// memsvcNFile exists (the benchmark changes it between updates).
	memsvcNEnv  = "LUO_E2E_MEMSVC_N"
	memsvcNFile = "/run/luo-e2e-memsvc-n"
)

func init() {
	if id := os.Getenv(memsvcEnv); id != "" {
		os.Exit(memsvc(id))
	}
}

func memsvcName(i int) string { return fmt.Sprintf("m%05d", i) }

func memsvcData(id string, i int) string {
	return fmt.Sprintf("luo e2e memsvc unit=%s fd=%05d\n", id, i)
}

func memsvc(id string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "memsvc %s: %v\n", id, err)
		return 1
	}
	n, err := sdnotify.Open()
	if err != nil {
		return fail(err)
	}
	fs, err := activation.Receive(&activation.Config{UnsetEnv: true})
	if err != nil {
		return fail(err)
	}
	var status string
	if fs.Len() == 0 {
		want, err := strconv.Atoi(os.Getenv(memsvcNEnv))
		if b, ferr := os.ReadFile(memsvcNFile); ferr == nil {
			want, err = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if err != nil {
			return fail(fmt.Errorf("number of memfds: %v", err))
		}
		for i := range want {
			f, err := memfd.New(memsvcName(i), 0)
			if err != nil {
				return fail(err)
			}
			if _, err := f.WriteString(memsvcData(id, i)); err != nil {
				return fail(err)
			}
			if err := n.StoreFiles(memsvcName(i), []*os.File{f}, nil); err != nil {
				return fail(err)
			}
			f.Close()
		}
		status = fmt.Sprintf("memsvc id=%s origin=fresh fds=%d", id, want)
	} else {
		ok, firstBad := 0, ""
		seen := map[int]bool{}
		for _, f := range fs.All() {
			why := ""
			i, err := strconv.Atoi(strings.TrimPrefix(f.Name(), "m"))
			b, rerr := io.ReadAll(io.NewSectionReader(f, 0, 1<<16))
			switch {
			case !strings.HasPrefix(f.Name(), "m") || err != nil || i < 0 || i >= fs.Len():
				why = "unexpected-name"
			case seen[i]:
				why = "duplicate"
			case rerr != nil:
				why = "unreadable"
			case string(b) != memsvcData(id, i):
				why = fmt.Sprintf("contents(%dB)", len(b))
			}
			seen[i] = true
			if why == "" {
				ok++
			} else if firstBad == "" {
				firstBad = " first_bad=" + f.Name() + ":" + why
			}
		}
		status = fmt.Sprintf("memsvc id=%s origin=restored fds=%d ok=%d bad=%d%s", id, fs.Len(), ok, fs.Len()-ok, firstBad)
		fs.Close()
	}
	fmt.Println(status)
	if err := n.Status(status); err != nil {
		return fail(err)
	}
	if err := n.Ready(); err != nil {
		return fail(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return 0
}

// memsvcStatus is a memsvc STATUS= line, parsed.
type memsvcStatus struct {
	id, origin       string
	fds, ok, bad     int
	firstBad, status string
}

func parseMemsvc(s string) (memsvcStatus, error) {
	st := memsvcStatus{status: s, ok: -1, bad: -1}
	f := strings.Fields(s)
	if len(f) == 0 || f[0] != "memsvc" {
		return st, fmt.Errorf("not a memsvc status: %q", s)
	}
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		n, _ := strconv.Atoi(v)
		switch k {
		case "id":
			st.id = v
		case "origin":
			st.origin = v
		case "fds":
			st.fds = n
		case "ok":
			st.ok = n
		case "bad":
			st.bad = n
		case "first_bad":
			st.firstBad = v
		}
	}
	return st, nil
}

// checkRestored checks that a memsvc unit is up with exactly its want fds
// back, verified by the service itself, and still holds them.
func checkRestored(u control.Unit, id string, want int) error {
	st, err := parseMemsvc(u.Status)
	switch {
	case err != nil:
		return err
	case u.ActiveState != "active":
		return fmt.Errorf("%s is %s/%s", u.Name, u.ActiveState, u.SubState)
	case st.id != id || st.origin != "restored" || st.fds != want || st.ok != want || st.bad != 0:
		return fmt.Errorf("%s: %q; want id=%s origin=restored fds=%d ok=%d bad=0", u.Name, u.Status, id, want, want)
	case u.FDStoreCount != want:
		return fmt.Errorf("%s: fd store holds %d, want %d", u.Name, u.FDStoreCount, want)
	}
	return nil
}

func listUnits(t *testing.T) []control.Unit {
	t.Helper()
	var us control.Units
	mustCall(t, control.MethodListUnits, nil, &us)
	return us.Units
}

// waitUnits waits until every unit named in want passes its check.
func waitUnits(t *testing.T, timeout time.Duration, want map[string]func(control.Unit) error) []control.Unit {
	t.Helper()
	var us []control.Unit
	poll(t, fmt.Sprintf("%d units up", len(want)), timeout, func() error {
		us = listUnits(t)
		var errs []string
		found := 0
		for _, u := range us {
			check, ok := want[u.Name]
			if !ok {
				continue
			}
			found++
			if err := check(u); err != nil {
				errs = append(errs, err.Error())
			}
		}
		if found != len(want) {
			errs = append(errs, fmt.Sprintf("%d of %d units loaded", found, len(want)))
		}
		if len(errs) > 0 {
			return fmt.Errorf("%d not ready; first: %s", len(errs), errs[0])
		}
		return nil
	})
	return us
}

// waitReport waits until luod finished the last update's session and
// returns its report.
func waitReport(t *testing.T, timeout time.Duration) control.Report {
	t.Helper()
	return waitEvent(t, "finished", timeout)
}

func eventTime(rep control.Report, name string) time.Time {
	for _, ev := range rep.Timeline {
		if ev.Name == name {
			return ev.Time
		}
	}
	return time.Time{}
}

// lastReady returns the time of the last ready event.
func lastReady(rep control.Report) time.Time {
	var last time.Time
	for _, ev := range rep.Timeline {
		if ev.Name == "ready" && ev.Time.After(last) {
			last = ev.Time
		}
	}
	return last
}

// spans are the durations of an update's report, in milliseconds, each
// from two events on the same kernel's clock (the report's cross-kexec
// spans mix two clocks; see the host side).
func spans(rep control.Report) map[string]float64 {
	ms := func(a, b time.Time) float64 {
		if a.IsZero() || b.IsZero() {
			return -1
		}
		return float64(b.Sub(a).Microseconds()) / 1000
	}
	ev := func(name string) time.Time { return eventTime(rep, name) }
	return map[string]float64{
		"requested_reboot":   ms(ev("requested"), ev("reboot")),
		"stopbegin_reboot":   ms(ev("stop-begin"), ev("reboot")),
		"plan_load":          ms(ev("requested"), ev("loaded")),
		"load_stopbegin":     ms(ev("loaded"), ev("stop-begin")),
		"stop":               ms(ev("stop-begin"), ev("last-stopped")),
		"preserve":           ms(ev("last-stopped"), ev("preserved")),
		"manifest":           ms(ev("preserved"), ev("reboot")),
		"kernelup_luodup":    ms(ev("kernel-up"), ev("luod-up")),
		"luodup_restored":    ms(ev("luod-up"), ev("restored")),
		"restored_ready":     ms(ev("restored"), lastReady(rep)),
		"luodup_lastready":   ms(ev("luod-up"), lastReady(rep)),
		"lastready_finished": ms(lastReady(rep), ev("finished")),
	}
}

// benchOut prints a line on the results port and waits until it is sent,
// so that its arrival time on the host is the moment it was written.
func benchOut(format string, args ...any) {
	fmt.Printf(format+"\n", args...)
	_ = unix.IoctlSetInt(1, unix.TCSBRK, 1) // tcdrain
}

// runUpdate starts a live update into the next stage with luoctl, marking
// the moment on the results port ("BENCH update-start") for the host's
// clock. It does not return: the kexec ends the stage.
func runUpdate(t *testing.T) {
	t.Helper()
	args := updateArgs(t)
	vmtest.ExpectKexec(t)
	benchOut("BENCH update-start stage=%d", vm.Stage())
	out, code := luoctl(t, args...)
	t.Fatalf("update run returned (exit %d), no kexec:\n%s", code, out)
}

var (
	scaleUnits = flag.Int("e2e.scale-units", 0, "TestScale: number of memsvc units (s000.service, ...)")
	scaleFDs   = flag.Int("e2e.scale-fds", 0, "TestScale: memfds per unit")
)

// TestScale runs in TestVMScale: stage 1 starts e2e.scale-units units that
// store e2e.scale-fds memfds each and updates; stage 2 checks that every
// unit is up with exactly its fds, contents verified, and that the report
// lists them all delivered.
func TestScale(t *testing.T) {
	units, fds := *scaleUnits, *scaleFDs
	if units == 0 {
		t.Skip("run by TestVMScale")
	}
	names := make([]string, units)
	for i := range names {
		names[i] = fmt.Sprintf("s%03d", i)
	}
	start := time.Now()
	m := waitLuod(t, control.DefaultSocket)
	switch vm.Stage() {
	case 1:
		want := map[string]func(control.Unit) error{}
		for _, id := range names {
			want[id+".service"] = func(u control.Unit) error {
				st, err := parseMemsvc(u.Status)
				if err != nil || u.ActiveState != "active" {
					return fmt.Errorf("%s: %s %q", u.Name, u.ActiveState, u.Status)
				}
				if st.origin != "fresh" || st.fds != fds || u.FDStoreCount != fds {
					return fmt.Errorf("%s: %q, store %d; want %d fresh fds", u.Name, u.Status, u.FDStoreCount, fds)
				}
				return nil
			}
		}
		waitUnits(t, 5*time.Minute, want)
		up := time.Since(m.Started)
		benchOut("SCALE stage=1 units=%d fds=%d all_active_after_luod_start_ms=%d", units, fds, up.Milliseconds())
		p := plan(t)
		if !p.OK || p.Lost != 0 || p.Preserved != units*fds {
			t.Fatalf("plan: ok=%v preserved=%d lost=%d, want %d preserved", p.OK, p.Preserved, p.Lost, units*fds)
		}
		t.Logf("plan: %d memfds, %d bytes; all %d units active %v after luod started (test waited %v)",
			p.Preserved, p.TotalBytes, units, up.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		runUpdate(t)
	case 2:
		rep := waitReport(t, 5*time.Minute)
		want := map[string]func(control.Unit) error{}
		for _, id := range names {
			want[id+".service"] = func(u control.Unit) error { return checkRestored(u, id, fds) }
		}
		us := waitUnits(t, time.Minute, want)
		for _, u := range us {
			if _, ok := want[u.Name]; ok && u.Restarts != 0 {
				t.Errorf("%s restarted %d times", u.Name, u.Restarts)
			}
		}
		if len(rep.Problems) > 0 {
			t.Errorf("report problems: %q", rep.Problems)
		}
		if rep.Count != 1 || rep.Kind != "kexec" || rep.To != vm.Release() {
			t.Errorf("report: count %d kind %s %s -> %s", rep.Count, rep.Kind, rep.From, rep.To)
		}
		wantNames := make([]string, fds)
		for i := range wantNames {
			wantNames[i] = memsvcName(i)
		}
		ready := map[string]bool{}
		for _, ev := range rep.Timeline {
			if ev.Name == "ready" {
				ready[ev.Unit] = true
			}
		}
		delivered := 0
		for _, ru := range rep.Units {
			if _, ok := want[ru.Name]; !ok {
				t.Errorf("report lists unit %s", ru.Name)
				continue
			}
			got := slices.Sorted(slices.Values(ru.Delivered))
			if !slices.Equal(got, wantNames) {
				t.Errorf("report %s: delivered %d fds %.80v, want %d (m00000...)", ru.Name, len(got), got, fds)
			}
			if len(ru.Lost) > 0 || ru.Ready.IsZero() || ru.Stopped.IsZero() || !ready[ru.Name] {
				t.Errorf("report %s: lost %v, stopped %v, ready %v, ready event %v", ru.Name, ru.Lost, ru.Stopped, ru.Ready, ready[ru.Name])
			}
			delivered += len(ru.Delivered)
		}
		if len(rep.Units) != units || delivered != units*fds {
			t.Errorf("report: %d units, %d fds delivered; want %d, %d", len(rep.Units), delivered, units, units*fds)
		}
		var ss control.Sessions
		mustCall(t, control.MethodListSessions, nil, &ss)
		for _, s := range ss.Sessions {
			if s.Name == "luod" {
				t.Errorf("luod's session still listed after finish: %+v", s)
			}
		}
		sp := spans(rep)
		benchOut("SCALE stage=2 units=%d fds=%d delivered=%d requested_reboot_ms=%.0f stop_ms=%.0f preserve_ms=%.0f plan_load_ms=%.0f luodup_restored_ms=%.0f luodup_lastready_ms=%.0f",
			units, fds, delivered, sp["requested_reboot"], sp["stop"], sp["preserve"], sp["plan_load"], sp["luodup_restored"], sp["luodup_lastready"])
		t.Logf("%d units, %d fds delivered and verified; report spans (ms): %v", units, delivered, sp)
	}
}
