//go:build !vmguest

package e2e_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
)

// TestVMModel runs a seeded random sequence (see model_test.go) against
// luod as PID 1 in the VM, with one counter unit per mode of keep
// (fd store, LUOSession=, own session), each with FileDescriptorStoreMax=
// exactly what keep's docs ask for. Besides the steps of TestModelHost the
// sequence has kexec live updates, alternating 7.3 and 7.2: each ends a
// stage. The guest side (TestModelGuest) computes the same sequence from
// the seed, replays the earlier stages on the model, runs its own stage's
// steps and checks every unit after each. Here, luod's log (the console)
// is checked for fds of those units it dropped. LUO_SEED=n (or random),
// LUO_STEPS=n and LUO_KEXECS=n change the sequence.
func TestVMModel(t *testing.T) {
	seed := modelSeed(t, 1)
	n, kexecs := envInt(t, "LUO_STEPS", 80), envInt(t, "LUO_KEXECS", 4)
	steps := generate(seed, vmModelUnits, n, kexecs)
	segs := stages(steps)
	k72, k73 := vmtest.Kernel(t, "7.2"), vmtest.Kernel(t, "7.3")
	var kernels []string
	for i := range segs {
		kernels = append(kernels, []string{k72, k73}[i%2])
	}
	units := map[string]string{}
	for _, u := range vmModelUnits {
		units[u.name] = u.file("/vmtest/bin/counter")
	}
	replay := fmt.Sprintf("LUO_SEED=%d LUO_STEPS=%d LUO_KEXECS=%d go test -count=1 -run '^TestVMModel$' -v ./internal/e2e", seed, n, kexecs)
	t.Logf("model: seed %d, %d steps in %d stages, units %s; rerun: %s", seed, n, len(segs), unitNames(vmModelUnits), replay)
	cfg := luodConfig(kernels, units, "-test.run", "^TestModelGuest$",
		"-e2e.model-seed", strconv.FormatUint(seed, 10), "-e2e.model-steps", strconv.Itoa(n), "-e2e.model-kexecs", strconv.Itoa(kexecs))
	start := time.Now()
	res := vmtest.Run(t, cfg)
	t.Logf("model: seed %d: %d steps, %d kexecs, in %v (build and boot included)", seed, n, kexecs, time.Since(start).Round(time.Second))
	// Nothing dropped silently: luod logs it on the console, which the
	// guest cannot read. The first drop of each unit is the failure; a
	// unit left out goes on running (luod starts it after each kexec), so
	// later ones are only counted.
	step := "boot"
	first := map[string]bool{}
	later := map[string][]string{}
	for _, l := range res.Lines {
		if l.Stream == vm.Results {
			if _, s, ok := strings.Cut(l.Text, "model: step "); ok {
				step = "step " + s
			}
			continue
		}
		if l.Stream != vm.Console {
			continue
		}
		for _, d := range droppedLines(l.Text, vmModelUnits) {
			u := droppedUnit(d, vmModelUnits)
			if first[u] {
				later[u] = append(later[u], strings.SplitN(step, ":", 2)[0])
				continue
			}
			first[u] = true
			t.Errorf("MODEL FAILURE seed %d, at %s: luod dropped an fd of %s:\n\t%s\n\trerun: %s", seed, step, u, strings.TrimSpace(d), replay)
		}
	}
	for u, at := range later {
		t.Logf("model: luod dropped fds of %s %d more times, at %s", u, len(at), strings.Join(at, ", "))
	}
}
