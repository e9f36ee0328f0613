//go:build !linux

package vmtest

import (
	"fmt"
	"os"
	"testing"
)

// InGuest reports whether the program runs in a vmtest VM: never on this OS.
func InGuest() bool { return false }

// Stage returns 0: vmtest VMs run Linux.
func Stage() int { return 0 }

// Stages returns 0: vmtest VMs run Linux.
func Stages() int { return 0 }

// Release returns "": vmtest VMs run Linux.
func Release() string { return "" }

// NextBoot fails: vmtest VMs run Linux.
func NextBoot() (kernel, initrd, cmdline string, err error) {
	return "", "", "", errNotInGuest
}

// ExpectKexec does nothing: vmtest VMs run Linux.
func ExpectKexec(t testing.TB) {}

// GuestMain exits with status 1: vmtest VMs run Linux.
func GuestMain(m *testing.M) {
	fmt.Fprintln(os.Stderr, "vmtest: GuestMain: vmguest tests run only in a Linux VM under vmtest.Run")
	os.Exit(1)
}
