// Package vm builds and boots the QEMU virtual machine in which luo meets a
// real Live Update kernel: a run of several boots ("stages") chained by real
// kexec, each booting its own kernel. The host side builds the image
// ([Build]) and boots it, reading the guest's output line by line ([Boot]);
// the guest side tells a program where it runs ([Stage], [Release],
// [ReadPlan]), what the next stage boots ([NextBoot]) and keeps sessions open
// across the kexec ([Hold]).
//
// It is imported by package vmtest, the Go test harness built on it, and by
// the demo (internal/demo). It must not import package testing, so that the
// demo binary does not link it (a test of internal/demo checks). Nothing in
// luod, luoctl or the libraries may import it.
//
// # The image
//
// [Build] compiles the guest init (package vm/vminit), the guest test binary
// ("go test -c -tags vmguest", unless Config.Program names a program to run
// instead) and Config.Binaries, all with CGO_ENABLED=0. The initrd holds only
// /init; everything else is on a read-only ext4 disk that the guest mounts on
// /vmtest:
//
//	/vmtest/test.bin             the guest test binary
//	/vmtest/plan.json            the Plan: stages, kernels, command lines
//	/vmtest/boot/stage-N.bzImage the kernel of stage N
//	/vmtest/boot/initrd.img      a copy of the initrd, for kexec
//	/vmtest/<name>               Config.Binaries and Config.Files
//
// In each stage, /init (vminit) mounts /dev, /proc, /sys, debugfs, cgroup2,
// /tmp, /run and the disk, then starts the test binary (or Config.Program),
// or execs Config.Init as PID 1 (see Config.Init and Config.Driver). The
// stage's number is the vmtest.stage= kernel parameter. Moving on to the
// next stage is the guest's business: vmtest.GuestMain kexecs by itself; a
// supervisor under test uses [NextBoot].
//
// # Channels
//
// The VM has two serial ports. ttyS0 carries the kernel console and vminit's
// lines ("vminit: ..."). ttyS1 carries only the output of the test binary
// (or program), so printk never interleaves with it. Both are read on the
// host through pipes and every line is timestamped on arrival ([Line]).
//
// # Network
//
// By default the guest has no network device at all. With
// Config.HostForward it has one, eth0 (virtio-net on QEMU's user networking
// with restrict=on), which the kernel configures as 10.0.2.15/24 from an ip=
// parameter on every stage's command line (the kexec of [NextBoot] keeps
// it). It reaches exactly the forwarded services: a TCP connection to
// [HostIP] on a [Forward]'s GuestPort reaches its Host on the host's
// loopback, through a copy of the program vm/hostfwd, which [Build]
// compiles for the host and QEMU starts for each connection. Anything else
// the guest sends goes nowhere.
//
// # Requirements
//
// The host needs qemu-system-x86_64 (TCG is enough; KVM is not used) and
// mkfs.ext4 ([CheckHost]), and a kernel built with KEXEC_FILE, LIVEUPDATE,
// virtio-blk, ext4, devtmpfs and 8250 serial, all built in ([FindKernel]).
// The guest runs as root; the host needs no privileges.
package vm
