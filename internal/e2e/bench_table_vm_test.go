//go:build !vmguest

package e2e_test

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
)

var (
	floorRE  = regexp.MustCompile(`^vmtest: stage (\d+)/\d+ kexec into stage (\d+)`)
	startRE  = regexp.MustCompile(`^BENCH update-start stage=(\d+)(?: mode=(\w+))?`)
	vminitRE = regexp.MustCompile(`vminit: stage (\d+) release`)
)

// updateRound is one luod update, on the host's clock: the update command
// (the guest's BENCH update-start line), luod's stopping of the unit and
// its reboot(2) (its log lines on the console), the next kernel's /init
// (vminit's line) and the unit's READY (the line the service prints just
// before it).
type updateRound struct {
	stage                                int
	mode                                 string
	start, stopping, reboot, boot, ready time.Time
}

func (r *updateRound) complete() bool {
	return !r.start.IsZero() && !r.stopping.IsZero() && !r.reboot.IsZero() && !r.boot.IsZero() && !r.ready.IsZero()
}

// updateRounds finds luod's updates of unit in a run; ready tells the
// service's line just before READY in the new kernel. Every update
// started must be complete, or the test fails.
func updateRounds(t *testing.T, res *vmtest.Result, unit string, ready func(string) bool) []*updateRound {
	t.Helper()
	var rounds []*updateRound
	var cur *updateRound
	for _, l := range res.Lines {
		text := strings.TrimSpace(l.Text)
		switch l.Stream {
		case vm.Results:
			if m := startRE.FindStringSubmatch(text); m != nil {
				n, _ := strconv.Atoi(m[1])
				cur = &updateRound{stage: n, mode: m[2], start: l.Time}
				if cur.mode == "" {
					cur.mode = "unstaged"
				}
				rounds = append(rounds, cur)
			}
		case vm.Console:
			if cur == nil {
				continue
			}
			if m := vminitRE.FindStringSubmatch(text); m != nil {
				if n, _ := strconv.Atoi(m[1]); n == cur.stage+1 && cur.boot.IsZero() {
					cur.boot = l.Time
				}
				continue
			}
			switch {
			case cur.boot.IsZero() && cur.stopping.IsZero() && strings.Contains(text, "msg=stopping") && strings.Contains(text, "unit="+unit):
				cur.stopping = l.Time
			case cur.boot.IsZero() && cur.reboot.IsZero() && strings.Contains(text, `msg="update: rebooting into`):
				cur.reboot = l.Time
			case !cur.boot.IsZero() && ready(text):
				cur.ready = l.Time
				cur = nil
			}
		}
	}
	for _, r := range rounds {
		if !r.complete() {
			t.Errorf("update from stage %d (%s): not all of command, stopping, reboot, /init, READY seen: %+v", r.stage, r.mode, *r)
		}
	}
	return rounds
}

// floorKexecs are the harness's own kexecs in a run, on the host's
// clock: reboot() to the next /init, the floor of any kexec-based update;
// and the same kexecs to the READY of the service that luod starts afresh
// after them, ready telling its line (nothing is restored: the floor plus
// a cold start of luod and the service).
func floorKexecs(res *vmtest.Result, ready func(string) bool) (floors, cold []float64) {
	from, stage, booted := time.Time{}, 0, false
	for _, l := range res.Lines {
		text := strings.TrimSpace(l.Text)
		if m := floorRE.FindStringSubmatch(text); l.Stream == vm.Results && m != nil {
			stage, _ = strconv.Atoi(m[2])
			from, booted = l.Time, false
		} else if m := vminitRE.FindStringSubmatch(text); l.Stream == vm.Console && m != nil && !from.IsZero() {
			if n, _ := strconv.Atoi(m[1]); n == stage {
				floors = append(floors, l.Time.Sub(from).Seconds())
				booted = true
			}
		} else if l.Stream == vm.Console && booted && ready(text) {
			cold = append(cold, l.Time.Sub(from).Seconds())
			from, booted = time.Time{}, false
		}
	}
	return floors, cold
}

// spansOf are the spans of the complete rounds of one mode, in seconds.
type roundSpans struct {
	total, old, kexec, newSide, down []float64
}

