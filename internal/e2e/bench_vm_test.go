//go:build !vmguest

package e2e_test

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/kimage"
	"github.com/liveupdate/luo/internal/vmtest"
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

// TestVMBenchUpdate benchmarks luod's live update in the VM and ends with
// one table, every baseline measured in the same run (make bench; skipped
// unless LUO_BENCH=1). Each part is a subtest with its own VM run:
//
//   - blackout: the example counter (Type=notify, memfd state) from the
//     update command to its READY in the new kernel, on the host's clock
//     (arrival of serial lines), per round an unstaged update, a staged
//     one (kernel staged outside the timed span) and a bare kexec of the
//     harness: the floor;
//   - systemd: the same counter under systemd 262.1 with systemctl kexec,
//     as a normal unit and with DefaultDependencies=no (benchSystemd);
//   - size: the service-down time of a service carrying 16 MiB, 256 MiB
//     and 1 GiB in one memfd, and 1 GiB in 1,024 (bigsvc);
//   - units: 100 counters (64 KiB regions) updated together (guest clock,
//     from the update report);
//   - userspace (only with LUO_BENCH_USERSPACE=1): luod's own time per
//     update with 1, 100 and 1,000 memfds in one unit's store.
//
// LUO_BENCH_ROUNDS (default 7) sets the rounds of the main rows (floor,
// luod unstaged and staged, systemd's normal unit); LUO_BENCH_SIZE_ROUNDS,
// LUO_BENCH_UNITS_ROUNDS (default 2) and LUO_BENCH_SYSTEMD_EARLY_ROUNDS
// (default 3) those of the size curve, the 100 counters and systemd's
// DefaultDependencies=no variant: on a 2-core TCG host a systemd round
// takes about 50 s, a size round about 30 s and a round of 100 counters
// about 50 s, and make bench should stay near 20 minutes.
// LUO_BENCH_STAGED=0/1 switches the staged updates off or on (default
// benchStagedDefault), LUO_BENCH_ONLY=part,... runs only those parts. The
// table goes to the test log, to stdout and, if LUO_BENCH_OUT is set, to
// that file. A benchmark reports: no number is asserted, but every round
// must verify the service's state.
//
// All stages boot the same 7.2 kernel: every round is the same update,
// and the floor is a kexec into the same kernel.
func TestVMBenchUpdate(t *testing.T) {
	if os.Getenv("LUO_BENCH") != "1" {
		t.Skip("benchmark: run with make bench (LUO_BENCH=1)")
	}
	k72 := vmtest.Kernel(t, "7.2")
	rounds := envInt(t, "LUO_BENCH_ROUNDS", 7)
	sizeRounds := envInt(t, "LUO_BENCH_SIZE_ROUNDS", 2)
	unitsRounds := envInt(t, "LUO_BENCH_UNITS_ROUNDS", 2)
	earlyRounds := envInt(t, "LUO_BENCH_SYSTEMD_EARLY_ROUNDS", 3)
	staged := benchStagedDefault
	if v := os.Getenv("LUO_BENCH_STAGED"); v != "" {
		staged = v == "1"
	}
	only := map[string]bool{}
	for _, p := range strings.Split(os.Getenv("LUO_BENCH_ONLY"), ",") {
		if p != "" {
			only[p] = true
		}
	}
	part := func(name string) bool { return len(only) == 0 || only[name] }
	stagedArg := "-e2e.bench-staged=" + strconv.FormatBool(staged)
	tab := &benchTable{release: releaseOf(t, k72), rounds: rounds, staged: staged, systemd: map[bool][2][]float64{},
		sizeRounds: sizeRounds, unitsRounds: unitsRounds, earlyRounds: earlyRounds, sizeMode: modeOf(staged), unitsMode: modeOf(staged)}
	defer tab.print(t)

	if os.Getenv("LUO_BENCH_USERSPACE") == "1" {
		t.Run("userspace", func(t *testing.T) {
			fds := []int{1, 100, 1000}
			kernels := slices.Repeat([]string{k72}, len(fds)*rounds+1)
			var list []string
			for _, n := range fds {
				list = append(list, strconv.Itoa(n))
			}
			cfg := luodConfig(kernels, map[string]string{benchUnit: memsvcUnit("bench", fds[0], 4096)},
				"-test.run", "^TestBenchUpdate$", "-e2e.bench=userspace",
				"-e2e.bench-rounds", strconv.Itoa(rounds), "-e2e.bench-fds", strings.Join(list, ","))
			res := vmtest.Run(t, cfg)
			tab.details = append(tab.details, userspaceTable(benchLines(t, res, "update"), fds))
		})
	}
	if part("blackout") {
		t.Run("blackout", func(t *testing.T) {
			cycle := 2
			if staged {
				cycle = 3
			}
			kernels := slices.Repeat([]string{k72}, cycle*rounds+1)
			cfg := luodConfig(kernels, map[string]string{blackoutUnit: benchCounterUnit},
				"-test.run", "^TestBenchUpdate$", "-e2e.bench=blackout", stagedArg)
			cfg.DriverDelay = benchDriverDelay
			res := vmtest.Run(t, cfg)
			tab.blackout(t, res, cfg)
		})
	}
	if part("systemd") {
		t.Run("systemd", func(t *testing.T) {
			for _, v := range []struct {
				name   string
				early  bool
				rounds int
			}{{"normal", false, rounds}, {"early", true, earlyRounds}} {
				t.Run(v.name, func(t *testing.T) {
					cmd, down := benchSystemd(t, v.rounds, v.early)
					tab.systemd[v.early] = [2][]float64{cmd, down}
				})
			}
		})
	}
	if part("size") {
		t.Run("size", func(t *testing.T) {
			var list []string
			for _, sz := range benchSizes {
				list = append(list, fmt.Sprintf("%d:%d", sz.size, sz.fds))
			}
			kernels := slices.Repeat([]string{k72}, len(benchSizes)*sizeRounds+1)
			first := benchSizes[0]
			cfg := luodConfig(kernels, map[string]string{sizeUnit: bigsvcUnit("big", first.size, first.fds)},
				"-test.run", "^TestBenchUpdate$", "-e2e.bench=size", stagedArg,
				"-e2e.bench-rounds", strconv.Itoa(sizeRounds), "-e2e.bench-sizes", strings.Join(list, ","))
			cfg.Memory = benchSizeMemory
			cfg.DriverDelay = 3 * benchDriverDelay
			cfg.Timeout = time.Duration(len(kernels)) * 3 * time.Minute
			res := vmtest.Run(t, cfg)
			tab.size(t, res, cfg, sizeRounds)
		})
	}
	if part("units") {
		t.Run("units", func(t *testing.T) {
			units := map[string]string{}
			for i := range benchUnits {
				id := fmt.Sprintf("u%03d", i)
				units[id+".service"] = strings.Replace(benchCounterUnit, "-size 1048576", fmt.Sprintf("-size %d", benchUnitsSize), 1)
			}
			kernels := slices.Repeat([]string{k72}, unitsRounds+1)
			cfg := luodConfig(kernels, units, "-test.run", "^TestBenchUpdate$", "-e2e.bench=units", stagedArg,
				"-e2e.bench-rounds", strconv.Itoa(unitsRounds), "-e2e.bench-units", strconv.Itoa(benchUnits))
			// luod logs a few lines per unit and update at info: on the
			// serial console of 100 units that would be measured too.
			cfg.Init = slices.Clone(cfg.Init)
			cfg.Init[len(cfg.Init)-1] = "warn"
			cfg.DriverDelay = 8 * benchDriverDelay
			res := vmtest.Run(t, cfg)
			tab.units(t, res, cfg, unitsRounds)
		})
	}
}

