package unit

import (
	"bytes"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// loadTimeout is how long a load may take before a test decides it blocks.
const loadTimeout = 10 * time.Second

// mkfifo makes a FIFO at path. If the test ends with a reader still blocked
// in open(2) on it (the regression these tests guard against), the cleanup
// opens it for writing, which releases the reader.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := unix.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
			unix.Close(fd)
		}
	})
}

// within runs f in a goroutine and fails the test if it does not return
// within loadTimeout, so that a load that blocks fails the test instead of
// hanging it.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(loadTimeout):
		t.Fatalf("%s did not return within %v: it blocks", what, loadTimeout)
	}
}

// TestLoadDirFIFO is the regression test for a FIFO in a unit directory,
// which blocked luod's main loop in open(2) at boot and on daemon-reload.
func TestLoadDirFIFO(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "good.service"), []byte(service()), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "x.service")
	mkfifo(t, fifo)

	var units []*Unit
	var errs []error
	within(t, "LoadDir", func() { units, errs = LoadDir(dir) })
	if len(units) != 1 || units[0].Name != "good.service" {
		t.Errorf("units = %v, want good.service", units)
	}
	want := fifo + ": not a regular file (a FIFO)"
	if len(errs) != 1 || errs[0].Error() != want || !errors.Is(errs[0], ErrNotRegular) {
		t.Errorf("errors = %q, want [%q] wrapping ErrNotRegular", errs, want)
	}

	var err error
	within(t, "Load", func() { _, err = Load(fifo) })
	if !errors.Is(err, ErrNotRegular) || err.Error() != want {
		t.Errorf("Load(FIFO) = %v, want %q", err, want)
	}
}

// TestOpenRegularFIFO covers the race where a regular file is replaced by a
// FIFO between the stat and the open: openRegular, which does the open, must
// neither block nor accept the FIFO.
func TestOpenRegularFIFO(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "x.service")
	mkfifo(t, fifo)
	var err error
	within(t, "openRegular", func() {
		var f *os.File
		if f, err = openRegular(fifo); f != nil {
			f.Close()
		}
	})
	if want := fifo + ": not a regular file (a FIFO)"; !errors.Is(err, ErrNotRegular) || err.Error() != want {
		t.Errorf("openRegular(FIFO) = %v, want %q", err, want)
	}
}

