// Package vmtest runs Go tests inside a QEMU virtual machine on a real Live
// Update kernel, across several boots chained by real kexec ("stages"), and
// reports them on the host as ordinary Go subtests. It is the Go test
// harness on top of package vm, which builds and boots the VM.
//
// Only test code imports this package: the host side of a VM suite calls
// [Run], the guest side calls [GuestMain] from its TestMain. Programs (the
// demo) use package vm, which does not link package testing. Nothing in
// production code may import it.
//
// # Writing a suite
//
// A suite is one Go package with two test files told apart by the vmguest build
// tag. The host file boots the VM:
//
//	//go:build !vmguest
//
//	func TestVM(t *testing.T) {
//		vmtest.Run(t, vm.Config{
//			Kernels: []string{vmtest.Kernel(t, "7.2"), vmtest.Kernel(t, "7.3")},
//		})
//	}
//
// The guest file holds the tests that run inside the VM, once per stage:
//
//	//go:build vmguest
//
//	func TestMain(m *testing.M) { vmtest.GuestMain(m) }
//
//	func TestKexec(t *testing.T) {
//		switch vm.Stage() {
//		case 1: // create state, vm.Hold(session)
//		case 2: // verify it survived the kexec
//		}
//	}
//
// Stage i boots Config.Kernels[i-1]. Every guest test runs in every stage;
// each one looks at [vm.Stage] to decide what to do. The guest side finds
// its way with package vm: [vm.Stage], [vm.Stages], [vm.Release],
// [vm.ReadPlan], [vm.NextBoot], and [vm.Hold] for what must stay open across
// the kexec.
//
// # Verdicts
//
// A guest test that fails in any stage (or does not finish) fails its host
// subtest. One skipped in every stage is skipped; but when $CI is set on the
// host, it fails, unless the guest test declared why it may skip with
// [MaySkip] (a test for a kernel the run does not boot, say), and the skip
// message gives that reason. A run fails as a whole when no guest test ran
// at all (a -test.run in Config.TestArgs that matches nothing, say), when a
// stage's test binary exits 0 without running any test, and when a stage
// does not boot, does not start its tests or does not finish them.
//
// # How a run works
//
// [Run] builds the VM with [vm.Build]: the package is built with
// "go test -c -tags vmguest" and put on the VM's disk (see package vm for its
// layout). In each stage, /init starts the test binary (or execs
// Config.Init); [GuestMain] runs the tests, then loads the next stage's kernel
// with kexec_file_load(2) and reboots into it without closing any file, so
// sessions kept by [vm.Hold] survive; after the last stage it powers the VM
// off.
//
// # Another init, another kexec
//
// With Config.Init, /init execs that program (a supervisor under test, say)
// as PID 1 once the file systems are mounted; it must start /vmtest/test.bin,
// whose GuestMain then works as usual. A test that lets other code perform
// the kexec (using [vm.NextBoot]) calls [ExpectKexec] first, so that the
// tests it cuts short count as passed.
//
// # Channels
//
// The guest test binary's stdout and stderr go to the VM's second serial
// port, which carries nothing else ([vm.Results]). The guest marks stage
// boundaries and declarations there with lines such as
//
//	vmtest: stage 1/3 start release=7.2.13
//	vmtest: stage 1/3 may skip TestX/case: needs Linux 7.3
//	vmtest: stage 1/3 exit=0
//
// and the host parses them with the "go test -v" output around them.
//
// # Requirements
//
// Those of package vm ([vm.CheckHost], [vm.FindKernel]): qemu-system-x86_64,
// mkfs.ext4 and the LUO test kernels. Without them [Run] and [Kernel] skip
// the test, or fail it when $CI is set. The guest runs as root; the host
// needs no privileges.
package vmtest
