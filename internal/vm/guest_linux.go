package vm

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// InGuest reports whether the program runs in a VM built by [Build].
func InGuest() bool { return Stage() > 0 }

// Stage returns the number of the running stage, from 1, or 0 outside a VM
// built by [Build]. It reads vmtest.stage= from /proc/cmdline.
func Stage() int {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return 0
	}
	return stageFromCmdline(string(b))
}

// Stages returns the number of stages of the run, or 0 outside a VM built
// by [Build].
func Stages() int {
	if !InGuest() {
		return 0
	}
	p, err := ReadPlan()
	if err != nil {
		return 0
	}
	return len(p.Stages)
}

// Release returns the release of the running kernel, as uname -r prints it.
func Release() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// NextBoot returns what the next stage boots: the guest paths of its kernel
// and initrd, and its full kernel command line (which keeps liveupdate=on).
// Code that performs the kexec itself, such as a supervisor under test, uses
// it with kexec_file_load(2); a guest test that lets it do so calls
// vmtest.ExpectKexec first. It fails in the last stage and outside a VM
// built by [Build].
func NextBoot() (kernel, initrd, cmdline string, err error) {
	n := Stage()
	if n == 0 {
		return "", "", "", errNotInGuest
	}
	p, err := ReadPlan()
	if err != nil {
		return "", "", "", err
	}
	if n >= len(p.Stages) {
		return "", "", "", fmt.Errorf("vm: stage %d/%d is the last: there is no next boot", n, len(p.Stages))
	}
	return p.Stages[n].Kernel, p.Initrd, p.StageCmdline(n + 1), nil
}
