//go:build vmguest

package e2e_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/vm"
)

var (
	benchMode   = flag.String("e2e.bench", "", "TestBenchUpdate: userspace or blackout")
	benchRounds = flag.Int("e2e.bench-rounds", 5, "TestBenchUpdate: live updates per measurement (the host sets it)")
	benchFDs    = flag.String("e2e.bench-fds", "1,100,1000", "TestBenchUpdate userspace: memfd counts, comma-separated")
)

const (
	benchUnit    = "bench.service"   // memsvc "bench" (userspace)
	blackoutUnit = "counter.service" // examples/counter in fd-store mode (blackout)
)

// benchData is one measurement, printed as a "BENCHDATA {json}" line on the
// results port for the host (bench_vm_test.go).
type benchData struct {
	Kind  string             `json:"kind"`  // update (userspace) or blackout
	Stage int                `json:"stage"` // the stage the update left
	Round int                `json:"round"`
	N     int                `json:"n,omitempty"` // memfds carried
	MS    map[string]float64 `json:"ms"`
}

func emit(t *testing.T, d benchData) {
	t.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	benchOut("BENCHDATA %s", b)
}

// TestBenchUpdate runs in the stages of TestVMBenchUpdate.
func TestBenchUpdate(t *testing.T) {
	switch *benchMode {
	case "":
		t.Skip("run by TestVMBenchUpdate")
	case "userspace":
		benchUserspace(t)
	case "blackout":
		benchBlackout(t)
	default:
		t.Fatalf("-e2e.bench=%q", *benchMode)
	}
}

// benchUserspace: e2e.bench-rounds updates for each memfd count, all in
// benchUnit. Stage s updates with ns[(s-1)/rounds] fds; the next stage
// checks they all came back and reports the update's timeline.
func benchUserspace(t *testing.T) {
	var ns []int
	for _, f := range strings.Split(*benchFDs, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			t.Fatalf("-e2e.bench-fds=%q", *benchFDs)
		}
		ns = append(ns, n)
	}
	rounds, s := *benchRounds, vm.Stage()
	waitLuod(t, control.DefaultSocket)
	if s > 1 {
		prev := ns[(s-2)/rounds]
		rep := waitReport(t, 5*time.Minute)
		waitUnits(t, 2*time.Minute, map[string]func(control.Unit) error{
			benchUnit: func(u control.Unit) error { return checkRestored(u, "bench", prev) },
		})
		if len(rep.Problems) > 0 {
			t.Errorf("report problems: %q", rep.Problems)
		}
		emit(t, benchData{Kind: "update", Stage: s - 1, Round: (s-2)%rounds + 1, N: prev, MS: spans(rep)})
	}
	if s > len(ns)*rounds {
		return
	}
	n := ns[(s-1)/rounds]
	us := waitUnits(t, 2*time.Minute, map[string]func(control.Unit) error{
		benchUnit: func(u control.Unit) error {
			if _, err := parseMemsvc(u.Status); err != nil || u.ActiveState != "active" {
				return fmt.Errorf("%s/%s %q", u.ActiveState, u.SubState, u.Status)
			}
			return nil
		},
	})
	for _, u := range us {
		if u.Name == benchUnit && u.FDStoreCount != n {
			// Start over with a store of n fresh memfds.
			mustCall(t, control.MethodStopUnit, control.UnitName{Name: benchUnit}, nil)
			mustCall(t, control.MethodCleanUnit, control.CleanParams{Name: benchUnit, What: []string{"fdstore"}}, nil)
			if err := os.WriteFile(memsvcNFile, []byte(strconv.Itoa(n)), 0o644); err != nil {
				t.Fatal(err)
			}
			mustCall(t, control.MethodStartUnit, control.UnitName{Name: benchUnit}, nil)
			waitUnits(t, 2*time.Minute, map[string]func(control.Unit) error{
				benchUnit: func(u control.Unit) error {
					st, err := parseMemsvc(u.Status)
					if err != nil || u.ActiveState != "active" || st.origin != "fresh" || st.fds != n || u.FDStoreCount != n {
						return fmt.Errorf("%s/%s %q store %d, want %d fresh", u.ActiveState, u.SubState, u.Status, u.FDStoreCount, n)
					}
					return nil
				},
			})
		}
	}
	runUpdate(t)
}

// benchBlackout alternates: odd stages (luod started cold) update with
// luod, even stages (after luod's update) check and report the counter,
// then let the harness kexec on its own, which is the floor the host
// measures. The last stage, odd, only checks.
func benchBlackout(t *testing.T) {
	s := vm.Stage()
	waitLuod(t, control.DefaultSocket)
	var u control.Unit
	waitUnits(t, 2*time.Minute, map[string]func(control.Unit) error{
		blackoutUnit: func(x control.Unit) error {
			if x.ActiveState != "active" || !strings.HasPrefix(x.Status, "generation=") {
				return fmt.Errorf("%s/%s %q", x.ActiveState, x.SubState, x.Status)
			}
			u = x
			return nil
		},
	})
	st := parseStatus(t, u.Status)
	if s%2 == 1 {
		if st.origin != "fresh" || st.gen != 1 {
			t.Errorf("after a cold start of luod: %q", st.raw)
		}
		if s < vm.Stages() {
			runUpdate(t)
		}
		return
	}
	if st.origin != "luo" || st.verified != "ok" || st.gen != 2 || st.liveUpdates != 1 {
		t.Errorf("after luod's update: %q; want generation=2 origin=luo verified=ok live_updates=1", st.raw)
	}
	rep := waitReport(t, 5*time.Minute)
	if len(rep.Problems) > 0 {
		t.Errorf("report problems: %q", rep.Problems)
	}
	ms := spans(rep)
	for _, ru := range rep.Units {
		if ru.Name == blackoutUnit {
			ms["report_blackout"] = float64(ru.Blackout.Microseconds()) / 1000
			if len(ru.Delivered) != 2 || len(ru.Lost) > 0 {
				t.Errorf("report: delivered %v lost %v", ru.Delivered, ru.Lost)
			}
		}
	}
	emit(t, benchData{Kind: "blackout", Stage: s - 1, Round: s / 2, N: 2, MS: ms})
	// GuestMain now kexecs into the next stage itself: the floor.
}
