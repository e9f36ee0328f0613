package demo

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/vm"
)

// Guest is the demo's driver in the VM: a process next to luod (not one of
// its services, so an update does not stop it).
func Guest() error {
	if err := waitLuod(); err != nil {
		return err
	}
	waitActive("cache.service", "vmm.service")
	switch vm.Stage() {
	case 1:
		say("Linux %s is up; luod runs as PID 1 with two services that keep their memory in memfds.", vm.Release())
		luoctl("list")
		luoctl("status", "cache.service", "vmm.service")
		luoctl("fdstore", "cache.service", "vmm.service")
		kernel, initrd, cmdline, err := vm.NextBoot()
		if err != nil {
			return err
		}
		say("What would a live update into %s do? (a dry run: nothing changes)", kernel)
		luoctl("update", "plan", "--kernel", kernel, "--initrd", initrd, "--cmdline", cmdline)
		say("Live update: load the kernel, stop the services, preserve their fd stores in LUO, kexec.")
		luoctl("update", "run", "--kernel", kernel, "--initrd", initrd, "--cmdline", cmdline)
		time.Sleep(time.Minute) // the kexec ends this process
		return fmt.Errorf("no kexec happened")
	default:
		say("Linux %s is up after the live update; luod restored the stores and started the services.", vm.Release())
		luoctl("status", "cache.service", "vmm.service")
		say("origin=luo and verified=ok: each service got its memory back from the previous kernel, checksum intact.")
		luoctl("update", "report")
		say("Powering off.")
		luoctl("poweroff")
		time.Sleep(time.Minute)
		return nil
	}
}

func say(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

func luoctl(args ...string) {
	fmt.Printf("\n$ luoctl %s\n", strings.Join(args, " "))
	cmd := exec.Command("/vmtest/bin/luoctl", args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	if err := cmd.Run(); err != nil {
		fmt.Printf("(luoctl: %v)\n", err)
	}
}

func waitLuod() error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		c, err := control.Dial(context.Background(), control.DefaultSocket)
		if err == nil {
			var m control.Manager
			err = c.Call(context.Background(), control.MethodGetManager, nil, &m)
			c.Close()
			if err == nil {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("luod did not come up")
}

func waitActive(names ...string) {
	deadline := time.Now().Add(2 * time.Minute)
	for _, n := range names {
		for time.Now().Before(deadline) {
			c, err := control.Dial(context.Background(), control.DefaultSocket)
			if err == nil {
				var r control.UnitReply
				err = c.Call(context.Background(), control.MethodGetUnit, control.UnitName{Name: n}, &r)
				c.Close()
				if err == nil && r.Unit.ActiveState == "active" && r.Unit.Status != "" {
					break
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
