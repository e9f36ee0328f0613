package interop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// This file is the host side of a run, shared by TestInterop and the
// systemd baseline of the e2e benchmark (internal/e2e): the cached root
// file system, the run's disk, and QEMU.

const (
	// silence is how long the guest may print nothing before it counts as
	// hung. A TCG boot of systemd prints a status line every few seconds.
	silence = 6 * time.Minute
	// runLimit bounds the whole QEMU run (under a minute here: each boot
	// reaches the driver in ~10 s, each kexec hop in ~15 s).
	runLimit = 30 * time.Minute
)

// Setup checks what a run needs (root, QEMU, mkfs.ext4), then builds the
// cached root file system with scripts/interop-rootfs.sh if needed. It
// returns the module's root, the cache directory (.cache/interop) and the
// tree. A missing prerequisite skips t (fails it when $CI is set).
func Setup(t testing.TB) (mod, cache, rootfs string) {
	t.Helper()
	if os.Geteuid() != 0 {
		unavailable(t, "interop: needs root (debootstrap, chroot, and a root-owned tree for mkfs.ext4 -d)")
	}
	for _, tool := range []string{"qemu-system-x86_64", "mkfs.ext4", "cp"} {
		if _, err := exec.LookPath(tool); err != nil {
			unavailable(t, "interop: %s not found (apt-get install qemu-system-x86 e2fsprogs)", tool)
		}
	}
	mod = moduleRoot(t)
	cache = filepath.Join(mod, ".cache", "interop")
	t0 := time.Now()
	rootfs = buildRootfs(t, mod, cache)
	t.Logf("interop: root file system %s ready in %s", rootfs, time.Since(t0).Round(time.Second))
	return mod, cache, rootfs
}

