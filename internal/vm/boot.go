package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The streams a [Line] can come from.
const (
	// Console is the first serial port: kernel console and vminit.
	Console = "console"
	// Results is the second serial port: the guest test binary's output.
	Results = "results"
	// QEMU is QEMU's own stdout and stderr.
	QEMU = "qemu"
)

// A Line is one line of VM output, stamped when it arrived on the host.
type Line struct {
	// Time is when the line's last byte was read on the host.
	Time time.Time
	// Stream is Console, Results or QEMU.
	Stream string
	// Text is the line without its line ending, terminal escape sequences
	// and other control characters but tabs.
	Text string
}

// A VM is a running QEMU started by [Boot]. Its methods are safe for
// concurrent use.
type VM struct {
	cmd     *exec.Cmd
	cancel  context.CancelFunc
	start   time.Time
	watch   func(Line)
	readers sync.WaitGroup
	done    chan struct{}
	err     error // set before done is closed

	mu    sync.Mutex
	lines []Line
}

// Boot starts QEMU on img, with TCG (no KVM), the disk read-only and the two
// serial ports read through pipes. watch, if not nil, is called with every
// line as it arrives, one call at a time; it must not block for long. QEMU
// is killed when ctx is done. The caller must call Wait or Kill.
func Boot(ctx context.Context, img *Image, watch func(Line)) (*VM, error) {
	qemu, err := qemuPath()
	if err != nil {
		return nil, err
	}
	args, err := qemuArgs(img)
	if err != nil {
		return nil, err
	}
	consoleR, consoleW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	resultsR, resultsW, err := os.Pipe()
	if err != nil {
		closeAll(consoleR, consoleW)
		return nil, err
	}
	qemuR, qemuW, err := os.Pipe()
	if err != nil {
		closeAll(consoleR, consoleW, resultsR, resultsW)
		return nil, err
	}

	vmCtx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(vmCtx, qemu, args...)
	cmd.Stdout, cmd.Stderr = qemuW, qemuW
	cmd.ExtraFiles = []*os.File{consoleW, resultsW}
	cmd.SysProcAttr = qemuSysProcAttr()
	cmd.WaitDelay = 5 * time.Second

	vm := &VM{cmd: cmd, cancel: cancel, watch: watch, done: make(chan struct{})}
	vm.start = time.Now()
	err = cmd.Start()
	closeAll(consoleW, resultsW, qemuW) // QEMU has its own copies
	if err != nil {
		cancel()
		closeAll(consoleR, resultsR, qemuR)
		return nil, fmt.Errorf("vm: start qemu: %w", err)
	}
	for stream, r := range map[string]*os.File{Console: consoleR, Results: resultsR, QEMU: qemuR} {
		vm.readers.Go(func() {
			defer r.Close()
			vm.read(stream, r)
		})
	}
	go func() {
		err := cmd.Wait()
		vm.readers.Wait()
		switch {
		case ctx.Err() != nil:
			vm.err = fmt.Errorf("vm: qemu killed: %w", context.Cause(ctx))
		case err != nil && vmCtx.Err() != nil:
			vm.err = errors.New("vm: qemu killed")
		case err != nil:
			vm.err = fmt.Errorf("vm: qemu: %w", err)
		}
		cancel()
		close(vm.done)
	}()
	return vm, nil
}

// qemuArgs returns the arguments of qemu-system-x86_64 for img: the serial
// ports are the files QEMU inherits as fds 3 and 4.
func qemuArgs(img *Image) ([]string, error) {
	net, err := netArgs(img.HostForward, img.Forwarder)
	if err != nil {
		return nil, err
	}
	args := []string{
		// Single-threaded TCG: multi-threaded TCG occasionally let a
		// vCPU run a stale int3 left by the kernel's text patching
		// (an Oops in early boot), and degrades badly when the host is
		// loaded. Measured here, a single thread boots as fast.
		"-accel", "tcg,thread=single",
		"-m", strconv.Itoa(img.Memory),
		"-smp", strconv.Itoa(img.CPUs),
		"-nographic", "-nodefaults", "-no-reboot",
		"-kernel", img.Kernel,
		"-initrd", img.Initrd,
		"-append", img.Plan.StageCmdline(1),
		// QEMU opens /dev/fd/N, which on Linux reopens the pipe we
		// pass as ExtraFiles[N-3].
		"-chardev", "file,id=console,path=/dev/fd/3",
		"-serial", "chardev:console",
		"-chardev", "file,id=results,path=/dev/fd/4",
		"-serial", "chardev:results",
		"-drive", "file=" + img.Disk + ",format=raw,if=virtio,readonly=on",
	}
	return append(args, net...), nil
}

// qemuPath finds qemu-system-x86_64.
func qemuPath() (string, error) {
	p, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return "", errors.New("vm: qemu-system-x86_64 not found (apt-get install qemu-system-x86)")
	}
	return p, nil
}

// CheckHost returns an error naming the first program that [Build] or [Boot]
// needs and that the host lacks (mkfs.ext4, qemu-system-x86_64), with the
// Debian package that provides it; nil if none is missing.
func CheckHost() error {
	if _, err := mkfsPath(); err != nil {
		return err
	}
	_, err := qemuPath()
	return err
}

// read splits r into lines and records them.
func (vm *VM) read(stream string, r io.Reader) {
	buf := make([]byte, 32<<10)
	var partial []byte
	for {
		n, err := r.Read(buf)
		now := time.Now()
		data := buf[:n]
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			partial = append(partial, data[:i]...)
			vm.add(Line{Time: now, Stream: stream, Text: printable(partial)})
			partial, data = partial[:0], data[i+1:]
		}
		partial = append(partial, data...)
		if err != nil {
			if len(partial) > 0 {
				vm.add(Line{Time: now, Stream: stream, Text: printable(partial)})
			}
			return
		}
	}
}

// escapeRE matches the terminal escape sequences firmware prints.
var escapeRE = regexp.MustCompile(`\x1b(\[[0-9;?]*[ -/]*[@-~]|[@-_]|.)?`)

// printable strips escape sequences and control characters from a line.
func printable(b []byte) string {
	b = escapeRE.ReplaceAll(b, nil)
	return strings.Map(func(r rune) rune {
		if r < ' ' && r != '\t' || r == 0x7f {
			return -1
		}
		return r
	}, string(b))
}

func (vm *VM) add(l Line) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	vm.lines = append(vm.lines, l)
	if vm.watch != nil {
		vm.watch(l)
	}
}

// Wait waits for QEMU to exit and for its output to be read. It returns an
// error if QEMU failed or was killed, by Kill or by the end of the context
// given to Boot; a guest that powers off, panics or reboots ends QEMU
// without error.
func (vm *VM) Wait() error {
	<-vm.done
	return vm.err
}

// Kill kills QEMU, if it still runs, and waits for it to exit.
func (vm *VM) Kill() {
	vm.cancel()
	<-vm.done
}

// Lines returns the lines received so far from all streams, in arrival
// order.
func (vm *VM) Lines() []Line {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return append([]Line(nil), vm.lines...)
}

// Started returns the time QEMU was started.
func (vm *VM) Started() time.Time { return vm.start }

func closeAll(files ...*os.File) {
	for _, f := range files {
		f.Close()
	}
}
