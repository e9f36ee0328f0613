// Package demo is the live update demo (make demo): it boots the LUO
// kernel in QEMU with luod as PID 1 and two services built on package keep,
// shows their state, live-updates the machine into the next kernel (Linux
// 7.3 when its image is available, else the same 7.2), shows the state came
// back, and prints luod's report of the update.
//
// The host side (Run) builds the VM image and streams the VM's output; the
// guest side (Guest) runs in the VM next to luod and drives it with luoctl.
// Imported by cmd/luo-demo.
package demo

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/liveupdate/luo/internal/vm"
)

//go:embed units/*.service
var units embed.FS

// GuestFlag makes the demo binary act as the guest driver.
const GuestFlag = "-guest"

// Run builds the demo VM and runs it, writing its story to out.
func Run(ctx context.Context, out io.Writer) error {
	k72, err := vm.FindKernel("7.2")
	if err != nil {
		return err
	}
	next, nextName := k72, "the same kernel (Linux 7.2; no 7.3 image found)"
	switch k73, err := vm.FindKernel("7.3"); {
	case err == nil:
		next, nextName = k73, "Linux 7.3"
	case !errors.Is(err, vm.ErrNoKernel):
		return err
	}
	if err := vm.CheckHost(); err != nil {
		return err
	}
	files := map[string][]byte{}
	ents, _ := fs.ReadDir(units, "units")
	for _, e := range ents {
		b, _ := units.ReadFile("units/" + e.Name())
		files["etc/luod/system/"+e.Name()] = b
	}
	cfg := vm.Config{
		Kernels: []string{k72, next},
		Binaries: map[string]string{
			"bin/luod":      "github.com/liveupdate/luo/cmd/luod",
			"bin/luod-exec": "github.com/liveupdate/luo/cmd/luod-exec",
			"bin/luoctl":    "github.com/liveupdate/luo/cmd/luoctl",
			"bin/counter":   "github.com/liveupdate/luo/examples/counter",
			"bin/luo-demo":  "github.com/liveupdate/luo/cmd/luo-demo",
		},
		Files:    files,
		Init:     []string{"/vmtest/bin/luod", "--units", "/vmtest/etc/luod/system", "--log-level", "warn"},
		Driver:   true,
		Program:  "bin/luo-demo",
		TestArgs: []string{GuestFlag},
	}
	dir, err := os.MkdirTemp("", "luo-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(out, "luo demo: building luod, luoctl and the example service, booting Linux 7.2 in QEMU (TCG),\n"+
		"then live-updating into %s with every service's memory kept.\n\n", nextName)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	img, err := vm.Build(ctx, cfg, dir)
	if err != nil {
		return err
	}
	start := time.Now()
	machine, err := vm.Boot(ctx, img, func(l vm.Line) {
		switch l.Stream {
		case vm.Results:
			fmt.Fprintf(out, "%s\n", l.Text)
		case vm.Console:
			if t := strings.TrimSpace(l.Text); t != "" && !strings.HasPrefix(t, "SeaBIOS") && !strings.HasPrefix(t, "Booting") {
				fmt.Fprintf(out, "    [vm %6.2fs] %s\n", l.Time.Sub(start).Seconds(), t)
			}
		}
	})
	if err != nil {
		return err
	}
	if err := machine.Wait(); err != nil {
		return fmt.Errorf("the VM did not finish cleanly: %w", err)
	}
	fmt.Fprintf(out, "\nluo demo: done in %.1fs.\n", time.Since(start).Seconds())
	return nil
}
