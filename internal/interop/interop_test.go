//go:build linux

package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/liveupdate/luo/internal/vmtest"
)

const (
	// stages: 7.2 boot, kexec to 7.3, kexec back to 7.2.
	stages = 3
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
	mod, cache, rootfs := Setup(t)
	units := map[string]string{"interop-driver.service": DriverUnit}
	for _, u := range Units {
		units[u.Name] = u.Text
	}
	run := filepath.Join(cache, "run")
	disk := MakeDisk(t, mod, rootfs, run, kernels, units)

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
	events, lines := Boot(t, run, kernels["7.2"], disk, cmdline)
	check(t, events, lines)
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
func check(t *testing.T, events []Event, lines []Line) {
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
	for _, line := range lines {
		l := line.Text
		switch {
		case line.Stream != "console":
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

func grepLines(lines []Line, words ...string) string {
	var b strings.Builder
	for _, l := range lines {
		for _, w := range words {
			if strings.Contains(l.Text, w) {
				b.WriteString(l.String())
				b.WriteByte('\n')
				break
			}
		}
	}
	return b.String()
}
