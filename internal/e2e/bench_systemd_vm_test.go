//go:build !vmguest

package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/interop"
	"github.com/liveupdate/luo/internal/vmtest"
)

// The systemd baseline of the blackout benchmark: the same counter as
// benchCounterUnit (examples/counter, Type=notify, a 1 MiB keep region in
// the fd store, root) under the real systemd 262.1 of the interop root file
// system (Debian sid, internal/interop), live-updated with "kexec -s -l" +
// "systemctl kexec" into the same 7.2 kernel, round after round in one QEMU
// run, timed on the host's clock from the arrival of serial lines like
// luod's blackout.
//
// The counter writes to the console itself (StandardOutput=tty, TTYPath=
// /dev/console by default), so its status line, printed just before it
// sends READY=1, reaches the host as it happens, not through journald.
// systemd.show_status=1 puts PID 1's "Stopping counter.service" (printed as
// the stop job begins, right before the SIGTERM) on the console too. The
// kernel command line is otherwise the VM tests' (quiet).

const systemdBenchUnit = "counter.service"

// systemdCounterUnit is the counter's unit file. The service part is
// benchCounterUnit's, with the console for its output.
//
// Normal: default dependencies, started by multi-user.target (after
// sysinit.target and basic.target, as a service is by default).
//
// Early: DefaultDependencies=no and no ordering at all, started by
// sysinit.target: it starts with the first jobs of the boot transaction.
// It needs nothing more: there is no initrd, the kernel mounts the root
// file system read-write (root=/dev/vda rw, empty fstab: nothing remounts
// it), PID 1 mounts /proc, /sys, /dev and /run before it starts any unit,
// and it has restored the fd stores from LUO by then; the service needs
// neither journald (its output goes to the console) nor the network.
// Conflicts= and Before=shutdown.target, which systemd.special(7)
// recommends for units without default dependencies, make systemd stop it
// in the shutdown transaction like the normal unit (otherwise it would be
// left to systemd-shutdown's final SIGTERM to every process), so both
// variants stop alike and differ only in when they start.
func systemdCounterUnit(early bool) string {
	unit, install := "", "multi-user.target"
	if early {
		unit = "DefaultDependencies=no\nConflicts=shutdown.target\nBefore=shutdown.target\n"
		install = "sysinit.target"
	}
	return fmt.Sprintf(`[Unit]
Description=counter, plain memfds in the fd store
%s
[Service]
Type=notify
ExecStart=/usr/local/bin/counter -size 1048576
FileDescriptorStoreMax=8
FileDescriptorStorePreserve=yes
StandardOutput=tty

[Install]
WantedBy=%s
`, unit, install)
}

// systemdRound is one live update of the counter under systemd: stage n
// to stage n+1, host arrival times of the lines that mark it.
type systemdRound struct {
	n int
	// load: the driver's "event=load" (before kexec -s -l); kexec: its
	// "event=kexec" (kernel loaded, before systemctl kexec); stopping:
	// PID 1's "Stopping counter.service" in the old kernel; welcome: PID
	// 1's "Welcome to" in the new kernel; ready: the counter's status line
	// in the new kernel.
	load, kexec, stopping, welcome, ready time.Time
	status                                string
}

// benchSystemd measures rounds live updates of the counter under systemd
// 262.1 (one QEMU run, rounds+1 boots of the 7.2 kernel, chained with
// kexec -s -l + systemctl kexec), early or not (see systemdCounterUnit),
// and returns, per round that restored the counter's state (origin=luo,
// verified=ok, generation and live_updates one up), in seconds on the host
// clock:
//
//   - cmdToReady: the driver's marker just before "kexec -s -l" (loading
//     the kernel with kexec_file_load, as luod's update command does) ->
//     the counter's status line in the new kernel ("counter:
//     generation=... origin=luo", printed just before READY=1);
//   - down: PID 1's "Stopping counter.service" in the old kernel (the stop
//     job begins; SIGTERM follows) -> the same status line.
//
// It skips when the interop test would (no 7.2 kernel, not root, no QEMU
// or mkfs.ext4, no way to build the root file system), builds the interop
// root file system when it is not cached, and fails t for a round that did
// not complete or restored the wrong state.
func benchSystemd(t *testing.T, rounds int, early bool) (cmdToReady, down []float64) {
	t.Helper()
	for _, r := range systemdRounds(t, rounds, early) {
		cmdToReady = append(cmdToReady, r.ready.Sub(r.load).Seconds())
		down = append(down, r.ready.Sub(r.stopping).Seconds())
	}
	return cmdToReady, down
}

