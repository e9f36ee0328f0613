//go:build vmguest

package e2e_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/vm"
)

const (
	sizeUnit = "big.service" // bigsvc "big" (size)
	sizeID   = "big"
)

type benchSizeStep struct {
	size int64
	fds  int
}

func parseBenchSizes(t *testing.T) []benchSizeStep {
	t.Helper()
	var out []benchSizeStep
	for _, f := range strings.Split(*benchSizes, ",") {
		a, b, _ := strings.Cut(f, ":")
		size, err1 := strconv.ParseInt(a, 10, 64)
		n, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || n < 1 || size <= 0 {
			t.Fatalf("-e2e.bench-sizes=%q", *benchSizes)
		}
		out = append(out, benchSizeStep{size, n})
	}
	return out
}

// checkBigsvc checks that a bigsvc unit came back from a live update with
// generation gen, size bytes in fds memfds, all verified (the full check
// included: it waits for it).
func checkBigsvc(u control.Unit, gen int, size int64, fds int) error {
	st, err := parseBigsvc(u.Status)
	switch {
	case err != nil:
		return err
	case u.ActiveState != "active":
		return fmt.Errorf("%s is %s/%s", u.Name, u.ActiveState, u.SubState)
	case st.full == "pending":
		return fmt.Errorf("%s: full check pending: %q", u.Name, u.Status)
	case st.origin != "restored" || st.gen != gen || st.size != size || st.fds != fds || u.FDStoreCount != fds:
		return fmt.Errorf("%s: %q, store %d; want origin=restored gen=%d size=%d fds=%d", u.Name, u.Status, u.FDStoreCount, gen, size, fds)
	}
	return nil
}

// fatalIfBad fails the round at once when a service's check failed: there
// is no point waiting for it to change.
func fatalIfBad(t *testing.T, us []control.Unit, names map[string]bool) {
	t.Helper()
	for _, u := range us {
		if st, err := parseBigsvc(u.Status); names[u.Name] && err == nil && (st.sample == "bad" || st.full == "bad") {
			t.Fatalf("%s: state check failed: %q", u.Name, u.Status)
		}
	}
}

// benchSize: e2e.bench-rounds live updates of sizeUnit for each of
// e2e.bench-sizes. Stage s updates size (s-1)/rounds; the first round of a
// size starts the unit over, fresh (the fill is outside the timed span);
// the next stage checks the state came back, generation advanced, every
// page verified (after READY), and reports the update's timeline. The host
// measures the service-down time from the console.
func benchSize(t *testing.T) {
	sizes, rounds, s := parseBenchSizes(t), *benchRounds, vm.Stage()
	waitLuod(t, control.DefaultSocket)
	mode := benchModeOf(0)
	if *benchStaged {
		mode = benchModeOf(1)
	}
	if s > 1 {
		prev, r := sizes[(s-2)/rounds], (s-2)%rounds
		rep := waitReport(t, 5*time.Minute)
		us := waitUnits(t, 5*time.Minute, map[string]func(control.Unit) error{
			sizeUnit: func(u control.Unit) error {
				if st, err := parseBigsvc(u.Status); err == nil && (st.sample == "bad" || st.full == "bad") {
					return nil // fails below
				}
				return checkBigsvc(u, r+2, prev.size, prev.fds)
			},
		})
		fatalIfBad(t, us, map[string]bool{sizeUnit: true})
		if len(rep.Problems) > 0 {
			t.Errorf("report problems: %q", rep.Problems)
		}
		ms := spans(rep)
		for _, u := range us {
			if u.Name == sizeUnit {
				for _, f := range strings.Fields(u.Status) {
					if v, ok := strings.CutPrefix(f, "full_ms="); ok {
						ms["full_check"], _ = strconv.ParseFloat(v, 64)
					}
				}
			}
		}
		emit(t, benchData{Kind: "size", Stage: s - 1, Round: r + 1, N: prev.fds, Size: prev.size, Mode: mode, MS: ms})
	}
	if s > len(sizes)*rounds {
		return
	}
	cur, r := sizes[(s-1)/rounds], (s-1)%rounds
	if r == 0 {
		fresh := func(u control.Unit) error {
			st, err := parseBigsvc(u.Status)
			if err != nil || u.ActiveState != "active" || st.origin != "fresh" || st.gen != 1 || st.size != cur.size || st.fds != cur.fds || u.FDStoreCount != cur.fds {
				return fmt.Errorf("%s/%s %q store %d, want fresh size=%d fds=%d", u.ActiveState, u.SubState, u.Status, u.FDStoreCount, cur.size, cur.fds)
			}
			return nil
		}
		if s > 1 {
			// Start over with a fresh store of the new size.
			mustCall(t, control.MethodStopUnit, control.UnitName{Name: sizeUnit}, nil)
			mustCall(t, control.MethodCleanUnit, control.CleanParams{Name: sizeUnit, What: []string{"fdstore"}}, nil)
			if err := os.WriteFile(bigsvcConfFile, fmt.Appendf(nil, "%d %d", cur.size, cur.fds), 0o644); err != nil {
				t.Fatal(err)
			}
			mustCall(t, control.MethodStartUnit, control.UnitName{Name: sizeUnit}, nil)
		}
		waitUnits(t, 5*time.Minute, map[string]func(control.Unit) error{sizeUnit: fresh})
	}
	benchUpdate(t, *benchStaged)
}