// TestLoadDirNotRegular checks every kind of file that is not a regular
// file: each gives its own error naming it, and the good unit beside them
// still loads.
func TestLoadDirNotRegular(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }
	if err := os.WriteFile(path("good.service"), []byte(service()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path("real.conf"), []byte(service("Type=oneshot")), 0o644); err != nil {
		t.Fatal(err)
	}
	symlink := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, path(name)); err != nil {
			t.Fatal(err)
		}
	}
	mkfifo(t, path("fifo.service"))
	symlink("fifo.service", "to-fifo.service")
	if err := os.Mkdir(path("dir.service"), 0o755); err != nil {
		t.Fatal(err)
	}
	symlink("/dev/zero", "zero.service")
	symlink("loop-b.service", "loop-a.service")
	symlink("loop-a.service", "loop-b.service")
	symlink("/nonexistent/unit", "dangling.service")
	symlink("real.conf", "linked.service") // a symbolic link to a regular file loads

	type test struct {
		name string
		is   error  // what the error wraps
		msg  string // the error, after "dir/name"
	}
	tests := []test{
		{"dangling.service", fs.ErrNotExist, `: dangling symbolic link to "/nonexistent/unit": no such file or directory`},
		{"dir.service", ErrNotRegular, ": not a regular file (a directory)"},
		{"fifo.service", ErrNotRegular, ": not a regular file (a FIFO)"},
		{"loop-a.service", syscall.ELOOP, ": too many levels of symbolic links"},
		{"loop-b.service", syscall.ELOOP, ": too many levels of symbolic links"},
		{"to-fifo.service", ErrNotRegular, ": not a regular file (a FIFO)"},
		{"zero.service", ErrNotRegular, ": not a regular file (a character device)"},
	}
	// These need privileges, or a short enough path: the errors are in name
	// order, so they go at the start and the end.
	if err := unix.Mknod(path("block.service"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))); err == nil {
		tests = append([]test{{"block.service", ErrNotRegular, ": not a regular file (a block device)"}}, tests...)
	} else {
		t.Logf("no block device node (%v): not tested", err)
	}
	if l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path("zz-sock.service"), Net: "unix"}); err == nil {
		t.Cleanup(func() { l.Close() })
		tests = append(tests, test{"zz-sock.service", ErrNotRegular, ": not a regular file (a socket)"})
	} else {
		t.Logf("no socket (%v): not tested", err)
	}

	var units []*Unit
	var errs []error
	within(t, "LoadDir", func() { units, errs = LoadDir(dir) })
	var names []string
	for _, u := range units {
		names = append(names, u.Name)
	}
	if d := diff([]string{"good.service", "linked.service"}, names); d != "" {
		t.Errorf("units: %s", d)
	}
	if len(errs) != len(tests) {
		t.Fatalf("%d errors, want %d: %q", len(errs), len(tests), errs)
	}
	for i, tt := range tests {
		err := errs[i]
		if !errors.Is(err, tt.is) || !strings.HasSuffix(err.Error(), path(tt.name)+tt.msg) {
			t.Errorf("%s: error %q, want one ending in %q wrapping %v", tt.name, err, path(tt.name)+tt.msg, tt.is)
		}
		var loadErr error
		within(t, "Load", func() { _, loadErr = Load(path(tt.name)) })
		if loadErr == nil || loadErr.Error() != err.Error() {
			t.Errorf("Load(%s) = %v, want the error LoadDir gave", tt.name, loadErr)
		}
	}
}

// TestLoadDirNotADirectory checks that LoadDir on a FIFO (or any other file)
// fails at once instead of opening it and waiting for a writer.
func TestLoadDirNotADirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "system")
	mkfifo(t, fifo)
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte(service()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, file} {
		var units []*Unit
		var errs []error
		within(t, "LoadDir", func() { units, errs = LoadDir(p) })
		if len(units) != 0 || len(errs) != 1 || !errors.Is(errs[0], syscall.ENOTDIR) || !strings.Contains(errs[0].Error(), p) {
			t.Errorf("LoadDir(%s) = %v, %v; want one ENOTDIR error naming it", p, units, errs)
		}
	}
}

// The kinds of file FuzzLoad puts in the unit directory.
const (
	fuzzRegular    = iota // a regular file holding the data
	fuzzLinked            // a symbolic link to a regular file holding the data
	fuzzFIFO              // a FIFO
	fuzzLinkedFIFO        // a symbolic link to a FIFO
	fuzzDirectory         // a directory
	fuzzDevice            // a symbolic link to /dev/zero
	fuzzNull              // a symbolic link to /dev/null: masked
	fuzzDangling          // a symbolic link to nothing
	fuzzLoop              // a symbolic link to itself
	fuzzKinds
)

