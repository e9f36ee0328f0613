//go:build !vmguest

package e2e_test

import (
	"testing"

	"github.com/liveupdate/luo/internal/vmtest"
)

// cgroupUnits are the services of TestVMCgroups.
var cgroupUnits = map[string]string{
	// 64 MiB of state, restored by luod in the next kernel.
	"big.service": "[Service]\nType=notify\nExecStart=/vmtest/bin/counter -size 67108864\nFileDescriptorStoreMax=4\nFileDescriptorStorePreserve=yes\n",
	// Starts a process that calls setsid and is orphaned (a double fork).
	"esc.service":    "[Service]\nType=notify\nExecStart=/vmtest/bin/testsvc -status up -escape /run/escapee\n",
	"victim.service": "[Service]\nType=notify\nExecStart=/vmtest/bin/testsvc -status up -ctl /run/victim\n",
	"thief.service":  "[Service]\nType=notify\nExecStart=/vmtest/bin/testsvc -status up -ctl /run/thief\n",
}

// TestVMCgroups: luod as PID 1 on the real kernel puts every unit in a
// cgroup of its own: a setsid and double-forked process stops with its
// unit, a forged MAINPID= is refused, and after a live update the memory
// of a unit's restored memfds is charged to the unit, not to luod.
func TestVMCgroups(t *testing.T) {
	k72, k73 := vmtest.Kernel(t, "7.2"), vmtest.Kernel(t, "7.3")
	cfg := luodConfig([]string{k72, k73}, cgroupUnits, "-test.run", "^TestCgroups$")
	cfg.Binaries["bin/testsvc"] = "github.com/liveupdate/luo/internal/luodtest/testsvc"
	vmtest.Run(t, cfg)
}
