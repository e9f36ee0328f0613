package unit

import (
	"bytes"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
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
	newlines []int // offsets of every '\n', to turn offsets into lines
	scanResult
}

// scan returns the sections and options of a unit file.
func scan(data []byte) (scanResult, *scanError) {
	s := &scanner{data: data}
	for i, b := range data {
		if b == '\n' {
			s.newlines = append(s.newlines, i)
		}
	}
	err := s.run()
	return s.scanResult, err
}

// lineOf returns the 1-based line of the byte at offset off.
func (s *scanner) lineOf(off int) int {
	return 1 + sort.SearchInts(s.newlines, off)
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

// longLine returns the first line longer than go-systemd's limit, or 0.
func longLine(data []byte) int {
	const max = 2048 // unit.SYSTEMD_LINE_MAX
	for n, line := range bytes.Split(data, []byte{'\n'}) {
		if len(line) >= max {
			return n + 1
		}
	}
	return 0
}
