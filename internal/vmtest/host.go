package vmtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/vm"
)

// A Result is what the host saw of a run.
type Result struct {
	// Start is when QEMU started; End is when its output ended.
	Start, End time.Time
	// Lines holds every line of every stream, in arrival order.
	Lines []vm.Line
	// Stages holds the stages that started, in order.
	Stages []StageResult
	// Tests holds every guest test and subtest of every stage, in the order
	// they started.
	Tests []TestResult
}

// A StageResult describes one boot of a run.
type StageResult struct {
	// N is the stage number, from 1.
	N int
	// Kernel is the host path of the kernel the stage booted.
	Kernel string
	// Release is the kernel release the guest reported (uname -r).
	Release string
	// Booted is when vminit's "vminit: stage N" console line arrived; zero
	// if it never did.
	Booted time.Time
	// Started is when the test binary's start marker arrived.
	Started time.Time
	// Ended is when the test binary's exit marker arrived, just before the
	// kexec or power-off; zero if it never did.
	Ended time.Time
	// Exit is the exit code of the guest tests, -1 if it never came.
	Exit int
	// Markers holds the "vmtest:" lines of the stage.
	Markers []string
}

// Run builds and boots cfg, waits for the last stage to power off, and
// reports every guest test as a subtest of t. It skips t with -short, and
// when QEMU or mkfs.ext4 is missing (it fails instead when $CI is set). It
// fails t when a build fails, the run times out, a stage does not start or
// does not finish, no guest test runs, or a guest test fails (see the
// package doc for the verdicts, $CI's included). Run needs no privileges on
// the host.
//
// With "go test -v" and VMTEST_VERBOSE=1, every line of the VM is also
// logged as it arrives.
func Run(t *testing.T, cfg vm.Config) *Result {
	t.Helper()
	if testing.Short() {
		t.Skip("vmtest: boots a VM; skipped with -short")
	}
	if err := vm.CheckHost(); err != nil {
		unavailable(t, "%v", err)
	}
	cfg.Timeout = runTimeout(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()

	img, err := vm.Build(ctx, cfg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var watch func(vm.Line)
	if testing.Verbose() && os.Getenv("VMTEST_VERBOSE") == "1" {
		watch = func(l vm.Line) {
			fmt.Fprintf(t.Output(), "%s %-7s| %s\n", l.Time.Format("15:04:05.000"), l.Stream, l.Text)
		}
	}
	var machine *vm.VM
	var waitErr error
	for attempt := 1; ; attempt++ {
		machine, err = vm.Boot(ctx, img, watch)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(machine.Kill)
		waitErr = machine.Wait()
		if waitErr != nil || attempt == coldBoots || reachedInit(machine.Lines()) {
			break
		}
		// Nothing of the test ran yet: the first kernel died while
		// booting, which only an emulation problem explains.
		res, p := newResult(machine.Started(), machine.Lines(), cfg.Kernels)
		t.Logf("vmtest: the first kernel died before starting /init (attempt %d of %d); booting again\n%s", attempt, coldBoots, res.tails(p))
	}
	if errors.Is(waitErr, context.DeadlineExceeded) {
		waitErr = fmt.Errorf("vmtest: timed out after %v (Config.Timeout or the test deadline); QEMU killed", cfg.Timeout)
	}

	res, p := newResult(machine.Started(), machine.Lines(), cfg.Kernels)
	r := reporter{ci: onCI(), describe: res.describe(len(cfg.Kernels))}
	r.report(t, testTree(p.Tests))
	if problems := checkRun(res, p, img.Plan, waitErr); len(problems) > 0 {
		t.Errorf("vmtest: %s\n%s", strings.Join(problems, "\nvmtest: "), res.tails(p))
	}
	return res
}

// coldBoots is how many times Run boots the first stage when its kernel dies
// before reaching /init.
const coldBoots = 3

// reachedInit reports whether vminit started in the first stage, that is,
// printed anything.
func reachedInit(lines []vm.Line) bool {
	for _, l := range lines {
		if l.Stream == vm.Console && strings.Contains(l.Text, "vminit: ") {
			return true
		}
	}
	return false
}

// runTimeout returns cfg.Timeout or its default, cut to leave a margin
// before the test's deadline.
func runTimeout(t *testing.T, cfg vm.Config) time.Duration {
	d := cfg.Timeout
	if d <= 0 {
		d = 4 * time.Minute * time.Duration(max(1, len(cfg.Kernels)))
	}
	if deadline, ok := t.Deadline(); ok {
		left := time.Until(deadline)
		left -= min(30*time.Second, left/10)
		if left <= 0 {
			t.Fatalf("vmtest: no time left before the test deadline")
		}
		d = min(d, left)
	}
	return d
}

var (
	bootedRE = regexp.MustCompile(`vminit: stage (\d+) release (\S+)`)
	startRE  = regexp.MustCompile(`^vmtest: stage (\d+)/\d+ start`)
	exitRE   = regexp.MustCompile(`^vmtest: stage (\d+)/\d+ exit=`)
)

// newResult assembles the Result of a run from its lines.
func newResult(start time.Time, lines []vm.Line, kernels []string) (*Result, *parsed) {
	res := &Result{Start: start, End: start, Lines: lines}
	var results strings.Builder
	booted := map[int]time.Time{}
	started := map[int]time.Time{}
	ended := map[int]time.Time{}
	for _, l := range lines {
		res.End = l.Time
		switch l.Stream {
		case vm.Console:
			if m := bootedRE.FindStringSubmatch(l.Text); m != nil {
				n, _ := strconv.Atoi(m[1])
				booted[n] = l.Time
			}
		case vm.Results:
			results.WriteString(l.Text)
			results.WriteByte('\n')
			if m := startRE.FindStringSubmatch(l.Text); m != nil {
				n, _ := strconv.Atoi(m[1])
				started[n] = l.Time
			} else if m := exitRE.FindStringSubmatch(l.Text); m != nil {
				n, _ := strconv.Atoi(m[1])
				ended[n] = l.Time
			}
		}
	}
	p, _ := parseResults(strings.NewReader(results.String())) // cannot fail on a strings.Reader
	for n := 1; n <= len(kernels); n++ {
		st := StageResult{N: n, Kernel: kernels[n-1], Booted: booted[n], Started: started[n], Ended: ended[n], Exit: -1}
		var found bool
		for _, s := range p.Stages {
			if s.N == n {
				st.Release, st.Exit, st.Markers = s.Release, s.Exit, s.Markers
				found = true
			}
		}
		if !found && st.Booted.IsZero() {
			break
		}
		res.Stages = append(res.Stages, st)
	}
	for _, t := range p.Tests {
		res.Tests = append(res.Tests, *t)
	}
	return res, p
}

// describe returns a function naming a stage in logs.
func (r *Result) describe(stages int) func(int) string {
	return func(n int) string {
		for _, s := range r.Stages {
			if s.N == n {
				return fmt.Sprintf("stage %d/%d (%s)", n, stages, s.Release)
			}
		}
		return fmt.Sprintf("stage %d/%d", n, stages)
	}
}

// checkRun lists what went wrong with the run as a whole, apart from the
// guest tests themselves.
func checkRun(res *Result, p *parsed, plan vm.Plan, waitErr error) []string {
	var problems []string
	if waitErr != nil {
		reached := "no stage booted"
		if n := len(res.Stages); n > 0 {
			reached = fmt.Sprintf("stage %d/%d reached", n, len(plan.Stages))
		}
		msg := strings.TrimPrefix(strings.TrimPrefix(waitErr.Error(), "vmtest: "), "vm: ")
		problems = append(problems, fmt.Sprintf("%s (%s)", msg, reached))
	}
	failed := map[int]bool{}
	ran := map[int]int{} // tests by stage
	for _, t := range p.Tests {
		ran[t.Stage]++
		if t.Status == Fail || t.Status == Unfinished {
			failed[t.Stage] = true
		}
	}
	if len(p.Tests) == 0 && slices.ContainsFunc(p.Stages, func(s *stageLog) bool { return s.N > 0 }) {
		var args []string
		if len(plan.Test) > 1 {
			args = plan.Test[1:]
		}
		problems = append(problems, fmt.Sprintf("no guest test ran in any stage: -test.run matches no test of the vmguest build, "+
			"or the guest test binary ended before running one (its arguments: %q)", args))
	}
	m := len(plan.Stages)
	for i, want := range plan.Stages {
		n := i + 1
		if n > len(res.Stages) {
			problems = append(problems, fmt.Sprintf("stage %d/%d (%s, %s) did not start", n, m, want.Release, want.Kernel))
			break
		}
		st := res.Stages[i]
		var log *stageLog
		for _, s := range p.Stages {
			if s.N == n {
				log = s
			}
		}
		switch {
		case log == nil:
			problems = append(problems, fmt.Sprintf("stage %d/%d booted but the guest test binary never started", n, m))
			continue
		case st.Release != "" && st.Release != want.Release:
			problems = append(problems, fmt.Sprintf("stage %d/%d runs kernel %s, want %s", n, m, st.Release, want.Release))
		}
		nextStarted := n < len(res.Stages)
		switch {
		case st.Exit < 0 && !(log.KexecExpected && nextStarted):
			problems = append(problems, fmt.Sprintf("stage %d/%d: the guest test binary ended without its exit marker", n, m))
		case st.Exit > 0 && !failed[n]:
			problems = append(problems, fmt.Sprintf("stage %d/%d: the guest tests exited with code %d", n, m, st.Exit))
		case st.Exit == 0 && ran[n] == 0 && len(p.Tests) > 0:
			problems = append(problems, fmt.Sprintf("stage %d/%d: the guest test binary exited 0 without running any test", n, m))
		}
		for _, mk := range log.Markers {
			if !isInfoMarker(mk) {
				problems = append(problems, strings.TrimPrefix(mk, "vmtest: "))
			}
		}
	}
	return problems
}

// isInfoMarker reports whether a "vmtest:" line is part of a normal run.
func isInfoMarker(s string) bool {
	m := stageMarkerRE.FindStringSubmatch(s)
	if m == nil {
		return false
	}
	for _, prefix := range []string{"start", "exit=", "kexec into", "kexec expected", maySkipMarker, "poweroff"} {
		if strings.HasPrefix(m[3], prefix) {
			return true
		}
	}
	return false
}

// tails renders the end of each stream for a failure message.
func (r *Result) tails(p *parsed) string {
	const n = 40
	var b strings.Builder
	var outside []string
	outside = append(outside, p.Preamble...)
	for _, s := range p.Stages {
		outside = append(outside, s.Output...)
	}
	for _, tail := range []struct {
		name  string
		lines []string
	}{
		{"console", r.stream(vm.Console)},
		{"results outside tests", outside},
		{"qemu", r.stream(vm.QEMU)},
	} {
		if len(tail.lines) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n--- %s (last %d of %d lines):\n", tail.name, min(n, len(tail.lines)), len(tail.lines))
		b.WriteString(strings.Join(tail.lines[max(0, len(tail.lines)-n):], "\n"))
		b.WriteString("\n")
	}
	return b.String()
}

func (r *Result) stream(name string) []string {
	var lines []string
	for _, l := range r.Lines {
		if l.Stream == name {
			lines = append(lines, l.Text)
		}
	}
	return lines
}

// Kernel returns the path of a test kernel with Live Update support, for
// version "7.2" or "7.3", found by [vm.FindKernel]. Without a kernel it skips
// t, or fails it when $CI is set (but not with -short, which skips VM tests
// anyway).
func Kernel(t testing.TB, version string) string {
	t.Helper()
	path, err := vm.FindKernel(version)
	switch {
	case errors.Is(err, vm.ErrNoKernel):
		unavailable(t, "%v", err)
	case err != nil:
		t.Fatal(err)
	}
	return path
}

// unavailable skips t for a missing prerequisite, or fails it on CI unless
// VM tests are off anyway (-short).
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if onCI() && !testing.Short() {
		t.Fatalf(format+" ($CI is set, so this is a failure)", args...)
	}
	t.Skipf(format, args...)
}

// onCI reports whether $CI is set: then a missing prerequisite, or a guest
// test skipped in every stage without a reason, fails instead of skipping.
func onCI() bool { return os.Getenv("CI") != "" }
