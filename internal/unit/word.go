package unit

import (
	"errors"
	"fmt"
	"strings"
)

// whitespace is systemd's WHITESPACE: the separators of words in unit files.
const whitespace = " \t\n\r"

func isWhitespace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// extractFlags are the flags of systemd's extract_first_word() that luod uses.
type extractFlags uint8

const (
	extractUnquote       extractFlags = 1 << iota // EXTRACT_UNQUOTE: remove '…' and "…"
	extractCUnescape                              // EXTRACT_CUNESCAPE: decode \n, \x41, …
	extractUnescapeRelax                          // EXTRACT_UNESCAPE_RELAX: keep unknown escapes verbatim
	extractRelax                                  // EXTRACT_RELAX: accept unbalanced quotes and a trailing backslash
)

var errBadWord = errors.New(`invalid escape sequence or unbalanced quoting (write \\ for a backslash)`)

// extractFirstWord is systemd's extract_first_word(p, &word, WHITESPACE,
// flags) (src/basic/extract-word.c). It returns the first word of s, what
// follows it with the separators after the word removed, and whether s had
// a word at all (it has none when it is empty or only whitespace). Quotes may
// start anywhere in a word ("a'b c'd" is the word "ab cd"); a backslash
// escapes the next character, inside quotes too.
func extractFirstWord(s string, flags extractFlags) (word, rest string, found bool, err error) {
	i := 0
	for i < len(s) && isWhitespace(s[i]) {
		i++
	}
	if i == len(s) {
		return "", "", false, nil
	}
	var b []byte
	var quote byte
	backslash := false
	for {
		switch {
		case backslash:
			backslash = false
			if i >= len(s) {
				if flags&extractUnescapeRelax != 0 && (quote == 0 || flags&extractRelax != 0) {
					return string(append(b, '\\')), "", true, nil
				}
				if flags&extractRelax != 0 {
					return string(b), "", true, nil
				}
				return "", "", false, errBadWord
			}
			c := s[i]
			if flags&extractCUnescape == 0 {
				b = append(b, c)
				i++
				continue
			}
			r, n, eightBit, ok := cunescapeOne(s[i:])
			switch {
			case ok && eightBit:
				b = append(b, byte(r))
				i += n
			case ok:
				b = appendUnichar(b, r)
				i += n
			case flags&extractUnescapeRelax != 0:
				b = append(b, '\\', c)
				i++
			default:
				return "", "", false, errBadWord
			}
		case quote != 0:
			for {
				if i >= len(s) {
					if flags&extractRelax != 0 {
						return string(b), "", true, nil
					}
					return "", "", false, errBadWord
				}
				c := s[i]
				i++
				if c == quote {
					quote = 0
					break
				}
				if c == '\\' {
					backslash = true
					break
				}
				b = append(b, c)
			}
		default:
			for {
				if i >= len(s) {
					return string(b), "", true, nil
				}
				c := s[i]
				if (c == '\'' || c == '"') && flags&extractUnquote != 0 {
					quote = c
					i++
					break
				}
				if c == '\\' {
					backslash = true
					i++
					break
				}
				if isWhitespace(c) {
					for i < len(s) && isWhitespace(s[i]) {
						i++
					}
					return string(b), s[i:], true, nil
				}
				b = append(b, c)
				i++
			}
		}
	}
}

// extractWordWarn is systemd's extract_first_word_and_warn(): when the
// strict parse fails, it retries keeping unknown escape sequences verbatim
// and returns a warning; if that fails too, the quoting is unbalanced.
func extractWordWarn(s string, flags extractFlags) (word, rest string, found bool, warning string, err error) {
	word, rest, found, err = extractFirstWord(s, flags)
	if err == nil {
		return word, rest, found, "", nil
	}
	word, rest, found, err = extractFirstWord(s, flags|extractUnescapeRelax)
	if err == nil {
		return word, rest, found, fmt.Sprintf("ignoring unknown escape sequences in %s", quote(word)), nil
	}
	return "", "", false, "", errors.New("unbalanced quoting")
}

