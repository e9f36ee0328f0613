package unit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fuzzUnitName is the name fuzzed files are parsed as: an instance, so
// that every specifier has a value.
const fuzzUnitName = `fuzz-me@a-b\x2dc.service`

func FuzzParse(f *testing.F) {
	for _, s := range scanCorpus {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob("testdata/*.service")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"[Unit]\nStartLimitIntervalSec=1min 30s\nStartLimitBurst=3\n" + service("LogRateLimitIntervalSec=250ms", "LogRateLimitBurst=0"),
		"[Unit]\nStartLimitInterval=infinity\nStartLimitAction=reboot\n" + service("StartLimitInterval=0", "StartLimitBurst=", "LogRateLimitIntervalSec=infinity"),
		service("StartLimitBurst=-1", "LogRateLimitIntervalSec=18446744073709551616us", "FileDescriptorStoreMax=99999999999999999999"),
		"\uFEFF[Unit]\nDescription=caf\xe9 \x1b[2J\u009b\n[S\\x]\n" + service("Fr\u202eob=1"),
		service("Environment=A="+strings.Repeat("x", 3000)+" B=\\", "  "+strings.Repeat("y", 3000)),
		service("Type=oneshot", "ExecStart=-@/bin/sh sh -c 'echo $$1 \"%i\"'", "RemainAfterExit=yes"),
		service("Environment=A=1 \"B=2 3\"", "EnvironmentFile=-/etc/%p", "WorkingDirectory=-~"),
		service("Restart=on-failure", "RestartSec=1min 30s", "TimeoutSec=infinity", "KillSignal=RTMIN+2"),
		service("FileDescriptorStoreMax=4", "FileDescriptorStorePreserve=on-success", "LUOSession=a b", "LUOSession=a"),
		service("NotifyAccess=exec", "User=1000", "Group=%g", "LUOSession="),
		"[Unit]\nDescription=%n \\\n  # c \\\n more\n" + service(),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !bytes.Contains(data, []byte{0}) {
			checkScanMatchesGoSystemd(t, data)
		}
		u, err := Parse(fuzzUnitName, bytes.NewReader(data))
		if err != nil {
			if u != nil {
				t.Fatalf("Parse returned a unit and an error: %v", err)
			}
			checkError(t, err)
			return
		}
		checkInvariants(t, u)
	})
}

// maxMessage bounds the length of one error or warning: what they show of
// the file is cut (maxShown) and quoted, at most four bytes for one.
const maxMessage = 4096

// checkMessage checks that an error or warning is printable and short,
// whatever the file held.
func checkMessage(t *testing.T, m string) {
	t.Helper()
	if m == "" || len(m) > maxMessage || !printable(m) {
		t.Fatalf("message of %d bytes, empty, too long or not printable: %.1000q", len(m), m)
	}
}

// checkError checks what an error of Parse or Load promises.
func checkError(t *testing.T, err error) {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v has no ParseError", err)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) > MaxDiagnostics+1 {
		t.Fatalf("%d errors", len(lines))
	}
	for _, l := range lines {
		checkMessage(t, l)
	}
}

