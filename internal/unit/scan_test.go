package unit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	sdunit "github.com/coreos/go-systemd/v22/unit"
)

// goSystemdOptions returns the options go-systemd finds in data, without
// its limit on the length of lines. go-systemd checks that limit only when
// its bufio.Reader holds 2048 bytes, which never happens when it is fed one
// byte at a time. luod does not rely on that (see readOptions), but the
// tests use it to check scan against go-systemd on long lines too.
func goSystemdOptions(data []byte) ([]*sdunit.UnitOption, error) {
	return sdunit.DeserializeOptions(iotest.OneByteReader(bytes.NewReader(data)))
}

// checkScanMatchesGoSystemd fails when scan and go-systemd disagree on data:
// scan must accept exactly what go-systemd accepts (without go-systemd's
// limit on line length) and find the same options in the same order.
func checkScanMatchesGoSystemd(t testing.TB, data []byte) {
	t.Helper()
	sdOpts, sdErr := goSystemdOptions(data)
	res, scanErr := scan(data)
	scanned := res.options
	switch {
	case sdErr != nil && scanErr == nil:
		t.Fatalf("go-systemd fails (%v) but scan does not on %q", sdErr, data)
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
	"[S]\nA=" + strings.Repeat("long ", 1000) + "\nB=2\n# " + strings.Repeat("x", 3000) + "\nC=3\n",
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

// TestGoSystemdLineLimit checks what readOptions relies on: go-systemd
// refuses a line of 2048 bytes with ErrLineTooLong, and scan reads the same
// options as go-systemd without that limit.
func TestGoSystemdLineLimit(t *testing.T) {
	t.Parallel()
	data := []byte("[Service]\nA=" + strings.Repeat("x", 3000) + "\nB=2\n")
	if _, err := sdunit.DeserializeOptions(bytes.NewReader(data)); !errors.Is(err, sdunit.ErrLineTooLong) {
		t.Errorf("go-systemd on a line of 3002 bytes: %v, want ErrLineTooLong", err)
	}
	opts, err := goSystemdOptions(data)
	if err != nil || len(opts) != 2 || len(opts[0].Value) != 3000 {
		t.Fatalf("go-systemd fed byte by byte: %v, %v", opts, err)
	}
	checkScanMatchesGoSystemd(t, data)
}

func TestCheckLines(t *testing.T) {
	t.Parallel()
	const max = MaxLineLength
	x := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name string
		in   string
		line int    // of the error, 0 for none
		msg  string // the error after "x.service:line: "
	}{
		{"short", "[S]\nA=1\n", 0, ""},
		{"longest line", "[S]\nA=" + x(max-3) + "\nB=1\n", 0, ""},
		{"longest line, CRLF", "[S]\r\nA=" + x(max-3) + "\r\nB=1\n", 0, ""},
		{"longest line at the end", "[S]\nA=" + x(max-3), 0, ""},
		{"line too long", "[S]\nA=" + x(max-2) + "\nB=1\n", 2, "line too long (1048576 bytes, at most 1048575 before the newline)"},
		{"line too long at the end", "[S]\nA=" + x(max-2), 2, "line too long (1048576 bytes, at most 1048575 before the newline)"},
		{"comment too long", "[S]\n#" + x(max) + "\n", 2, "line too long (1048577 bytes"},
		{"longest continuation", "[S]\nA=" + x(max/2-3) + "\\\n" + x(max/2) + "\n", 0, ""},
		{"continuation too long", "[S]\nA=" + x(max/2-2) + "\\\n" + x(max/2) + "\n", 3, "line too long (1048577 bytes with the lines it continues, at most 1048576)"},
		{"an empty line ends a continuation", "[S]\nA=" + x(max/2-2) + "\\\n\n" + x(max/2) + "\n", 0, ""},
		{"comments are not joined", "[S]\nA=" + x(max/2-3) + "\\\n#" + x(max/2) + "\n" + x(max/2) + "\n", 0, ""},
		{"escaped backslash ends the line", "[S]\nA=" + x(max/2-4) + "\\\\\n" + x(max/2) + "\n", 0, ""},
		{"three backslashes continue it", "[S]\nA=" + x(max/2-4) + "\\\\\\\n" + x(max/2) + "\n", 3, "too long (1048577 bytes with the lines it continues"},
		{"invalid UTF-8", "[S]\nA=1\nB=\xc3\n", 3, `line is not valid UTF-8: "B=\xc3"`},
		{"invalid UTF-8 in a comment", "[S]\n # \xc3\n;\xff\nA=1\n", 0, ""},
		{"valid UTF-8", "[S]\nA=caf\xc3\xa9 \U0001F600\n", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := checkLines("x.service", []byte(tt.in))
			if tt.line == 0 {
				if err != nil {
					t.Errorf("error %v", err)
				}
				return
			}
			var pe *ParseError
			prefix := fmt.Sprintf("x.service:%d: ", tt.line)
			if !errors.As(err, &pe) || pe.Line != tt.line || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %v, want %q", err, prefix+tt.msg)
			}
			if tooLong := strings.Contains(tt.msg, "too long"); errors.Is(err, ErrLineTooLong) != tooLong {
				t.Errorf("error %v wraps ErrLineTooLong: %v, want %v", err, !tooLong, tooLong)
			}
		})
	}
}