// systemdRounds runs the VM of benchSystemd and returns its valid rounds.
func systemdRounds(t *testing.T, rounds int, early bool) []systemdRound {
	t.Helper()
	if testing.Short() {
		t.Skip("systemd baseline: not with -short")
	}
	k72 := vmtest.Kernel(t, "7.2")
	mod, cache, rootfs := interop.Setup(t)
	variant := "normal"
	if early {
		variant = "early"
	}
	run := filepath.Join(cache, "bench-systemd-"+variant)
	disk := interop.MakeDisk(t, mod, rootfs, run, map[string]string{"7.2": k72}, map[string]string{
		systemdBenchUnit: systemdCounterUnit(early),
		// The interop guest driver in its bench mode (interop.bench= on
		// the command line), once the counter is up.
		"interop-bench.service": interop.DriverUnitAfter("benchmark driver", "counter.service"),
	})
	stages := rounds + 1
	cmdline := fmt.Sprintf("root=/dev/vda rw console=ttyS0 panic=-1 liveupdate=on quiet no_timer_check systemd.show_status=1 interop.bench=%s interop.next=7.2 interop.stage=1 interop.stages=%d", systemdBenchUnit, stages)
	events, lines := interop.Boot(t, run, k72, disk, cmdline)
	got := parseSystemdRounds(t, events, lines, stages)
	for _, r := range got {
		t.Logf("systemd baseline (%s): round %d: load->READY %.2fs, kexec->READY %.2fs, Stopping->READY %.2fs, Welcome->READY %.2fs; %s",
			variant, r.n, r.ready.Sub(r.load).Seconds(), r.ready.Sub(r.kexec).Seconds(), r.ready.Sub(r.stopping).Seconds(), r.ready.Sub(r.welcome).Seconds(), r.status)
	}
	if len(got) != rounds {
		t.Errorf("systemd baseline (%s): %d of %d rounds measured", variant, len(got), rounds)
	}
	return got
}

// parseSystemdRounds finds the rounds in the lines and checks the driver's
// events: every stage began in a kexec'd 7.2 kernel with the counter
// active, in the state it must have.
func parseSystemdRounds(t *testing.T, events []interop.Event, lines []interop.Line, stages int) []systemdRound {
	t.Helper()
	begun := map[int]bool{}
	for _, ev := range events {
		s := ev.Stage
		switch ev.Get("event") {
		case "error":
			t.Errorf("systemd baseline: stage %d: guest error: %s", s, ev.Line)
		case "begin":
			begun[s] = true
			if k := ev.Get("kexec_count"); k != strconv.Itoa(s-1) || !strings.HasPrefix(ev.Get("release"), "7.2.") {
				t.Errorf("systemd baseline: stage %d: kernel %s, KExecCount=%s; want 7.2.*, %d", s, ev.Get("release"), k, s-1)
			}
		case "settled":
			if st := ev.Get("state"); st != "running" {
				t.Logf("systemd baseline: stage %d: system %s", s, st)
			}
		case "record":
			if err := checkSystemdStatus(ev.Get("status"), s); err != nil || ev.Get("active") != "active" {
				t.Errorf("systemd baseline: stage %d: %s is %s/%s, %v", s, systemdBenchUnit, ev.Get("active"), ev.Get("sub"), err)
			}
		}
	}
	for s := 1; s <= stages; s++ {
		if !begun[s] {
			t.Errorf("systemd baseline: stage %d never began", s)
		}
	}

	var out []systemdRound
	var cur *systemdRound
	for _, l := range lines {
		if l.Stream == "driver" {
			ev, ok, err := interop.ParseEvent(l.Text)
			if !ok || err != nil {
				continue
			}
			switch ev.Get("event") {
			case "load":
				cur = &systemdRound{n: ev.Stage, load: l.Time}
			case "kexec":
				if cur != nil && cur.n == ev.Stage {
					cur.kexec = l.Time
				}
			}
			continue
		}
		if cur == nil || cur.kexec.IsZero() {
			continue
		}
		switch text := l.Text; {
		case cur.stopping.IsZero() && strings.Contains(text, "Stopping "+systemdBenchUnit):
			cur.stopping = l.Time
		case !cur.stopping.IsZero() && cur.welcome.IsZero() && strings.Contains(text, "Welcome to "):
			cur.welcome = l.Time
		case !cur.welcome.IsZero() && strings.Contains(text, "counter: generation="):
			_, cur.status, _ = strings.Cut(text, "counter: ")
			cur.ready = l.Time
			if err := checkSystemdStatus(cur.status, cur.n+1); err != nil {
				t.Errorf("systemd baseline: round %d: %v; round left out", cur.n, err)
			} else {
				out = append(out, *cur)
			}
			cur = nil
		}
	}
	return out
}

