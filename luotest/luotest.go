package luotest

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
)

// BinDir is the guest directory of luod, luoctl and Config.Services.
const BinDir = vm.DiskDir + "/bin"

// unitDir is the guest directory of Config.Units.
const unitDir = "etc/luod/system"

// Config describes a VM run. Only the host reads it: in the VM, [Run] calls
// its function and ignores the Config.
type Config struct {
	// Kernels lists the kernel of each stage: stage i boots Kernels[i-1],
	// so there are len(Kernels)-1 live updates. An entry is a version
	// ("7.2", "7.3"), found as the package doc says, or the path of a
	// bzImage (any entry with a "/"). It must not be empty.
	Kernels []string
	// Services maps a program name to the Go package of its main,
	// resolved from the test's directory like "go build" arguments
	// ("example.com/svc/cmd/svc", "./cmd/svc"). Each is installed as
	// BinDir/NAME ("/vmtest/bin/NAME") for the unit files to run.
	Services map[string]string
	// Units maps a unit file name ("svc.service") to its text, in luod's
	// systemd-like syntax. luod starts every unit at every boot.
	Units map[string]string
	// Files maps a path under /vmtest in the guest to a file's content:
	// configuration for the services, say. Paths "bin/..." and
	// "etc/luod/system/..." clash with Services and Units.
	Files map[string][]byte
	// Timeout bounds the whole run, builds included. Default: 4 minutes
	// per stage, cut to end before the test's own deadline.
	Timeout time.Duration
}

// Main runs the tests: call it from TestMain. On the host it runs them as
// m.Run does and exits with their status. In a VM booted by [Run] it runs
// them as the stage's guest, and then moves the VM on (power off after the
// last stage, or a plain kexec if a test failed before its live update); it
// never returns.
func Main(m *testing.M) {
	if vm.InGuest() {
		vmtest.GuestMain(m)
	}
	os.Exit(m.Run())
}

// Run runs fn in every stage of a VM booted as cfg says, one stage after
// the other, each entered by a live update from the previous one.
//
// On the host, Run builds the VM (the test binary, luod, luoctl and
// cfg.Services), boots it, waits until it powers off and reports what ran
// in it as subtests of t; it does not call fn. It skips t with -short and
// when QEMU, mkfs.ext4 or a kernel is missing, or fails it instead when $CI
// is set. It fails t when a build fails, a stage does not boot or finish,
// the run times out, or the test fails in any stage; then it also logs the
// end of the VM's console, where luod and the services write.
//
// In the VM, where the test binary runs only the test that called Run, Run
// calls fn with t and the [VM] of the stage. When fn returns in a stage
// before the last, failed (t.Error) or not, Run live updates into the next
// stage ([VM.LiveUpdate]) and does not return. When fn stops the test
// (t.Fatal), the VM moves on by a plain kexec that carries no state, and
// in the stages after it Run fails the test saying so without calling fn.
func Run(t *testing.T, cfg Config, fn func(t *testing.T, vm *VM)) {
	t.Helper()
	if vm.InGuest() {
		g := &VM{t: t, stage: vm.Stage(), stages: vm.Stages()}
		if n := g.liveUpdates(); n != g.stage-1 {
			t.Fatalf("luotest: stage %d/%d was entered after %d live updates, not %d: "+
				"the test stopped (t.Fatal, t.FailNow) in an earlier stage, so the VM went on by a plain kexec, which carries no state",
				g.stage, g.stages, n, g.stage-1)
		}
		fn(t, g)
		if g.stage < g.stages {
			g.LiveUpdate()
		}
		return
	}
	if testing.Short() {
		t.Skip("luotest: boots a VM; skipped with -short")
	}
	if len(cfg.Kernels) == 0 {
		t.Fatal("luotest: Config.Kernels is empty")
	}
	kernels := make([]string, len(cfg.Kernels))
	for i, k := range cfg.Kernels {
		kernels[i] = kernel(t, k)
	}
	c, err := vmConfig(cfg, kernels, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	res := vmtest.Run(t, c)
	if t.Failed() {
		t.Logf("luotest: the end of the VM's console (kernel, luod and the services' output):\n%s", consoleTail(res, 40))
	}
}

// consoleTail returns the last n lines of the console of a run.
func consoleTail(res *vmtest.Result, n int) string {
	var lines []string
	for _, l := range res.Lines {
		if l.Stream == vm.Console {
			lines = append(lines, l.Text)
		}
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// kernel returns the host path of the kernel entry k of Config.Kernels.
func kernel(t *testing.T, k string) string {
	t.Helper()
	if !strings.Contains(k, "/") {
		return vmtest.Kernel(t, k)
	}
	if _, err := os.Stat(k); err != nil {
		t.Fatalf("luotest: Config.Kernels: %v", err)
	}
	return k
}

// vmConfig returns the configuration of the VM that runs the test named
// test with luod as PID 1.
func vmConfig(cfg Config, kernels []string, test string) (vm.Config, error) {
	bins := map[string]string{
		"bin/luod":      "github.com/liveupdate/luo/cmd/luod",
		"bin/luod-exec": "github.com/liveupdate/luo/cmd/luod-exec",
		"bin/luoctl":    "github.com/liveupdate/luo/cmd/luoctl",
	}
	for name, pkg := range cfg.Services {
		if name == "" || strings.Contains(name, "/") {
			return vm.Config{}, fmt.Errorf("luotest: Config.Services: %q is not a program name", name)
		}
		if _, ok := bins["bin/"+name]; ok {
			return vm.Config{}, fmt.Errorf("luotest: Config.Services: %q is taken by luo's own program", name)
		}
		bins["bin/"+name] = pkg
	}
	files := maps.Clone(cfg.Files)
	if files == nil {
		files = map[string][]byte{}
	}
	for name, text := range cfg.Units {
		if name == "" || strings.Contains(name, "/") {
			return vm.Config{}, fmt.Errorf("luotest: Config.Units: %q is not a unit name", name)
		}
		files[unitDir+"/"+name] = []byte(text)
	}
	return vm.Config{
		Kernels:  kernels,
		Binaries: bins,
		Files:    files,
		Init:     []string{BinDir + "/luod", "--units", vm.DiskDir + "/" + unitDir + ":/run/luod/system", "--log-level", "info"},
		Driver:   true,
		TestArgs: []string{"-test.run", runPattern(test)},
		Timeout:  cfg.Timeout,
	}, nil
}

// runPattern returns the -test.run pattern that selects the test named
// name (a subtest's name has its parents' before it) and no other.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}