// benchDriverDelay is how long after the new kernel's /init the test
// binary starts in the rounds of one counter (vm.Config.DriverDelay): the
// counter is READY well before (about 1 s), and the start of the test
// binary would otherwise be measured as luod's (about 0.45 s of the 1.3 s
// from /init to READY, measured here). The size curve and the 100 counters
// wait longer. The floor's rounds stop at /init and wait for nothing.
const benchDriverDelay = 2 * time.Second

// benchStagedDefault says whether the benchmark measures staged updates
// (luoctl update stage, then update run --staged) unless LUO_BENCH_STAGED
// says otherwise.
const benchStagedDefault = true

// The size curve: the state of one service, as SIZE bytes in N memfds.
var benchSizes = []struct {
	size int64
	fds  int
}{
	{16 << 20, 1},
	{256 << 20, 1},
	{1 << 30, 1},
	{1 << 30, 1024},
}

// benchSizeMemory is the guest memory of the size curve (MiB): 1 GiB of
// state is filled once and then carried across each kexec.
const benchSizeMemory = 4096

const (
	sizeUnit       = "big.service"
	benchUnits     = 100
	benchUnitsSize = 64 << 10 // the keep region of each of the 100 counters
)

// bigsvcUnit is the unit file of a bigsvc service (bench_bigsvc_vmguest_test.go):
// size bytes of state in n memfds.
func bigsvcUnit(id string, size int64, n int) string {
	return fmt.Sprintf(`[Unit]
Description=bigsvc %[1]s: %[2]d bytes in %[3]d memfds in the fd store
[Service]
Type=notify
ExecStart=/vmtest/test.bin
Environment=LUO_E2E_BIGSVC=%[1]s
Environment=LUO_E2E_BIGSVC_SIZE=%[2]d
Environment=LUO_E2E_BIGSVC_N=%[3]d
FileDescriptorStoreMax=4096
FileDescriptorStorePreserve=yes
TimeoutStartSec=10min
TimeoutStopSec=2min
`, id, size, n)
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
	Size  int64              `json:"size,omitempty"`
	Mode  string             `json:"mode,omitempty"`
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
