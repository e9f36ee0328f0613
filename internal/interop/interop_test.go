//go:build linux

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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/vmtest"
)

const (
	// stages: 7.2 boot, kexec to 7.3, kexec back to 7.2.
	stages = 3
	// silence is how long the guest may print nothing before it counts as
	// hung. A TCG boot of systemd prints a status line every few seconds.
	silence = 6 * time.Minute
	// runLimit bounds the whole QEMU run (under a minute here: each boot
	// reaches the driver in ~10 s, each kexec hop in ~15 s).
	runLimit = 30 * time.Minute
)

// TestInterop boots Debian sid with systemd 262 on the 7.2 LUO kernel,
// starts the three counter services (fd-store mode, LUOSession= session,
// keep's own session), restarts them, live-updates to 7.3 and back to 7.2
// with "kexec -s -l" + "systemctl kexec" (restarting them again in each
// stage), and checks what each counter
// reports at each stage against what systemd 262 actually does (expected
// below). It runs only with LUO_INTEROP=1 ("make interop"), as root (the
// root file system is built with debootstrap).
func TestInterop(t *testing.T) {
	if os.Getenv("LUO_INTEROP") == "" {
		t.Skip("set LUO_INTEROP=1 (make interop) to run the systemd 262 interop test: it debootstraps Debian sid once (cached) and boots it three times under QEMU")
	}
	if testing.Short() {
		t.Skip("interop: not with -short")
	}
	kernels := map[string]string{"7.2": vmtest.Kernel(t, "7.2"), "7.3": vmtest.Kernel(t, "7.3")}
	if os.Geteuid() != 0 {
		unavailable(t, "interop: needs root (debootstrap, chroot, and a root-owned tree for mkfs.ext4 -d)")
	}
	for _, tool := range []string{"qemu-system-x86_64", "mkfs.ext4", "cp"} {
		if _, err := exec.LookPath(tool); err != nil {
			unavailable(t, "interop: %s not found (apt-get install qemu-system-x86 e2fsprogs)", tool)
		}
	}
	mod := moduleRoot(t)
	cache := filepath.Join(mod, ".cache", "interop")

	t0 := time.Now()
	rootfs := buildRootfs(t, mod, cache)
	t.Logf("interop: root file system %s ready in %s", rootfs, time.Since(t0).Round(time.Second))

	run := filepath.Join(cache, "run")
	if err := os.RemoveAll(run); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	disk := makeDisk(t, mod, rootfs, run, kernels)
	t.Logf("interop: disk image %s made in %s", disk, time.Since(t1).Round(time.Second))

	events, lines := boot(t, run, kernels["7.2"], disk)
	t.Logf("interop: console and driver output in %s", filepath.Join(run, "console.log"))
	check(t, events, lines)
}