// splitWords splits s into words the way systemd's strv_split_full() does.
func splitWords(s string, flags extractFlags) ([]string, error) {
	var words []string
	for {
		w, rest, found, err := extractFirstWord(s, flags)
		if err != nil {
			return nil, err
		}
		if !found {
			return words, nil
		}
		words = append(words, w)
		s = rest
	}
}

func unhex(c byte) (int, bool) {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0'), true
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10, true
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10, true
	}
	return 0, false
}

// unhexN decodes up to 8 hex digits.
func unhexN(s string) (uint32, bool) {
	var v uint32
	for i := 0; i < len(s); i++ {
		d, ok := unhex(s[i])
		if !ok {
			return 0, false
		}
		v = v<<4 | uint32(d)
	}
	return v, true
}

// cunescapeOne is systemd's cunescape_one() with accept_nul=false: it
// decodes the escape sequence at the start of p (p follows the backslash).
// It returns the character, how many bytes of p it used, and whether the
// character is a raw byte (\xNN, \NNN) rather than a Unicode code point.
func cunescapeOne(p string) (r rune, n int, eightBit bool, ok bool) {
	if p == "" {
		return 0, 0, false, false
	}
	switch c := p[0]; c {
	case 'a':
		return '\a', 1, false, true
	case 'b':
		return '\b', 1, false, true
	case 'f':
		return '\f', 1, false, true
	case 'n':
		return '\n', 1, false, true
	case 'r':
		return '\r', 1, false, true
	case 't':
		return '\t', 1, false, true
	case 'v':
		return '\v', 1, false, true
	case '\\', '"', '\'':
		return rune(c), 1, false, true
	case 's':
		return ' ', 1, false, true
	case 'x':
		if len(p) < 3 {
			return 0, 0, false, false
		}
		v, ok := unhexN(p[1:3])
		if !ok || v == 0 {
			return 0, 0, false, false
		}
		return rune(v), 3, true, true
	case 'u':
		if len(p) < 5 {
			return 0, 0, false, false
		}
		v, ok := unhexN(p[1:5])
		if !ok || v == 0 {
			return 0, 0, false, false
		}
		return rune(v), 5, false, true
	case 'U':
		if len(p) < 9 {
			return 0, 0, false, false
		}
		v, ok := unhexN(p[1:9])
		if !ok || v == 0 || !unicharIsValid(v) {
			return 0, 0, false, false
		}
		return rune(v), 9, false, true
	case '0', '1', '2', '3', '4', '5', '6', '7':
		if len(p) < 3 {
			return 0, 0, false, false
		}
		var v rune
		for i := 0; i < 3; i++ {
			if p[i] < '0' || p[i] > '7' {
				return 0, 0, false, false
			}
			v = v<<3 | rune(p[i]-'0')
		}
		if v == 0 || v > 255 {
			return 0, 0, false, false
		}
		return v, 3, true, true
	}
	return 0, 0, false, false
}

// unicharIsValid is systemd's unichar_is_valid().
func unicharIsValid(c uint32) bool {
	switch {
	case c >= 0x110000:
		return false
	case c&0xFFFFF800 == 0xD800:
		return false
	case c >= 0xFDD0 && c <= 0xFDEF:
		return false
	case c&0xFFFE == 0xFFFE:
		return false
	}
	return true
}

// appendUnichar is systemd's utf8_encode_unichar(). Unlike utf8.AppendRune
// it encodes surrogates (reachable through \uD800) as systemd does.
func appendUnichar(b []byte, c rune) []byte {
	switch {
	case c < 0x80:
		return append(b, byte(c))
	case c < 0x800:
		return append(b, byte(0xc0|c>>6), byte(0x80|c&0x3f))
	case c < 0x10000:
		return append(b, byte(0xe0|c>>12), byte(0x80|(c>>6)&0x3f), byte(0x80|c&0x3f))
	case c < 0x110000:
		return append(b, byte(0xf0|c>>18), byte(0x80|(c>>12)&0x3f), byte(0x80|(c>>6)&0x3f), byte(0x80|c&0x3f))
	}
	return b
}

// hasControl reports whether s has a control character (below 0x20, or DEL).
func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}
