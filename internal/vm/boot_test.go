package vm

import (
	"slices"
	"strings"
	"testing"
)

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2)":   "SeaBIOS (version 1.16.2)",
		"Booting from ROM..\x1bc\x1b[?7l\x1b[2Jvminit: stage 1": "Booting from ROM..vminit: stage 1",
		"\tpanic: x\r":          "\tpanic: x",
		"caf\u00e9 \x00\x07end": "caf\u00e9 end",
	} {
		if got := printable([]byte(in)); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestQemuArgs(t *testing.T) {
	img := &Image{
		Kernel: "/d/vmtest/boot/stage-1.bzImage",
		Initrd: "/d/initrd.img",
		Disk:   "/d/disk.img",
		Memory: 2048,
		CPUs:   2,
		Plan:   Plan{Cmdline: kernelCmdline(Config{Cmdline: "loglevel=7"})},
	}
	base := []string{
		"-accel", "tcg,thread=single", "-m", "2048", "-smp", "2",
		"-nographic", "-nodefaults", "-no-reboot",
		"-kernel", "/d/vmtest/boot/stage-1.bzImage", "-initrd", "/d/initrd.img",
		"-append", "console=ttyS0 panic=-1 liveupdate=on quiet no_timer_check loglevel=7 vmtest.stage=1",
		"-chardev", "file,id=console,path=/dev/fd/3", "-serial", "chardev:console",
		"-chardev", "file,id=results,path=/dev/fd/4", "-serial", "chardev:results",
		"-drive", "file=/d/disk.img,format=raw,if=virtio,readonly=on",
	}
	got, err := qemuArgs(img)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, base) {
		t.Errorf("without HostForward:\n got %q\nwant %q", got, base)
	}

	fwd := *img
	fwd.HostForward = []Forward{{GuestPort: 2379, Host: "127.0.0.1:40001"}, {GuestPort: 80, Host: "[::1]:8080"}}
	fwd.Forwarder = "/d/hostfwd"
	fwd.Plan.Cmdline = kernelCmdline(Config{HostForward: fwd.HostForward})
	got, err = qemuArgs(&fwd)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(base)
	want[slices.Index(want, "-append")+1] = "console=ttyS0 panic=-1 liveupdate=on quiet no_timer_check " +
		"ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off vmtest.stage=1"
	want = append(want,
		"-netdev", "user,id=net0,restrict=on"+
			",guestfwd=tcp:10.0.2.100:2379-cmd:/d/hostfwd 127.0.0.1:40001"+
			",guestfwd=tcp:10.0.2.100:80-cmd:/d/hostfwd [::1]:8080",
		"-device", "virtio-net-pci,netdev=net0,romfile=")
	if !slices.Equal(got, want) {
		t.Errorf("with HostForward:\n got %q\nwant %q", got, want)
	}

	// A forwarder path that QEMU's option parser and the shell splitting
	// of its command must both leave whole.
	fwd.Forwarder = "/tmp/Test a,b/it's/hostfwd"
	fwd.HostForward = fwd.HostForward[:1]
	got, err = qemuArgs(&fwd)
	if err != nil {
		t.Fatal(err)
	}
	if want := `user,id=net0,restrict=on,guestfwd=tcp:10.0.2.100:2379-cmd:'/tmp/Test a,,b/it'\''s/hostfwd' 127.0.0.1:40001`; got[slices.Index(got, "-netdev")+1] != want {
		t.Errorf("-netdev %q, want %q", got[slices.Index(got, "-netdev")+1], want)
	}
}

func TestCheckForwards(t *testing.T) {
	for _, tt := range []struct {
		fwds []Forward
		err  string // "" means valid
	}{
		{nil, ""},
		{[]Forward{{2379, "127.0.0.1:2379"}, {1, "[::1]:1"}}, ""},
		{[]Forward{{0, "127.0.0.1:2379"}}, "guest port 0 out of range"},
		{[]Forward{{65536, "127.0.0.1:2379"}}, "guest port 65536 out of range"},
		{[]Forward{{80, "127.0.0.1:1"}, {80, "127.0.0.1:2"}}, "guest port 80 forwarded twice"},
		{[]Forward{{80, "10.0.0.1:80"}}, `host "10.0.0.1:80"`},
		{[]Forward{{80, "localhost:80"}}, `host "localhost:80"`},
		{[]Forward{{80, "127.0.0.1:0"}}, `host "127.0.0.1:0"`},
		{[]Forward{{80, "127.0.0.1"}}, `host "127.0.0.1"`},
		{[]Forward{{80, "0.0.0.0:80"}}, `host "0.0.0.0:80"`},
	} {
		err := checkForwards(tt.fwds)
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("checkForwards(%v) = %v, want an error containing %q", tt.fwds, err, tt.err)
		}
	}
}

func TestKernelCmdline(t *testing.T) {
	const base = "console=ttyS0 panic=-1 liveupdate=on quiet no_timer_check"
	const ip = " ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off"
	fwd := []Forward{{2379, "127.0.0.1:2379"}}
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, base},
		{Config{Cmdline: "loglevel=7"}, base + " loglevel=7"},
		{Config{HostForward: fwd}, base + ip},
		{Config{HostForward: fwd, Cmdline: "loglevel=7"}, base + ip + " loglevel=7"},
	} {
		if got := kernelCmdline(tt.cfg); got != tt.want {
			t.Errorf("kernelCmdline(%+v) = %q, want %q", tt.cfg, got, tt.want)
		}
		// Every stage has it, so does the kexec into the next one.
		p := Plan{Cmdline: kernelCmdline(tt.cfg)}
		if got := p.StageCmdline(2); got != tt.want+" vmtest.stage=2" {
			t.Errorf("StageCmdline(2) = %q, want %q", got, tt.want+" vmtest.stage=2")
		}
	}
}