// FuzzLoad puts a unit file of a fuzzed kind, holding fuzzed data, into a
// unit directory beside a good unit, and loads the directory and the file.
// Neither LoadDir nor Load may block; the good unit must load; and a regular
// file must load exactly as Parse parses its data.
func FuzzLoad(f *testing.F) {
	for kind := range uint8(fuzzKinds) {
		f.Add(kind, []byte(service()))
	}
	for _, s := range []string{
		"",
		"[Unit]\nStartLimitIntervalSec=infinity\nStartLimitBurst=0\n" + service("LogRateLimitIntervalSec=0", "LogRateLimitBurst=7"),
		service("StartLimitInterval=5", "StartLimitBurst=-1"),
		"[Unit]\nDescription=caf\xe9\n" + service(),
		service("Frobnicate=1", "Restart=sometimes"),
		service("ExecStart=/bin/echo " + strings.Repeat("x", 3000)),
	} {
		f.Add(uint8(fuzzRegular), []byte(s))
		f.Add(uint8(fuzzLinked), []byte(s))
	}
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, fuzzUnitName)
		if err := os.WriteFile(filepath.Join(dir, "a-good.service"), []byte(service()), 0o644); err != nil {
			t.Fatal(err)
		}
		symlink := func(target string) {
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}
		var is error // what the error for path wraps, nil if it is parsed
		switch kind % fuzzKinds {
		case fuzzRegular:
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
		case fuzzLinked:
			if err := os.WriteFile(filepath.Join(dir, "target.conf"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			symlink("target.conf")
		case fuzzFIFO:
			mkfifo(t, path)
			is = ErrNotRegular
		case fuzzLinkedFIFO:
			mkfifo(t, filepath.Join(dir, "fifo"))
			symlink("fifo")
			is = ErrNotRegular
		case fuzzDirectory:
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
			is = ErrNotRegular
		case fuzzDevice:
			symlink("/dev/zero")
			is = ErrNotRegular
		case fuzzNull:
			symlink(os.DevNull)
			is = ErrMasked
		case fuzzDangling:
			symlink("nothing")
			is = fs.ErrNotExist
		case fuzzLoop:
			symlink(fuzzUnitName)
			is = syscall.ELOOP
		}

		var units []*Unit
		var errs []error
		within(t, "LoadDir", func() { units, errs = LoadDir(dir) })
		var u *Unit
		var err error
		within(t, "Load", func() { u, err = Load(path) })
		if len(units) == 0 || units[0].Name != "a-good.service" {
			t.Fatalf("a-good.service did not load: %v, %v", units, errs)
		}
		// What LoadDir says of path is what Load says.
		switch {
		case len(errs) > 1 || len(units) > 2:
			t.Fatalf("LoadDir: %d units, errors %v", len(units), errs)
		case len(errs) == 1 && (err == nil || errs[0].Error() != err.Error()):
			t.Fatalf("LoadDir: %v; Load: %v", errs[0], err)
		case len(units) == 2 && (u == nil || diff(units[1], u) != ""):
			t.Fatalf("LoadDir: %+v; Load: %+v", units[1], u)
		case len(errs) == 0 && len(units) == 1 && !errors.Is(err, ErrMasked):
			t.Fatalf("LoadDir says nothing of %s; Load: %v", path, err)
		}
		if u != nil && err != nil {
			t.Fatalf("Load returned a unit and an error: %v", err)
		}

		if is != nil {
			if !errors.Is(err, is) || !strings.HasPrefix(err.Error(), path+": ") && !strings.Contains(err.Error(), " "+path+": ") {
				t.Fatalf("Load(%s) = %v, want an error naming it wrapping %v", path, err, is)
			}
			return
		}
		// A regular file loads as Parse parses its data.
		want, wantErr := Parse(fuzzUnitName, bytes.NewReader(data))
		switch {
		case len(data) == 0:
			if !errors.Is(err, ErrMasked) {
				t.Fatalf("Load(empty file) = %v, want ErrMasked", err)
			}
		case wantErr != nil:
			var pe, wantPE *ParseError
			if !errors.As(err, &pe) || !errors.As(wantErr, &wantPE) || pe.File != path ||
				pe.Line != wantPE.Line || pe.Section != wantPE.Section || pe.Key != wantPE.Key || pe.Value != wantPE.Value || pe.Err.Error() != wantPE.Err.Error() {
				t.Fatalf("Load: %v; Parse: %v", err, wantErr)
			}
			checkError(t, err)
		case err != nil:
			t.Fatalf("Load: %v; Parse: no error", err)
		default:
			if u.Path != path {
				t.Fatalf("Path %q, want %q", u.Path, path)
			}
			got := *u
			got.Path = ""
			got.Warnings = nil
			for _, w := range u.Warnings {
				if w.File != path {
					t.Fatalf("warning %v is not about %s", w, path)
				}
				w.File = fuzzUnitName
				got.Warnings = append(got.Warnings, w)
			}
			if d := diff(want, &got); d != "" {
				t.Fatalf("Load and Parse differ: %s", d)
			}
		}
	})
}
