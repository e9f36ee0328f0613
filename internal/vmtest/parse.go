package vmtest

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Status is the outcome of a guest test in one stage.
type Status string

// The outcomes of a guest test.
const (
	Pass Status = "PASS"
	Fail Status = "FAIL"
	Skip Status = "SKIP"
	// Unfinished means the test started but its result never came: the
	// test binary crashed, the stage ended by an unexpected kexec, or the VM
	// timed out. It counts as a failure.
	Unfinished Status = "UNFINISHED"
)

// A TestResult is the outcome of one guest test or subtest in one stage.
type TestResult struct {
	// Name is the full test name, such as "TestKexec/simple".
	Name string
	// Stage is the stage the test ran in (1-based).
	Stage int
	// Status is the test's outcome in that stage.
	Status Status
	// Elapsed is the duration the guest reported.
	Elapsed time.Duration
	// Output holds the lines the test printed in that stage, without its
	// "=== RUN" and "--- PASS" lines.
	Output []string
	// MaySkip is the reason the test gave in that stage, with [MaySkip],
	// for being allowed to skip in every stage; "" if it gave none.
	MaySkip string
}

// stageLog is what the results channel says about one stage.
type stageLog struct {
	N, M    int
	Release string
	// Exit is the exit code of m.Run, -1 if the exit marker never came.
	Exit int
	// KexecExpected is set when a guest test announced, with ExpectKexec,
	// that something other than GuestMain would kexec.
	KexecExpected bool
	// Summary is the test binary's final "PASS" or "FAIL" line.
	Summary string
	// Markers holds every "vmtest:" line of the stage.
	Markers []string
	// Output holds the lines printed outside any test.
	Output []string
}

// parsed is the outcome of parseResults.
type parsed struct {
	// Preamble holds lines seen before the first stage marker.
	Preamble []string
	Stages   []*stageLog
	// Tests holds every test of every stage, in the order they started.
	Tests []*TestResult
}

var (
	stageMarkerRE = regexp.MustCompile(`^vmtest: stage (\d+)/(\d+) (.*)$`)
	resultRE      = regexp.MustCompile(`^(\s*)--- (PASS|FAIL|SKIP): (.+) \((\d+(?:\.\d+)?)s\)$`)
)

// Prefixes of the framing lines of "go test -v" (see testing's chatty
// printer).
const (
	runPrefix   = "=== RUN   "
	pausePrefix = "=== PAUSE "
	contPrefix  = "=== CONT  "
	namePrefix  = "=== NAME  "
)

// parseResults reads the results channel of a whole run: the "go test -v"
// output of the guest test binary in every stage, framed by the vmtest
// markers. Output between a test's RUN line and the next framing line belongs
// to that test; a panic and everything after it, up to the next marker,
// belongs to the test that ran last. Tests still running when a stage ends are
// Unfinished, unless the stage announced an expected kexec.
func parseResults(r io.Reader) (*parsed, error) {
	p := &parser{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		p.line(strings.TrimRight(sc.Text(), "\r"))
	}
	p.endStage()
	if err := sc.Err(); err != nil {
		return &p.out, fmt.Errorf("vmtest: read results: %w", err)
	}
	return &p.out, nil
}

type parser struct {
	out   parsed
	stage *stageLog
	// open holds this stage's tests that have no result yet, in RUN order.
	open []*TestResult
	// focus receives plain output lines.
	focus *TestResult
	// lastRun is the test that started last; a panic belongs to it.
	lastRun *TestResult
	// after and afterIndent attribute the indented lines that follow a
	// result line (non-chatty output) to its test.
	after       *TestResult
	afterIndent int
	// panicked is set after a "panic:" line: every line up to the next
	// marker belongs to panicTest.
	panicked  bool
	panicTest *TestResult
}

func (p *parser) line(s string) {
	if m := stageMarkerRE.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		total, _ := strconv.Atoi(m[2])
		p.marker(n, total, m[3], s)
		return
	}
	if strings.HasPrefix(s, "vmtest: ") {
		st := p.current()
		st.Markers = append(st.Markers, s)
		p.panicked = false
		return
	}
	if p.panicked {
		p.output(p.panicTest, s)
		return
	}
	if name, ok := strings.CutPrefix(s, runPrefix); ok {
		t := &TestResult{Name: name, Stage: p.current().N}
		p.out.Tests = append(p.out.Tests, t)
		p.open = append(p.open, t)
		p.focus, p.lastRun, p.after = t, t, nil
		return
	}
	for _, prefix := range []string{pausePrefix, contPrefix, namePrefix} {
		if name, ok := strings.CutPrefix(s, prefix); ok {
			if t := p.openTest(name); t != nil {
				p.focus = t
			}
			p.after = nil
			return
		}
	}
	if m := resultRE.FindStringSubmatch(s); m != nil {
		p.result(len(m[1]), Status(m[2]), m[3], m[4])
		return
	}
	if strings.HasPrefix(s, "panic: ") || strings.HasPrefix(s, "fatal error: ") {
		t := p.lastRun
		if t == nil {
			t = p.focus
		}
		if t != nil {
			t.Status = Fail
		}
		p.panicked, p.panicTest = true, t
		p.output(t, s)
		return
	}
	if (s == "PASS" || s == "FAIL") && len(p.open) == 0 {
		p.current().Summary = s
		return
	}
	if p.after != nil && indent(s) > p.afterIndent {
		p.output(p.after, s)
		return
	}
	p.after = nil
	p.output(p.focus, s)
}

