//go:build linux && vmguest

package smoke

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
)

func TestMain(m *testing.M) { vmtest.GuestMain(m) }

// TestStage checks that each stage runs the kernel the plan gave it.
func TestStage(t *testing.T) {
	p, err := vm.ReadPlan()
	if err != nil {
		t.Fatal(err)
	}
	n, total := vm.Stage(), vm.Stages()
	if n < 1 || n > total || total != len(p.Stages) || total != 3 {
		t.Fatalf("Stage() = %d, Stages() = %d, plan has %d stages; want 1..3 of 3", n, total, len(p.Stages))
	}
	if got, want := vm.Release(), p.Stages[n-1].Release; got != want {
		t.Errorf("stage %d: Release() = %q, want %q", n, got, want)
	}
	t.Logf("stage %d/%d on %s", n, total, vm.Release())
}

// TestNextBoot checks what a self-kexecing program would be given.
func TestNextBoot(t *testing.T) {
	kernel, initrd, cmdline, err := vm.NextBoot()
	if vm.Stage() == vm.Stages() {
		if err == nil {
			t.Errorf("NextBoot() in the last stage succeeded: %q %q %q", kernel, initrd, cmdline)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{kernel, initrd} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
	next := "vmtest.stage=" + string(rune('0'+vm.Stage()+1))
	if !strings.Contains(cmdline, "liveupdate=on") || !strings.Contains(cmdline, next) {
		t.Errorf("next cmdline %q lacks liveupdate=on or %s", cmdline, next)
	}
}

// TestHold holds a memfd across the first kexec; that the next stages start
// at all is the check.
func TestHold(t *testing.T) {
	t.Run("memfd", func(t *testing.T) {
		if vm.Stage() != 1 {
			t.Skip("the memfd is created in stage 1")
		}
		fd, err := unix.MemfdCreate("vmtest-hold", unix.MFD_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(fd), "memfd:vmtest-hold")
		if _, err := f.WriteString("held"); err != nil {
			t.Fatal(err)
		}
		vm.Hold(f)
	})
}

// TestEnvironment checks what vminit and GuestMain set up.
func TestEnvironment(t *testing.T) {
	b, err := os.ReadFile(vm.DiskDir + "/smoke/hello.txt")
	if err != nil || !bytes.Equal(b, []byte("hello from the host\n")) {
		t.Errorf("Config.Files: %q, %v", b, err)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 65536 {
		t.Errorf("RLIMIT_NOFILE = %d, %v; want >= 65536", lim.Cur, err)
	}
	if err := os.WriteFile("/tmp/x", []byte("x"), 0o644); err != nil {
		t.Errorf("/tmp is not writable: %v", err)
	}
	for _, p := range []string{"/dev/liveupdate", "/sys/kernel/debug/kho", "/proc/self", "/sys/fs/cgroup/cgroup.controllers"} {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
	if err := os.WriteFile(vm.DiskDir+"/x", nil, 0o644); err == nil {
		t.Errorf("the disk is writable")
	}
}

func TestNested(t *testing.T) {
	t.Run("a", func(t *testing.T) {
		t.Run("b", func(t *testing.T) { t.Logf("nested in stage %d", vm.Stage()) })
	})
}

// TestSkipped skips in every stage, having declared why.
func TestSkipped(t *testing.T) {
	vmtest.MaySkip(t, "proves that a declared skip is reported as a skip")
	t.Skip("skipped in the guest on purpose")
}
