package unit

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo/sdnotify"
)

// parseBoolean is systemd's parse_boolean(): ASCII case-insensitive.
func parseBoolean(s string) (bool, error) {
	switch asciiLower(s) {
	case "1", "yes", "y", "true", "t", "on":
		return true, nil
	case "0", "no", "n", "false", "f", "off":
		return false, nil
	}
	return false, errors.New("invalid boolean (want yes or no)")
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

const (
	usecPerSec   = 1_000_000
	usecPerMin   = 60 * usecPerSec
	usecPerHour  = 60 * usecPerMin
	usecPerDay   = 24 * usecPerHour
	usecPerWeek  = 7 * usecPerDay
	usecPerMonth = 2629800 * usecPerSec  // 30.44 days
	usecPerYear  = 31557600 * usecPerSec // 365.25 days
	usecInfinity = math.MaxUint64
)

// timeUnits is the suffix table of systemd's parse_time(), in its order:
// the first suffix that the text starts with wins.
var timeUnits = []struct {
	suffix string
	usec   uint64
}{
	{"seconds", usecPerSec}, {"second", usecPerSec}, {"sec", usecPerSec}, {"s", usecPerSec},
	{"minutes", usecPerMin}, {"minute", usecPerMin}, {"min", usecPerMin},
	{"months", usecPerMonth}, {"month", usecPerMonth}, {"M", usecPerMonth},
	{"msec", 1000}, {"ms", 1000}, {"m", usecPerMin},
	{"hours", usecPerHour}, {"hour", usecPerHour}, {"hr", usecPerHour}, {"h", usecPerHour},
	{"days", usecPerDay}, {"day", usecPerDay}, {"d", usecPerDay},
	{"weeks", usecPerWeek}, {"week", usecPerWeek}, {"w", usecPerWeek},
	{"years", usecPerYear}, {"year", usecPerYear}, {"y", usecPerYear},
	{"usec", 1}, {"us", 1}, {"μs", 1}, {"µs", 1},
}

var (
	errTimespan      = errors.New("invalid time span")
	errTimespanRange = errors.New("time span out of range")
)

// parseTimespan is systemd's parse_sec() (parse_time() with seconds as the
// default unit): "5", "5s", "1min 30s", "1.5h", "100 ms", "infinity". It
// returns microseconds, usecInfinity for "infinity".
func parseTimespan(t string) (uint64, error) {
	p := strings.TrimLeft(t, whitespace)
	if rest, ok := strings.CutPrefix(p, "infinity"); ok {
		if strings.Trim(rest, whitespace) != "" {
			return 0, errTimespan
		}
		return usecInfinity, nil
	}
	var usec uint64
	something := false
	for {
		p = strings.TrimLeft(p, whitespace)
		if p == "" {
			if !something {
				return 0, errTimespan
			}
			return usec, nil
		}
		if p[0] == '-' {
			return 0, errTimespanRange
		}
		l, e, err := strtoll(p)
		if err != nil {
			return 0, err
		}
		if l < 0 {
			return 0, errTimespanRange
		}
		frac := e < len(p) && p[e] == '.'
		var after string // p after the number
		switch {
		case frac:
			q := e + 1
			for q < len(p) && '0' <= p[q] && p[q] <= '9' {
				q++
			}
			after = p[q:]
		case e == 0:
			return 0, errTimespan
		default:
			after = p[e:]
		}
		multiplier := uint64(usecPerSec)
		s := strings.TrimLeft(after, whitespace)
		for _, u := range timeUnits {
			if rest, ok := strings.CutPrefix(s, u.suffix); ok {
				s, multiplier = rest, u.usec
				break
			}
		}
		if len(s) == len(after) && s != "" {
			// Neither whitespace nor a unit after the number: "12.34.56", "5x".
			return 0, errTimespan
		}
		if uint64(l) >= usecInfinity/multiplier {
			return 0, errTimespanRange
		}
		k := uint64(l) * multiplier
		if k >= usecInfinity-usec {
			return 0, errTimespanRange
		}
		usec += k
		something = true
		if frac {
			m := multiplier / 10
			b := e + 1
			for ; b < len(p) && '0' <= p[b] && p[b] <= '9'; b++ {
				k := uint64(p[b]-'0') * m
				if k >= usecInfinity-usec {
					return 0, errTimespanRange
				}
				usec += k
				m /= 10
			}
			if b == e+1 {
				return 0, errTimespan // "3.", "3.s"
			}
		}
		p = s
	}
}

// strtoll is strtoll(p, &e, 10): it returns the value and the index just
// after the number, 0 when there is no number.
func strtoll(p string) (int64, int, error) {
	i := 0
	for i < len(p) && (isWhitespace(p[i]) || p[i] == '\v' || p[i] == '\f') {
		i++
	}
	neg := false
	if i < len(p) && (p[i] == '+' || p[i] == '-') {
		neg = p[i] == '-'
		i++
	}
	start := i
	var v int64
	for i < len(p) && '0' <= p[i] && p[i] <= '9' {
		d := int64(p[i] - '0')
		if v > (math.MaxInt64-d)/10 {
			return 0, 0, errTimespanRange
		}
		v = v*10 + d
		i++
	}
	if i == start {
		return 0, 0, nil
	}
	if neg {
		v = -v
	}
	return v, i, nil
}

// parseDuration parses a time span that must be finite.
func parseDuration(s string) (time.Duration, error) {
	usec, err := parseTimespan(s)
	if err != nil {
		return 0, err
	}
	if usec == usecInfinity {
		return 0, errors.New("must be finite")
	}
	return usecToDuration(usec)
}

// parseTimeout parses a timeout, where "infinity" and 0 both mean no
// timeout, returned as 0 (systemd's parse_sec_fix_0()).
func parseTimeout(s string) (time.Duration, error) {
	usec, err := parseTimespan(s)
	if err != nil {
		return 0, err
	}
	if usec == usecInfinity {
		return 0, nil
	}
	return usecToDuration(usec)
}

// parseInterval parses the interval of a rate limit, where "infinity" is
// Infinity.
func parseInterval(s string) (time.Duration, error) {
	usec, err := parseTimespan(s)
	if err != nil {
		return 0, err
	}
	if usec == usecInfinity {
		return Infinity, nil
	}
	return usecToDuration(usec)
}

func usecToDuration(usec uint64) (time.Duration, error) {
	if usec > math.MaxInt64/uint64(time.Microsecond) {
		return 0, errTimespanRange
	}
	return time.Duration(usec) * time.Microsecond, nil
}

const (
	sigRTMin  = 34 // SIGRTMIN as glibc (and so systemd) defines it
	sigRTMax  = 64
	maxSignal = 64 // _NSIG - 1 on Linux
)

// parseSignal is systemd's signal_from_string(): "SIGTERM", "TERM", "15",
// "RTMIN+3", "SIGRTMAX-1". Names are case-sensitive.
func parseSignal(s string) (syscall.Signal, error) {
	if isDigits(s) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxSignal {
			return 0, fmt.Errorf("signal number out of range (want 1 to %d)", maxSignal)
		}
		return syscall.Signal(n), nil
	}
	name := strings.TrimPrefix(s, "SIG")
	// rt parses what follows RTMIN or RTMAX: nothing, or op and a number.
	rt := func(base int, rest string, op byte) (syscall.Signal, error) {
		if rest == "" {
			return syscall.Signal(base), nil
		}
		if rest[0] != op || !isDigits(rest[1:]) {
			return 0, fmt.Errorf("invalid realtime signal (want RTMIN+n or RTMAX-n)")
		}
		n, err := strconv.Atoi(rest[1:])
		if err != nil || n > sigRTMax-sigRTMin {
			return 0, errors.New("realtime signal out of range")
		}
		if op == '-' {
			n = -n
		}
		return syscall.Signal(base + n), nil
	}
	if rest, ok := strings.CutPrefix(name, "RTMIN"); ok {
		return rt(sigRTMin, rest, '+')
	}
	if rest, ok := strings.CutPrefix(name, "RTMAX"); ok {
		return rt(sigRTMax, rest, '-')
	}
	if name != "" && !strings.HasPrefix(name, "SIG") {
		if sig := unix.SignalNum("SIG" + name); sig != 0 {
			return sig, nil
		}
	}
	return 0, errors.New("unknown signal (want a name like SIGTERM or TERM, or a number)")
}

