package unit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sdunit "github.com/coreos/go-systemd/v22/unit"
)

// checkScanMatchesGoSystemd fails when scan and go-systemd disagree on data:
// scan must accept exactly what go-systemd accepts (except for
// go-systemd's line length limit) and find the same options in the same
// order.
func checkScanMatchesGoSystemd(t testing.TB, data []byte) {
	t.Helper()
	sdOpts, sdErr := sdunit.DeserializeOptions(bytes.NewReader(data))
	res, scanErr := scan(data)
	scanned := res.options
	switch {
	case sdErr != nil && scanErr == nil:
		if !errors.Is(sdErr, sdunit.ErrLineTooLong) {
			t.Fatalf("go-systemd fails (%v) but scan does not on %q", sdErr, data)
		}
		return
	case sdErr == nil && scanErr != nil:
		t.Fatalf("scan fails (line %d: %s) but go-systemd does not on %q", scanErr.line, scanErr.msg, data)
	case sdErr != nil:
		return
	}
	if len(sdOpts) != len(scanned) {
		t.Fatalf("go-systemd finds %d options, scan %d, in %q", len(sdOpts), len(scanned), data)
	}
	for i, o := range sdOpts {
		s := scanned[i]
		if o.Section != s.section || o.Name != s.name || o.Value != s.value {
			t.Fatalf("option %d: go-systemd %q, scan %+v, in %q", i, o, s, data)
		}
		if s.line < 1 || s.line > 1+bytes.Count(data, []byte{'\n'}) {
			t.Fatalf("option %d: line %d out of range in %q", i, s.line, data)
		}
	}
}

// scanCorpus is a set of awkward inputs for the lexer, also used as fuzz
// seeds.
var scanCorpus = []string{
	"",
	"[Service]\nExecStart=/bin/true\n",
	"[Service]\r\nExecStart=/bin/true\r\nType=simple\r\n",
	"junk before = the first [Section]\nA=1\n",
	"# comment \\\ncontinued [comment]\n[S]\nA=1\n",
	"; comment\n[S]\n  ; indented comment\n\tA = 1 \nB=\n",
	"[S]\nA=one \\\n  two \\\n  three\nB=2\n",
	"[S]\nA=one \\\n\nB=2\n",
	"[S]\nA=one \\",
	"[S]\nA=one \\\n# comment \\\n two\n",
	"[S]\nA=one \\\n# comment\nB=two\n",
	"[S]\nA=\\\\\nB=1\n",
	"[S]\nA=x \\\r\nB=1\n",
	"[Multi\nLine]\nA=1\n",
	"[S] \t\nA=1\n",
	"[S]garbage\nA=1\n",
	"[S\nA=1\n",
	"[S]\nNoEquals\n",
	"[S]\nNoEquals",
	"[S]\n=empty name\n",
	"[S]\nA==b=c\n",
	"[S]\n\u00a0A=nbsp\n",
	"[S]\n\u0085A=1\n",
	"[S]\nA=\xff\xfe\n\xffB=1\n",
	"[S]\n[T]\n[S]\nA=1\n",
	"[S]\nA=1\n[",
	"[S]\n  [T]\nB=2\n",
	"[S]\nA=  \\\n\\\n\\\n",
	"\n\n\n[S]\n\n\nA=1\n\n\nB=2",
	"[S]\nA=1\rB=2\n",
	"[S]\nA=x;y#z\n",
}

func TestScanMatchesGoSystemd(t *testing.T) {
	t.Parallel()
	for _, in := range scanCorpus {
		checkScanMatchesGoSystemd(t, []byte(in))
	}
	for _, name := range []string{"counter.service", "oneshot.service", "broken.service"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		checkScanMatchesGoSystemd(t, data)
	}
}

func TestScanLines(t *testing.T) {
	t.Parallel()
	in := "# 1\n" +
		"[Unit]\n" + // 2
		"A=1\n" + // 3
		"\n" + // 4
		"B=one \\\n" + // 5
		"  two \\\n" + // 6
		"  three\n" + // 7
		"; comment \\\n" + // 8
		"  continued comment\n" + // 9
		"  C = 3\n" + // 10
		"[Service]\r\n" + // 11
		"A=1\r\n" + // 12
		"A=2\n" // 13
	res, err := scan([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	opts := res.options
	if d := diff([]scannedSection{{"Unit", 2}, {"Service", 11}}, res.sections); d != "" {
		t.Errorf("sections: %s", d)
	}
	want := []scannedOption{
		{"Unit", "A", "1", 3},
		{"Unit", "B", "one \\\n  two \\\n  three", 5},
		{"Unit", "C", "3", 10},
		{"Service", "A", "1", 12},
		{"Service", "A", "2", 13},
	}
	if d := diff(want, opts); d != "" {
		t.Errorf("options: %s", d)
	}
}

func TestScanErrorLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		line int
	}{
		{"[S]\nA=1\nNoEquals\n", 3},
		{"[S]\n\n\n[Broken\n", 4},
		{"[S]\n[T] x\n", 2},
		{"[S]\nA=1\nB", 3},
	}
	for _, tt := range tests {
		_, err := scan([]byte(tt.in))
		if err == nil || err.line != tt.line {
			t.Errorf("scan(%q) error = %+v, want one at line %d", tt.in, err, tt.line)
		}
	}
}

func TestScanStrayText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		line int
	}{
		{"[S]\nA=1\n", 0},
		{"\n  \n# c\n; c\n[S]\n", 0},
		{"\n\nA=1\n[S]\nB=2\n", 3},
		{"# c\n  x [S]\n", 2},
	}
	for _, tt := range tests {
		res, err := scan([]byte(tt.in))
		if err != nil || res.strayLine != tt.line {
			t.Errorf("scan(%q): stray line %d, %v; want %d", tt.in, res.strayLine, err, tt.line)
		}
	}
	u := mustParse(t, "x.service", "Type=notify\n"+service())
	if len(u.Warnings) != 1 || u.Warnings[0].String() != "x.service:1: text before the first section, ignored" || u.Type != TypeSimple {
		t.Errorf("warnings = %v, type %v", u.Warnings, u.Type)
	}
}

func TestJoinContinuations(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"a \\\n  b", "a    b"},
		{"a\\\nb", "a b"},
		{"a \\\n# comment \\\n b", "a   b"},
		{"a \\\n  ; comment", "a"},
		{"a \\\n", "a"},
		{"a \\\n\\\n b", "a    b"},
		{`a \\`, `a \\`},
	}
	for _, tt := range tests {
		if got := joinContinuations(tt.in); got != tt.want {
			t.Errorf("joinContinuations(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLongLine(t *testing.T) {
	t.Parallel()
	data := []byte("[Service]\nA=" + strings.Repeat("x", 3000) + "\n")
	if got := longLine(data); got != 2 {
		t.Errorf("longLine = %d, want 2", got)
	}
	_, err := Parse("a.service", bytes.NewReader(data))
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 2 || !errors.Is(err, sdunit.ErrLineTooLong) {
		t.Errorf("Parse(long line) = %v, want a ParseError at line 2 wrapping ErrLineTooLong", err)
	}
}
