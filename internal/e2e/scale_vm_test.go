//go:build !vmguest

package e2e_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
)

// memsvcUnit is the unit file of a memsvc service: the guest test binary
// in service mode (see scale_vmguest_test.go), storing n memfds with
// contents unique to id on a fresh start.
func memsvcUnit(id string, n, max int) string {
	return fmt.Sprintf(`[Unit]
Description=memsvc %[1]s: memfds in the fd store
[Service]
Type=notify
ExecStart=/vmtest/test.bin
Environment=LUO_E2E_MEMSVC=%[1]s
Environment=LUO_E2E_MEMSVC_N=%[2]d
FileDescriptorStoreMax=%[3]d
FileDescriptorStorePreserve=yes
TimeoutStartSec=10min
TimeoutStopSec=2min
`, id, n, max)
}

// luodConfig is a VM with luod as PID 1 (info logs on the console) and the
// given units, driven by the guest test binary.
func luodConfig(kernels []string, units map[string]string, testArgs ...string) vm.Config {
	files := map[string][]byte{}
	for name, text := range units {
		files["etc/luod/system/"+name] = []byte(text)
	}
	return vm.Config{
		Kernels: kernels,
		Binaries: map[string]string{
			"bin/luod":      "github.com/liveupdate/luo/cmd/luod",
			"bin/luod-exec": "github.com/liveupdate/luo/cmd/luod-exec",
			"bin/luoctl":    "github.com/liveupdate/luo/cmd/luoctl",
			"bin/counter":   "github.com/liveupdate/luo/examples/counter",
		},
		Files:    files,
		Init:     []string{"/vmtest/bin/luod", "-units", "/vmtest/etc/luod/system:/run/luod/system", "-log-level", "info"},
		Driver:   true,
		TestArgs: testArgs,
	}
}

// TestVMScale: one live update (7.2 -> 7.3) with 100 units holding 1,000
// memfds in their stores, then 100 units holding 10,000; every unit must
// come back with exactly its fds (contents checked by the service) and the
// report must list them all delivered. The guest side is TestScale.
func TestVMScale(t *testing.T) {
	k72, k73 := vmtest.Kernel(t, "7.2"), vmtest.Kernel(t, "7.3")
	// Both sizes run in the default suite: on a 2-core TCG host the 1,000
	// fd run takes about 25 s and the 10,000 fd run about 45 s, build and
	// boot included.
	for _, sc := range []struct {
		name       string
		units, fds int
	}{
		{"1k", 100, 10},
		{"10k", 100, 100},
	} {
		t.Run(sc.name, func(t *testing.T) {
			units := map[string]string{}
			for i := range sc.units {
				id := fmt.Sprintf("s%03d", i)
				units[id+".service"] = memsvcUnit(id, sc.fds, sc.fds)
			}
			cfg := luodConfig([]string{k72, k73}, units, "-test.run", "^TestScale$",
				"-e2e.scale-units", strconv.Itoa(sc.units), "-e2e.scale-fds", strconv.Itoa(sc.fds))
			start := time.Now()
			res := vmtest.Run(t, cfg)
			t.Logf("%d units x %d memfds = %d fds: the VM run took %v (go test -c, boot, start, update, verify)\n%s",
				sc.units, sc.fds, sc.units*sc.fds, time.Since(start).Round(time.Second), scaleSummary(res))
		})
	}
}

var (
	scaleLineRE = regexp.MustCompile(`^SCALE stage=\d .*`)
	bootedRE    = regexp.MustCompile(`^vminit: stage (\d+) release`)
)

// scaleSummary renders the host-side times of a scale run: update command
// to the next kernel's /init, and to every unit verified.
func scaleSummary(res *vmtest.Result) string {
	var b strings.Builder
	var updateStart, booted2 time.Time
	for _, l := range res.Lines {
		switch {
		case l.Stream == "results" && strings.HasPrefix(l.Text, "BENCH update-start"):
			updateStart = l.Time
		case l.Stream == "console" && !updateStart.IsZero() && booted2.IsZero() && bootedRE.MatchString(strings.TrimSpace(l.Text)):
			booted2 = l.Time
			fmt.Fprintf(&b, "  host: update command -> next kernel's /init  %v\n", l.Time.Sub(updateStart).Round(time.Millisecond))
		case l.Stream == "results" && scaleLineRE.MatchString(l.Text):
			fmt.Fprintf(&b, "  guest: %s\n", l.Text)
			if strings.HasPrefix(l.Text, "SCALE stage=2") && !updateStart.IsZero() {
				fmt.Fprintf(&b, "  host: update command -> all units verified    %v\n", l.Time.Sub(updateStart).Round(time.Millisecond))
			}
		}
	}
	return b.String()
}
