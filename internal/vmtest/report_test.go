package vmtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/liveupdate/luo/internal/vm"
)

// stageN names a stage in tests: "stage N".
func stageN(n int) string { return fmt.Sprintf("stage %d", n) }

func TestTestTree(t *testing.T) {
	tests := []*TestResult{
		{Name: "TestA", Stage: 1, Status: Pass},
		{Name: "TestA/x/y", Stage: 1, Status: Pass}, // t.Run("x/y") in TestA
		{Name: "TestA/x/y/z", Stage: 1, Status: Skip},
		{Name: "TestB", Stage: 1, Status: Skip},
		{Name: "TestA", Stage: 2, Status: Fail},
		{Name: "TestA/x/y", Stage: 2, Status: Fail},
		{Name: "TestA/x/y/z", Stage: 2, Status: Skip},
		{Name: "TestB", Stage: 2, Status: Skip},
		{Name: "TestC", Stage: 2, Status: Unfinished},
		{Name: "TestD", Stage: 2, Status: Pass},
		{Name: "TestD", Stage: 3, Status: Skip},
	}
	var got []string
	var walk func(prefix string, nodes []*testNode)
	walk = func(prefix string, nodes []*testNode) {
		for _, n := range nodes {
			status, _ := verdict(n, false, stageN)
			got = append(got, fmt.Sprintf("%s%s %s (%d runs)", prefix, n.short, status, len(n.runs)))
			walk(prefix+"  ", n.children)
		}
	}
	walk("", testTree(tests))
	want := []string{
		"TestA FAIL (2 runs)",
		"  x/y FAIL (2 runs)",
		"    z SKIP (2 runs)",
		"TestB SKIP (2 runs)",
		"TestC FAIL (1 runs)",
		"TestD PASS (2 runs)",
	}
	if diff := diffLines(want, got); diff != "" {
		t.Errorf("testTree mismatch (-want +got):\n%s", diff)
	}
}

func TestVerdict(t *testing.T) {
	type run struct {
		status  Status
		maySkip string
	}
	const (
		undeclared = "skipped in the guest in every stage (with $CI set, that fails unless the test calls vmtest.MaySkip)"
		ciFail     = "skipped in the guest in every stage, and $CI is set: fix the test, or declare why it may skip with vmtest.MaySkip(t, reason)"
	)
	tests := []struct {
		name   string
		runs   []run // stage 1, 2, ...
		ci     bool
		status Status
		why    string
	}{
		{"passes everywhere", []run{{Pass, ""}, {Pass, ""}}, true, Pass, ""},
		{"passes once, skips elsewhere", []run{{Skip, ""}, {Pass, ""}, {Skip, ""}}, true, Pass, ""},
		{"declared, passes", []run{{Pass, "needs 7.3"}, {Pass, ""}}, true, Pass, ""},
		{"skips everywhere", []run{{Skip, ""}, {Skip, ""}}, false, Skip, undeclared},
		{"skips everywhere, on CI", []run{{Skip, ""}, {Skip, ""}}, true, Fail, ciFail},
		{"skips in its only stage, on CI", []run{{Skip, ""}}, true, Fail, ciFail},
		{"skips everywhere, declared in one stage, on CI", []run{{Skip, ""}, {Skip, "needs 7.3"}}, true, Skip,
			"skipped in the guest in every stage, as declared: needs 7.3"},
		{"skips everywhere, declared", []run{{Skip, "needs 7.3"}, {Skip, "needs 7.3"}}, false, Skip,
			"skipped in the guest in every stage, as declared: needs 7.3"},
		{"skips everywhere, two reasons, on CI", []run{{Skip, "needs 7.3"}, {Skip, "needs 7.4"}, {Skip, "needs 7.3"}}, true, Skip,
			"skipped in the guest in every stage, as declared: needs 7.3; needs 7.4"},
		{"declared, fails", []run{{Skip, "needs 7.3"}, {Fail, ""}}, true, Fail, "failed in the guest in stage 2"},
		{"fails twice", []run{{Fail, ""}, {Pass, ""}, {Fail, ""}}, false, Fail, "failed in the guest in stage 1, stage 3"},
		{"unfinished, else skipped", []run{{Skip, ""}, {Unfinished, ""}}, true, Fail, "failed in the guest in stage 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := &testNode{name: "TestX/y", short: "y"}
			for i, r := range tt.runs {
				n.runs = append(n.runs, &TestResult{Name: n.name, Stage: i + 1, Status: r.status, MaySkip: r.maySkip})
			}
			status, why := verdict(n, tt.ci, stageN)
			if status != tt.status || why != tt.why {
				t.Errorf("verdict(ci=%t) = %s, %q; want %s, %q", tt.ci, status, why, tt.status, tt.why)
			}
		})
	}
}

