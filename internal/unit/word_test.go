package unit

import (
	"testing"
)

// Cases ported from systemd's src/test/test-extract-word.c and
// src/test/test-strv.c, for the flags luod uses.
func TestExtractFirstWord(t *testing.T) {
	t.Parallel()
	const (
		U  = extractUnquote
		C  = extractCUnescape
		CR = extractUnescapeRelax
		R  = extractRelax
	)
	tests := []struct {
		in    string
		flags extractFlags
		words []string // nil with bad: the first word fails
		bad   bool
	}{
		{in: "foobar waldo", words: []string{"foobar", "waldo"}},
		{in: `"foobar" 'waldo'`, words: []string{`"foobar"`, `'waldo'`}},
		{in: `"foobar" 'waldo'`, flags: U, words: []string{"foobar", "waldo"}},
		{in: `"`, words: []string{`"`}},
		{in: `"`, flags: U, bad: true},
		{in: `'`, words: []string{`'`}},
		{in: `'`, flags: U, bad: true},
		{in: `'fooo`, words: []string{`'fooo`}},
		{in: `'fooo`, flags: U, bad: true},
		{in: `'fooo`, flags: U | R, words: []string{"fooo"}},
		{in: `"fooo`, flags: U | R, words: []string{"fooo"}},
		{in: `KEY=val "KEY2=val with space" "KEY3=val with \"quotation\""`, flags: U,
			words: []string{"KEY=val", "KEY2=val with space", `KEY3=val with "quotation"`}},
		{in: `yay'foo'bar`, words: []string{`yay'foo'bar`}},
		{in: `yay'foo'bar`, flags: U, words: []string{"yayfoobar"}},
		{in: "   foobar   ", words: []string{"foobar"}},
		{in: ` foo\ba\x6ar `, flags: C, words: []string{"foo\bajr"}},
		{in: ` foo\ba\x6ar `, words: []string{"foobax6ar"}},
		{in: `    f\u00f6o "pi\U0001F4A9le"   `, flags: U | C, words: []string{"föo", "pi💩le"}},
		{in: `fooo\`, flags: R, words: []string{"fooo"}},
		{in: `fooo\`, flags: CR, words: []string{`fooo\`}},
		{in: `fooo\`, flags: CR | R, words: []string{`fooo\`}},
		{in: `fooo\`, flags: C | CR, words: []string{`fooo\`}},
		{in: `fooo\`, bad: true},
		{in: `"foo\`, bad: true},
		{in: `"foo\`, flags: U | R, words: []string{"foo"}},
		{in: `"foo\`, flags: U | CR, bad: true},
		{in: `"foo\`, flags: U | CR | R, words: []string{`foo\`}},
		{in: `"foo\`, flags: U | C | CR | R, words: []string{`foo\`}},
		{in: `fooo\ bar quux`, flags: R, words: []string{"fooo bar", "quux"}},
		{in: `fooo\ bar quux`, flags: CR, words: []string{"fooo bar", "quux"}},
		{in: `fooo\ bar quux`, flags: C, bad: true},
		{in: `fooo\ bar quux`, flags: C | CR, words: []string{`fooo\ bar`, "quux"}},
		{in: `\w+@\K[\d.]+`, flags: C, bad: true},
		{in: `\w+@\K[\d.]+`, flags: C | CR, words: []string{`\w+@\K[\d.]+`}},
		{in: `\w+\b`, flags: C | CR, words: []string{"\\w+\b"}},
		{in: `-N ''`, flags: U, words: []string{"-N", ""}},
		{in: `foo\xbar`, words: []string{"fooxbar"}},
		{in: "", words: nil},
		{in: " \t\r\n ", words: nil},
		// test-strv.c: test_strv_unquote and the QUOTES_STRING table.
		{in: `    foo=bar     "waldo"    zzz    `, flags: U, words: []string{"foo=bar", "waldo", "zzz"}},
		{in: `  "x"   `, flags: U, words: []string{"x"}},
		{in: `  'x"'   `, flags: U, words: []string{`x"`}},
		{in: `  "x'"   `, flags: U, words: []string{`x'`}},
		{in: `a  '--b=c "d e"'`, flags: U, words: []string{"a", `--b=c "d e"`}},
		{in: `  x\\`, flags: U, words: []string{`x\`}},
		{in: `  x\`, flags: U, bad: true},
		{in: `"\"" "\'" "\"\"" "\\" "\\\\"`, flags: U, words: []string{`"`, `'`, `""`, `\`, `\\`}},
		{in: `"\"" "\'" "\"\"" "\\" "\\\\"`, flags: U | C, words: []string{`"`, `'`, `""`, `\`, `\\`}},
		// C escapes.
		{in: `\a\b\f\n\r\t\v\\\"\'\s`, flags: C, words: []string{"\a\b\f\n\r\t\v\\\"' "}},
		{in: `\101\x42\u0043\U00000044`, flags: C, words: []string{"ABCD"}},
		{in: `\377`, flags: C, words: []string{"\xff"}},
		{in: `\400`, flags: C, bad: true},   // above 255
		{in: `\000`, flags: C, bad: true},   // NUL
		{in: `\x00`, flags: C, bad: true},   // NUL
		{in: `\u0000`, flags: C, bad: true}, // NUL
		{in: `\x4`, flags: C, bad: true},
		{in: `\xg0`, flags: C, bad: true},
		{in: `\UDFFF0000`, flags: C, bad: true}, // above U+10FFFF
		{in: `\U0000D800`, flags: C, bad: true}, // surrogate
		{in: `\uD800`, flags: C, words: []string{"\xed\xa0\x80"}},
		{in: `\12`, flags: C, bad: true},
		{in: `'a\tb'`, flags: U | C, words: []string{"a\tb"}},
		{in: `"a b"c' d'`, flags: U, words: []string{"a bc d"}},
	}
	for _, tt := range tests {
		var got []string
		s := tt.in
		bad := false
		for {
			w, rest, found, err := extractFirstWord(s, tt.flags)
			if err != nil {
				bad = true
				break
			}
			if !found {
				break
			}
			got = append(got, w)
			s = rest
		}
		if bad != tt.bad {
			t.Errorf("extractFirstWord(%q, %#x): error %v, want %v", tt.in, tt.flags, bad, tt.bad)
			continue
		}
		if !tt.bad {
			if d := diff(tt.words, got); d != "" {
				t.Errorf("extractFirstWord(%q, %#x): %s", tt.in, tt.flags, d)
			}
		}
	}
}

// From test_extract_first_word_and_warn in test-extract-word.c.
func TestExtractWordWarn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    string
		flags extractFlags
		want  string
		warn  bool
		bad   bool
	}{
		{in: "foobar waldo", want: "foobar"},
		{in: `fooo\`, want: `fooo\`, warn: true},
		{in: `fooo\`, flags: extractCUnescape, want: `fooo\`, warn: true},
		{in: `"foo\`, flags: extractUnquote, bad: true},
		{in: `"foo\`, flags: extractUnquote | extractRelax, want: "foo"},
		{in: `"foo\`, flags: extractUnquote | extractCUnescape, bad: true},
		{in: `fooo\ bar quux`, want: "fooo bar"},
		{in: `fooo\ bar quux`, flags: extractCUnescape, want: `fooo\ bar`, warn: true},
		{in: `\w+@\K[\d.]+`, flags: extractCUnescape, want: `\w+@\K[\d.]+`, warn: true},
		{in: `\w+\b`, flags: extractCUnescape, want: "\\w+\b", warn: true},
		{in: `'unbalanced`, flags: extractUnquote | extractCUnescape, bad: true},
	}
	for _, tt := range tests {
		w, _, _, warn, err := extractWordWarn(tt.in, tt.flags)
		if (err != nil) != tt.bad {
			t.Errorf("extractWordWarn(%q): err %v, want error %v", tt.in, err, tt.bad)
			continue
		}
		if tt.bad {
			continue
		}
		if w != tt.want || (warn != "") != tt.warn {
			t.Errorf("extractWordWarn(%q) = %q, warning %q; want %q, warning %v", tt.in, w, warn, tt.want, tt.warn)
		}
	}
}
