// Package kexec loads the next kernel with kexec_file_load(2) and reboots
// into it with reboot(LINUX_REBOOT_CMD_KEXEC): the two steps of a live
// update that happen outside LUO.
//
// Only the file-based loader is used: the kernel hands its Kexec HandOver
// (KHO) data, and with it every LUO session, to the next kernel only on that
// path. Imported by luod and the VM tests. Needs CAP_SYS_BOOT. Linux only.
package kexec

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// Error is a failed load or exec. Err keeps the errno.
type Error struct {
	Op     string // "load", "unload", "exec"
	Kernel string // kernel image path, for load
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kexec %s", e.Op)
	if e.Kernel != "" {
		fmt.Fprintf(&b, " %s", e.Kernel)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	if h := e.Hint(); h != "" {
		fmt.Fprintf(&b, " (%s)", h)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Hint explains the usual causes of the errno, or returns "".
func (e *Error) Hint() string {
	var errno syscall.Errno
	if !errors.As(e.Err, &errno) {
		return ""
	}
	return hint(e.Op, errno)
}

// Image is what to load: a kernel, an optional initrd, and the command line.
type Image struct {
	Kernel  string
	Initrd  string // "" for none
	Cmdline string
}

// CurrentCmdline returns the running kernel's command line (/proc/cmdline).
func CurrentCmdline() (string, error) {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return "", fmt.Errorf("kexec: read command line: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// CmdlineHas reports whether cmdline sets param to a true value in the
// kernel's kstrtobool sense (1, y, Y, t, T, e, E, on), e.g.
// CmdlineHas(c, "liveupdate"). The last occurrence wins, as in the kernel.
func CmdlineHas(cmdline, param string) bool {
	v, ok := CmdlineValue(cmdline, param)
	return ok && parseBool(v)
}

// CmdlineValue returns the value of the last occurrence of param in
// cmdline ("" for a bare "param"), and whether it occurs at all.
func CmdlineValue(cmdline, param string) (value string, ok bool) {
	for _, w := range strings.Fields(cmdline) {
		k, v, _ := strings.Cut(w, "=")
		if k == param {
			value, ok = v, true
		}
	}
	return value, ok
}

func parseBool(v string) bool {
	if v == "" {
		return false
	}
	switch v[0] {
	case '1', 'y', 'Y', 't', 'T', 'e', 'E':
		return true
	case 'o', 'O':
		return len(v) > 1 && (v[1] == 'n' || v[1] == 'N')
	}
	return false
}
