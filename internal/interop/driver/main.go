//go:build linux

// Command driver runs inside the interop VM (internal/interop) as
// interop-driver.service, after the counter services are up. It reads its
// stage from the kernel command line (interop.stage=N), records what the
// counters report, and drives the run:
//
//   - every stage: record, restart every counter, record again;
//   - then, but in the last stage: load the next kernel with "kexec -s -l"
//     and "systemctl kexec" (stage 1 -> 7.3, stage 2 -> 7.2);
//   - last stage: power off.
//
// With interop.luod=1 it runs luod as a systemd service instead (see
// luodRun). With interop.bench=UNIT on the command line it is the guest side of the
// systemd baseline of the e2e benchmark instead (see bench). interop.next=V
// makes every stage kexec into /boot/vmlinuz-V.
//
// Everything goes to the second serial port (/dev/ttyS1) as lines the host
// parses:
//
//	INTEROP stage=2 event=record phase=boot unit=counter-mem.service active=active sub=running nfds=3 status="generation=3 ..."
//	INTEROP-TEXT stage=2 what=fdstore unit=counter-mem.service | <one line of output>
//
// Values are Go-quoted when they are not plain words. Any failure is
// reported as "event=error" and the driver goes on (or powers off): a
// guest that hangs is the only thing the host has to time out.
package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// units are the services under test, in start order.
var units = []string{"counter-mem.service", "counter-luos.service", "counter-own.service"}

// kernels maps a stage to the kernel it boots; the host boots stage 1.
var kernels = map[int]string{1: "/boot/vmlinuz-7.2", 2: "/boot/vmlinuz-7.3", 3: "/boot/vmlinuz-7.2"}

const markerFile = "/var/lib/interop/marker"

var (
	out   *os.File
	stage int
)

func main() {
	var err error
	out, err = os.OpenFile("/dev/ttyS1", os.O_WRONLY|syscall.O_NOCTTY, 0)
	if err != nil {
		out = os.Stdout
		fmt.Printf("interop-driver: /dev/ttyS1: %v; writing to stdout\n", err)
	}
	cmdline := readTrim("/proc/cmdline")
	stage = intParam(cmdline, "interop.stage", 0)
	stages := intParam(cmdline, "interop.stages", 3)
	if stage < 1 || stage > stages {
		emit("event=error", kv("msg", "no valid interop.stage= on the command line: "+cmdline))
		poweroff()
		return
	}
	if strParam(cmdline, "interop.luod") == "1" {
		luodRun(stages, cmdline)
		return
	}
	if unit := strParam(cmdline, "interop.bench"); unit != "" {
		bench(unit, stages, cmdline)
		return
	}
	begin(stages)

	for _, u := range units {
		record(u, "boot")
	}
	for _, u := range units {
		if o, err := run(3*time.Minute, "systemctl", "restart", u); err != nil {
			emit("event=error", kv("unit", u), kv("msg", fmt.Sprintf("systemctl restart: %v: %s", err, o)))
		}
		record(u, "restart")
	}
	for _, u := range units {
		text("journal", u, "journalctl", "-b", "0", "-u", u, "-o", "cat", "--no-pager")
	}
	// What PID 1 said about LUO and fd stores (much more with
	// systemd.log_level=debug, LUO_INTEROP_DEBUG=1 on the host), and every
	// warning of this boot.
	text("pid1", "", "sh", "-c", "journalctl -b 0 -o short-monotonic --no-pager | grep -v -e systemd-journald -e 'counter\\[' | grep -E 'LUO|luo:|liveupdate|KHO|fd store|stored fd|[Kk]exec|[Rr]estor|kernel name' || true")
	text("warnings", "", "journalctl", "-b", "0", "-p", "warning", "-o", "short-monotonic", "--no-pager")

	if stage == stages {
		text("boots", "", "journalctl", "--list-boots", "--no-pager")
		emit("event=poweroff")
		poweroff()
		return
	}
	next := nextKernel(cmdline)
	if next == "" {
		emit("event=error", kv("msg", fmt.Sprintf("no kernel for stage %d", stage+1)))
		poweroff()
		return
	}
	kexecInto(next, cmdline)
}

// bench is a stage of the systemd baseline of the e2e benchmark
// (interop.bench=UNIT on the command line; internal/e2e): it waits for the
// boot to finish, records the unit, and live-updates to the next stage,
// nothing else (no restarts, no journal dumps), so that the host times each
// hop from the driver's markers to the unit's READY line on the console.
func bench(unit string, stages int, cmdline string) {
	begin(stages)
	// A live update happens on a system that is up: the boot's other
	// jobs must not run into the measured shutdown.
	state, _ := run(3*time.Minute, "systemctl", "is-system-running", "--wait")
	emit("event=settled", kv("state", strings.TrimSpace(state)))
	record(unit, "boot")
	if stage == stages {
		emit("event=poweroff")
		poweroff()
		return
	}
	kexecInto(nextKernel(cmdline), cmdline)
}

