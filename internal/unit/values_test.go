package unit

import (
	"syscall"
	"testing"
	"time"
)

func TestParseBoolean(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"1", "yes", "y", "true", "t", "on", "YES", "True", "oN"} {
		if b, err := parseBoolean(s); err != nil || !b {
			t.Errorf("parseBoolean(%q) = %v, %v; want true", s, b, err)
		}
	}
	for _, s := range []string{"0", "no", "n", "false", "f", "off", "NO", "False", "OFF"} {
		if b, err := parseBoolean(s); err != nil || b {
			t.Errorf("parseBoolean(%q) = %v, %v; want false", s, b, err)
		}
	}
	for _, s := range []string{"", "2", "yess", "enable", " yes", "ſ", "nø"} {
		if _, err := parseBoolean(s); err == nil {
			t.Errorf("parseBoolean(%q): no error", s)
		}
	}
}

// Cases ported from TEST(parse_sec) in systemd's src/test/test-time-util.c.
func TestParseTimespan(t *testing.T) {
	t.Parallel()
	const ms = 1000
	valid := []struct {
		in   string
		want uint64
	}{
		{"5s", 5 * usecPerSec},
		{"5s500ms", 5500 * ms},
		{" 5s 500ms  ", 5500 * ms},
		{" 5.5s  ", 5500 * ms},
		{" 5.5s 0.5ms ", 5500*ms + 500},
		{" .22s ", 220 * ms},
		{" .50y ", usecPerYear / 2},
		{"2.5", 2500 * ms},
		{".7", 700 * ms},
		{"23us", 23},
		{"23μs", 23},
		{"23µs", 23},
		{"infinity", usecInfinity},
		{" infinity ", usecInfinity},
		{"+3.1s", 3100 * ms},
		{"3.1s.2", 3300 * ms},
		{"3.1 .2", 3300 * ms},
		{"3.1 sec .2 sec", 3300 * ms},
		{"3.1 sec 1.2 sec", 4300 * ms},
		// luod's own.
		{"5", 5 * usecPerSec},
		{"0", 0},
		{"100ms", 100 * ms},
		{"1min 30s", 90 * usecPerSec},
		{"1min30s", 90 * usecPerSec},
		{"1h30m", 90 * usecPerMin},
		{"2h", 2 * usecPerHour},
		{"2 hours", 2 * usecPerHour},
		{"1d", usecPerDay},
		{"1w", usecPerWeek},
		{"1M", usecPerMonth},
		{"1 month", usecPerMonth},
		{"1y", usecPerYear},
		{"3 seconds 4 minutes", 4*usecPerMin + 3*usecPerSec},
		{"1msec", ms},
		{"1usec", 1},
		{"1.0000001s", usecPerSec},
		{"\t7\n", 7 * usecPerSec},
		{"1min 30", 90 * usecPerSec},
		{"5sec5", 10 * usecPerSec},
	}
	for _, tt := range valid {
		got, err := parseTimespan(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseTimespan(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	invalid := []string{
		" xyz ", "", " . ", " 5. ", ".s ", "-5s ", "-0.3s ", "-0.0s ", "-0.-0s ",
		"0.-0s ", "3.-0s ", " infinity .7", ".3 infinity", "3.+1s", "3. 1s", "3.s",
		"12.34.56", "12..34", "..1234", "1234..",
		// luod's own.
		"5x", "5 x", "0x10", "infinityx", "99999999999999999999s",
		"600000y", "s", "1,5s",
	}
	for _, in := range invalid {
		if got, err := parseTimespan(in); err == nil {
			t.Errorf("parseTimespan(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseDurationAndTimeout(t *testing.T) {
	t.Parallel()
	if d, err := parseDuration("1.5s"); err != nil || d != 1500*time.Millisecond {
		t.Errorf("parseDuration(1.5s) = %v, %v", d, err)
	}
	if _, err := parseDuration("infinity"); err == nil {
		t.Error("parseDuration(infinity): no error")
	}
	if _, err := parseDuration("300y"); err == nil {
		t.Error("parseDuration(300y): no error (does not fit in a time.Duration)")
	}
	if d, err := parseDuration("292y"); err != nil || d <= 0 {
		t.Errorf("parseDuration(292y) = %v, %v", d, err)
	}
	for _, s := range []string{"0", "infinity", " infinity", "0s"} {
		if d, err := parseTimeout(s); err != nil || d != 0 {
			t.Errorf("parseTimeout(%q) = %v, %v; want 0", s, d, err)
		}
	}
	if d, err := parseTimeout("2min"); err != nil || d != 2*time.Minute {
		t.Errorf("parseTimeout(2min) = %v, %v", d, err)
	}
}

func TestParseSignal(t *testing.T) {
	t.Parallel()
	valid := []struct {
		in   string
		want syscall.Signal
	}{
		{"SIGTERM", syscall.SIGTERM},
		{"TERM", syscall.SIGTERM},
		{"15", syscall.Signal(15)},
		{"SIGKILL", syscall.SIGKILL},
		{"INT", syscall.SIGINT},
		{"SIGHUP", syscall.SIGHUP},
		{"1", syscall.Signal(1)},
		{"64", syscall.Signal(64)},
		{"RTMIN", syscall.Signal(34)},
		{"SIGRTMIN+3", syscall.Signal(37)},
		{"RTMAX", syscall.Signal(64)},
		{"RTMAX-2", syscall.Signal(62)},
		{"RTMIN+30", syscall.Signal(64)},
	}
	for _, tt := range valid {
		got, err := parseSignal(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseSignal(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "0", "65", "-1", "+15", "term", "SIGterm", "SIG", "SIGSIGTERM", "FOO",
		"RTMIN-1", "RTMAX+1", "RTMIN+31", "RTMIN+", "RTMIN+x", " TERM", "1e1"} {
		if got, err := parseSignal(in); err == nil {
			t.Errorf("parseSignal(%q) = %v, want an error", in, got)
		}
	}
}

func TestSignalName(t *testing.T) {
	t.Parallel()
	for sig, want := range map[syscall.Signal]string{
		syscall.SIGTERM: "SIGTERM", syscall.SIGKILL: "SIGKILL", 34: "SIGRTMIN", 37: "SIGRTMIN+3", 64: "SIGRTMAX",
	} {
		if got := signalName(sig); got != want {
			t.Errorf("signalName(%d) = %q, want %q", sig, got, want)
		}
	}
}

func TestCheckUnitName(t *testing.T) {
	t.Parallel()
	for _, n := range []string{"a.service", "counter.service", "foo-bar_baz:qux.service", `a\x2db.service`,
		"worker@1.service", "worker@a@b.service", "a.b.service"} {
		if err := checkUnitName(n); err != nil {
			t.Errorf("checkUnitName(%q): %v", n, err)
		}
	}
	long := make([]byte, 248)
	for i := range long {
		long[i] = 'a'
	}
	for _, n := range []string{"", ".service", "a.socket", "a", "a b.service", "a/b.service", "@x.service",
		"a@.service", "ä.service", "a@b c.service", string(long) + ".service"} {
		if err := checkUnitName(n); err == nil {
			t.Errorf("checkUnitName(%q): no error", n)
		}
	}
	if err := checkUnitName("t@.service"); err != errTemplate {
		t.Errorf("checkUnitName(template) = %v, want errTemplate", err)
	}
}

func TestPaths(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/":           "/",
		"//":          "/",
		"/a//b/./c/":  "/a/b/c",
		"/a/../b":     "/a/../b",
		"a/./b":       "a/b",
		"./":          ".",
		"/./.":        "/",
		"/usr/bin/sh": "/usr/bin/sh",
	} {
		if got := pathSimplify(in); got != want {
			t.Errorf("pathSimplify(%q) = %q, want %q", in, got, want)
		}
	}
	valid := map[string]string{"/etc/x": "/etc/x", "//etc//x/": "/etc/x", "/etc/./x": "/etc/x", "/": "/"}
	for in, want := range valid {
		if got, err := absolutePath(in); err != nil || got != want {
			t.Errorf("absolutePath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "etc/x", "./x", "~", "/a/../b", "/..", "/a\xffb", "/" + string(make([]byte, 4096))} {
		if got, err := absolutePath(in); err == nil {
			t.Errorf("absolutePath(%q) = %q, want an error", in, got)
		}
	}
}

func TestEnvAssignment(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"A=", "A=b", "_x1=y z", "PATH=/bin:/usr/bin", "A==", "A=\n\t", "U=ü"} {
		if !envAssignmentIsValid(s) {
			t.Errorf("envAssignmentIsValid(%q) = false", s)
		}
	}
	for _, s := range []string{"", "A", "=b", "1A=b", "A-B=c", "A B=c", "Ü=x", "A=\xff", "A=b\x00"} {
		if envAssignmentIsValid(s) {
			t.Errorf("envAssignmentIsValid(%q) = true", s)
		}
	}
}

func TestCheckUserGroup(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"root", "0", "65534", "4294967294", "nobody", "a.b", "DOMAIN\\user", "user name",
		"Ünïcode", "_x", "a-b", "-a", "a$"} {
		if err := checkUserGroup(s); err != nil {
			t.Errorf("checkUserGroup(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "65535", "4294967295", "4294967296", "00", "007", " root", "root ", "a:b", "a/b",
		"a\nb", "-1", "-0", ".", "..", "\xff"} {
		if err := checkUserGroup(s); err == nil {
			t.Errorf("checkUserGroup(%q): no error", s)
		}
	}
}

func TestCheckLUOSessionName(t *testing.T) {
	t.Parallel()
	long := make([]byte, 255)
	for i := range long {
		long[i] = 'x'
	}
	for _, s := range []string{"state", "a.b-c_d", "x@y", "~!#$%&()*+,-./;<=>?@[]^_`{|}", string(long)} {
		if err := checkLUOSessionName(s); err != nil {
			t.Errorf("checkLUOSessionName(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "a:b", "a b", "a'b", `a"b`, `a\b`, "a\tb", "a\x7f", "ä", string(long) + "x"} {
		if err := checkLUOSessionName(s); err == nil {
			t.Errorf("checkLUOSessionName(%q): no error", s)
		}
	}
}