// signalName returns the systemd spelling of sig, "SIGTERM".
func signalName(sig syscall.Signal) string {
	switch {
	case sig == sigRTMin:
		return "SIGRTMIN"
	case sig > sigRTMin && sig < sigRTMax:
		return fmt.Sprintf("SIGRTMIN+%d", sig-sigRTMin)
	case sig == sigRTMax:
		return "SIGRTMAX"
	}
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return strconv.Itoa(int(sig))
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseUnsigned parses a decimal number that fits in 32 bits (systemd's
// config_parse_unsigned()).
func parseUnsigned(s string) (uint, error) {
	if !isDigits(s) {
		return 0, errors.New("invalid number (want a non-negative decimal integer)")
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("number out of range (at most %d)", uint32(math.MaxUint32))
	}
	return uint(n), nil
}

// Unit names, as systemd's unit_name_is_valid() checks them.
const (
	serviceSuffix = ".service"
	unitNameMax   = 255
)

var errTemplate = errors.New("is a template (name@.service): only its instances can be loaded")

func isUnitNameChar(c byte) bool {
	return isAlnum(c) || c == ':' || c == '-' || c == '_' || c == '.' || c == '\\'
}

// checkUnitName checks that name is a valid service unit name:
// "prefix.service" or "prefix@instance.service".
func checkUnitName(name string) error {
	if len(name) > unitNameMax {
		return fmt.Errorf("unit name longer than %d bytes", unitNameMax)
	}
	base, ok := strings.CutSuffix(name, serviceSuffix)
	if !ok {
		return errors.New("unit name must end in .service")
	}
	prefix, instance, hasAt := strings.Cut(base, "@")
	if prefix == "" {
		return errors.New("unit name has an empty prefix")
	}
	for i := 0; i < len(prefix); i++ {
		if !isUnitNameChar(prefix[i]) {
			return fmt.Errorf("unit name has an invalid character %q (want A-Z a-z 0-9 : - _ . \\ and one @)", prefix[i])
		}
	}
	if !hasAt {
		return nil
	}
	if instance == "" {
		return errTemplate
	}
	for i := 0; i < len(instance); i++ {
		if !isUnitNameChar(instance[i]) && instance[i] != '@' {
			return fmt.Errorf("unit name has an invalid character %q in its instance", instance[i])
		}
	}
	return nil
}

// Paths.
const (
	pathMax = 4096 // PATH_MAX, with the NUL
	nameMax = 255  // NAME_MAX
)

// pathSimplify is systemd's path_simplify(): it drops duplicate slashes,
// "." components and a trailing slash. Unlike filepath.Clean it keeps "..".
func pathSimplify(p string) string {
	abs := strings.HasPrefix(p, "/")
	parts := strings.Split(p, "/")
	kept := parts[:0]
	for _, c := range parts {
		if c != "" && c != "." {
			kept = append(kept, c)
		}
	}
	s := strings.Join(kept, "/")
	switch {
	case abs:
		return "/" + s
	case s == "":
		return "."
	}
	return s
}

// pathIsValid is systemd's path_is_valid().
func pathIsValid(p string) bool {
	if p == "" || len(p) >= pathMax {
		return false
	}
	for _, c := range strings.Split(p, "/") {
		if len(c) > nameMax {
			return false
		}
	}
	return true
}

// pathIsNormalized is systemd's path_is_normalized(): valid, no "." or ".."
// component, no "//".
func pathIsNormalized(p string) bool {
	if !pathIsValid(p) || strings.Contains(p, "//") {
		return false
	}
	for _, c := range strings.Split(p, "/") {
		if c == "." || c == ".." {
			return false
		}
	}
	return true
}

// filenameIsValid is systemd's filename_is_valid().
func filenameIsValid(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.Contains(s, "/") && len(s) <= nameMax
}

// stringIsSafe is systemd's string_is_safe(): no control characters, no
// quotes, no backslash.
func stringIsSafe(s string) bool {
	return !hasControl(s) && !strings.ContainsAny(s, "'\"\\")
}

// absolutePath checks and simplifies a path that must be absolute
// (systemd's path_simplify_and_warn() with PATH_CHECK_ABSOLUTE).
func absolutePath(p string) (string, error) {
	switch {
	case !utf8.ValidString(p):
		return "", errors.New("path is not valid UTF-8")
	case !strings.HasPrefix(p, "/"):
		return "", errors.New("not an absolute path")
	}
	p = pathSimplify(p)
	switch {
	case !pathIsValid(p):
		return "", errors.New("path too long")
	case !pathIsNormalized(p):
		return "", errors.New(`path is not normalized (has a ".." component)`)
	}
	return p, nil
}

// envNameIsValid is systemd's env_name_is_valid(): bash's rules.
func envNameIsValid(s string) bool {
	if s == "" || ('0' <= s[0] && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' {
			return false
		}
	}
	return true
}

// envAssignmentIsValid is systemd's env_assignment_is_valid().
func envAssignmentIsValid(s string) bool {
	name, value, ok := strings.Cut(s, "=")
	return ok && envNameIsValid(name) && utf8.ValidString(value) && !strings.ContainsRune(value, 0)
}

// checkUserGroup checks a User= or Group= value like systemd's
// valid_user_group_name() in relaxed mode, numeric ids allowed.
func checkUserGroup(s string) error {
	switch {
	case s == "":
		return errors.New("empty name")
	case isDigits(s):
		if len(s) > 1 && s[0] == '0' {
			return errors.New("numeric id with a leading zero")
		}
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n == 0xFFFFFFFF || n == 0xFFFF {
			return errors.New("numeric id out of range (65535 and 4294967295 are invalid)")
		}
		return nil
	case strings.HasPrefix(s, " ") || strings.HasSuffix(s, " "):
		return errors.New("name starts or ends with a space")
	case !utf8.ValidString(s):
		return errors.New("name is not valid UTF-8")
	case hasControl(s):
		return errors.New("name has a control character")
	case strings.ContainsAny(s, ":/"):
		return errors.New(`name has a ":" or "/"`)
	case s[0] == '-' && isDigits(s[1:]):
		return errors.New("negative numeric id")
	case s == "." || s == "..":
		return errors.New(`name is "." or ".."`)
	}
	return nil
}

// checkLUOSessionName checks a LUOSession= name: systemd's
// luo_session_name_is_valid(), that is fdname_is_valid()
// ([sdnotify.ValidFDName]: bytes 0x20 to 0x7E, no ':', at most 255 bytes)
// and string_is_safe() without whitespace (no ' ', quotes or backslash).
// Empty names are refused too.
func checkLUOSessionName(s string) error {
	if s == "" {
		return errors.New("empty session name")
	}
	if err := sdnotify.ValidFDName(s); err != nil {
		return err
	}
	if i := strings.IndexAny(s, `'" \`); i >= 0 {
		return fmt.Errorf("session name has a %q at offset %d (not allowed: quotes, backslash, space)", s[i], i)
	}
	return nil
}

// sizeSuffixes are the units of parse_size() with base 1024, largest
// first.
var sizeSuffixes = []struct {
	suffix string
	factor float64
}{
	{"E", 1 << 60}, {"P", 1 << 50}, {"T", 1 << 40}, {"G", 1 << 30},
	{"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}, {"", 1},
}

// ParseSize is systemd's parse_size() with base 1024, as MemoryMax= reads
// sizes: a number of bytes with an optional suffix K, M, G, T, P or E
// (powers of 1024) or B, fractions allowed ("1.5G"), and several parts
// summed ("1G 512M").
func ParseSize(s string) (int64, error) {
	rest := strings.Trim(s, whitespace)
	if rest == "" {
		return 0, errors.New("empty size")
	}
	var total float64
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		num := rest[:i]
		if num == "" || strings.Count(num, ".") > 1 || num[0] == '.' || num[len(num)-1] == '.' {
			return 0, fmt.Errorf("invalid size %q", s)
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid size %q", s)
		}
		rest = strings.TrimLeft(rest[i:], whitespace)
		for _, sf := range sizeSuffixes {
			if sf.suffix == "" {
				if rest != "" && !(rest[0] >= '0' && rest[0] <= '9') {
					return 0, fmt.Errorf("invalid size %q (unknown unit at %q)", s, rest)
				}
				total += v
				break
			}
			if r, ok := strings.CutPrefix(rest, sf.suffix); ok {
				total += v * sf.factor
				rest = strings.TrimLeft(r, whitespace)
				break
			}
		}
		if total >= math.MaxInt64 {
			return 0, fmt.Errorf("size %q out of range", s)
		}
	}
	return int64(total), nil
}