// kexecInto loads next with the command line of this stage but the stage
// number, and live-updates into it. The host times the hop from the
// "load" event (before kexec_file_load, like luod's update command) or
// the "kexec" event (just before systemctl kexec).
func kexecInto(next, cmdline string) {
	nextCmdline := regexp.MustCompile(`\binterop\.stage=\d+`).ReplaceAllString(cmdline, fmt.Sprintf("interop.stage=%d", stage+1))
	emit("event=load", kv("kernel", next))
	// -s (kexec_file_load) is what carries the LUO state: the old loader
	// loses it without an error.
	if o, err := run(2*time.Minute, "kexec", "-s", "-l", next, "--command-line="+nextCmdline); err != nil {
		emit("event=error", kv("msg", fmt.Sprintf("kexec -s -l %s: %v: %s", next, err, o)))
		poweroff()
		return
	}
	emit("event=kexec", kv("kernel", next), kv("cmdline", nextCmdline), kv("loaded", readTrim("/sys/kernel/kexec_loaded")))
	if o, err := run(2*time.Minute, "systemctl", "kexec"); err != nil {
		emit("event=error", kv("msg", fmt.Sprintf("systemctl kexec: %v: %s", err, o)))
		poweroff()
		return
	}
	emit("event=kexec-started")
	// systemd stops this service on the way down.
	waitForever()
}

// nextKernel is the kernel of the next stage: /boot/vmlinuz-V with
// interop.next=V on the command line, else the one of kernels.
func nextKernel(cmdline string) string {
	if v := strParam(cmdline, "interop.next"); v != "" {
		return "/boot/vmlinuz-" + v
	}
	return kernels[stage+1]
}

// begin reports the stage's facts and checks the disk kept the earlier
// stages' writes (the run's disk is a QEMU snapshot; a kexec is not a reset).
func begin(stages int) {
	prev, _ := os.ReadFile(markerFile)
	marks := strings.Count(string(prev), "\n")
	bootID := readTrim("/proc/sys/kernel/random/boot_id")
	version, _ := run(time.Minute, "systemctl", "--version")
	version, _, _ = strings.Cut(version, "\n")
	kexecCount, _ := run(time.Minute, "systemctl", "show", "-p", "KExecCount", "--value")
	_, devErr := os.Stat("/dev/liveupdate")
	emit("event=begin", kv("stages", strconv.Itoa(stages)), kv("release", readTrim("/proc/sys/kernel/osrelease")),
		kv("systemd", version), kv("kexec_count", strings.TrimSpace(kexecCount)),
		kv("liveupdate_dev", strconv.FormatBool(devErr == nil)), kv("boot_id", bootID),
		kv("disk_marks", strconv.Itoa(marks)), kv("uptime", readTrim("/proc/uptime")))
	os.MkdirAll("/var/lib/interop", 0o755)
	f, err := os.OpenFile(markerFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err == nil {
		fmt.Fprintf(f, "stage=%d boot_id=%s\n", stage, bootID)
		f.Sync()
		f.Close()
	}
	syscall.Sync()
}

// record reports a counter's state as systemd sees it, and its fd store.
func record(unit, phase string) {
	o, err := run(time.Minute, "systemctl", "show", unit,
		"-p", "ActiveState", "-p", "SubState", "-p", "StatusText", "-p", "NFileDescriptorStore",
		"-p", "NRestarts", "-p", "MainPID")
	if err != nil {
		emit("event=error", kv("unit", unit), kv("msg", fmt.Sprintf("systemctl show: %v: %s", err, o)))
	}
	p := map[string]string{}
	for _, line := range strings.Split(o, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			p[k] = v
		}
	}
	emit("event=record", kv("phase", phase), kv("unit", unit), kv("active", p["ActiveState"]),
		kv("sub", p["SubState"]), kv("nfds", p["NFileDescriptorStore"]), kv("status", p["StatusText"]))
	text("fdstore-"+phase, unit, "systemd-analyze", "fdstore", unit)
}

// text reports a command's output, one line per line.
func text(what, unit string, argv ...string) {
	o, err := run(2*time.Minute, argv[0], argv[1:]...)
	writeText(what, unit, o, err)
}

// writeText reports o, one line per line, and err if any.
func writeText(what, unit, o string, err error) {
	prefix := fmt.Sprintf("INTEROP-TEXT stage=%d what=%s", stage, what)
	if unit != "" {
		prefix += " unit=" + unit
	}
	w := bufio.NewWriter(out)
	for _, line := range strings.Split(strings.TrimRight(o, "\n"), "\n") {
		fmt.Fprintf(w, "%s | %s\n", prefix, line)
	}
	if err != nil {
		fmt.Fprintf(w, "%s | (%v)\n", prefix, err)
	}
	w.Flush()
}

func emit(fields ...string) {
	fmt.Fprintf(out, "INTEROP stage=%d %s\n", stage, strings.Join(fields, " "))
}

// kv formats key=value, quoting the value unless it is a plain word.
func kv(k, v string) string {
	if v == "" || strings.ContainsAny(v, " \t\"\\=") || strconv.Quote(v) != `"`+v+`"` {
		return k + "=" + strconv.Quote(v)
	}
	return k + "=" + v
}

func run(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	cmd.Env = append(os.Environ(), "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "COLUMNS=200")
	err := cmd.Run()
	return b.String(), err
}

func poweroff() {
	syscall.Sync()
	if o, err := run(time.Minute, "systemctl", "poweroff"); err != nil {
		emit("event=error", kv("msg", fmt.Sprintf("systemctl poweroff: %v: %s; forcing", err, o)))
		syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	}
	waitForever()
}

// waitForever waits for systemd to stop the service (select{} would make
// the Go runtime report a deadlock).
func waitForever() {
	for {
		time.Sleep(time.Hour)
	}
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func intParam(cmdline, key string, def int) int {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
	}
	return def
}

func strParam(cmdline, key string) string {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}
