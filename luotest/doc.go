// Package luotest lets a service's own go test boot a real Live Update kernel
// in QEMU, with luod as PID 1 running the service from a unit file, live
// update the machine by real kexec (luoctl update run) one or more times, and
// check the service's state in every kernel from test code.
//
// It is the public face of the VM harness luo tests itself with
// (internal/vm, internal/vmtest). Import it from _test.go files only: it
// links package testing and builds Go programs, so it has no place in a
// service binary (a test of this module checks that nothing but tests
// imports it).
//
// # A test
//
// The same test binary runs on the host and, built again for the VM, in
// every stage (boot) of the VM. [Main] tells the two apart; [Run] boots the
// VM on the host, and in the VM calls its function once per stage:
//
//	func TestMain(m *testing.M) { luotest.Main(m) }
//
//	func TestVMCache(t *testing.T) {
//		luotest.Run(t, luotest.Config{
//			Kernels:  []string{"7.2", "7.3", "7.2"}, // three boots, two live updates
//			Services: map[string]string{"cache": "example.com/cache/cmd/cache"},
//			Units: map[string]string{"cache.service": `[Service]
//	Type=notify
//	ExecStart=/vmtest/bin/cache
//	FileDescriptorStoreMax=4
//	FileDescriptorStorePreserve=yes
//	`},
//		}, func(t *testing.T, vm *luotest.VM) {
//			u := vm.WaitActive("cache.service")
//			t.Logf("stage %d: %s", vm.Stage(), u.Status)
//			// check the state the service carried; change it
//		})
//	}
//
// In stage i the VM runs Kernels[i-1]. After the function returns in a
// stage that is not the last, Run live updates the VM into the next stage
// with "luoctl update run" (luod refuses an update that would lose a
// preserved fd, and the test fails); the test then runs again in the next
// kernel. A test stopped by t.Fatal in a stage has no live update: its later
// stages fail, saying so. Whatever the test does before calling Run
// also runs in the VM: keep it to building the Config.
//
// The host reports what ran in the VM as subtests of the test, one verdict
// over all stages: a failure in any stage fails it, and the output of every
// stage is in the log. "go test -v" with VMTEST_VERBOSE=1 also streams every
// line of the VM (kernel console, luod, the tests) as it arrives.
//
// # The VM
//
// Each stage boots with luod as PID 1, which starts the units of
// Config.Units (found in /vmtest/etc/luod/system). Config.Services are
// built static (CGO_ENABLED=0) and installed as /vmtest/bin/NAME, next to
// /vmtest/bin/luod and /vmtest/bin/luoctl; /vmtest is a read-only disk.
// /run and /tmp are empty tmpfs in every stage; only what the service keeps
// in luod's fd store (memfds, see package keep) or in LUO sessions crosses a
// kexec. The VM has 2 CPUs and 2 GiB of memory, no network, and runs the
// tests as root.
//
// # Kernels
//
// An entry of Config.Kernels is a version, "7.2" or "7.3", or the path of a
// bzImage (anything with a "/"). A version is found at $LUO_TEST_KERNEL (7.2)
// or $LUO_TEST_KERNEL_7_3 (7.3, and $LUO_TEST_KERNEL_7_2 for 7.2), else
// ../shared/vm/bzImage[-VERSION] next to the root of the enclosing modules,
// else .cache/kernel/VERSION/bzImage in them (where luo's
// scripts/build-kernel.sh puts it). The kernel needs LIVEUPDATE,
// KEXEC_FILE, virtio-blk, ext4, devtmpfs and 8250 serial built in.
//
// # Requirements
//
// The host needs qemu-system-x86_64 (TCG is enough) and mkfs.ext4, and no
// privileges. Without them or a kernel, Run skips the test with a message
// that says what is missing; when $CI is set it fails instead, so that a CI
// machine cannot pass by skipping. With -short, Run skips. A VM run takes
// about 10 to 20 seconds per stage on TCG, builds included; Config.Timeout
// bounds it.
//
// # Outside this module
//
// Run builds luod, luoctl and the services with the go command in the
// test's module, so the module's go.sum must cover luod and luoctl: add them
// as tools, which also pins them to the luo version the module requires:
//
//	go get -tool github.com/liveupdate/luo/cmd/luod github.com/liveupdate/luo/cmd/luoctl
package luotest
