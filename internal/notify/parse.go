package notify

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/liveupdate/luo/sdnotify"
)

// statusTextMax is systemd's STATUS_TEXT_MAX. BufferMax makes it
// unreachable; it is checked anyway, as systemd does.
const statusTextMax = 16 * 1024

// Parse parses the payload of one notification datagram. The result has no
// credentials and no files; Receive adds them.
//
// Parse returns a *DropError (with PID 0) in the cases where systemd drops
// the whole message: a NUL byte other than a single trailing one, or a lone
// backslash at the end. Problems with single fields never make it fail; they
// are listed in Message.Problems.
func Parse(payload []byte) (*Message, error) {
	if n := len(payload); n > 0 && payload[n-1] == 0 {
		payload = payload[:n-1]
	}
	if bytes.IndexByte(payload, 0) >= 0 {
		return nil, &DropError{Reason: reasonEmbeddedNUL}
	}
	lines, err := splitLines(string(payload))
	if err != nil {
		return nil, &DropError{Reason: reasonTrailingEscape}
	}
	m := &Message{FDPoll: true}
	for _, l := range lines {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			m.Ignored = append(m.Ignored, l)
			continue
		}
		m.Fields = append(m.Fields, Field{Key: k, Value: v})
	}
	m.interpret()
	return m, nil
}

var errTrailingBackslash = errors.New("lone backslash at the end")

// splitLines splits s like systemd's strv_split_newlines(), that is
// extract_first_word() with the separators "\n\r" and no flags: runs of
// separators delimit lines, so there are no empty lines; a backslash is
// dropped and the byte after it taken literally, separators included; a
// backslash at the very end is an error.
func splitLines(s string) ([]string, error) {
	var lines []string
	var esc []byte // the current line, once it has an escape
	i := 0
	for {
		for i < len(s) && isNewline(s[i]) {
			i++
		}
		if i == len(s) {
			return lines, nil
		}
		start := i
		esc = esc[:0]
		escaped := false
		for i < len(s) && !isNewline(s[i]) {
			if s[i] != '\\' {
				i++
				continue
			}
			if i+1 == len(s) {
				return nil, errTrailingBackslash
			}
			escaped = true
			esc = append(esc, s[start:i]...)
			esc = append(esc, s[i+1])
			i += 2
			start = i
		}
		if escaped {
			esc = append(esc, s[start:i]...)
			lines = append(lines, string(esc))
		} else {
			lines = append(lines, s[start:i])
		}
	}
}

func isNewline(c byte) bool { return c == '\n' || c == '\r' }