// checkInvariants checks what a successfully parsed unit promises.
func checkInvariants(t *testing.T, u *Unit) {
	t.Helper()
	if err := checkUnitName(u.Name); err != nil || u.Name != fuzzUnitName || u.Path != "" {
		t.Fatalf("name %q, path %q: %v", u.Name, u.Path, err)
	}
	for _, s := range []fmt.Stringer{u.Type, u.Restart, u.NotifyAccess, u.FileDescriptorStorePreserve} {
		if strings.Contains(s.String(), "(") {
			t.Fatalf("enum out of range: %s", s)
		}
	}
	if len(u.ExecStart) == 0 || len(u.ExecStart) > 1 && u.Type != TypeOneshot {
		t.Fatalf("%d ExecStart commands with Type=%s", len(u.ExecStart), u.Type)
	}
	for _, c := range u.ExecStart {
		checkCommand(t, c)
	}
	names := map[string]bool{}
	for _, e := range u.Environment {
		name, _, _ := strings.Cut(e, "=")
		if !envAssignmentIsValid(e) || names[name] {
			t.Fatalf("invalid or duplicate assignment %q in %q", e, u.Environment)
		}
		names[name] = true
	}
	for _, ef := range u.EnvironmentFiles {
		if p, err := absolutePath(ef.Path); err != nil || p != ef.Path {
			t.Fatalf("EnvironmentFile %q: %q, %v", ef.Path, p, err)
		}
	}
	switch wd := u.WorkingDirectory; {
	case wd == "":
		if u.WorkingDirectoryOptional {
			t.Fatal("optional empty WorkingDirectory")
		}
	case wd == "~":
	default:
		if p, err := absolutePath(wd); err != nil || p != wd {
			t.Fatalf("WorkingDirectory %q: %q, %v", wd, p, err)
		}
	}
	for _, ug := range []string{u.User, u.Group} {
		if ug != "" {
			if err := checkUserGroup(ug); err != nil {
				t.Fatalf("user or group %q: %v", ug, err)
			}
		}
	}
	if u.RestartSec < 0 || u.TimeoutStartSec < 0 || u.TimeoutStopSec < 0 || u.StartLimitIntervalSec < 0 {
		t.Fatalf("negative duration: %v %v %v %v", u.RestartSec, u.TimeoutStartSec, u.TimeoutStopSec, u.StartLimitIntervalSec)
	}
	if u.StartLimitBurst > 1<<32-1 || u.StartLimitEnabled() != (u.StartLimitIntervalSec > 0 && u.StartLimitBurst > 0) {
		t.Fatalf("StartLimitBurst %d, interval %v, enabled %v", u.StartLimitBurst, u.StartLimitIntervalSec, u.StartLimitEnabled())
	}
	if u.LogRateLimitIntervalSec <= 0 || u.LogRateLimitBurst == 0 || u.LogRateLimitBurst > 1<<32-1 {
		t.Fatalf("log rate limit %v, %d", u.LogRateLimitIntervalSec, u.LogRateLimitBurst)
	}
	if u.KillSignal < 1 || u.KillSignal > maxSignal {
		t.Fatalf("KillSignal %d", u.KillSignal)
	}
	if u.FileDescriptorStoreMax > 1<<32-1 {
		t.Fatalf("FileDescriptorStoreMax %d", u.FileDescriptorStoreMax)
	}
	for i, s := range u.LUOSessions {
		if err := checkLUOSessionName(s); err != nil || slices.Contains(u.LUOSessions[:i], s) {
			t.Fatalf("session %q in %q: %v", s, u.LUOSessions, err)
		}
	}
	if u.EffectiveFileDescriptorStoreMax() < uint(len(u.LUOSessions)) || u.EffectiveFileDescriptorStoreMax() < u.FileDescriptorStoreMax {
		t.Fatal("EffectiveFileDescriptorStoreMax too small")
	}
	if u.NotifyAccessExplicit && u.EffectiveNotifyAccess() != u.NotifyAccess ||
		!u.NotifyAccessExplicit && u.NotifyAccess != NotifyAccessNone {
		t.Fatalf("NotifyAccess %v, explicit %v, effective %v", u.NotifyAccess, u.NotifyAccessExplicit, u.EffectiveNotifyAccess())
	}
	if len(u.Warnings) > MaxDiagnostics+1 {
		t.Fatalf("%d warnings", len(u.Warnings))
	}
	for i, w := range u.Warnings {
		if i == MaxDiagnostics {
			// The count of the warnings left out.
			if w.File != u.Name || w.Line != 0 || !strings.HasSuffix(w.Message, " more warnings not shown") {
				t.Fatalf("last warning: %#v", w)
			}
			break
		}
		if w.File != u.Name || w.Line < 0 || w.Message == "" || i > 0 && w.Line < u.Warnings[i-1].Line {
			t.Fatalf("warning %d: %#v", i, w)
		}
		checkMessage(t, w.String())
	}
}

// checkCommand checks what a successfully parsed Command promises.
func checkCommand(t *testing.T, c Command) {
	t.Helper()
	switch {
	case c.Path == "" || len(c.Argv) == 0:
		t.Fatalf("empty path or argv: %#v", c)
	case !stringIsSafe(c.Path):
		t.Fatalf("unsafe path %q", c.Path)
	case strings.HasPrefix(c.Path, "/"):
		if !pathIsValid(c.Path) || pathSimplify(c.Path) != c.Path {
			t.Fatalf("path %q is not valid and simplified", c.Path)
		}
	case !filenameIsValid(c.Path):
		t.Fatalf("path %q is neither absolute nor a file name", c.Path)
	}
	for _, a := range c.Argv {
		if strings.IndexByte(a, 0) >= 0 {
			t.Fatalf("NUL in argument %q", a)
		}
	}
}

// quoteWord quotes w so that a command line gives it back as one word.
func quoteWord(w string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(w); i++ {
		switch c := w[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func FuzzSplitCommand(f *testing.F) {
	for _, s := range []string{
		"/bin/true", "-@/bin/sh sh -c 'exit 1'", ":/bin/echo $HOME ${HOME}x $$", `/bin/find \; x\;`,
		`"/PATH\sWITH\x20SPACES/daemon" '-1 -2'`, `/bin/grep '\w+\K'`, "sleep 10", "/bin/a ; /bin/b",
		`/p\u00f6 \U0001F4A9 \101 \xff`, "/opt/%p/bin --name=%i %f %% 100%", "@", "'", `\`, "+/bin/x",
		"/bin/echo \"a\"'b'c \"\" ''", `/x "\"\\"`,
	} {
		f.Add(s)
	}
	sp := newSpecifiers(fuzzUnitName)
	f.Fuzz(func(t *testing.T, s string) {
		c, warnings, err := parseCommand(s, sp.expand)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		checkCommand(t, c)
		for _, w := range warnings {
			if w == "" {
				t.Fatal("empty warning")
			}
		}
		_ = c.Expand([]string{"A=" + s, s, "B=x y", "=z"})

		// Quoting the words back gives the same command.
		var line strings.Builder
		if c.IgnoreFailure {
			line.WriteByte('-')
		}
		if c.NoEnvExpand {
			line.WriteByte(':')
		}
		line.WriteString("@" + quoteWord(c.Path))
		for _, a := range c.Argv {
			line.WriteString(" " + quoteWord(a))
		}
		again, warnings, err := parseCommand(line.String(), noExpand)
		if err != nil || len(warnings) > 0 {
			t.Fatalf("re-parsing %q (from %q): %v, %q", line.String(), s, err, warnings)
		}
		if d := diff(c, again); d != "" {
			t.Fatalf("re-parsing %q (from %q): %s", line.String(), s, d)
		}
	})
}