// checkSystemdStatus checks the counter's status in stage s: fresh in the
// first, then restored from LUO, verified, one generation and one live
// update more at each stage.
func checkSystemdStatus(status string, s int) error {
	st, err := interop.ParseStatus(status)
	if err != nil {
		return err
	}
	origin, verified := "luo", "ok"
	if s == 1 {
		origin, verified = "fresh", "fresh"
	}
	if st.Origin != origin || st.Verified != verified || st.Generation != s || st.LiveUpdates != s-1 {
		return fmt.Errorf("status %q, want origin=%s verified=%s generation=%d live_updates=%d", status, origin, verified, s, s-1)
	}
	return nil
}

// TestVMBenchSystemd measures the systemd baseline of the blackout
// benchmark on its own (skipped unless LUO_BENCH=1; LUO_BENCH_ROUNDS
// rounds, default 7): the counter as a normal unit and ordered early.
func TestVMBenchSystemd(t *testing.T) {
	if os.Getenv("LUO_BENCH") != "1" {
		t.Skip("benchmark: run with make bench (LUO_BENCH=1)")
	}
	rounds := 7
	if v, err := strconv.Atoi(os.Getenv("LUO_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nblackout of %s under systemd 262.1 (Debian sid): kexec -s -l + systemctl kexec, 7.2 -> 7.2, QEMU TCG -m 2048 -smp 2\n", systemdBenchUnit)
	fmt.Fprintf(&b, "host clock: arrival of the serial lines; %d rounds per variant, one QEMU run each\n", rounds)
	fmt.Fprintf(&b, "%-58s %8s %8s %8s %3s\n", "", "min", "median", "max", "n")
	for _, early := range []bool{false, true} {
		name := "normal unit (default dependencies, multi-user.target)"
		if early {
			name = "early unit (DefaultDependencies=no, sysinit.target)"
		}
		var rs []systemdRound
		start := time.Now()
		skipped := false
		t.Run(map[bool]string{false: "normal", true: "early"}[early], func(t *testing.T) {
			defer func() { skipped = t.Skipped() }()
			rs = systemdRounds(t, rounds, early)
		})
		if skipped {
			t.Skip("systemd baseline: skipped (see the subtest)")
		}
		fmt.Fprintf(&b, "%s: QEMU run and disk %s\n", name, time.Since(start).Round(time.Second))
		span := func(f func(systemdRound) time.Duration) []float64 {
			var xs []float64
			for _, r := range rs {
				xs = append(xs, f(r).Seconds())
			}
			return xs
		}
		row := func(label string, xs []float64) {
			if len(xs) == 0 {
				fmt.Fprintf(&b, "  %-56s (no data)\n", label)
				return
			}
			s := slices.Sorted(slices.Values(xs))
			med := s[len(s)/2]
			if len(s)%2 == 0 {
				med = (s[len(s)/2-1] + s[len(s)/2]) / 2
			}
			fmt.Fprintf(&b, "  %-56s %7.2fs %7.2fs %7.2fs %3d\n", label, s[0], med, s[len(s)-1], len(s))
		}
		row("command (kexec -s -l; systemctl kexec) -> READY", span(func(r systemdRound) time.Duration { return r.ready.Sub(r.load) }))
		row("systemctl kexec -> READY", span(func(r systemdRound) time.Duration { return r.ready.Sub(r.kexec) }))
		row("service down: PID 1's Stopping -> READY", span(func(r systemdRound) time.Duration { return r.ready.Sub(r.stopping) }))
		row("  kexec -s -l (load)", span(func(r systemdRound) time.Duration { return r.kexec.Sub(r.load) }))
		row("  systemctl kexec -> new PID 1's Welcome", span(func(r systemdRound) time.Duration { return r.welcome.Sub(r.kexec) }))
		row("  new PID 1's Welcome -> READY", span(func(r systemdRound) time.Duration { return r.ready.Sub(r.welcome) }))
	}
	t.Logf("%s", b.String())
}
