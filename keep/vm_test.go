//go:build linux && !vmguest

package keep_test

import (
	"testing"

	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
)

// TestVMKeep runs keep's session mode on the real LUO kernel, with the
// service manager played in process (manager_test.go), across one kexec
// from 7.2 to 7.3. The guest side is keep_vmguest_test.go.
func TestVMKeep(t *testing.T) {
	vmtest.Run(t, vm.Config{
		Kernels:  []string{vmtest.Kernel(t, "7.2"), vmtest.Kernel(t, "7.3")},
		TestArgs: []string{"-test.run", "^TestSession"},
	})
}