// interpret fills in the typed view from m.Fields, in the order of
// service_notify_message().
func (m *Message) interpret() {
	first := func(key string) (string, bool) {
		for _, f := range m.Fields {
			if f.Key == key {
				return f.Value, true
			}
		}
		return "", false
	}
	has := func(key, value string) bool {
		for _, f := range m.Fields {
			if f.Key == key && f.Value == value {
				return true
			}
		}
		return false
	}
	problem := func(format string, v string) {
		m.Problems = append(m.Problems, fmt.Sprintf(format, quoteForLog(truncate(v, stringStatusMax))))
	}

	// service_notify_message_parse_new_pid().
	m.MainPIDFD = has("MAINPIDFD", "1")
	if v, ok := first("MAINPID"); ok {
		if pid, ok := parsePID(v); ok {
			m.MainPID = pid
			if v, ok := first("MAINPIDFDID"); ok {
				if id, ok := parseUint64(v); ok {
					m.MainPIDFDID, m.HasMainPIDFDID = id, true
				} else {
					m.MainPID = 0
					problem("failed to parse MAINPIDFDID= in notification message, refusing: %s", v)
				}
			}
		} else {
			problem("failed to parse MAINPID=%s field in notification message, ignoring", v)
		}
	}

	// service_notify_message_process_state().
	if v, ok := first("MONOTONIC_USEC"); ok {
		if u, ok := parseUint64(v); ok {
			m.MonotonicUsec, m.HasMonotonic = u, true
		} else {
			problem("failed to parse MONOTONIC_USEC= field in notification message, ignoring: %s", v)
		}
	}
	m.Stopping = has("STOPPING", "1")
	m.Ready = has("READY", "1")
	m.Reloading = has("RELOADING", "1")

	if v, ok := first("STATUS"); ok {
		switch {
		case len(v) > statusTextMax:
			m.Problems = append(m.Problems, fmt.Sprintf("status message overly long (%d > %d), ignoring", len(v), statusTextMax))
			v = ""
		case !validUTF8(v):
			m.Problems = append(m.Problems, "status message in notification message is not UTF-8 clean, ignoring")
			v = ""
		}
		m.Status = &v
	}

	if v, ok := first("NOTIFYACCESS"); ok {
		switch v {
		case "none", "main", "exec", "all":
			m.NotifyAccess = v
		default:
			problem("failed to parse NOTIFYACCESS= field value %s in notification message, ignoring", v)
		}
	}

	if v, ok := first("ERRNO"); ok {
		if e, ok := parseErrno(v); ok {
			m.Errno, m.HasErrno = e, true
		} else {
			problem("failed to parse ERRNO= field value %s in notification message", v)
		}
	}

	for _, e := range []struct {
		key string
		dst **string
	}{
		{"BUSERROR", &m.BusError},
		{"VARLINKERROR", &m.VarlinkError},
	} {
		v, ok := first(e.key)
		if !ok {
			continue
		}
		if !safeASCII(v) {
			problem("got invalid "+e.key+"= string, ignoring: %s", v)
			continue
		}
		*e.dst = &v
	}

	if v, ok := first("EXTEND_TIMEOUT_USEC"); ok {
		if u, ok := parseUint64(v); ok {
			m.ExtendTimeoutUsec, m.HasExtendTimeout = u, true
		} else {
			problem("failed to parse EXTEND_TIMEOUT_USEC=%s", v)
		}
	}

	if v, ok := first("WATCHDOG"); ok {
		switch v {
		case "1":
			m.Watchdog = true
		case "trigger":
			m.WatchdogTrigger = true
		default:
			problem("passed WATCHDOG= field is invalid, ignoring: %s", v)
		}
	}
	if v, ok := first("WATCHDOG_USEC"); ok {
		if u, ok := parseUint64(v); ok {
			m.WatchdogUsec, m.HasWatchdogUsec = u, true
		} else {
			problem("failed to parse WATCHDOG_USEC=%s", v)
		}
	}

	m.RestartReset = has("RESTART_RESET", "1")

	m.FDStoreRemove = has("FDSTOREREMOVE", "1")
	m.FDStore = has("FDSTORE", "1")
	m.FDName, m.HasFDName = first("FDNAME")
	m.FDNameValid = m.HasFDName && sdnotify.ValidFDName(m.FDName) == nil
	m.FDPoll = !has("FDPOLL", "0")
	switch {
	case m.FDStoreRemove && !m.FDNameValid:
		m.Problems = append(m.Problems, "FDSTOREREMOVE=1 requested, but no valid file descriptor name passed, ignoring")
	case m.FDStore && !m.FDStoreRemove && m.HasFDName && !m.FDNameValid:
		m.Problems = append(m.Problems, "passed FDNAME= name is invalid, ignoring")
	}

	m.Barrier = has("BARRIER", "1")
}

// ExtendTimeout returns ExtendTimeoutUsec as a Duration, saturated at the
// largest Duration (which USEC_INFINITY, "forever", maps to).
func (m *Message) ExtendTimeout() time.Duration { return usecDuration(m.ExtendTimeoutUsec) }

// WatchdogTimeout returns WatchdogUsec as a Duration, saturated like
// ExtendTimeout.
func (m *Message) WatchdogTimeout() time.Duration { return usecDuration(m.WatchdogUsec) }

func usecDuration(usec uint64) time.Duration {
	if usec > math.MaxInt64/uint64(time.Microsecond) {
		return math.MaxInt64
	}
	return time.Duration(usec) * time.Microsecond
}

