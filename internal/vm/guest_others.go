//go:build !linux

package vm

// InGuest reports whether the program runs in a VM built by [Build]: never
// on this OS.
func InGuest() bool { return false }

// Stage returns 0: the VMs run Linux.
func Stage() int { return 0 }

// Stages returns 0: the VMs run Linux.
func Stages() int { return 0 }

// Release returns "": the VMs run Linux.
func Release() string { return "" }

// NextBoot fails: the VMs run Linux.
func NextBoot() (kernel, initrd, cmdline string, err error) {
	return "", "", "", errNotInGuest
}
