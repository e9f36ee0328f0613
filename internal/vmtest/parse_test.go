package vmtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// summarize renders what parseResults found, one line per stage and per test
// ("stage N: test STATUS: output|output").
func summarize(p *parsed) []string {
	var out []string
	if len(p.Preamble) > 0 {
		out = append(out, "preamble: "+strings.Join(p.Preamble, "|"))
	}
	for _, s := range p.Stages {
		line := fmt.Sprintf("stage %d/%d release=%s exit=%d summary=%s", s.N, s.M, s.Release, s.Exit, s.Summary)
		if s.KexecExpected {
			line += " kexec-expected"
		}
		if len(s.Output) > 0 {
			line += ": " + strings.Join(s.Output, "|")
		}
		out = append(out, line)
	}
	for _, t := range p.Tests {
		line := fmt.Sprintf("%d: %s %s", t.Stage, t.Name, t.Status)
		if t.MaySkip != "" {
			line += fmt.Sprintf(" may-skip=%q", t.MaySkip)
		}
		if len(t.Output) > 0 {
			line += ": " + strings.Join(t.Output, "|")
		}
		out = append(out, line)
	}
	return out
}

func TestParseResults(t *testing.T) {
	tests := []struct {
		name string
		file string // in testdata, or
		text string
		want []string
	}{
		{
			name: "chatty nested subtests, recorded",
			file: "chatty.txt",
			want: []string{
				"stage 0/0 release= exit=-1 summary=FAIL",
				"0: TestPass PASS:     rec_test.go:9: hello from pass",
				"0: TestNested FAIL:     rec_test.go:12: parent before|    rec_test.go:22: parent after",
				"0: TestNested/a FAIL:     rec_test.go:14: in a",
				"0: TestNested/a/b_c FAIL: stdout in b|    rec_test.go:17: b fails",
				"0: TestNested/a/skipme SKIP:     rec_test.go:19: not here",
				"0: TestNested/d PASS:     rec_test.go:21: in d",
				"0: TestSkip SKIP:     rec_test.go:25: skipped on purpose",
				"0: TestPanic SKIP:     rec_test.go:29: no panic",
			},
		},
		{
			name: "panic in a subtest, recorded",
			file: "panic.txt",
			want: []string{
				"stage 0/0 release= exit=-1 summary=",
				"0: TestPass PASS:     rec_test.go:9: hello from pass",
				"0: TestNested FAIL:     rec_test.go:12: parent before|    rec_test.go:22: parent after",
				"0: TestNested/a FAIL:     rec_test.go:14: in a",
				"0: TestNested/a/b_c FAIL: stdout in b|    rec_test.go:17: b fails",
				"0: TestNested/a/skipme SKIP:     rec_test.go:19: not here",
				"0: TestNested/d PASS:     rec_test.go:21: in d",
				"0: TestSkip SKIP:     rec_test.go:25: skipped on purpose",
				"0: TestPanic FAIL",
				"0: TestPanic/sub FAIL:     rec_test.go:32: about to panic|panic: boom [recovered, repanicked]||goroutine 27 [running]:" +
					"|testing.tRunner.func1.2({0x551fc0, 0x5956f0})|\t/usr/local/go/src/testing/testing.go:1974 +0x232" +
					"|testing.tRunner.func1()|\t/usr/local/go/src/testing/testing.go:1977 +0x349" +
					"|panic({0x551fc0?, 0x5956f0?})|\t/usr/local/go/src/runtime/panic.go:860 +0x13a" +
					"|rec.TestPanic.func1(0x30c113055448?)|\t/tmp/rec/rec_test.go:33 +0x4d" +
					"|testing.tRunner(0x30c113055448, 0x593fa0)|\t/usr/local/go/src/testing/testing.go:2036 +0xea" +
					"|created by testing.(*T).Run in goroutine 26|\t/usr/local/go/src/testing/testing.go:2101 +0x4c5",
			},
		},
		{
			name: "three stages with markers, a failure and a panic",
			file: "stages.txt",
			want: []string{
				"stage 1/3 release=7.2.13 exit=0 summary=PASS",
				"stage 2/3 release=7.3.4 exit=1 summary=FAIL",
				"stage 3/3 release=7.2.13 exit=-1 summary=",
				"1: TestKexec PASS",
				"1: TestKexec/simple PASS:     kexec_test.go:10: created session",
				"1: TestOther PASS",
				"2: TestKexec FAIL",
				"2: TestKexec/simple FAIL:     kexec_test.go:20: session lost",
				"2: TestOther PASS",
				"3: TestKexec PASS",
				"3: TestKexec/simple PASS",
				"3: TestOther FAIL:     other_test.go:5: about to panic|panic: boom [recovered, repanicked]||goroutine 7 [running]:" +
					"|testing.tRunner.func1.2({0x551fc0, 0x5956f0})|\t/usr/local/go/src/testing/testing.go:1974 +0x232",
			},
		},
		{
			name: "kexec by someone else, expected, then an unfinished test",
			file: "kexec.txt",
			want: []string{
				"stage 1/2 release=7.2.13 exit=-1 summary= kexec-expected",
				"stage 2/2 release=7.3.4 exit=-1 summary=",
				"1: TestUpdate PASS:     update_test.go:12: asking the supervisor to update|vmtest: ended by the expected kexec",
				"1: TestUpdate/luod PASS:     update_test.go:15: luoctl update: ok|    update_test.go:17: waiting for the kexec|vmtest: ended by the expected kexec",
				"2: TestUpdate PASS",
				"2: TestUpdate/luod PASS",
				"2: TestHang UNFINISHED: PASS",
			},
		},
		{
			name: "may-skip declarations, by full name, in each stage",
			file: "mayskip.txt",
			want: []string{
				"stage 1/2 release=7.2.13 exit=0 summary=PASS",
				"stage 2/2 release=7.3.4 exit=0 summary=PASS",
				`1: TestA SKIP may-skip="needs Linux 7.3, which this run does not boot":     a_test.go:12: needs 7.3`,
				"1: TestB PASS",
				`1: TestB/x/y SKIP may-skip="the x/y case: runs in stage 3 only":     b_test.go:20: not in this stage`,
				"1: TestB/z SKIP:     b_test.go:25: z skips",
				`1: TestB/a:_b SKIP may-skip="a colon in the name"`,
				"1: TestP PASS",
				"1: TestP/a PASS:     p_test.go:7: a runs",
				`1: TestP/b SKIP may-skip="parallel, and declared while TestP/a prints":     p_test.go:9: b skips`,
				"2: TestA SKIP:     a_test.go:12: skips again, without declaring",
				"2: TestB PASS",
				`2: TestB/x/y SKIP may-skip="the x/y case: runs in stage 3 only"`,
				"2: TestB/z SKIP",
				"2: TestB/a:_b SKIP",
				"2: TestP PASS",
				"2: TestP/a PASS",
				"2: TestP/b SKIP",
			},
		},
		{
			name: "no test ran",
			file: "notests.txt",
			want: []string{
				"stage 1/2 release=7.2.13 exit=0 summary=PASS: testing: warning: no tests to run",
				"stage 2/2 release=7.3.4 exit=0 summary=PASS: testing: warning: no tests to run",
			},
		},
		{
			name: "non-chatty output follows the result lines",
			text: "--- FAIL: TestA (0.50s)\n    a_test.go:3: bad\n    --- FAIL: TestA/sub (0.25s)\n        a_test.go:5: worse\n" +
				"--- SKIP: TestB (0.00s)\n    b_test.go:1: later\nFAIL\n",
			want: []string{
				"stage 0/0 release= exit=-1 summary=FAIL",
				"0: TestA FAIL:     a_test.go:3: bad",
				"0: TestA/sub FAIL:         a_test.go:5: worse",
				"0: TestB SKIP:     b_test.go:1: later",
			},
		},
		{
			name: "output before the first marker, CRLF, a stage that never started its tests",
			text: "early line\r\nvmtest: stage 1/2 test binary exited without kexec/poweroff: exit status 1\r\n",
			want: []string{
				"preamble: early line",
				"stage 1/2 release= exit=-1 summary=",
			},
		},
		{
			name: "parallel tests with PAUSE, CONT and NAME",
			text: "=== RUN   TestP\n=== RUN   TestP/a\n=== PAUSE TestP/a\n=== RUN   TestP/b\n=== PAUSE TestP/b\n" +
				"=== CONT  TestP/a\n    p_test.go:1: in a\n=== CONT  TestP/b\n    p_test.go:2: in b\n=== NAME  TestP/a\n    p_test.go:3: a again\n" +
				"--- PASS: TestP (0.00s)\n    --- PASS: TestP/b (0.00s)\n    --- FAIL: TestP/a (0.00s)\nFAIL\n",
			want: []string{
				"stage 0/0 release= exit=-1 summary=FAIL",
				"0: TestP PASS",
				"0: TestP/a FAIL:     p_test.go:1: in a|    p_test.go:3: a again",
				"0: TestP/b PASS:     p_test.go:2: in b",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			text := tt.text
			if tt.file != "" {
				b, err := os.ReadFile(filepath.Join("testdata", tt.file))
				if err != nil {
					t.Fatal(err)
				}
				text = string(b)
			}
			p, err := parseResults(strings.NewReader(text))
			if err != nil {
				t.Fatal(err)
			}
			if diff := diffLines(tt.want, summarize(p)); diff != "" {
				t.Errorf("parseResults mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseSmoke checks the recording of a real three-stage smoke run.
func TestParseSmoke(t *testing.T) {
	b, err := os.ReadFile("testdata/smoke.txt")
	if err != nil {
		t.Fatal(err)
	}
	p, err := parseResults(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Stages) != 3 || len(p.Preamble) != 0 {
		t.Fatalf("got %d stages, preamble %q; want 3 stages, no preamble", len(p.Stages), p.Preamble)
	}
	for i, s := range p.Stages {
		if s.N != i+1 || s.M != 3 || s.Exit != 0 || s.Summary != "PASS" || len(s.Output) != 0 {
			t.Errorf("stage %d: %+v", i+1, *s)
		}
	}
	count := map[Status]int{}
	for _, r := range p.Tests {
		count[r.Status]++
	}
	if want := (map[Status]int{Pass: 22, Skip: 5}); fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("statuses = %v, want %v", count, want)
	}
}

// FuzzParseResults checks that no input makes the parser panic or lose a
// test.
func FuzzParseResults(f *testing.F) {
	for _, name := range []string{"chatty.txt", "panic.txt", "stages.txt", "kexec.txt", "smoke.txt", "mayskip.txt", "notests.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseResults(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, r := range p.Tests {
			if r.Status == "" {
				t.Errorf("test %q has no status", r.Name)
			}
		}
	})
}

// diffLines returns a line diff of want and got, "" if equal.
func diffLines(want, got []string) string {
	if strings.Join(want, "\n") == strings.Join(got, "\n") {
		return ""
	}
	var b strings.Builder
	for i := 0; i < max(len(want), len(got)); i++ {
		var w, g string
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w == g {
			fmt.Fprintf(&b, "  %s\n", w)
			continue
		}
		if i < len(want) {
			fmt.Fprintf(&b, "- %q\n", w)
		}
		if i < len(got) {
			fmt.Fprintf(&b, "+ %q\n", g)
		}
	}
	return b.String()
}
