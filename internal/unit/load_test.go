package unit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLoadCounter(t *testing.T) {
	t.Parallel()
	u, err := Load("testdata/counter.service")
	if err != nil {
		t.Fatal(err)
	}
	want := &Unit{
		Name:        "counter.service",
		Path:        "testdata/counter.service",
		Description: "Request counter (counter.service)",
		Type:        TypeNotify,
		ExecStart: []Command{{
			Path: "/usr/libexec/counter",
			Argv: []string{"/usr/libexec/counter", "--state-dir=/var/lib/counter", "--listen", "127.0.0.1:8080", "$COUNTER_OPTS"},
		}},
		Environment:                 []string{"COUNTER_LOG=info", "GREETING=hello world"},
		EnvironmentFiles:            []EnvironmentFile{{Path: "/etc/default/counter", Optional: true}},
		WorkingDirectory:            "/var/lib/counter",
		User:                        "counter",
		Group:                       "counter",
		Restart:                     RestartOnFailure,
		RestartSec:                  2 * time.Second,
		TimeoutStartSec:             30 * time.Second,
		TimeoutStopSec:              90 * time.Second,
		KillSignal:                  syscall.SIGINT,
		StartLimitIntervalSec:       DefaultStartLimitIntervalSec,
		StartLimitBurst:             DefaultStartLimitBurst,
		LogRateLimitIntervalSec:     DefaultLogRateLimitIntervalSec,
		LogRateLimitBurst:           DefaultLogRateLimitBurst,
		StandardError:               outputUnset,
		FileDescriptorStoreMax:      16,
		FileDescriptorStorePreserve: PreserveYes,
		LUOSessions:                 []string{"counter-state"},
		PreserveMaxBytes:            NoLimit,
		Warnings: []Warning{
			{File: "testdata/counter.service", Line: 6, Section: "Unit", Key: "After", Message: "not supported by luod, ignored"},
			{File: "testdata/counter.service", Line: 7, Section: "Unit", Key: "Wants", Message: "not supported by luod, ignored"},
			{File: "testdata/counter.service", Line: 28, Section: "Service", Key: "LimitNOFILE", Message: "not supported by luod, ignored"},
			{File: "testdata/counter.service", Line: 31, Section: "Install", Key: "WantedBy", Message: "not supported by luod, ignored"},
		},
	}
	if d := diff(want, u); d != "" {
		t.Error(d)
	}
	if u.EffectiveNotifyAccess() != NotifyAccessMain {
		t.Errorf("EffectiveNotifyAccess = %v", u.EffectiveNotifyAccess())
	}
	env := append(append([]string{}, u.Environment...), "COUNTER_OPTS=--metrics  --quiet")
	wantArgv := []string{"/usr/libexec/counter", "--state-dir=/var/lib/counter", "--listen", "127.0.0.1:8080", "--metrics", "--quiet"}
	if d := diff(wantArgv, u.ExecStart[0].Expand(env)); d != "" {
		t.Errorf("Expand: %s", d)
	}
}

func TestLoadOneshot(t *testing.T) {
	t.Parallel()
	u, err := Load("testdata/oneshot.service")
	if err != nil {
		t.Fatal(err)
	}
	want := []Command{
		{Path: "/bin/mkdir", Argv: []string{"/bin/mkdir", "-p", "/var/spool/luod"}},
		{Path: "/bin/chmod", Argv: []string{"/bin/chmod", "0750", "/var/spool/luod"}, IgnoreFailure: true},
		{Path: "/bin/sh", Argv: []string{"prepare-spool", "-c", `echo "spool ready in $${SPOOL:-/var/spool/luod}"`}},
	}
	if d := diff(want, u.ExecStart); d != "" {
		t.Error(d)
	}
	if u.Type != TypeOneshot || !u.RemainAfterExit || u.TimeoutStartSec != 0 || u.TimeoutStopSec != 0 || len(u.Warnings) != 0 {
		t.Errorf("unit = %+v", u)
	}
	if got := u.ExecStart[2].Expand(nil)[2]; got != `echo "spool ready in ${SPOOL:-/var/spool/luod}"` {
		t.Errorf("Expand = %q", got)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.service")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	null := filepath.Join(dir, "null.service")
	if err := os.Symlink(os.DevNull, null); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub.service")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{empty, null} {
		if _, err := Load(p); !errors.Is(err, ErrMasked) || !strings.Contains(err.Error(), p) {
			t.Errorf("Load(%s) = %v, want ErrMasked naming the file", p, err)
		}
	}
	if _, err := Load(sub); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Load(directory) = %v", err)
	}
	missing := filepath.Join(dir, "missing.service")
	if _, err := Load(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(missing) = %v", err)
	}
}

func TestLoadDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	symlink := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	write("b.service", service())
	write("a.service", service("Type=notify"))
	write("bad.service", service("Restart=sometimes"))
	write("worker@.service", "[Service]\nExecStart=/usr/bin/worker --id=%i\n")
	symlink("worker@.service", "worker@7.service")
	write("masked.service", "")
	symlink(os.DevNull, "null.service")
	write("README", "not a unit")
	write("c.socket", "[Socket]\n")
	write("zz.service.bak", service())
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "deep.service"), []byte(service()), 0o644); err != nil {
		t.Fatal(err)
	}

	units, errs := LoadDir(dir)
	var names []string
	for _, u := range units {
		names = append(names, u.Name)
	}
	if d := diff([]string{"a.service", "b.service", "worker@7.service"}, names); d != "" {
		t.Errorf("units: %s", d)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), filepath.Join(dir, "bad.service")+":3: [Service] Restart=sometimes") {
		t.Errorf("errors = %v", errs)
	}
	if w := units[2]; w.Path != filepath.Join(dir, "worker@7.service") || w.ExecStart[0].Argv[1] != "--id=7" {
		t.Errorf("instance = %+v", w)
	}

	if units, errs := LoadDir(filepath.Join(dir, "missing")); len(units) != 0 || len(errs) != 1 || !errors.Is(errs[0], os.ErrNotExist) {
		t.Errorf("LoadDir(missing) = %v, %v", units, errs)
	}
}

// TestLoadFileSize checks the limit on the size of a file: a unit of 1 MiB
// loads, as does one of exactly MaxFileSize bytes, and one byte more is an
// error, from Load (which sees the size before reading) and from Parse.
func TestLoadFileSize(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// fill pads text with comment lines to size bytes.
	fill := func(text string, size int) string {
		var b strings.Builder
		b.WriteString(text)
		for b.Len() < size {
			n := min(size-b.Len(), MaxLineLength) - 1
			b.WriteString(strings.Repeat("#", n) + "\n")
		}
		return b.String()
	}

	mib := write("mib.service", "[Unit]\nDescription=1 MiB\n[Service]\nExecStart=/bin/echo "+strings.Repeat("a", MaxLineLength-len("ExecStart=/bin/echo ")-1)+"\n")
	u, err := Load(mib)
	if err != nil || len(u.ExecStart[0].Argv[1]) != MaxLineLength-len("ExecStart=/bin/echo ")-1 {
		t.Errorf("Load(unit of 1 MiB): %v", err)
	}
	if fi, err := os.Stat(mib); err != nil || fi.Size() <= 1<<20 {
		t.Errorf("unit of 1 MiB: %v, %v", fi.Size(), err)
	}

	largest := write("largest.service", fill(service(), MaxFileSize))
	if _, err := Load(largest); err != nil {
		t.Errorf("Load(file of MaxFileSize bytes): %v", err)
	}

	text := fill(service(), MaxFileSize+1)
	large := write("large.service", text)
	want := large + ": file too large (more than 2097152 bytes)"
	if _, err := Load(large); !errors.Is(err, ErrFileTooLarge) || err.Error() != want {
		t.Errorf("Load(file of MaxFileSize+1 bytes) = %v, want %s", err, want)
	}
	if _, err := Parse("x.service", strings.NewReader(text)); !errors.Is(err, ErrFileTooLarge) {
		t.Errorf("Parse(file of MaxFileSize+1 bytes) = %v", err)
	}
}

func TestParseReaderError(t *testing.T) {
	t.Parallel()
	_, err := Parse("x.service", iotestErrReader{})
	if err == nil || !strings.Contains(err.Error(), "x.service: boom") {
		t.Errorf("Parse(failing reader) = %v", err)
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func BenchmarkLoad(b *testing.B) {
	for b.Loop() {
		if _, err := Load("testdata/counter.service"); err != nil {
			b.Fatal(err)
		}
	}
}
