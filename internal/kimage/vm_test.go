//go:build !vmguest

package kimage_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
)

// TestVMRunning boots the 7.2 kernel and kexecs into 7.3; in each stage,
// TestGuestRunning (running_vmguest_test.go) compares Running with the
// formats of the stage's kernel image.
func TestVMRunning(t *testing.T) {
	res := vmtest.Run(t, vm.Config{
		Kernels:  []string{vmtest.Kernel(t, "7.2"), vmtest.Kernel(t, "7.3")},
		TestArgs: []string{"-test.run", "^TestGuestRunning$"},
	})
	var statuses []vmtest.Status
	for _, tr := range res.Tests {
		if tr.Name != "TestGuestRunning" {
			continue
		}
		statuses = append(statuses, tr.Status)
		for _, l := range tr.Output {
			if strings.Contains(l, "Running() = ") {
				t.Log(strings.TrimSpace(l))
			}
		}
	}
	if want := []vmtest.Status{vmtest.Pass, vmtest.Pass}; !slices.Equal(statuses, want) {
		t.Errorf("TestGuestRunning statuses by stage = %v, want %v", statuses, want)
	}
}
