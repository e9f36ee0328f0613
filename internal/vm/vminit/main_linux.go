package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/liveupdate/luo/internal/vm"
	"golang.org/x/sys/unix"
)

// console receives vminit's lines. It is the kernel's /dev/console until
// devtmpfs is mounted.
var console = os.Stdout

func main() {
	if d, ok := os.LookupEnv(delayEnv); ok && os.Getpid() != 1 {
		os.Exit(delayedDriver(d))
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "vminit: not PID 1; this is the init of a VM built by package vm, not a command")
		os.Exit(2)
	}
	err := run()
	logf("vminit: %v", err)
	powerOff()
}

func logf(format string, args ...any) {
	fmt.Fprintf(console, format+"\n", args...)
}

// run sets up the stage and returns only on failure.
func run() error {
	if err := mountAll(); err != nil {
		return err
	}
	if c, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0); err == nil {
		console = c
	}
	if err := mountDisk(); err != nil {
		return err
	}
	plan, err := vm.ReadPlan()
	if err != nil {
		return err
	}
	stage, total := vm.Stage(), len(plan.Stages)
	if stage == 0 {
		return errors.New("no vmtest.stage= on the kernel command line")
	}
	// The firmware leaves the console mid-line: start a fresh one.
	logf("\nvminit: stage %d release %s", stage, vm.Release())
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 65536, Max: 65536}); err != nil {
		logf("vminit: setrlimit RLIMIT_NOFILE: %v", err)
	}
	env := []string{
		"PATH=" + vm.DiskDir + "/bin:" + vm.DiskDir + ":/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/tmp",
		"TMPDIR=/tmp",
	}
	if len(plan.Init) > 0 && !plan.Driver {
		logf("vminit: exec %q", plan.Init)
		return fmt.Errorf("exec %s: %w", plan.Init[0], unix.Exec(plan.Init[0], plan.Init, env))
	}

	port, err := os.OpenFile(plan.Results, os.O_WRONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("results port: %w", err)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	argv, procEnv := plan.Test, env
	if plan.Driver && plan.Delay > 0 && len(plan.Init) > 0 {
		argv = append([]string{"/init"}, plan.Test...)
		procEnv = append([]string{delayEnv + "=" + plan.Delay.String()}, env...)
	}
	proc, err := os.StartProcess(argv[0], argv, &os.ProcAttr{
		Dir:   "/",
		Env:   procEnv,
		Files: []*os.File{null, port, port},
	})
	if err != nil {
		return fmt.Errorf("start test binary: %w", err)
	}
	if len(plan.Init) > 0 {
		// Driver mode: the test binary stays, a child of the init we become.
		// It only drives and watches; niced, its start (a large binary)
		// does not take the CPU from the init under test and its services,
		// which start at the same moment.
		if err := unix.Setpriority(unix.PRIO_PROCESS, proc.Pid, 19); err != nil {
			logf("vminit: nice the test binary: %v", err)
		}
		null.Close()
		port.Close()
		logf("vminit: test binary pid %d drives (starting in %v); exec %q", proc.Pid, plan.Delay, plan.Init)
		return fmt.Errorf("exec %s: %w", plan.Init[0], unix.Exec(plan.Init[0], plan.Init, env))
	}
	status, err := reapUntil(proc.Pid)
	if err != nil {
		return err
	}
	fmt.Fprintf(port, "vmtest: stage %d/%d test binary exited without kexec/poweroff: %s\n", stage, total, describe(status))
	unix.IoctlSetInt(int(port.Fd()), unix.TCSBRK, 1) // tcdrain
	return fmt.Errorf("stage %d/%d: test binary exited without kexec/poweroff: %s", stage, total, describe(status))
}

// mounts are the file systems of the guest, in order.
var mounts = []struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}{
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"debugfs", "/sys/kernel/debug", "debugfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"cgroup2", "/sys/fs/cgroup", "cgroup2", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
}

func mountAll() error {
	for _, m := range mounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
	}
	return nil
}

// mountDisk mounts the test disk, waiting a little for the device to show
// up in case the driver probes asynchronously.
func mountDisk() error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := unix.Mount("/dev/vda", vm.DiskDir, "ext4", unix.MS_RDONLY, "")
		if err == nil {
			return nil
		}
		if (!errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENXIO)) || time.Now().After(deadline) {
			return fmt.Errorf("mount /dev/vda (ext4) on %s: %w", vm.DiskDir, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// reapUntil reaps every child, as PID 1 must, until pid exits.
func reapUntil(pid int) (unix.WaitStatus, error) {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return ws, fmt.Errorf("wait4: %w", err)
		case got == pid && (ws.Exited() || ws.Signaled()):
			return ws, nil
		}
	}
}

func describe(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "signal " + ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}

// powerOff ends the VM. If that fails, returning from PID 1 panics the
// kernel, which with panic=-1 and QEMU's -no-reboot ends the VM too.
func powerOff() {
	unix.IoctlSetInt(int(console.Fd()), unix.TCSBRK, 1) // tcdrain
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		logf("vminit: power off: %v", err)
	}
	os.Exit(1)
}

// delayEnv makes vminit, started as a child of itself, wait that long and
// exec the test binary (Plan.Delay): [delayEnv=DURATION, env...] and
// argv [/init, test binary, args...].
const delayEnv = "VMINIT_DRIVER_DELAY"

// delayedDriver is that child. It returns only on failure.
func delayedDriver(delay string) int {
	d, err := time.ParseDuration(delay)
	if err != nil || len(os.Args) < 2 {
		fmt.Fprintf(os.Stderr, "vminit: driver delay %q, argv %q\n", delay, os.Args)
		return 2
	}
	time.Sleep(d)
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, delayEnv+"=") })
	err = unix.Exec(os.Args[1], os.Args[1:], env)
	fmt.Fprintf(os.Stderr, "vminit: exec %s: %v\n", os.Args[1], err)
	return 2
}
