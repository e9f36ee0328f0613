//go:build !vmguest

package luo_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
)

// TestVMKernel runs the kernel's LUO selftests (ported to this package) and
// the extra cases in a VM on the real LUO kernel, across three kexecs that
// upgrade 7.2 -> 7.3, roll back to 7.2 and upgrade again. The guest side is
// in selftest_vmguest_test.go.
func TestVMKernel(t *testing.T) {
	k72, k73 := vmtest.Kernel(t, "7.2"), vmtest.Kernel(t, "7.3")
	vmtest.Run(t, vm.Config{
		Kernels:  []string{k72, k73, k72, k73},
		TestArgs: []string{"-test.run", "^Test(LiveupdateDevice|Kexec|Extra|SizeField)$"},
	})
}

// TestVMBench runs the preserve/retrieve benchmark (bench_vmguest_test.go):
// package luo against the same loop of raw ioctl(2) calls, side by side, in
// one VM run across one kexec. Run it with make bench (LUO_BENCH=1).
func TestVMBench(t *testing.T) {
	if os.Getenv("LUO_BENCH") == "" {
		t.Skip("benchmark: run with make bench (LUO_BENCH=1)")
	}
	k := vmtest.Kernel(t, "7.2")
	res := vmtest.Run(t, vm.Config{
		Kernels:  []string{k, k},
		TestArgs: []string{"-test.run", "^TestBenchPreserveRetrieve$", "-luo.bench"},
	})
	fmt.Println("\n== package luo against raw ioctl(2), QEMU TCG, Linux 7.2.13, one VM run across one kexec ==")
	for _, tr := range res.Tests {
		if tr.Name == "TestBenchPreserveRetrieve" {
			t.Logf("stage %d:\n%s", tr.Stage, strings.Join(tr.Output, "\n"))
			for _, l := range tr.Output {
				if !strings.HasPrefix(l, "===") && !strings.HasPrefix(l, "---") {
					fmt.Println(l)
				}
			}
		}
	}
}