// reportChildEnv names the recorded results stream that TestReportChild
// reports; TestReport sets it when running this test binary again.
const reportChildEnv = "VMTEST_REPORT_CHILD"

// TestReport proves that the host subtests get the verdicts of the guest
// tests: it runs report on recorded streams in a child test process, so
// that failures there leave this suite green, and parses the child's own
// "go test -v" output.
func TestReport(t *testing.T) {
	tests := []struct {
		name string
		file string
		ci   string // $CI of the child
		want []string
		// wantOut are parts of the child's output.
		wantOut []string
	}{
		{
			name: "failures and a panic",
			file: "stages.txt",
			want: []string{
				"TestReportChild FAIL",
				"TestReportChild/TestKexec FAIL",
				"TestReportChild/TestKexec/simple FAIL",
				"TestReportChild/TestOther FAIL",
			},
			wantOut: []string{
				"stage 2 (7.3.4): FAIL (0.02s)",
				"kexec_test.go:20: session lost",
				"failed in the guest in stage 2 (7.3.4)",
				"panic: boom",
				"failed in the guest in stage 3 (7.2.13)",
			},
		},
		{
			name: "a passing run with a skip",
			file: "smoke.txt",
			want: []string{
				"TestReportChild PASS",
				"TestReportChild/TestStage PASS",
				"TestReportChild/TestNextBoot PASS",
				"TestReportChild/TestHold PASS",
				"TestReportChild/TestHold/memfd PASS",
				"TestReportChild/TestEnvironment PASS",
				"TestReportChild/TestNested PASS",
				"TestReportChild/TestNested/a PASS",
				"TestReportChild/TestNested/a/b PASS",
				"TestReportChild/TestSkipped SKIP",
			},
			wantOut: []string{"skipped in the guest in every stage (with $CI set, that fails unless the test calls vmtest.MaySkip)"},
		},
		{
			name: "the same skip on CI",
			file: "smoke.txt",
			ci:   "true",
			want: []string{
				"TestReportChild FAIL",
				"TestReportChild/TestStage PASS",
				"TestReportChild/TestNextBoot PASS",
				"TestReportChild/TestHold PASS",
				"TestReportChild/TestHold/memfd PASS",
				"TestReportChild/TestEnvironment PASS",
				"TestReportChild/TestNested PASS",
				"TestReportChild/TestNested/a PASS",
				"TestReportChild/TestNested/a/b PASS",
				"TestReportChild/TestSkipped FAIL",
			},
			wantOut: []string{"skipped in the guest in every stage, and $CI is set: fix the test, or declare why it may skip with vmtest.MaySkip(t, reason)"},
		},
		{
			name: "declared skips on CI",
			file: "mayskip.txt",
			ci:   "true",
			want: []string{
				"TestReportChild FAIL",
				"TestReportChild/TestA SKIP",
				"TestReportChild/TestB FAIL",
				"TestReportChild/TestB/x/y SKIP",
				"TestReportChild/TestB/z FAIL",
				"TestReportChild/TestB/a:_b SKIP",
				"TestReportChild/TestP PASS",
				"TestReportChild/TestP/a PASS",
				"TestReportChild/TestP/b SKIP",
			},
			wantOut: []string{
				"skipped in the guest in every stage, as declared: needs Linux 7.3, which this run does not boot",
				"skipped in the guest in every stage, as declared: the x/y case: runs in stage 3 only",
				"skipped in the guest in every stage, as declared: a colon in the name",
				"skipped in the guest in every stage, as declared: parallel, and declared while TestP/a prints",
			},
		},
		{
			name: "declared skips off CI",
			file: "mayskip.txt",
			want: []string{
				"TestReportChild PASS",
				"TestReportChild/TestA SKIP",
				"TestReportChild/TestB PASS",
				"TestReportChild/TestB/x/y SKIP",
				"TestReportChild/TestB/z SKIP",
				"TestReportChild/TestB/a:_b SKIP",
				"TestReportChild/TestP PASS",
				"TestReportChild/TestP/a PASS",
				"TestReportChild/TestP/b SKIP",
			},
			wantOut: []string{"skipped in the guest in every stage, as declared: needs Linux 7.3, which this run does not boot"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestReportChild$", "-test.v")
			cmd.Env = append(os.Environ(), reportChildEnv+"=testdata/"+tt.file, "CI="+tt.ci)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			wantFail := strings.HasSuffix(tt.want[0], " FAIL")
			if failed := errors.As(err, &exit) && exit.ExitCode() == 1; failed != wantFail || (err != nil && !failed) {
				t.Fatalf("child test: %v, want it to fail: %t\n%s", err, wantFail, out)
			}
			p, err := parseResults(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range p.Tests {
				got = append(got, fmt.Sprintf("%s %s", r.Name, r.Status))
			}
			if diff := diffLines(tt.want, got); diff != "" {
				t.Errorf("host statuses mismatch (-want +got):\n%s\nchild output:\n%s", diff, out)
			}
			for _, s := range tt.wantOut {
				if !bytes.Contains(out, []byte(s)) {
					t.Errorf("child output lacks %q:\n%s", s, out)
				}
			}
		})
	}
}

// TestReportChild is run by TestReport only.
func TestReportChild(t *testing.T) {
	name := os.Getenv(reportChildEnv)
	if name == "" {
		t.Skip("run by TestReport")
	}
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	p, err := parseResults(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	releases := map[int]string{}
	for _, s := range p.Stages {
		releases[s.N] = s.Release
	}
	rp := reporter{ci: onCI(), describe: func(n int) string { return fmt.Sprintf("stage %d (%s)", n, releases[n]) }}
	rp.report(t, testTree(p.Tests))
}

func TestCheckRun(t *testing.T) {
	plan := vm.Plan{
		Stages: []vm.PlanStage{
			{Kernel: "/vmtest/boot/stage-1.bzImage", Release: "7.2.13"},
			{Kernel: "/vmtest/boot/stage-2.bzImage", Release: "7.3.4"},
			{Kernel: "/vmtest/boot/stage-3.bzImage", Release: "7.2.13"},
			{Kernel: "/vmtest/boot/stage-4.bzImage", Release: "7.3.4"},
		},
		Test: []string{"/vmtest/test.bin", "-test.v=true", "-test.run", "^TestNone$"},
	}
	two := plan
	two.Stages = plan.Stages[:2]
	tests := []struct {
		name    string
		file    string // in testdata, or
		text    string
		plan    vm.Plan
		waitErr error
		want    []string
	}{
		{
			name:    "a timeout in stage 3 of 4",
			file:    "stages.txt",
			plan:    plan,
			waitErr: errors.New("vmtest: timed out"),
			want: []string{
				"timed out (stage 3/4 reached)",
				"stage 3/4: the guest test binary ended without its exit marker",
				"stage 3/3 test binary exited without kexec/poweroff: exit status 2",
				"stage 4/4 (7.3.4, /vmtest/boot/stage-4.bzImage) did not start",
			},
		},
		{
			name:    "QEMU failed",
			file:    "smoke.txt",
			plan:    vm.Plan{Stages: plan.Stages[:3]},
			waitErr: errors.New("vm: qemu: exit status 1"),
			want:    []string{"qemu: exit status 1 (stage 3/3 reached)"},
		},
		{
			name: "a clean run",
			file: "smoke.txt",
			plan: vm.Plan{Stages: plan.Stages[:3]},
		},
		{
			name: "a clean run with may-skip markers",
			file: "mayskip.txt",
			plan: two,
		},
		{
			name: "no test ran, every stage exited 0",
			file: "notests.txt",
			plan: two,
			want: []string{`no guest test ran in any stage: -test.run matches no test of the vmguest build, ` +
				`or the guest test binary ended before running one (its arguments: ["-test.v=true" "-test.run" "^TestNone$"])`},
		},
		{
			name: "no test ran in stage 2",
			text: "vmtest: stage 1/2 start release=7.2.13\n=== RUN   TestA\n--- PASS: TestA (0.00s)\nPASS\nvmtest: stage 1/2 exit=0\n" +
				"vmtest: stage 2/2 start release=7.3.4\nPASS\nvmtest: stage 2/2 exit=0\nvmtest: stage 2/2 poweroff\n",
			plan: two,
			want: []string{"stage 2/2: the guest test binary exited 0 without running any test"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			text := tt.text
			if tt.file != "" {
				b, err := os.ReadFile("testdata/" + tt.file)
				if err != nil {
					t.Fatal(err)
				}
				text = string(b)
			}
			var lines []vm.Line
			for _, s := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
				lines = append(lines, vm.Line{Stream: vm.Results, Text: s})
			}
			var kernels []string
			for _, s := range tt.plan.Stages {
				kernels = append(kernels, s.Kernel)
			}
			res, p := newResult(lines[0].Time, lines, kernels)
			got := checkRun(res, p, tt.plan, tt.waitErr)
			if diff := diffLines(tt.want, got); diff != "" {
				t.Errorf("checkRun mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNewResult checks the stages a run's lines make.
func TestNewResult(t *testing.T) {
	b, err := os.ReadFile("testdata/stages.txt")
	if err != nil {
		t.Fatal(err)
	}
	var lines []vm.Line
	for _, s := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		lines = append(lines, vm.Line{Stream: vm.Results, Text: s})
	}
	res, _ := newResult(lines[0].Time, lines, []string{"k1", "k2", "k3", "k4"})
	if len(res.Stages) != 3 || res.Stages[1].Release != "7.3.4" || res.Stages[1].Exit != 1 || res.Stages[2].Exit != -1 {
		t.Errorf("stages: %+v", res.Stages)
	}
}
