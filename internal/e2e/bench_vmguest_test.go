//go:build vmguest

package e2e_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
)

var (
	benchMode   = flag.String("e2e.bench", "", "TestBenchUpdate: userspace or blackout")
	benchRounds = flag.Int("e2e.bench-rounds", 5, "TestBenchUpdate: live updates per measurement (the host sets it)")
	benchFDs    = flag.String("e2e.bench-fds", "1,100,1000", "TestBenchUpdate userspace: memfd counts, comma-separated")
	benchStaged = flag.Bool("e2e.bench-staged", false, "TestBenchUpdate: also measure staged updates (luoctl update stage; update run --staged)")
	benchSizes  = flag.String("e2e.bench-sizes", "", "TestBenchUpdate size: SIZE:MEMFDS pairs in bytes, comma-separated")
	benchUnits  = flag.Int("e2e.bench-units", 100, "TestBenchUpdate units: number of bigsvc units")
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
	N     int                `json:"n,omitempty"`    // memfds carried
	Size  int64              `json:"size,omitempty"` // bytes carried (size)
	Mode  string             `json:"mode,omitempty"` // unstaged or staged
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
	case "size":
		benchSize(t)
	case "units":
		benchManyUnits(t)
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

// benchBlackout cycles through benchCycle stages per round: stage 1 of a
// cycle (luod started cold, the counter fresh) updates with luod unstaged;
// the next checks the counter and reports, then, with -e2e.bench-staged,
// stages the next kernel and updates with luod staged, and the stage after
// that checks and reports. The last stage of a cycle lets the harness kexec
// on its own: the floor the host measures, and a cold start again. The very
// last stage only checks.
func benchBlackout(t *testing.T) {
	s, cycle := vm.Stage(), benchCycle()
	phase := (s - 1) % cycle // 0: cold; i > 0: after i luod updates
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
	if phase == 0 {
		if st.origin != "fresh" || st.gen != 1 {
			t.Errorf("after a cold start of luod: %q", st.raw)
		}
		if s < vm.Stages() {
			benchUpdate(t, false)
		}
		return
	}
	if st.origin != "luo" || st.verified != "ok" || st.gen != phase+1 || st.liveUpdates != phase {
		t.Fatalf("after luod's update: %q; want generation=%d origin=luo verified=ok live_updates=%d", st.raw, phase+1, phase)
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
	emit(t, benchData{Kind: "blackout", Stage: s - 1, Round: (s-1)/cycle + 1, Mode: benchModeOf(phase - 1), MS: ms})
	if phase < cycle-1 {
		benchUpdate(t, true)
	}
	// Else GuestMain now kexecs into the next stage itself: the floor.
}

// benchCycle is the number of stages per round of the blackout: a cold
// start, an unstaged update, with -e2e.bench-staged a staged one.
func benchCycle() int {
	if *benchStaged {
		return 3
	}
	return 2
}

// benchModeOf is the mode of the i-th update of a round (from 0): the
// first is unstaged, the second staged.
func benchModeOf(i int) string {
	if i == 0 {
		return "unstaged"
	}
	return "staged"
}

// benchUpdate starts a live update into the next stage, like runUpdate. A
// staged one first stages the next kernel (luoctl update stage, the same
// arguments as update run) and waits for that to succeed; only then does
// it mark the start and run the staged update. It does not return.
func benchUpdate(t *testing.T, staged bool) {
	t.Helper()
	args := updateArgs(t)
	mode := "unstaged"
	if staged {
		stage := slices.Clone(args)
		stage[1] = "stage"
		if out, code := luoctl(t, stage...); code != 0 {
			t.Fatalf("update stage: exit %d\n%s", code, out)
		}
		if out, code := luoctl(t, "update", "status"); code != 0 {
			t.Fatalf("update status: exit %d\n%s", code, out)
		}
		args, mode = []string{"update", "run", "--staged"}, "staged"
	}
	vmtest.ExpectKexec(t)
	benchOut("BENCH update-start stage=%d mode=%s", vm.Stage(), mode)
	out, code := luoctl(t, args...)
	t.Fatalf("update run returned (exit %d), no kexec:\n%s", code, out)
}
