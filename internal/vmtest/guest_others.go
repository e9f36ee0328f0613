//go:build !linux

package vmtest

import (
	"fmt"
	"os"
	"testing"
)

// ExpectKexec does nothing: vmtest VMs run Linux.
func ExpectKexec(t testing.TB) {}

// GuestMain exits with status 1: vmtest VMs run Linux.
func GuestMain(m *testing.M) {
	fmt.Fprintln(os.Stderr, "vmtest: GuestMain: vmguest tests run only in a Linux VM under vmtest.Run")
	os.Exit(1)
}
