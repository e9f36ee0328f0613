// Package vmtest runs Go tests inside a QEMU virtual machine on a real Live
// Update kernel, across several boots chained by real kexec ("stages"), and
// reports them on the host as ordinary Go subtests.
//
// Only test code imports this package: the host side of a VM suite calls
// [Run], the guest side calls [GuestMain] from its TestMain. The demo program
// may use the lower-level [Build] and [Boot]. Nothing in production code may
// import it.
//
// # Writing a suite
//
// A suite is one Go package with two test files told apart by the vmguest build
// tag. The host file boots the VM:
//
//	//go:build !vmguest
//
//	func TestVM(t *testing.T) {
//		vmtest.Run(t, vmtest.Config{
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
//		switch vmtest.Stage() {
//		case 1: // create state, vmtest.Hold(session)
//		case 2: // verify it survived the kexec
//		}
//	}
//
// Stage i boots Config.Kernels[i-1]. Every guest test runs in every stage;
// each one looks at [Stage] to decide what to do. A guest test that fails in
// any stage fails its host subtest; one skipped in every stage is skipped.
//
// # How a run works
//
// [Run] builds the package with "go test -c -tags vmguest", the guest init
// (package vmtest/vminit) and Config.Binaries, all with CGO_ENABLED=0. The
// initrd holds only /init; everything else is on a read-only ext4 disk that
// the guest mounts on /vmtest:
//
//	/vmtest/test.bin             the guest test binary
//	/vmtest/plan.json            the Plan: stages, kernels, command lines
//	/vmtest/boot/stage-N.bzImage the kernel of stage N
//	/vmtest/boot/initrd.img      a copy of the initrd, for kexec
//	/vmtest/<name>               Config.Binaries and Config.Files
//
// In each stage, /init (vminit) mounts /dev, /proc, /sys, debugfs, cgroup2,
// /tmp, /run and the disk, then starts the test binary (or execs Config.Init).
// [GuestMain] runs the tests, then loads the next stage's kernel with
// kexec_file_load(2) and reboots into it without closing any file, so sessions
// kept by [Hold] survive; after the last stage it powers the VM off.
//
// # Another init, another kexec
//
// With Config.Init, vminit execs that program (a supervisor under test, say)
// as PID 1 once the file systems are mounted; it must start /vmtest/test.bin,
// whose GuestMain then works as usual. A test that lets other code perform
// the kexec (using [NextBoot]) calls [ExpectKexec] first, so that the tests
// it cuts short count as passed.
//
// # Channels
//
// The VM has two serial ports. ttyS0 carries the kernel console and vminit's
// lines ("vminit: ..."). ttyS1 carries only the guest test binary's stdout and
// stderr, so printk never interleaves with "go test -v" output. Both are read
// on the host through pipes and every line is timestamped on arrival
// ([Line]). The guest marks stage boundaries on ttyS1 with lines such as
//
//	vmtest: stage 1/3 start release=7.2.13
//	vmtest: stage 1/3 exit=0
//
// # Requirements
//
// The host needs qemu-system-x86_64 (TCG is enough; KVM is not used) and
// mkfs.ext4, and a kernel built with KEXEC_FILE, LIVEUPDATE, virtio-blk, ext4,
// devtmpfs and 8250 serial, all built in (see [Kernel]). The guest runs as
// root.
package vmtest
