//go:build !vmguest

package e2e_test

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/kimage"
	"github.com/liveupdate/luo/internal/vmtest"
)

// Baselines measured on exactly the benchmark's setup (QEMU TCG, -m 2048
// -smp 2, the same kernels): the same blackout of the counter under
// systemd 262.1, and a bare /init that kexecs into the same kernel.
const (
	systemdBlackoutMin    = 15.6
	systemdBlackoutMedian = 17.7
	systemdBlackoutMax    = 20.6
	bareInitKexec         = 3.4
)

// benchCounterUnit is the service of the blackout benchmark: the example
// counter in fd-store mode (a 1 MiB keep region: two memfds), as in
// TestVMLiveUpdate's mem.service.
const benchCounterUnit = `[Unit]
Description=counter, plain memfds in the fd store
[Service]
Type=notify
ExecStart=/vmtest/bin/counter -size 1048576
FileDescriptorStoreMax=8
FileDescriptorStorePreserve=yes
`

// TestVMBenchUpdate benchmarks luod's live update in the VM, each number
// next to its baseline (make bench; skipped unless LUO_BENCH=1):
//
//   - userspace: luod's own time per update with 1, 100 and 1,000 memfds in
//     one unit's store, from the update report's timeline (guest clock),
//     LUO_BENCH_ROUNDS updates (default 7) each;
//   - blackout: a Type=notify service with memfd state, from the update
//     command to its READY in the new kernel, on the host's clock (arrival
//     of serial lines), against systemd 262.1 and the bare kexec floor,
//     measured in the same VM run by letting the harness kexec between
//     luod's updates.
//
// All stages boot the same 7.2 kernel: every round is the same update,
// and the floor is a kexec into the same kernel, as in the reference.
func TestVMBenchUpdate(t *testing.T) {
	if os.Getenv("LUO_BENCH") != "1" {
		t.Skip("benchmark: run with make bench (LUO_BENCH=1)")
	}
	k72 := vmtest.Kernel(t, "7.2")
	rounds := 7
	if v, err := strconv.Atoi(os.Getenv("LUO_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	fds := []int{1, 100, 1000}
	var report strings.Builder
	defer func() {
		if report.Len() > 0 {
			t.Logf("\n%s", report.String())
			fmt.Print(report.String())
		}
	}()
	fmt.Fprintf(&report, "\n== luod live update, QEMU TCG -m 2048 -smp 2, Linux %s -> same kernel, %d rounds each ==\n", releaseOf(t, k72), rounds)

	t.Run("userspace", func(t *testing.T) {
		kernels := slices.Repeat([]string{k72}, len(fds)*rounds+1)
		var list []string
		for _, n := range fds {
			list = append(list, strconv.Itoa(n))
		}
		cfg := luodConfig(kernels, map[string]string{benchUnit: memsvcUnit("bench", fds[0], 4096)},
			"-test.run", "^TestBenchUpdate$", "-e2e.bench=userspace",
			"-e2e.bench-rounds", strconv.Itoa(rounds), "-e2e.bench-fds", strings.Join(list, ","))
		res := vmtest.Run(t, cfg)
		report.WriteString(userspaceTable(benchLines(t, res, "update"), fds))
	})
	t.Run("blackout", func(t *testing.T) {
		kernels := slices.Repeat([]string{k72}, 2*rounds+1)
		cfg := luodConfig(kernels, map[string]string{blackoutUnit: benchCounterUnit},
			"-test.run", "^TestBenchUpdate$", "-e2e.bench=blackout")
		res := vmtest.Run(t, cfg)
		report.WriteString(blackoutTable(t, res, benchLines(t, res, "blackout")))
	})
}

const (
	benchUnit    = "bench.service"
	blackoutUnit = "counter.service"
)

// benchData is a guest's "BENCHDATA {json}" line (bench_vmguest_test.go).
type benchData struct {
	Kind  string             `json:"kind"`
	Stage int                `json:"stage"`
	Round int                `json:"round"`
	N     int                `json:"n,omitempty"`
	MS    map[string]float64 `json:"ms"`
}

func benchLines(t *testing.T, res *vmtest.Result, kind string) []benchData {
	t.Helper()
	var out []benchData
	for _, l := range res.Lines {
		rest, ok := strings.CutPrefix(l.Text, "BENCHDATA ")
		if l.Stream != "results" || !ok {
			continue
		}
		var d benchData
		if err := json.Unmarshal([]byte(rest), &d); err != nil {
			t.Errorf("bad BENCHDATA line %q: %v", l.Text, err)
			continue
		}
		if d.Kind == kind {
			out = append(out, d)
		}
	}
	return out
}

func releaseOf(t *testing.T, kernel string) string {
	ki, err := kimage.Open(kernel)
	if err != nil {
		t.Fatal(err)
	}
	return ki.Release
}

// stats are the min, median and max of xs (seconds or milliseconds).
type stats struct {
	n                int
	min, median, max float64
}

func statsOf(xs []float64) stats {
	if len(xs) == 0 {
		return stats{}
	}
	s := slices.Sorted(slices.Values(xs))
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stats{n: len(s), min: s[0], median: m, max: s[len(s)-1]}
}

func (s stats) sec() string {
	if s.n == 0 {
		return fmt.Sprintf("%-26s", "(no data)")
	}
	return fmt.Sprintf("%7.2fs %7.2fs %7.2fs   ", s.min, s.median, s.max)
}

// userspaceTable renders luod's per-update times by memfd count: medians of
// the report's spans, each against the 1-fd row.
func userspaceTable(data []benchData, fds []int) string {
	cols := []struct{ key, head string }{
		{"requested_reboot", "request->reboot"},
		{"stopbegin_reboot", "stop->reboot"},
		{"plan_load", "plan+load"},
		{"stop", "stop"},
		{"preserve", "preserve"},
		{"luodup_lastready", "luod-up->READY"},
		{"luodup_restored", "restore"},
		{"restored_ready", "start->READY"},
		{"kernelup_luodup", "kernel->luod"},
	}
	med := map[int]map[string]float64{}
	count := map[int]int{}
	for _, n := range fds {
		med[n] = map[string]float64{}
		for _, c := range cols {
			var xs []float64
			for _, d := range data {
				if v, ok := d.MS[c.key]; d.N == n && ok && v >= 0 {
					xs = append(xs, v)
				}
			}
			med[n][c.key] = statsOf(xs).median
			count[n] = max(count[n], len(xs))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nluod userspace time per update: one unit (memsvc) with N memfds in its store, medians in ms\n")
	fmt.Fprintf(&b, "(guest clock, from GetUpdateReport in the next kernel; baseline: the same update with 1 memfd, +delta)\n")
	fmt.Fprintf(&b, "%6s %6s", "memfds", "rounds")
	for _, c := range cols {
		fmt.Fprintf(&b, " %15s", c.head)
	}
	b.WriteString("\n")
	for _, n := range fds {
		fmt.Fprintf(&b, "%6d %6d", n, count[n])
		for _, c := range cols {
			v := med[n][c.key]
			if n == fds[0] || count[n] == 0 {
				fmt.Fprintf(&b, " %15.0f", v)
			} else {
				fmt.Fprintf(&b, " %15s", fmt.Sprintf("%.0f (%+.0f)", v, v-med[fds[0]][c.key]))
			}
		}
		b.WriteString("\n")
	}
	if last := fds[len(fds)-1]; count[last] > 0 && count[fds[0]] > 0 && last > fds[0] {
		per := func(k string) float64 { return (med[last][k] - med[fds[0]][k]) / float64(last-fds[0]) * 1000 }
		fmt.Fprintf(&b, "per extra memfd (%d vs %d): request->reboot %+.0f us, preserve %+.0f us, plan+load %+.0f us, luod-up->READY %+.0f us\n",
			last, fds[0], per("requested_reboot"), per("preserve"), per("plan_load"), per("luodup_lastready"))
	}
	b.WriteString("columns: request->reboot = requested..reboot (luoctl's request to luod's reboot(2)); stop->reboot = stop-begin..reboot;\n")
	b.WriteString("  plan+load = requested..loaded (plan with trial preserve, kexec_file_load); stop = stop-begin..last-stopped;\n")
	b.WriteString("  preserve = last-stopped..preserved; luod-up->READY = luod-up..last ready; restore = luod-up..restored;\n")
	b.WriteString("  start->READY = restored..last ready; kernel->luod = kernel-up..luod-up (new kernel boot + /init, for scale)\n")
	return b.String()
}

var (
	floorRE  = regexp.MustCompile(`^vmtest: stage (\d+)/\d+ kexec into stage (\d+)`)
	startRE  = regexp.MustCompile(`^BENCH update-start stage=(\d+)`)
	vminitRE = regexp.MustCompile(`vminit: stage (\d+) release`)
)

// blackoutRound is one luod update of the counter, on the host's clock.
type blackoutRound struct {
	stage                                int
	start, stopping, reboot, boot, ready time.Time
}

// blackoutTable measures, from the host's arrival times of the serial
// lines, each luod update of the counter and each bare kexec of the
// harness, and renders them next to their baselines.
func blackoutTable(t *testing.T, res *vmtest.Result, data []benchData) string {
	t.Helper()
	var rounds []*blackoutRound
	var cur *blackoutRound
	floorFrom, floorStage := time.Time{}, 0
	var floors []float64
	for _, l := range res.Lines {
		text := strings.TrimSpace(l.Text)
		switch l.Stream {
		case "results":
			if m := startRE.FindStringSubmatch(text); m != nil {
				n, _ := strconv.Atoi(m[1])
				cur = &blackoutRound{stage: n, start: l.Time}
			} else if m := floorRE.FindStringSubmatch(text); m != nil {
				floorStage, _ = strconv.Atoi(m[2])
				floorFrom = l.Time
			}
		case "console":
			if m := vminitRE.FindStringSubmatch(text); m != nil {
				n, _ := strconv.Atoi(m[1])
				if !floorFrom.IsZero() && n == floorStage {
					floors = append(floors, l.Time.Sub(floorFrom).Seconds())
					floorFrom = time.Time{}
				}
				if cur != nil && n == cur.stage+1 && cur.boot.IsZero() {
					cur.boot = l.Time
				}
				continue
			}
			if cur == nil {
				continue
			}
			switch {
			case cur.stopping.IsZero() && strings.Contains(text, "msg=stopping") && strings.Contains(text, "unit="+blackoutUnit):
				cur.stopping = l.Time
			case cur.reboot.IsZero() && strings.Contains(text, `msg="update: rebooting into`):
				cur.reboot = l.Time
			case !cur.boot.IsZero() && strings.HasPrefix(text, "counter: generation=") && strings.Contains(text, "origin=luo"):
				cur.ready = l.Time
				rounds = append(rounds, cur)
				cur = nil
			}
		}
	}
	var total, old, kexec, newSide, down []float64
	for _, r := range rounds {
		if r.stopping.IsZero() || r.reboot.IsZero() {
			t.Logf("stage %d: luod's stopping or rebooting line not seen on the console; round left out", r.stage)
			continue
		}
		total = append(total, r.ready.Sub(r.start).Seconds())
		old = append(old, r.reboot.Sub(r.start).Seconds())
		kexec = append(kexec, r.boot.Sub(r.reboot).Seconds())
		newSide = append(newSide, r.ready.Sub(r.boot).Seconds())
		down = append(down, r.ready.Sub(r.stopping).Seconds())
	}
	var reportBlackout []float64
	for _, d := range data {
		if v, ok := d.MS["report_blackout"]; ok {
			reportBlackout = append(reportBlackout, v/1000)
		}
	}
	if len(rounds) == 0 || len(floors) == 0 {
		t.Errorf("measured %d luod updates and %d bare kexecs; need at least one of each", len(rounds), len(floors))
	}
	tot, fl := statsOf(total), statsOf(floors)
	var b strings.Builder
	fmt.Fprintf(&b, "\nblackout of %s (examples/counter, Type=notify, 1 MiB keep region = 2 memfds in the fd store)\n", blackoutUnit)
	fmt.Fprintf(&b, "host clock: arrival of the serial lines; %d luod updates, %d bare kexecs in the same VM run\n", tot.n, fl.n)
	fmt.Fprintf(&b, "%-52s %8s %8s %8s    %s\n", "", "min", "median", "max", "baseline")
	row := func(name string, s stats, base string) {
		fmt.Fprintf(&b, "%-52s %s %s\n", name, s.sec(), base)
	}
	row("luod blackout: update command -> READY (new kernel)", tot,
		fmt.Sprintf("systemd 262.1: %.1f-%.1fs, median %.1fs", systemdBlackoutMin, systemdBlackoutMax, systemdBlackoutMedian))
	row("  old kernel: command -> luod's reboot()", statsOf(old), "")
	row("  kexec + kernel boot -> new /init", statsOf(kexec), fmt.Sprintf("bare kexec floor below: median %.2fs", fl.median))
	row("  new kernel: /init -> counter READY", statsOf(newSide), "")
	row("service down: luod's SIGTERM -> READY", statsOf(down), "")
	row("luod's own report: Blackout (stopped..ready)", statsOf(reportBlackout), "two kernels' clocks: +-1s (RTC)")
	row("bare kexec floor: harness reboot() -> new /init", fl, fmt.Sprintf("bare /init reference: ~%.1fs", bareInitKexec))
	if tot.n > 0 && fl.n > 0 {
		fmt.Fprintf(&b, "ratios of medians: luod blackout / bare kexec floor (this run) = %.2fx; luod / systemd 262.1 (%.1fs) = %.2fx (%.1fx faster)\n",
			tot.median/fl.median, systemdBlackoutMedian, tot.median/systemdBlackoutMedian, systemdBlackoutMedian/tot.median)
		fmt.Fprintf(&b, "ratio of minimums (less kexec noise): luod / floor = %.2fx; luod's own time (old + new kernel side, medians) = %.2fs\n",
			tot.min/fl.min, statsOf(old).median+statsOf(newSide).median)
	}
	b.WriteString("note: the kexec jump itself (old kernel's \"Starting new kernel\" to the new kernel's first line) takes either ~0.9s or ~2s\n")
	b.WriteString("  under TCG, in luod's updates and the harness's kexecs alike; medians of few rounds move with that split.\n")
	if len(data) > 0 {
		var rr, lr []float64
		for _, d := range data {
			rr = append(rr, d.MS["requested_reboot"])
			lr = append(lr, d.MS["luodup_lastready"])
		}
		fmt.Fprintf(&b, "guest clock (report), medians: requested->reboot %.0f ms, luod-up->READY %.0f ms\n", statsOf(rr).median, statsOf(lr).median)
	}
	return b.String()
}