func spansOf(rounds []*updateRound, mode string) roundSpans {
	var s roundSpans
	for _, r := range rounds {
		if r.mode != mode || !r.complete() {
			continue
		}
		s.total = append(s.total, r.ready.Sub(r.start).Seconds())
		s.old = append(s.old, r.reboot.Sub(r.start).Seconds())
		s.kexec = append(s.kexec, r.boot.Sub(r.reboot).Seconds())
		s.newSide = append(s.newSide, r.ready.Sub(r.boot).Seconds())
		s.down = append(s.down, r.ready.Sub(r.stopping).Seconds())
	}
	return s
}

// benchTable collects every part's numbers for the one table at the end.
type benchTable struct {
	release string
	rounds  int
	staged  bool
	details []string

	mainMem, mainCPUs int
	floor             []float64
	coldStart         []float64             // the floor's kexecs to the counter's READY, started afresh
	luod              map[string]roundSpans // by mode
	luodReport        map[string][]float64  // luod's own Blackout, by mode

	systemd     map[bool][2][]float64 // by early: command->READY, down
	earlyRounds int

	sizeMem, sizeRounds int
	sizeMode            string
	sizeDown            [][]float64 // by benchSizes
	sizeFull            [][]float64 // the service's full check after READY, ms

	unitsMode   string
	unitsRounds int
	unitsMem    int
	unitsData   []benchData
	unitsInit   []float64 // host clock: command -> new /init
}

func modeOf(staged bool) string {
	if staged {
		return "staged"
	}
	return "unstaged"
}

func memOf(cfg vm.Config) int {
	if cfg.Memory == 0 {
		return 2048
	}
	return cfg.Memory
}

func cpusOf(cfg vm.Config) int {
	if cfg.CPUs == 0 {
		return 2
	}
	return cfg.CPUs
}

func (tab *benchTable) blackout(t *testing.T, res *vmtest.Result, cfg vm.Config) {
	tab.mainMem, tab.mainCPUs = memOf(cfg), cpusOf(cfg)
	rounds := updateRounds(t, res, blackoutUnit, func(s string) bool {
		return strings.HasPrefix(s, "counter: generation=") && strings.Contains(s, "origin=luo")
	})
	tab.floor, tab.coldStart = floorKexecs(res, func(s string) bool {
		return strings.HasPrefix(s, "counter: generation=1 ") && strings.Contains(s, "origin=fresh")
	})
	tab.luod = map[string]roundSpans{}
	tab.luodReport = map[string][]float64{}
	for _, m := range []string{"unstaged", "staged"} {
		tab.luod[m] = spansOf(rounds, m)
	}
	for _, d := range benchLines(t, res, "blackout") {
		if v, ok := d.MS["report_blackout"]; ok {
			tab.luodReport[d.Mode] = append(tab.luodReport[d.Mode], v/1000)
		}
	}
	want := tab.rounds
	if n := len(tab.luod["unstaged"].total); n != want || (tab.staged && len(tab.luod["staged"].total) != want) || len(tab.floor) != want || len(tab.coldStart) != want {
		t.Errorf("measured %d unstaged, %d staged luod updates, %d bare kexecs and %d cold starts after them; want %d each",
			n, len(tab.luod["staged"].total), len(tab.floor), len(tab.coldStart), want)
	}
}

func (tab *benchTable) size(t *testing.T, res *vmtest.Result, cfg vm.Config, rounds int) {
	tab.sizeMem, tab.sizeRounds, tab.sizeMode = memOf(cfg), rounds, modeOf(tab.staged)
	ups := updateRounds(t, res, sizeUnit, func(s string) bool {
		return strings.HasPrefix(s, "bigsvc id=big origin=restored") && strings.Contains(s, "full=pending")
	})
	tab.sizeDown = make([][]float64, len(benchSizes))
	tab.sizeFull = make([][]float64, len(benchSizes))
	for _, r := range ups {
		if i := (r.stage - 1) / rounds; r.complete() && i < len(benchSizes) {
			tab.sizeDown[i] = append(tab.sizeDown[i], r.ready.Sub(r.stopping).Seconds())
		}
	}
	for _, d := range benchLines(t, res, "size") {
		if i := (d.Stage - 1) / rounds; i < len(benchSizes) {
			tab.sizeFull[i] = append(tab.sizeFull[i], d.MS["full_check"])
		}
	}
	for i, xs := range tab.sizeDown {
		if len(xs) != rounds {
			t.Errorf("size %d/%d: measured %d updates, want %d", benchSizes[i].size, benchSizes[i].fds, len(xs), rounds)
		}
	}
}