// benchManyUnits: e2e.bench-units counters (u000.service, ... the
// example counter with a 64 KiB region each) updated together,
// e2e.bench-rounds times in a row; each stage after the first checks that
// every counter came back with its state verified and its generation
// advanced, and reports the update's timeline (guest clock: luod at warn
// level keeps its per-unit lines off the console).
func benchManyUnits(t *testing.T) {
	n, rounds, s := *benchUnits, *benchRounds, vm.Stage()
	waitLuod(t, control.DefaultSocket)
	mode := benchModeOf(0)
	if *benchStaged {
		mode = benchModeOf(1)
	}
	want := map[string]func(control.Unit) error{}
	for i := range n {
		want[fmt.Sprintf("u%03d.service", i)] = func(u control.Unit) error {
			if u.ActiveState != "active" || !strings.HasPrefix(u.Status, "generation=") {
				return fmt.Errorf("%s: %s/%s %q", u.Name, u.ActiveState, u.SubState, u.Status)
			}
			return nil
		}
	}
	us := waitUnits(t, 5*time.Minute, want)
	for _, u := range us {
		if want[u.Name] == nil {
			continue
		}
		st := parseStatus(t, u.Status)
		if s == 1 && (st.origin != "fresh" || st.gen != 1) {
			t.Fatalf("%s after a cold start: %q", u.Name, st.raw)
		}
		if s > 1 && (st.origin != "luo" || st.verified != "ok" || st.gen != s || st.liveUpdates != s-1) {
			t.Fatalf("%s after luod's update: %q; want generation=%d origin=luo verified=ok live_updates=%d", u.Name, st.raw, s, s-1)
		}
	}
	if s > 1 {
		rep := waitReport(t, 5*time.Minute)
		if len(rep.Problems) > 0 {
			t.Errorf("report problems: %q", rep.Problems)
		}
		if len(rep.Units) != n {
			t.Errorf("report lists %d units, want %d", len(rep.Units), n)
		}
		for _, ru := range rep.Units {
			if len(ru.Delivered) == 0 || len(ru.Lost) > 0 {
				t.Errorf("report %s: delivered %v lost %v", ru.Name, ru.Delivered, ru.Lost)
			}
		}
		emit(t, benchData{Kind: "units", Stage: s - 1, Round: s - 1, N: n, Mode: mode, MS: spans(rep)})
	}
	if s > rounds {
		return
	}
	benchUpdate(t, *benchStaged)
}
