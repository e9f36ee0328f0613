package unit

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	sdunit "github.com/coreos/go-systemd/v22/unit"
)

// The go-systemd parser returns options without line numbers. scan walks
// the raw bytes with the same state machine as its lexer
// (github.com/coreos/go-systemd/v22/unit/deserialize.go) and records the
// line each section header and each key is on. Because both walk the input
// the same way, the i-th option scan finds is the i-th option go-systemd
// returns; parse checks that (and FuzzParse checks it on random input).

// scannedSection is a section header and the line it is on.
type scannedSection struct {
	name string
	line int
}

// scannedOption is one assignment as go-systemd returns it, and the line of
// its key.
type scannedOption struct {
	section, name, value string
	line                 int
}

const errNoEquals = `line without "=" (want Key=Value, or a [Section] header)`

// scanError is a syntax error go-systemd also reports, with its line.
type scanError struct {
	line int
	msg  string
}

// scanResult is what scan finds in a unit file.
type scanResult struct {
	sections []scannedSection // in file order
	options  []scannedOption  // in file order
	// strayLine is the first line with text before the first section,
	// which go-systemd (like systemd) ignores; 0 if there is none.
	strayLine int
}

type scanner struct {
	data     []byte
	pos      int
	lastSize int
	// lineOff and line are an offset and the 1-based line it is on, from
	// which lineOf counts: scan asks for the lines of increasing offsets.
	lineOff, line int
	scanResult
}

// scan returns the sections and options of a unit file.
func scan(data []byte) (scanResult, *scanError) {
	s := &scanner{data: data, line: 1}
	// An option takes a line and an '=': make room for as many options as
	// there can be, so that the slice does not grow by copying.
	s.options = make([]scannedOption, 0, min(bytes.Count(data, []byte{'\n'})+1, bytes.Count(data, []byte{'='})))
	err := s.run()
	return s.scanResult, err
}

// lineOf returns the 1-based line of the byte at offset off.
func (s *scanner) lineOf(off int) int {
	if off < s.lineOff {
		s.lineOff, s.line = 0, 1
	}
	s.line += bytes.Count(s.data[s.lineOff:off], []byte{'\n'})
	s.lineOff = off
	return s.line
}

func (s *scanner) readRune() (rune, bool) {
	if s.pos >= len(s.data) {
		return 0, false
	}
	r, n := utf8.DecodeRune(s.data[s.pos:])
	s.pos += n
	s.lastSize = n
	return r, true
}

func (s *scanner) unreadRune() { s.pos -= s.lastSize }

// toEOL returns the rest of the line without its line ending, and whether
// the input ended before a '\n' was found. Like go-systemd it removes a
// '\r' only when no '\n' follows it.
func (s *scanner) toEOL() (line []byte, eof bool) {
	rest := s.data[s.pos:]
	i := bytes.IndexByte(rest, '\n')
	if i < 0 {
		line, eof = rest, true
		s.pos = len(s.data)
	} else {
		line = rest[:i+1]
		s.pos += i + 1
	}
	line = bytes.TrimSuffix(line, []byte{'\r'})
	line = bytes.TrimSuffix(line, []byte{'\n'})
	return line, eof
}

func isCommentRune(r rune) bool { return r == '#' || r == ';' }

// ignoreLine skips a comment, which, as in go-systemd, goes on to the next
// line when it ends in a backslash.
func (s *scanner) ignoreLine() {
	for {
		line, _ := s.toEOL()
		line = bytes.TrimSuffix(line, []byte{' '})
		if !bytes.HasSuffix(line, []byte{'\\'}) {
			return
		}
	}
}

func (s *scanner) run() *scanError {
	inSection := false
	var section string
	for {
		r, ok := s.readRune()
		if !ok {
			return nil
		}
		switch {
		case r == '[':
			start := s.pos - 1
			i := bytes.IndexByte(s.data[s.pos:], ']')
			if i < 0 {
				return &scanError{s.lineOf(start), `section header without "]"`}
			}
			section = string(s.data[s.pos : s.pos+i])
			s.pos += i + 1
			garbage, _ := s.toEOL()
			if len(bytes.TrimSpace(garbage)) > 0 {
				return &scanError{s.lineOf(start), "text after the section header"}
			}
			s.sections = append(s.sections, scannedSection{section, s.lineOf(start)})
			inSection = true
		case isCommentRune(r):
			s.ignoreLine()
		case unicode.IsSpace(r):
		case !inSection:
			// Before the first section go-systemd skips anything else.
			if s.strayLine == 0 {
				s.strayLine = s.lineOf(s.pos - s.lastSize)
			}
		default:
			s.unreadRune()
			if err := s.option(section); err != nil {
				return err
			}
		}
	}
}