func (tab *benchTable) units(t *testing.T, res *vmtest.Result, cfg vm.Config, rounds int) {
	tab.unitsMode, tab.unitsRounds, tab.unitsMem = modeOf(tab.staged), rounds, memOf(cfg)
	tab.unitsData = benchLines(t, res, "units")
	var start time.Time
	stage := 0
	for _, l := range res.Lines {
		text := strings.TrimSpace(l.Text)
		if m := startRE.FindStringSubmatch(text); l.Stream == vm.Results && m != nil {
			stage, _ = strconv.Atoi(m[1])
			start = l.Time
		} else if m := vminitRE.FindStringSubmatch(text); l.Stream == vm.Console && m != nil && !start.IsZero() {
			if n, _ := strconv.Atoi(m[1]); n == stage+1 {
				tab.unitsInit = append(tab.unitsInit, l.Time.Sub(start).Seconds())
				start = time.Time{}
			}
		}
	}
	if len(tab.unitsData) != rounds {
		t.Errorf("100 units: %d updates reported, want %d", len(tab.unitsData), rounds)
	}
}

func (tab *benchTable) String() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("\n== luod live update benchmark: QEMU TCG (-accel tcg,thread=single, no KVM), -smp %d, -m per row, Linux %s -> the same kernel;\n   %d rounds for the main rows, %d for systemd's DefaultDependencies=no, %d for the size curve, %d for the 100 counters ==\n",
		max(tab.mainCPUs, 2), tab.release, tab.rounds, tab.earlyRounds, tab.sizeRounds, tab.unitsRounds)
	w("seconds, host clock (arrival of serial lines) unless marked; ratio: median/median and min/min against the row named in the section\n\n")
	head := func(title string) {
		w("%-68s %6s %6s %8s %8s %8s   %s\n", title, "-m", "rounds", "min", "median", "max", "ratio med / min")
	}
	row := func(name string, mem int, xs []float64, base []float64) {
		s := statsOf(xs)
		if s.n == 0 {
			w("%-68s %6d %6d %26s\n", name, mem, 0, "(not measured)")
			return
		}
		ratio := ""
		if bs := statsOf(base); bs.n > 0 && bs.median > 0 && bs.min > 0 {
			ratio = fmt.Sprintf("%5.2fx / %5.2fx", s.median/bs.median, s.min/bs.min)
		}
		w("%-68s %6d %6d %8.2f %8.2f %8.2f   %s\n", name, mem, s.n, s.min, s.median, s.max, ratio)
	}
	ms := func(data []benchData, key string) []float64 {
		var xs []float64
		for _, d := range data {
			if v, ok := d.MS[key]; ok && v >= 0 {
				xs = append(xs, v/1000)
			}
		}
		return xs
	}

	head("counter (examples/counter, 1 MiB state: 2 memfds)     vs floor")
	row("floor: bare kexec, harness reboot() -> new /init", tab.mainMem, tab.floor, tab.floor)
	row("  and a cold start: -> counter READY, luod and counter afresh", tab.mainMem, tab.coldStart, tab.floor)
	for _, m := range []string{"unstaged", "staged"} {
		sp := tab.luod[m]
		if m == "staged" && !tab.staged {
			w("%-68s %s\n", "luod staged", "(switched off: LUO_BENCH_STAGED=0 or the staged update is not there yet)")
			continue
		}
		title := "luod unstaged: update command -> counter READY"
		if m == "staged" {
			title = "luod staged (kernel staged before): command -> READY"
		}
		row(title, tab.mainMem, sp.total, tab.floor)
		row("  old kernel: command -> luod's reboot()", tab.mainMem, sp.old, nil)
		row("  kexec + boot: reboot() -> new /init", tab.mainMem, sp.kexec, tab.floor)
		row("  new kernel: /init -> counter READY", tab.mainMem, sp.newSide, nil)
		row("  service down: luod's SIGTERM -> READY", tab.mainMem, sp.down, tab.floor)
		if d, c := statsOf(sp.down), statsOf(tab.coldStart); d.n > 0 && c.n > 0 {
			w("%-68s %+.2f s median, %+.2f s min\n", "    minus the floor and a cold start (what restoring costs)", d.median-c.median, d.min-c.min)
		}
		row("  luod's report: Blackout (stopped..ready, 2 clocks)", tab.mainMem, tab.luodReport[m], nil)
	}
	for _, early := range []bool{false, true} {
		title := "systemd 262.1, normal unit: kexec -s -l + systemctl kexec -> READY"
		if early {
			title = "systemd 262.1, DefaultDependencies=no: same"
		}
		v, ok := tab.systemd[early]
		if !ok {
			w("%-68s %s\n", title, "(not run)")
			continue
		}
		row(title, tab.mainMem, v[0], tab.floor)
		row("  service down: PID 1's Stopping -> READY", tab.mainMem, v[1], tab.floor)
	}

	w("\n")
	head(fmt.Sprintf("size curve: service down, luod %s, %d rounds  vs 16 MiB", tab.sizeMode, tab.sizeRounds))
	var sizeBase []float64
	if len(tab.sizeDown) > 0 {
		sizeBase = tab.sizeDown[0]
	}
	for i, sz := range benchSizes {
		var xs, full []float64
		if i < len(tab.sizeDown) {
			xs, full = tab.sizeDown[i], tab.sizeFull[i]
		}
		name := fmt.Sprintf("  %s in %d memfd", sizeName(sz.size), sz.fds)
		if sz.fds > 1 {
			name = fmt.Sprintf("  %s in %d memfds (%s each)", sizeName(sz.size), sz.fds, sizeName(sz.size/int64(sz.fds)))
		}
		if f := statsOf(full); f.n > 0 {
			name += fmt.Sprintf(" [full check %.1fs]", f.median/1000)
		}
		row(name, tab.sizeMem, xs, sizeBase)
	}
	w("  (SIGTERM -> READY: the service checks a header, every memfd's size and %d pages before READY, every page after;\n", 64)
	w("   the issue's goal, not asserted: 1 GiB <= 1.10x of 16 MiB)\n")

	w("\n")
	head(fmt.Sprintf("%d counters (%s regions), luod %s", benchUnits, sizeName(benchUnitsSize), tab.unitsMode))
	row("  guest clock: luod-up -> last of 100 READY", tab.unitsMem, ms(tab.unitsData, "luodup_lastready"), nil)
	row("    luod-up -> report's restored event (last store back)", tab.unitsMem, ms(tab.unitsData, "luodup_restored"), nil)
	row("    restored event -> last READY (units may start before it)", tab.unitsMem, ms(tab.unitsData, "restored_ready"), nil)
	row("  guest clock: kernel-up -> luod-up (boot + /init)", tab.unitsMem, ms(tab.unitsData, "kernelup_luodup"), nil)
	row("  guest clock: old kernel, requested -> reboot()", tab.unitsMem, ms(tab.unitsData, "requested_reboot"), nil)
	row("    stop of the 100 (stop-begin -> last stopped)", tab.unitsMem, ms(tab.unitsData, "stop"), nil)
	row("  host clock: command -> new /init", tab.unitsMem, tab.unitsInit, nil)
	if tab.unitsRounds > 0 {
		w("  (%d rounds; luod at -log-level warn: no per-unit lines of luod on the console, one of each counter;\n", tab.unitsRounds)
		w("   the issue's goals, not asserted: last of 100 READY <= 1 s after /init, staged old side <= 0.3 s)\n")
	}
	return b.String()
}

func sizeName(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// print shows the table (and any detail tables) once, in the test log and
// on stdout, and writes it to $LUO_BENCH_OUT if set.
func (tab *benchTable) print(t *testing.T) {
	out := strings.Join(tab.details, "") + tab.String()
	t.Logf("\n%s", out)
	fmt.Print(out)
	if p := os.Getenv("LUO_BENCH_OUT"); p != "" {
		if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
			t.Errorf("LUO_BENCH_OUT: %v", err)
		}
	}
}