// marker handles "vmtest: stage N/M ..." lines.
func (p *parser) marker(n, total int, rest, s string) {
	p.panicked = false
	if release, ok := strings.CutPrefix(rest, "start release="); ok || rest == "start" {
		p.endStage()
		p.stage = &stageLog{N: n, M: total, Release: release, Exit: -1}
		p.out.Stages = append(p.out.Stages, p.stage)
		p.stage.Markers = append(p.stage.Markers, s)
		return
	}
	if p.stage == nil || p.stage.N != n {
		// A marker of a stage whose start marker never came, e.g.
		// vminit reporting a test binary that died before GuestMain.
		p.endStage()
		p.stage = &stageLog{N: n, M: total, Exit: -1}
		p.out.Stages = append(p.out.Stages, p.stage)
	}
	st := p.stage
	st.Markers = append(st.Markers, s)
	switch {
	case strings.HasPrefix(rest, "exit="):
		if code, err := strconv.Atoi(strings.TrimPrefix(rest, "exit=")); err == nil {
			st.Exit = code
		}
		p.closeOpen(false)
	case strings.HasPrefix(rest, "kexec expected"):
		st.KexecExpected = true
	case strings.HasPrefix(rest, maySkipMarker):
		p.maySkip(strings.TrimPrefix(rest, maySkipMarker))
	case strings.Contains(rest, "exited without"):
		p.closeOpen(false)
	}
}

// maySkip handles the rest of a "vmtest: stage N/M may skip NAME: REASON"
// marker (see MaySkip): it gives REASON to the last test of the stage named
// NAME. Test names hold no blanks (package testing turns them into "_"), so
// NAME ends at the first blank, less the colon; a marker without a reason or
// a test declares nothing.
func (p *parser) maySkip(s string) {
	name, reason, _ := strings.Cut(s, " ")
	name = strings.TrimSuffix(name, ":")
	reason = strings.TrimSpace(reason)
	if name == "" || reason == "" {
		return
	}
	for i := len(p.out.Tests) - 1; i >= 0; i-- {
		t := p.out.Tests[i]
		if t.Stage != p.stage.N {
			break
		}
		if t.Name == name {
			t.MaySkip = reason
			return
		}
	}
}

// current returns the stage being parsed, creating a stage 0 for lines seen
// before any marker.
func (p *parser) current() *stageLog {
	if p.stage == nil {
		p.stage = &stageLog{Exit: -1}
		p.out.Stages = append(p.out.Stages, p.stage)
	}
	return p.stage
}

// endStage closes the stage being parsed.
func (p *parser) endStage() {
	if p.stage == nil {
		return
	}
	p.closeOpen(p.stage.KexecExpected)
	if p.stage.N == 0 && len(p.stage.Markers) == 0 && p.stage.Summary == "" && len(p.out.Tests) == 0 {
		// Lines before the first marker, and no test: a preamble,
		// not a stage.
		p.out.Preamble = p.stage.Output
		p.out.Stages = p.out.Stages[1:]
	}
	p.stage = nil
}

// closeOpen gives every test still running its final status.
func (p *parser) closeOpen(kexecExpected bool) {
	for _, t := range p.open {
		if t.Status != "" {
			continue
		}
		t.Status = Unfinished
		if kexecExpected {
			t.Status = Pass
			t.Output = append(t.Output, "vmtest: ended by the expected kexec")
		}
	}
	p.open, p.focus, p.lastRun, p.after = nil, nil, nil, nil
}

func (p *parser) openTest(name string) *TestResult {
	for i := len(p.open) - 1; i >= 0; i-- {
		if p.open[i].Name == name {
			return p.open[i]
		}
	}
	return nil
}

func (p *parser) result(ind int, status Status, name, secs string) {
	t := p.openTest(name)
	if t == nil {
		// A result without RUN line (output without -test.v).
		t = &TestResult{Name: name, Stage: p.current().N}
		p.out.Tests = append(p.out.Tests, t)
	}
	for i, o := range p.open {
		if o == t {
			p.open = append(p.open[:i], p.open[i+1:]...)
			break
		}
	}
	if t.Status != Fail { // keep a failure set by a panic
		t.Status = status
	}
	if f, err := strconv.ParseFloat(secs, 64); err == nil {
		t.Elapsed = time.Duration(f * float64(time.Second))
	}
	if p.focus != nil && (p.focus == t || strings.HasPrefix(p.focus.Name, t.Name+"/")) {
		// Output goes back to the closest ancestor still running.
		p.focus = nil
		for i := len(p.open) - 1; i >= 0; i-- {
			if strings.HasPrefix(t.Name, p.open[i].Name+"/") {
				p.focus = p.open[i]
				break
			}
		}
	}
	p.after, p.afterIndent = t, ind
}

func (p *parser) output(t *TestResult, s string) {
	if t != nil {
		t.Output = append(t.Output, s)
		return
	}
	st := p.current()
	st.Output = append(st.Output, s)
}

// indent returns the number of leading blanks of s, a tab counting as four.
func indent(s string) int {
	n := 0
	for _, c := range s {
		switch c {
		case ' ':
			n++
		case '\t':
			n += 4
		default:
			return n
		}
	}
	return n
}
