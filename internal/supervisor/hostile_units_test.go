//go:build linux

package supervisor_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/luodtest"
)

// TestHostileUnitFiles drops hostile files into the unit directory and
// reloads: luod answers, refuses each bad file with an error that names
// it, loads the good ones however large, and the running units keep
// running.
func TestHostileUnitFiles(t *testing.T) {
	h := startHostile(t)
	d := h.d
	b := h.before(t)

	// 1 MiB that loads: a long description and comments.
	big := "[Unit]\nDescription=" + strings.Repeat("d", 64<<10) + "\n[Service]\nType=notify\nExecStart=@BIN@/testsvc\n"
	for len(big) < 1<<20 {
		big += "# " + strings.Repeat("c", 1000) + "\n"
	}
	var foo strings.Builder
	foo.WriteString(svc(""))
	for range 100000 {
		foo.WriteString("Foo=bar\n")
	}
	files := map[string]string{
		"big.service":        big,
		"huge.service":       svc("") + strings.Repeat("# "+strings.Repeat("c", 1000)+"\n", 3<<10),
		"foo.service":        foo.String(),
		"badutf8.service":    svc("") + "Environment=A=\xff\xfe\n",
		"fdmax.service":      svc("") + "FileDescriptorStoreMax=99999999999999999999\n",
		"timeout.service":    svc("") + "TimeoutStopSec=18446744073709551616us\n",
		"esc\x1b[2J.service": svc(""),
	}
	for name, text := range files {
		d.WriteUnit(name, text)
	}
	mustDo(t, syscall.Mkfifo(filepath.Join(d.Units, "fifo.service"), 0o644))
	mustDo(t, os.Mkdir(filepath.Join(d.Units, "dir.service"), 0o755))
	mustDo(t, os.Symlink("loop2.service", filepath.Join(d.Units, "loop.service")))
	mustDo(t, os.Symlink("loop.service", filepath.Join(d.Units, "loop2.service")))
	mustDo(t, os.Symlink("/nonexistent/x.service", filepath.Join(d.Units, "dangling.service")))
	mustDo(t, os.Symlink("/dev/zero", filepath.Join(d.Units, "zero.service")))
	mustDo(t, os.Symlink("/dev/null", filepath.Join(d.Units, "masked.service")))

	start := time.Now()
	var rep control.ReloadReply
	if err := d.CallWithin(20*time.Second, control.MethodReload, nil, &rep); err != nil {
		t.Fatalf("daemon-reload: %v", err)
	}
	t.Logf("daemon-reload of the hostile directory took %v", time.Since(start))
	answers(t, d)
	for _, name := range []string{"big.service", "foo.service", actorUnit, bystanderUnit} {
		if !slices.Contains(rep.Loaded, name) {
			t.Errorf("%s did not load: %q", name, rep.Loaded)
		}
	}
	if len(rep.Loaded) != 4 {
		t.Errorf("loaded %q, want big, foo, actor and bystander only", rep.Loaded)
	}
	errs := strings.Join(rep.Errors, "\n")
	for _, want := range []string{
		"fifo.service: not a regular file (a FIFO)",
		"dir.service: not a regular file (a directory)",
		"zero.service: not a regular file (a character device)",
		"loop.service: too many levels of symbolic links",
		"loop2.service: too many levels of symbolic links",
		`dangling.service: dangling symbolic link to "/nonexistent/x.service"`,
		"huge.service: file too large (more than 2097152 bytes)",
		`badutf8.service:7: line is not valid UTF-8: "Environment=A=\xff\xfe"`,
		"fdmax.service:7: [Service] FileDescriptorStoreMax=99999999999999999999: number out of range",
		"timeout.service:7: [Service] TimeoutStopSec=18446744073709551616us: time span out of range",
		`esc\x1b[2J.service": unit name has an invalid character '\x1b'`,
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("the errors do not say %q", want)
		}
	}
	if len(rep.Errors) != 11 {
		t.Errorf("%d errors, want 11:\n%s", len(rep.Errors), errs)
	}
	if strings.Contains(errs, "\x1b") || strings.Contains(d.Log()[b.log:], "\x1b") {
		t.Error("an escape sequence from a file name reached the errors or the log")
	}
	if n := len(rep.Warnings); n > 110 {
		t.Errorf("%d warnings: 100,000 unknown keys should give at most about 100", n)
	}
	logLine(t, d, b.log, "unit failed to load", "fifo.service: not a regular file (a FIFO)")
	logLine(t, d, b.log, "msg=reloaded", "units=4", "errors=11")
	h.after(t, b, nil)

	t.Run("the 1 MiB unit runs", func(t *testing.T) {
		d.MustCall(control.MethodStartUnit, control.UnitName{Name: "big.service"}, nil)
		if u := d.Unit("big.service"); u.ActiveState != "active" || len(u.Description) != 64<<10 {
			t.Errorf("big.service: %s, description of %d bytes", u.ActiveState, len(u.Description))
		}
		d.MustCall(control.MethodStopUnit, control.UnitName{Name: "big.service"}, nil)
		h.bystanderUntouched(t)
	})

	t.Run("cleaned up", func(t *testing.T) {
		ents, _ := os.ReadDir(d.Units)
		for _, e := range ents {
			if e.Name() != actorUnit && e.Name() != bystanderUnit {
				mustDo(t, os.RemoveAll(filepath.Join(d.Units, e.Name())))
			}
		}
		var rep control.ReloadReply
		d.MustCall(control.MethodReload, nil, &rep)
		if len(rep.Errors) != 0 || len(rep.Loaded) != 2 {
			t.Errorf("after removing the files: %+v", rep)
		}
		h.after(t, b, nil)
	})
}