func (s *scanner) option(section string) *scanError {
	start := s.pos
	var name strings.Builder
	for {
		r, ok := s.readRune()
		if !ok {
			return &scanError{s.lineOf(start), errNoEquals}
		}
		if r == '\n' || r == '\r' {
			return &scanError{s.lineOf(start), errNoEquals}
		}
		if r == '=' {
			break
		}
		name.WriteRune(r)
	}
	var value bytes.Buffer
	for {
		line, eof := s.toEOL()
		if len(bytes.TrimSpace(line)) == 0 {
			break
		}
		value.Write(line)
		if !bytes.HasSuffix(line, []byte{'\\'}) {
			break
		}
		if !eof {
			value.WriteByte('\n')
		}
	}
	v := value.String()
	if strings.HasSuffix(v, "\n") {
		v = strings.TrimSpace(v) + "\n"
	} else {
		v = strings.TrimSpace(v)
	}
	s.options = append(s.options, scannedOption{
		section: section,
		name:    strings.TrimSpace(name.String()),
		value:   v,
		line:    s.lineOf(start),
	})
	return nil
}

// joinContinuations turns a value as go-systemd returns it into the value
// systemd sees: go-systemd keeps each continuation as backslash-newline,
// systemd replaces the backslash by a space and skips continuation lines
// that are comments.
func joinContinuations(v string) string {
	if !strings.Contains(v, "\\\n") {
		return v
	}
	parts := strings.Split(v, "\\\n")
	kept := parts[:1]
	for _, p := range parts[1:] {
		t := strings.TrimLeft(p, whitespace)
		if t != "" && (t[0] == '#' || t[0] == ';') {
			continue
		}
		kept = append(kept, p)
	}
	return strings.TrimSpace(strings.Join(kept, " "))
}

// checkLines applies to data, a unit file, the checks systemd makes of
// each line before its syntax, and returns a *ParseError for the first
// line that fails them.
//
// systemd's config_parse() fails on a line, comments excepted, that is not
// valid UTF-8 (log_syntax_invalid_utf8(), "String is not UTF-8 clean").
// go-systemd reads an invalid byte in a key as U+FFFD, so the check must be
// made here, on the raw bytes.
//
// Lines too long give errors wrapping ErrLineTooLong. config_parse() reads
// each line with read_line(f, LONG_LINE_MAX, …), which fails once it has
// read LONG_LINE_MAX bytes of a line without reaching its end: a line may
// have at most MaxLineLength-1 bytes before its newline. Then it joins the
// lines of a continued value (each ending in an unescaped backslash, which
// becomes a space), skipping comment lines, and fails when they add up to
// more than LONG_LINE_MAX bytes. Lines end at '\n' here, a '\r' before it
// being part of the line ending; systemd also ends a line at a lone '\r',
// so a line with one near the limit may be refused here and not there.
func checkLines(file string, data []byte) error {
	joined := -1 // the length of the continued line so far; -1 if none
	for n := 1; len(data) > 0; n++ {
		line, rest, _ := bytes.Cut(data, []byte{'\n'})
		data = rest
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) >= MaxLineLength {
			return &ParseError{File: file, Line: n, Err: fmt.Errorf("%w (%d bytes, at most %d before the newline)", ErrLineTooLong, len(line), MaxLineLength-1)}
		}
		if t := bytes.TrimLeft(line, whitespace); len(t) > 0 && (t[0] == '#' || t[0] == ';') {
			continue
		}
		if !utf8.Valid(line) {
			return &ParseError{File: file, Line: n, Err: fmt.Errorf("line is not valid UTF-8: %s", quote(string(line)))}
		}
		total := len(line)
		if joined >= 0 {
			total += joined
			if total > MaxLineLength {
				return &ParseError{File: file, Line: n, Err: fmt.Errorf("%w (%d bytes with the lines it continues, at most %d)", ErrLineTooLong, total, MaxLineLength)}
			}
		}
		joined = -1
		if endsInEscape(line) {
			joined = total
		}
	}
	return nil
}

// endsInEscape reports whether line ends in a backslash that is not itself
// escaped, which continues it on the next line in systemd.
func endsInEscape(line []byte) bool {
	n := len(line) - len(bytes.TrimRight(line, "\\"))
	return n%2 == 1
}

// unitOptions returns the options as go-systemd returns them.
func (r scanResult) unitOptions() []*sdunit.UnitOption {
	opts := make([]*sdunit.UnitOption, len(r.options))
	for i, o := range r.options {
		opts[i] = &sdunit.UnitOption{Section: o.section, Name: o.name, Value: o.value}
	}
	return opts
}