// buildRootfs runs scripts/interop-rootfs.sh, which builds the cached tree
// if needed, and returns the tree's path.
func buildRootfs(t *testing.T, mod, cache string) string {
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

// makeDisk copies the cached tree, adds this run's binaries, kernels and
// units, and makes run/disk.img of it.
func makeDisk(t *testing.T, mod, rootfs, run string, kernels map[string]string) string {
	t.Helper()
	tree := filepath.Join(run, "root")
	mustRun(t, mod, nil, "cp", "-a", "--reflink=auto", rootfs, tree)
	bin := filepath.Join(tree, "usr", "local", "bin")
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	mustRun(t, mod, env, "go", "build", "-trimpath", "-o", filepath.Join(bin, "counter"), "./examples/counter")
	mustRun(t, mod, env, "go", "build", "-trimpath", "-o", filepath.Join(bin, "interop-driver"), "./internal/interop/driver")
	for v, k := range kernels {
		mustRun(t, mod, nil, "cp", k, filepath.Join(tree, "boot", "vmlinuz-"+v))
	}
	sys := filepath.Join(tree, "etc", "systemd", "system")
	wants := filepath.Join(sys, "multi-user.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"interop-driver.service": DriverUnit}
	for _, u := range Units {
		files[u.Name] = u.Text
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(sys, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../"+name, filepath.Join(wants, name)); err != nil {
			t.Fatal(err)
		}
	}
	disk := filepath.Join(run, "disk.img")
	mustRun(t, mod, nil, "mkfs.ext4", "-q", "-F", "-L", "interop", "-d", tree, disk, "1536M")
	if err := os.RemoveAll(tree); err != nil {
		t.Fatal(err)
	}
	return disk
}

// boot runs QEMU until the guest powers off (or hangs), streaming its two
// serial ports to the test log with the time since start, and returns the
// driver's events and every line.
func boot(t *testing.T, run, kernel, disk string) ([]Event, []string) {
	t.Helper()
	limit := runLimit
	if d, ok := t.Deadline(); ok {
		limit = min(limit, time.Until(d)-time.Minute)
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()

	// loglevel=7 puts systemd-shutdown's info lines on the console (what
	// it preserved for the kexec: journald is gone by then, and the
	// console prints levels below loglevel). LUO_INTEROP_DEBUG=1 adds
	// systemd's debug messages to the journal (PID 1's fd store and LUO
	// decisions, in the driver's "pid1" text).
	loglevel := "loglevel=7"
	if os.Getenv("LUO_INTEROP_DEBUG") != "" {
		loglevel += " systemd.log_level=debug"
	}
	cmdline := fmt.Sprintf("root=/dev/vda rw console=ttyS0 liveupdate=on no_timer_check panic=-1 %s systemd.show_status=1 interop.stage=1 interop.stages=%d", loglevel, stages)
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
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
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
		lines  []string
		events []Event
	)
	read := func(name string, r io.Reader) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			text := strings.Map(func(r rune) rune {
				if r < ' ' && r != '\t' || r == 0x7f {
					return -1
				}
				return r
			}, sc.Text())
			now := time.Now()
			stamp := fmt.Sprintf("%7.1fs %-7s| %s", now.Sub(start).Seconds(), name, text)
			mu.Lock()
			last = now
			lines = append(lines, stamp)
			fmt.Fprintln(logf, stamp)
			if name == "driver" {
				ev, ok, err := ParseEvent(text)
				if err != nil {
					t.Errorf("interop: %v in %q", err, text)
				} else if ok {
					ev.Fields["t"] = strconv.FormatFloat(now.Sub(start).Seconds(), 'f', 1, 64)
					events = append(events, ev)
				}
			}
			mu.Unlock()
			t.Log(stamp)
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

func pipe(t *testing.T) (r, w *os.File) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// want is what a counter must report in a stage and phase: the origin of
// its region, the live updates it counted and how keep says the region will
// cross the next kexec (a prefix of the status's mode=).
type want struct {
	origin      string
	liveUpdates int
	mode        string
}

const (
	viaStore   = "fd-store"
	viaSession = "session session=counter-luos.-68532861cc9042219e432ac5"
	viaOwn     = "own-session session=keep/counter-own"
)

// expected is what systemd 262 + keep actually do, per unit, stage and phase
// ("boot": the start at boot; "restart": after systemctl restart), as
// observed: every mode keeps the region across both hops, and
//
//   - fd-store mode: systemd's own "systemd" LUO session carries the memfds
//     at every hop;
//   - LUOSession=: hop 1 goes through the session systemd handed out; after
//     it, systemd hands back only the incoming session, which takes no new
//     files, and the unprivileged service cannot create one, so keep
//     restores from it, falls back to the fd store for this instance and
//     removes the finished session from the store (FDSTOREREMOVE); at the
//     next start (the restart) systemd has no entry named "state" and hands
//     out a new session under the same kernel name, so keep is in session
//     mode again and that session carries hop 2. After a kexec the first
//     start is in fd-store mode, every later start in session mode; both
//     carry the region;
//   - own session (root): keep creates a new outgoing session after each
//     restore (same name), so its session carries every hop.
//
// The kernel name of the LUOSession= session is systemd's
// "<unit id, 13 chars>-<24 hex of sha256(unit/name)>", fixed for a unit.
var expected = map[string]map[string]want{
	"counter-mem.service": {
		"1/boot": {"fresh", 0, viaStore}, "1/restart": {"fdstore", 0, viaStore},
		"2/boot": {"luo", 1, viaStore}, "2/restart": {"fdstore", 1, viaStore},
		"3/boot": {"luo", 2, viaStore}, "3/restart": {"fdstore", 2, viaStore},
	},
	"counter-luos.service": {
		"1/boot": {"fresh", 0, viaSession}, "1/restart": {"fdstore", 0, viaSession},
		"2/boot": {"luo", 1, viaStore}, "2/restart": {"fdstore", 1, viaSession},
		"3/boot": {"luo", 2, viaStore}, "3/restart": {"fdstore", 2, viaSession},
	},
	"counter-own.service": {
		"1/boot": {"fresh", 0, viaOwn}, "1/restart": {"fdstore", 0, viaOwn},
		"2/boot": {"luo", 1, viaOwn}, "2/restart": {"fdstore", 1, viaOwn},
		"3/boot": {"luo", 2, viaOwn}, "3/restart": {"fdstore", 2, viaOwn},
	},
}

// busyPerHop is how many "Failed to preserve LUO fd ... Device or resource
// busy" warnings systemd-shutdown prints at each hop: the memfds of a unit
// in session mode are in its LUO session and in its fd store, and a file can
// be preserved only once, so systemd's copy fails (the session carries them;
// nothing is lost). At both hops counter-luos and counter-own are in session
// mode (their last start was a restart), 2 memfds each (the region and
// keep.index).
var busyPerHop = map[int]int{1: 4, 2: 4}

// check compares the driver's events with the expectations.
func check(t *testing.T, events []Event, lines []string) {
	t.Helper()
	begins := map[int]Event{}
	for _, ev := range events {
		switch ev.Get("event") {
		case "error":
			t.Errorf("interop: stage %d: guest error: %s", ev.Stage, ev.Line)
		case "begin":
			begins[ev.Stage] = ev
		}
	}
	releases := []string{"", "7.2.", "7.3.", "7.2."}
	for s := 1; s <= stages; s++ {
		ev, ok := begins[s]
		if !ok {
			t.Errorf("interop: stage %d never began", s)
			continue
		}
		if r := ev.Get("release"); !strings.HasPrefix(r, releases[s]) {
			t.Errorf("interop: stage %d runs kernel %s, want %s*", s, r, releases[s])
		}
		// The disk is a QEMU snapshot: the marker each stage appends
		// must still be there after the kexecs.
		if m := ev.Get("disk_marks"); m != strconv.Itoa(s-1) {
			t.Errorf("interop: stage %d sees %s disk markers of earlier stages, want %d (writes lost across kexec?)", s, m, s-1)
		}
		if k := ev.Get("kexec_count"); k != strconv.Itoa(s-1) {
			t.Errorf("interop: stage %d: systemd KExecCount=%s, want %d", s, k, s-1)
		}
		if ev.Get("liveupdate_dev") != "true" {
			t.Errorf("interop: stage %d: no /dev/liveupdate", s)
		}
	}
	if !hasEvent(events, stages, "poweroff") {
		t.Errorf("interop: the last stage did not power off")
	}
	// Timing of each hop: kexec requested -> next stage's driver begins.
	for s := 1; s < stages; s++ {
		k, ok1 := findEvent(events, s, "kexec")
		b, ok2 := begins[s+1]
		if ok1 && ok2 {
			t.Logf("interop: hop %d (%s -> %s): systemctl kexec to driver start took %ss", s,
				begins[s].Get("release"), b.Get("release"), subSeconds(b.Get("t"), k.Get("t")))
		}
	}

	// What systemd-shutdown said at each hop (it runs after journald is
	// gone: only the console has it).
	hop, busy, preserved := 1, map[int]int{}, map[int]bool{}
	for _, l := range lines {
		switch {
		case !strings.Contains(l, " console| "):
		case strings.Contains(l, "systemd-shutdown[1]: Failed to preserve LUO fd"):
			if strings.HasSuffix(l, "will be lost across kexec: Device or resource busy") {
				busy[hop]++
			} else {
				t.Errorf("interop: hop %d: %s", hop, l)
			}
		case strings.Contains(l, "systemd-shutdown[1]: Preserved fd stores in LUO session 'systemd' for kexec."):
			preserved[hop] = true
		case strings.Contains(l, "systemd-shutdown[1]: Rebooting with kexec."):
			hop++
		}
	}
	for h := 1; h < stages; h++ {
		if !preserved[h] {
			t.Errorf("interop: hop %d: systemd-shutdown did not report \"Preserved fd stores in LUO session 'systemd' for kexec.\"", h)
		}
		if busy[h] != busyPerHop[h] {
			t.Errorf("interop: hop %d: systemd-shutdown failed to preserve %d fds with EBUSY, want %d", h, busy[h], busyPerHop[h])
		}
	}

	for _, u := range Units {
		t.Run(u.Mode, func(t *testing.T) {
			prevGen := 0
			seen := map[string]bool{}
			for _, ev := range events {
				if ev.Get("event") != "record" || ev.Get("unit") != u.Name {
					continue
				}
				key := fmt.Sprintf("%d/%s", ev.Stage, ev.Get("phase"))
				seen[key] = true
				st, err := ParseStatus(ev.Get("status"))
				if err != nil {
					t.Errorf("%s %s: %s=%s: %v", u.Name, key, ev.Get("active"), ev.Get("sub"), err)
					prevGen = 0
					continue
				}
				t.Logf("%-8s %-10s gen=%d origin=%-7s verified=%s live_updates=%d nfds=%s mode=%s",
					u.Mode, key, st.Generation, st.Origin, st.Verified, st.LiveUpdates, ev.Get("nfds"), st.Mode)
				if ev.Get("active") != "active" {
					t.Errorf("%s %s: %s (%s), want active", u.Name, key, ev.Get("active"), ev.Get("sub"))
				}
				switch {
				case st.Origin == "fresh" && (st.Generation != 1 || st.Verified != "fresh"):
					t.Errorf("%s %s: fresh region with generation=%d verified=%s, want 1 and fresh", u.Name, key, st.Generation, st.Verified)
				case st.Origin != "fresh" && st.Verified != "ok":
					t.Errorf("%s %s: restored region (origin=%s) verified=%s, want ok", u.Name, key, st.Origin, st.Verified)
				case st.Origin != "fresh" && st.Generation != prevGen+1:
					t.Errorf("%s %s: generation=%d after %d, want +1", u.Name, key, st.Generation, prevGen)
				}
				prevGen = st.Generation
				w, ok := expected[u.Name][key]
				if !ok {
					t.Errorf("%s %s: unexpected record", u.Name, key)
					continue
				}
				if st.Origin != w.origin || st.LiveUpdates != w.liveUpdates {
					t.Errorf("%s %s: origin=%s live_updates=%d, want origin=%s live_updates=%d", u.Name, key, st.Origin, st.LiveUpdates, w.origin, w.liveUpdates)
				}
				if st.Mode != w.mode {
					t.Errorf("%s %s: mode=%s, want mode=%s", u.Name, key, st.Mode, w.mode)
				}
			}
			for key := range expected[u.Name] {
				if !seen[key] {
					t.Errorf("%s %s: no record", u.Name, key)
				}
			}
		})
	}
	if t.Failed() {
		t.Logf("interop: systemd/LUO console lines:\n%s", grepLines(lines, "LUO", "luo", "kexec", "fd store", "INTEROP stage="))
	}
}

func hasEvent(events []Event, stage int, name string) bool {
	_, ok := findEvent(events, stage, name)
	return ok
}

func findEvent(events []Event, stage int, name string) (Event, bool) {
	for _, ev := range events {
		if ev.Stage == stage && ev.Get("event") == name {
			return ev, true
		}
	}
	return Event{}, false
}

func subSeconds(a, b string) string {
	x, _ := strconv.ParseFloat(a, 64)
	y, _ := strconv.ParseFloat(b, 64)
	return strconv.FormatFloat(x-y, 'f', 1, 64)
}

func grepLines(lines []string, words ...string) string {
	var b strings.Builder
	for _, l := range lines {
		for _, w := range words {
			if strings.Contains(l, w) {
				b.WriteString(l)
				b.WriteByte('\n')
				break
			}
		}
	}
	return b.String()
}

// moduleRoot is the directory of the go.mod above the test.
func moduleRoot(t *testing.T) string {
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

func mustRun(t *testing.T, dir string, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("interop: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// logWriter sends a command's output to the test log, line by line. Its
// Write logs synchronously, so nothing is logged after exec.Cmd.Wait.
func logWriter(t *testing.T, prefix string) io.Writer {
	return &lineLogger{t: t, prefix: prefix}
}

type lineLogger struct {
	t      *testing.T
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
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format+" ($CI is set, so this is a failure)", args...)
	}
	t.Skipf(format, args...)
}