// whitespace is systemd's WHITESPACE, which its safe_ato*() functions skip
// before the number.
const whitespace = " \t\n\r"

// parseUint64 parses s like systemd's safe_atou64(): leading whitespace,
// then "0b" for binary or "0o" for octal, or else C's strtoull() with base
// 0 (so "0x" is hexadecimal and a leading 0 octal); a '-' directly in front
// of a non-zero number is an error.
func parseUint64(s string) (uint64, bool) {
	s = strings.TrimLeft(s, whitespace)
	s, base := mangleBase(s)
	mag, neg, ok := strtoull(s, base)
	if !ok {
		return 0, false
	}
	v := mag
	if neg {
		v = -mag
	}
	if v != 0 && s != "" && s[0] == '-' {
		return 0, false
	}
	return v, true
}

// parsePID parses s like systemd's parse_pid(): safe_atolu(), and then the
// result must be a valid pid_t, 1 to 2^31-1.
func parsePID(s string) (int, bool) {
	v, ok := parseUint64(s)
	if !ok || v < 1 || v > math.MaxInt32 {
		return 0, false
	}
	return int(v), true
}

// errnoMax is systemd's ERRNO_MAX.
const errnoMax = 4095

// parseErrno parses s like systemd's parse_errno(): an errno name such as
// "EIO", or a number from 0 to 4095 (safe_atoi() syntax).
func parseErrno(s string) (int, bool) {
	if e := errnoFromName(s); e > 0 {
		return e, true
	}
	s = strings.TrimLeft(s, whitespace)
	s, base := mangleBase(s)
	mag, neg, ok := strtoull(s, base)
	if !ok || (neg && mag != 0) || mag > errnoMax {
		return 0, false
	}
	return int(mag), true
}

// mangleBase is systemd's mangle_base() for base 0: Python-style "0b" and
// "0o" prefixes select base 2 and 8; otherwise the base is left to
// strtoull() (0).
func mangleBase(s string) (string, int) {
	if len(s) >= 2 && s[0] == '0' {
		switch s[1] {
		case 'b', 'B':
			return s[2:], 2
		case 'o', 'O':
			return s[2:], 8
		}
	}
	return s, 0
}

// strtoull parses all of s like C's strtoull() with the given base (0, 2 or
// 8), demanding that every byte be consumed: leading C whitespace, an
// optional sign, and for base 0 a "0x" (hexadecimal) or "0" (octal) prefix.
// It returns the magnitude and whether a '-' was given; ok is false when
// there are no digits, trailing bytes, or the magnitude overflows.
func strtoull(s string, base int) (mag uint64, neg, ok bool) {
	i := 0
	for i < len(s) && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r')) {
		i++
	}
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	if base == 0 {
		switch {
		case i+2 < len(s) && s[i] == '0' && (s[i+1] == 'x' || s[i+1] == 'X') && digitValue(s[i+2]) < 16:
			base = 16
			i += 2
		case i < len(s) && s[i] == '0':
			base = 8
		default:
			base = 10
		}
	}
	start := i
	for ; i < len(s); i++ {
		d := digitValue(s[i])
		if d >= base {
			break
		}
		if mag > (math.MaxUint64-uint64(d))/uint64(base) {
			return 0, false, false
		}
		mag = mag*uint64(base) + uint64(d)
	}
	if i == start || i != len(s) {
		return 0, false, false
	}
	return mag, neg, true
}

// digitValue returns the value of c as a digit in bases up to 16, or 16.
func digitValue(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return 16
}

// validUTF8 is systemd's utf8_is_valid(): well-formed UTF-8 that encodes no
// surrogates and no noncharacters (U+FDD0 to U+FDEF, and U+xFFFE and U+xFFFF
// in every plane).
func validUTF8(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if (r >= 0xfdd0 && r <= 0xfdef) || r&0xfffe == 0xfffe {
			return false
		}
	}
	return true
}

// safeASCII is systemd's string_is_safe_ascii(): ASCII without control
// characters, DEL, quotes or backslashes.
func safeASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\'' || c == '\\' {
			return false
		}
	}
	return true
}
