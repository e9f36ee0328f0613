package kexec

import (
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo/internal/kimage"
)

// Load loads img with kexec_file_load(2), replacing any loaded image.
func Load(img Image) error {
	k, err := kimage.OpenFile(img.Kernel)
	if err != nil {
		return &Error{Op: "load", Kernel: img.Kernel, Err: err}
	}
	defer k.Close()
	initrdFd, flags := -1, unix.KEXEC_FILE_NO_INITRAMFS
	if img.Initrd != "" {
		i, err := kimage.OpenFile(img.Initrd)
		if err != nil {
			return &Error{Op: "load", Kernel: img.Kernel, Err: fmt.Errorf("initrd: %w", err)}
		}
		defer i.Close()
		initrdFd, flags = int(i.Fd()), 0
	}
	if err := unix.KexecFileLoad(int(k.Fd()), initrdFd, img.Cmdline, flags); err != nil {
		return &Error{Op: "load", Kernel: img.Kernel, Err: err}
	}
	return nil
}

// Unload drops the loaded image, if any.
func Unload() error {
	if err := unix.KexecFileLoad(-1, -1, "", unix.KEXEC_FILE_UNLOAD); err != nil {
		return &Error{Op: "unload", Err: err}
	}
	return nil
}

// Loaded reports whether a kexec image is loaded (/sys/kernel/kexec_loaded).
func Loaded() (bool, error) {
	b, err := os.ReadFile("/sys/kernel/kexec_loaded")
	if err != nil {
		return false, fmt.Errorf("kexec: %w", err)
	}
	return strings.TrimSpace(string(b)) == "1", nil
}

// Exec syncs filesystems and reboots into the loaded image. On success it
// does not return. LUO serializes every outgoing session inside this call;
// if that fails, the error is returned and the sessions stay preserved.
func Exec() error {
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC); err != nil {
		return &Error{Op: "exec", Err: err}
	}
	return nil
}

func hint(op string, errno syscall.Errno) string {
	switch errno {
	case syscall.EADDRNOTAVAIL:
		return "a segment does not fit in the KHO scratch area: use a smaller initrd, " +
			"or cold-boot the current kernel with a larger kho_scratch="
	case syscall.EPERM:
		return "needs CAP_SYS_BOOT, and kernel.kexec_load_disabled must be 0"
	case syscall.ENOEXEC:
		return "not a kernel image this kernel can load (x86 wants a bzImage)"
	case unix.EKEYREJECTED, syscall.EBADMSG, unix.ENOKEY:
		return "the image's signature was rejected (lockdown or KEXEC_SIG_FORCE)"
	case syscall.EBUSY:
		return "another kexec load or exec is in progress"
	case syscall.EINVAL:
		if op == "exec" {
			return "no kernel is loaded"
		}
		return "bad flags or command line"
	case syscall.ENOSYS:
		return "the kernel was built without CONFIG_KEXEC_FILE"
	case syscall.ENOMEM:
		return "not enough memory for the image"
	}
	return ""
}
