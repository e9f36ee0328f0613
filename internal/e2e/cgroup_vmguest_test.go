//go:build vmguest

package e2e_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/luodtest"
	"github.com/liveupdate/luo/internal/vm"
)

// TestCgroups runs in the stages of TestVMCgroups.
func TestCgroups(t *testing.T) {
	waitLuod(t, control.DefaultSocket)
	switch vm.Stage() {
	case 1:
		waitActive(t, "big.service")
		t.Run("escapee_stopped_with_unit", escapeeStopped)
		t.Run("forged_mainpid_refused", forgedMainPID)
		if t.Failed() {
			return
		}
		liveUpdate(t)
	case 2:
		t.Run("escapee_stopped_with_unit", escapeeStopped)
		t.Run("restored_memory_charged_to_unit", restoredMemoryCharged)
		t.Run("luod_back_in_its_group", luodBackHome)
	}
	t.Run("favordynmods", favorDynmods)
}

// favorDynmods: luod as PID 1 set favordynmods on the cgroup2 hierarchy
// vminit mounted, keeping its other options.
func favorDynmods(t *testing.T) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if _, after, ok := strings.Cut(l, " - cgroup2 "); ok && strings.Contains(l, " /sys/fs/cgroup ") {
			if !strings.Contains(after, "favordynmods") {
				t.Errorf("cgroup2 mounted without favordynmods: %s", l)
			}
			return
		}
	}
	t.Error("no cgroup2 on /sys/fs/cgroup in mountinfo")
}

// escapeeStopped: the escapee, which ignores SIGTERM, dies with its unit,
// and the unit starts again in the group it was killed in (with
// cgroup.kill, some kernels kill every process started into that group at
// birth).
func escapeeStopped(t *testing.T) {
	first := escapeeOf(t)
	stopWithEscapee(t, first)
	os.Remove("/run/escapee")
	mustCall(t, control.MethodStartUnit, control.UnitName{Name: "esc.service"}, nil)
	waitActive(t, "esc.service")
	if again := escapeeOf(t); again == first {
		t.Errorf("the escapee %d after the restart is the one that was killed", again)
	} else {
		stopWithEscapee(t, again)
	}
}

// escapeeOf waits for esc.service's escapee and checks that it is in the
// unit's group.
func escapeeOf(t *testing.T) int {
	var pid int
	poll(t, "the escapee's pid", time.Minute, func() error {
		b, err := os.ReadFile("/run/escapee")
		if err != nil {
			return err
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err
	})
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil || strings.TrimSpace(string(cg)) != "0::/system.slice/esc.service" {
		t.Errorf("the escapee %d is in %q (%v), want the unit's cgroup", pid, cg, err)
	}
	out, _ := luoctl(t, "status", "esc.service")
	if !strings.Contains(out, "CGroup") || !strings.Contains(out, strconv.Itoa(pid)) {
		t.Errorf("luoctl status does not list the escapee %d among the unit's processes", pid)
	}
	return pid
}

// stopWithEscapee stops esc.service and waits for its escapee to die.
func stopWithEscapee(t *testing.T, pid int) {
	mustCall(t, control.MethodStopUnit, control.UnitName{Name: "esc.service"}, nil)
	poll(t, "the escapee gone", 30*time.Second, func() error {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err == nil && !strings.Contains(string(b), ") Z ") {
			return fmt.Errorf("process %d still runs", pid)
		}
		return nil
	})
}

func forgedMainPID(t *testing.T) {
	us := waitActive(t, "victim.service", "thief.service")
	victim, thief := us["victim.service"].MainPID, us["thief.service"].MainPID
	if ans, err := luodtest.Ctl("/run/thief", fmt.Sprintf("mainpid %d", victim)); ans != "ok" {
		t.Fatalf("thief: %q %v", ans, err)
	}
	if got := unit(t, "thief.service").MainPID; got != thief {
		t.Errorf("the thief's main PID is %d after MAINPID=%d, want its own %d", got, victim, thief)
	}
	mustCall(t, control.MethodStopUnit, control.UnitName{Name: "thief.service"}, nil)
	if v := unit(t, "victim.service"); v.ActiveState != "active" || v.MainPID != victim {
		t.Errorf("stopping the thief hurt the victim: %+v", v)
	}
}

func restoredMemoryCharged(t *testing.T) {
	us := waitActive(t, "big.service")
	if st := parseStatus(t, us["big.service"].Status); st.origin != "luo" || st.verified != "ok" {
		t.Fatalf("big.service did not get its state back: %q", st.raw)
	}
	b, err := os.ReadFile("/sys/fs/cgroup/system.slice/big.service/memory.current")
	if err != nil {
		t.Fatal(err)
	}
	charged, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("big.service memory.current: %d bytes (64 MiB restored)", charged)
	if charged < 64<<20 {
		t.Errorf("big.service is charged %d bytes, less than the 64 MiB restored for it: the restored pages went elsewhere", charged)
	}
}

// luodBackHome: after charging each unit's memory to it, luod (PID 1) is
// back in the root group, in no unit's group (a stop kills a unit's whole
// group).
func luodBackHome(t *testing.T) {
	b, err := os.ReadFile("/proc/1/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != "0::/" {
		t.Errorf("luod's cgroup after the restore: %q, want 0::/", got)
	}
}