// buildRootfs runs scripts/interop-rootfs.sh, which builds the cached tree
// if needed, and returns the tree's path.
func buildRootfs(t testing.TB, mod, cache string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(mod, "scripts", "interop-rootfs.sh"), cache)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = logWriter(t, "rootfs")
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 77 {
		unavailable(t, "interop: scripts/interop-rootfs.sh cannot build the root file system here")
	}
	if err != nil {
		t.Fatalf("interop: scripts/interop-rootfs.sh: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	root := lines[len(lines)-1]
	if _, err := os.Stat(filepath.Join(root, ".interop-rootfs")); err != nil {
		t.Fatalf("interop: scripts/interop-rootfs.sh printed %q, not a finished tree: %v", root, err)
	}
	return root
}

// MakeDisk empties the directory run, copies the cached tree, adds this
// run's binaries (the counter and the guest driver), the kernels (version
// -> bzImage, installed as /boot/vmlinuz-<version>) and the unit files
// (name -> text; each enabled in the targets its WantedBy= lines name, as
// systemctl enable would), and makes run/disk.img of it.
func MakeDisk(t testing.TB, mod, rootfs, run string, kernels, units map[string]string) string {
	t.Helper()
	return MakeDiskWith(t, mod, rootfs, run, kernels, units, nil)
}

// MakeDiskWith is MakeDisk that also copies files (guest path -> host
// path) into the tree.
func MakeDiskWith(t testing.TB, mod, rootfs, run string, kernels, units, files map[string]string) string {
	t.Helper()
	if err := os.RemoveAll(run); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	tree := filepath.Join(run, "root")
	mustRun(t, mod, nil, "cp", "-a", "--reflink=auto", rootfs, tree)
	bin := filepath.Join(tree, "usr", "local", "bin")
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	mustRun(t, mod, env, "go", "build", "-trimpath", "-o", filepath.Join(bin, "counter"), "./examples/counter")
	mustRun(t, mod, env, "go", "build", "-trimpath", "-o", filepath.Join(bin, "interop-driver"), "./internal/interop/driver")
	for v, k := range kernels {
		mustRun(t, mod, nil, "cp", k, filepath.Join(tree, "boot", "vmlinuz-"+v))
	}
	for guest, host := range files {
		dst := filepath.Join(tree, guest)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		mustRun(t, mod, nil, "cp", host, dst)
	}
	sys := filepath.Join(tree, "etc", "systemd", "system")
	for name, text := range units {
		if err := os.WriteFile(filepath.Join(sys, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, target := range wantedBy(text) {
			wants := filepath.Join(sys, target+".wants")
			if err := os.MkdirAll(wants, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("../"+name, filepath.Join(wants, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	disk := filepath.Join(run, "disk.img")
	mustRun(t, mod, nil, "mkfs.ext4", "-q", "-F", "-L", "interop", "-d", tree, disk, "1536M")
	if err := os.RemoveAll(tree); err != nil {
		t.Fatal(err)
	}
	t.Logf("interop: disk image %s made in %s", disk, time.Since(t0).Round(time.Second))
	return disk
}

// wantedBy returns the targets of a unit file's WantedBy= lines.
func wantedBy(unit string) []string {
	var targets []string
	for _, line := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "WantedBy="); ok {
			targets = append(targets, strings.Fields(v)...)
		}
	}
	return targets
}

// A Line is one line of the guest's serial ports.
type Line struct {
	// Time is when the line's end arrived on the host; Since is the time
	// since QEMU started.
	Time  time.Time
	Since time.Duration
	// Stream is "console" (ttyS0: the kernel, systemd's status, services
	// writing to the console) or "driver" (ttyS1: the guest driver).
	Stream string
	// Text is the line without terminal escape sequences and control
	// characters but tabs.
	Text string
}

// String is the line as the test log shows it.
func (l Line) String() string {
	return fmt.Sprintf("%7.1fs %-7s| %s", l.Since.Seconds(), l.Stream, l.Text)
}

// escapeRE matches terminal escape sequences (systemd's colored status).
var escapeRE = regexp.MustCompile(`\x1b(\[[0-9;?]*[ -/]*[@-~]|[@-_]|.)?`)

// Boot runs QEMU on kernel with the command line cmdline and the disk made
// by MakeDisk (as a snapshot: the image is never modified, writes last
// across the guest's kexecs) until the guest powers off (or hangs), streaming
// its two serial ports to the test log and run/console.log, and returns the
// driver's events and every line. The VM is the one of the VM tests: TCG,
// -m 2048 -smp 2.
func Boot(t testing.TB, run, kernel, disk, cmdline string) ([]Event, []Line) {
	t.Helper()
	limit := runLimit
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok {
			limit = min(limit, time.Until(dl)-time.Minute)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()

	console, consoleW := pipe(t)
	results, resultsW := pipe(t)
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-accel", "tcg,thread=single", "-m", "2048", "-smp", "2",
		"-nographic", "-nodefaults", "-no-reboot",
		"-kernel", kernel, "-append", cmdline,
		"-chardev", "file,id=console,path=/dev/fd/3", "-serial", "chardev:console",
		"-chardev", "file,id=results,path=/dev/fd/4", "-serial", "chardev:results",
		// snapshot=on: writes go to a temporary overlay that lives as long
		// as QEMU, across the guest's kexecs; disk.img stays as built.
		"-drive", "file="+disk+",format=raw,if=virtio,snapshot=on",
	)
	var qemuOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &qemuOut, &qemuOut
	cmd.ExtraFiles = []*os.File{consoleW, resultsW}
	cmd.SysProcAttr = qemuSysProcAttr()
	cmd.WaitDelay = 5 * time.Second

	logf, err := os.Create(filepath.Join(run, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()

	start := time.Now()
	var (
		mu     sync.Mutex
		last   = start
		lines  []Line
		events []Event
	)
	read := func(name string, r io.Reader) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			now := time.Now()
			text := strings.Map(func(r rune) rune {
				if r < ' ' && r != '\t' || r == 0x7f {
					return -1
				}
				return r
			}, escapeRE.ReplaceAllString(sc.Text(), ""))
			l := Line{Time: now, Since: now.Sub(start), Stream: name, Text: text}
			mu.Lock()
			last = now
			lines = append(lines, l)
			fmt.Fprintln(logf, l)
			if name == "driver" {
				ev, ok, err := ParseEvent(text)
				if err != nil {
					t.Errorf("interop: %v in %q", err, text)
				} else if ok {
					ev.Fields["t"] = strconv.FormatFloat(l.Since.Seconds(), 'f', 1, 64)
					events = append(events, ev)
				}
			}
			mu.Unlock()
			t.Log(l)
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("interop: start qemu: %v", err)
	}
	consoleW.Close()
	resultsW.Close()
	var readers sync.WaitGroup
	readers.Go(func() { read("console", console) })
	readers.Go(func() { read("driver", results) })

	// A guest that prints nothing for too long is hung: end it.
	var hung time.Duration
	watchdog := make(chan struct{})
	go func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-watchdog:
				return
			case <-tick.C:
				mu.Lock()
				quiet := time.Since(last)
				mu.Unlock()
				if quiet > silence {
					hung = quiet
					cancel()
					return
				}
			}
		}
	}()
	err = cmd.Wait()
	close(watchdog)
	readers.Wait()
	t.Logf("interop: QEMU ran %s (%v)", time.Since(start).Round(time.Second), err)
	t.Logf("interop: console and driver output in %s", filepath.Join(run, "console.log"))
	if s := strings.TrimSpace(qemuOut.String()); s != "" {
		t.Logf("interop: qemu said:\n%s", s)
	}
	switch {
	case hung > 0:
		t.Errorf("interop: the guest printed nothing for %s: hung, killed", hung.Round(time.Second))
	case ctx.Err() != nil:
		t.Errorf("interop: the run took longer than %s: killed", limit.Round(time.Second))
	case err != nil:
		t.Errorf("interop: qemu: %v", err)
	}
	return events, lines
}

func pipe(t testing.TB) (r, w *os.File) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// moduleRoot is the directory of the go.mod above the test.
func moduleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if filepath.Dir(dir) == dir {
			t.Fatal("interop: no go.mod above the test")
		}
		dir = filepath.Dir(dir)
	}
}

func mustRun(t testing.TB, dir string, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("interop: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// logWriter sends a command's output to the test log, line by line. Its
// Write logs synchronously, so nothing is logged after exec.Cmd.Wait.
func logWriter(t testing.TB, prefix string) io.Writer {
	return &lineLogger{t: t, prefix: prefix}
}

type lineLogger struct {
	t      testing.TB
	prefix string
	buf    []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.t.Logf("%s: %s", l.prefix, l.buf[:i])
		l.buf = l.buf[i+1:]
	}
}

// unavailable skips t for a missing prerequisite, or fails it when $CI is
// set (the CI machine is expected to have everything).
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format+" ($CI is set, so this is a failure)", args...)
	}
	t.Skipf(format, args...)
}