// TestHostileEnvironmentFileFIFO: a unit whose EnvironmentFile= is a FIFO
// blocks luod's loop in open(2) when it starts, until someone writes to
// the FIFO; every control call hangs meanwhile. systemd reads environment
// files in the forked child, so its manager never blocks on them.
func TestHostileEnvironmentFileFIFO(t *testing.T) {
	if testing.Short() {
		t.Skip("not in -short")
	}
	d := luodtest.Start(t, map[string]string{bystanderUnit: svc("")})
	by := d.WaitUnit(bystanderUnit, "active", active)
	fifo := filepath.Join(d.Dir, "env.fifo")
	mustDo(t, syscall.Mkfifo(fifo, 0o644))
	// Unblocks luod, whatever the test found, before luodtest stops it.
	t.Cleanup(func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	d.WriteUnit("env.service", svc("")+"EnvironmentFile="+fifo+"\n")
	d.MustCall(control.MethodReload, nil, nil)
	start := time.Now()
	err := d.CallWithin(answerWithin, control.MethodStartUnit, control.UnitName{Name: "env.service", NoBlock: true}, nil)
	if err != nil {
		t.Fatalf("starting env.service (no-block) did not return within %v: %v", answerWithin, err)
	}
	t.Logf("start returned after %v", time.Since(start))
	answers(t, d)
	if u := d.Unit(bystanderUnit); u.MainPID != by.MainPID || u.ActiveState != "active" {
		t.Errorf("bystander: %+v", u)
	}
	if u := d.Unit("env.service"); u.ActiveState == "active" {
		t.Errorf("env.service is active with a FIFO for an environment file: %+v", u)
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestHostileReloadHoldsLoop: daemon-reload read and parsed every unit
// file inside the loop. A file may be 2 MiB; one of 700,000 short
// assignments takes about 1.3 s to parse here, so four of them keep luod
// from answering anything, notifications included, for over 5 s, and the
// number of such files is not bounded.
func TestHostileReloadHoldsLoop(t *testing.T) {
	h := startHostile(t)
	body := "[Service]\nExecStart=/bin/true\n" + strings.Repeat("F=\n", (2<<20-40)/3)
	for i := range 4 {
		h.d.WriteUnit(fmt.Sprintf("wide%d.service", i), body)
	}
	done := make(chan error, 1)
	go func() { done <- h.d.CallWithin(time.Minute, control.MethodReload, nil, nil) }()
	slowest := time.Duration(0)
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if slowest > answerWithin {
				t.Errorf("luod did not answer for %v during a daemon-reload", slowest)
			}
			h.bystanderUntouched(t)
			return
		case <-time.After(20 * time.Millisecond):
		}
		start := time.Now()
		h.d.CallWithin(time.Minute, control.MethodGetManager, nil, nil)
		slowest = max(slowest, time.Since(start))
	}
}
