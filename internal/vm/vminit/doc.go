// Command vminit is the /init (PID 1) of a VM built by package vm, whose
// Build puts it in the initrd. Nothing else should run it: it refuses to run
// unless it is PID 1.
//
// In every stage it mounts devtmpfs on /dev, proc, sysfs, debugfs, cgroup2,
// tmpfs on /tmp and /run, and the test disk /dev/vda (ext4, read-only) on
// /vmtest; reads /vmtest/plan.json; prints "vminit: stage N release R" on the
// console; then either execs the plan's Init as PID 1, or starts the plan's
// test binary (or program) with stdout and stderr on the results port and
// reaps children until it exits. The test binary (vmtest.GuestMain) kexecs or
// powers off by itself; if it exits instead, vminit says so on the results
// port and powers off. Any error is printed on the console and powers off:
// the guest never hangs on purpose.
package main
