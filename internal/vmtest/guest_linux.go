package vmtest

import (
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/vm"
	"golang.org/x/sys/unix"
)

// nofile is the RLIMIT_NOFILE of the guest test binary; tests create
// thousands of sessions.
const nofile = 65536

// ExpectKexec tells the host that something other than [GuestMain] (a
// supervisor using [vm.NextBoot], say) is about to kexec into the next stage
// while t still runs. The host then counts the tests cut short by that kexec
// as passed instead of unfinished. It announces nothing if t has already
// failed, so such a failure still shows. Output is flushed to the host
// before it returns.
func ExpectKexec(t testing.TB) {
	t.Helper()
	if t.Failed() {
		t.Log("vmtest: not announcing the kexec: the test already failed")
		return
	}
	fmt.Printf("vmtest: stage %d/%d kexec expected by %s\n", vm.Stage(), vm.Stages(), t.Name())
	drain()
	kexecExpected.Store(true)
}

// kexecExpected is set by ExpectKexec: GuestMain then waits for that kexec
// instead of doing its own.
var kexecExpected atomic.Bool

// externalKexecWait is how long GuestMain waits for an expected kexec.
const externalKexecWait = 5 * time.Minute

// GuestMain runs the guest tests of one stage and then moves the VM on; call
// it from the suite's TestMain in the vmguest build. It sends stdout and
// stderr to the results port, raises RLIMIT_NOFILE to 65536, turns on
// -test.v, sets -test.timeout to end shortly before the host's deadline
// (unless given), prints "vmtest: stage N/M start release=R", runs m, and prints
// "vmtest: stage N/M exit=CODE". Then, in stages before the last, it loads
// the next stage's kernel with kexec_file_load(2) and reboots into it
// without closing any file (see [vm.Hold]); in the last stage, or if the kexec
// fails ("vmtest: kexec failed: ERR"), it powers the VM off. GuestMain never
// returns. Outside a vmtest VM it exits with status 1 and touches nothing.
func GuestMain(m *testing.M) {
	stage := vm.Stage()
	if stage == 0 {
		fmt.Fprintln(os.Stderr, "vmtest: GuestMain: not in a vmtest VM (no vmtest.stage= on /proc/cmdline); vmguest tests run only under vmtest.Run")
		os.Exit(1)
	}
	p, err := vm.ReadPlan()
	if err != nil {
		guestFatal(err)
	}
	if err := redirect(p.Results); err != nil {
		guestFatal(err)
	}
	total := len(p.Stages)
	if !flag.Parsed() {
		flag.Parse()
	}
	if len(os.Args) == 1 && len(p.Test) > 1 {
		// Started by Config.Init without arguments: use the plan's.
		if err := flag.CommandLine.Parse(p.Test[1:]); err != nil {
			guestFatal(err)
		}
	}
	if err := flag.Set("test.v", "true"); err != nil {
		guestFatal(err)
	}
	setTimeout(p.Deadline)
	fmt.Printf("vmtest: stage %d/%d start release=%s\n", stage, total, vm.Release())
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: nofile, Max: nofile}); err != nil {
		fmt.Printf("vmtest: stage %d/%d setrlimit RLIMIT_NOFILE %d: %v\n", stage, total, nofile, err)
	}

	code := m.Run()

	fmt.Printf("vmtest: stage %d/%d exit=%d\n", stage, total, code)
	if kexecExpected.Load() && stage < total {
		// Someone else (the init under test) reboots into the next stage.
		drain()
		time.Sleep(externalKexecWait)
		fmt.Printf("vmtest: stage %d/%d the expected kexec did not happen within %s\n", stage, total, externalKexecWait)
		drain()
		powerOff()
	}
	if stage < total {
		err := kexec(p, stage+1)
		fmt.Printf("vmtest: kexec failed: %v\n", err)
	} else {
		fmt.Printf("vmtest: stage %d/%d poweroff\n", stage, total)
	}
	powerOff()
}

// timeoutMargin is how long before the host's deadline the guest tests time
// out, leaving time for their goroutine dump to reach the host.
const timeoutMargin = 15 * time.Second

// setTimeout sets -test.timeout from the host's deadline, unless it was
// given explicitly. The guest clock comes from the emulated CMOS clock, set
// from the host's; a deadline that looks absurd is ignored.
func setTimeout(deadline time.Time) {
	if deadline.IsZero() {
		return
	}
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.timeout" })
	left := time.Until(deadline) - timeoutMargin
	if explicit || left > 24*time.Hour {
		return
	}
	flag.Set("test.timeout", max(left, time.Second).String())
}

// redirect points fds 1 and 2 at the results port.
func redirect(port string) error {
	f, err := os.OpenFile(port, os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return fmt.Errorf("vmtest: results port: %w", err)
	}
	defer f.Close()
	for _, fd := range []int{1, 2} {
		if err := unix.Dup3(int(f.Fd()), fd, 0); err != nil {
			return fmt.Errorf("vmtest: results port: %w", os.NewSyscallError("dup3", err))
		}
	}
	return nil
}

// kexec loads stage next and reboots into it. It returns only on failure.
func kexec(p *vm.Plan, next int) error {
	st := p.Stages[next-1]
	kernel, err := os.Open(st.Kernel)
	if err != nil {
		return err
	}
	defer kernel.Close()
	initrd, err := os.Open(p.Initrd)
	if err != nil {
		return err
	}
	defer initrd.Close()
	cmdline := p.StageCmdline(next)
	if err := unix.KexecFileLoad(int(kernel.Fd()), int(initrd.Fd()), cmdline, 0); err != nil {
		return fmt.Errorf("load %s: %w", st.Kernel, os.NewSyscallError("kexec_file_load", err))
	}
	fmt.Printf("vmtest: stage %d/%d kexec into stage %d: %s (%s)\n", next-1, len(p.Stages), next, st.Kernel, st.Release)
	drain()
	unix.Sync()
	return os.NewSyscallError("reboot", unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC))
}

// drain waits until the results port has sent everything written to it
// (tcdrain(3)), so no line is lost to a kexec or a power-off.
func drain() {
	_ = unix.IoctlSetInt(1, unix.TCSBRK, 1) // fails only if stdout is no tty: nothing to drain
}

// powerOff ends the VM.
func powerOff() {
	drain()
	unix.Sync()
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	fmt.Fprintf(os.Stderr, "vmtest: power off: %v\n", err)
	os.Exit(1) // vminit reports the exit and powers off
}

// guestFatal reports err on stderr and on the console, and ends the VM.
func guestFatal(err error) {
	fmt.Fprintf(os.Stderr, "vmtest: stage %d: %v\n", vm.Stage(), err)
	if c, cerr := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0); cerr == nil {
		fmt.Fprintf(c, "vmtest: stage %d: %v\n", vm.Stage(), err)
		c.Close()
	}
	powerOff()
}
