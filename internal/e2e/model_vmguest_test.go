//go:build vmguest

package e2e_test

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/liveupdate/luo/internal/control"
	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
)

var (
	modelSeedFlag   = flag.Uint64("e2e.model-seed", 1, "TestModelGuest: seed of the sequence")
	modelStepsFlag  = flag.Int("e2e.model-steps", 80, "TestModelGuest: steps of the sequence, all stages")
	modelKexecsFlag = flag.Int("e2e.model-kexecs", 4, "TestModelGuest: kexec live updates in the sequence")
)

// Markers on the command line of the next stage: that this test ended
// its stage with luod's live update (not GuestMain's kexec after a
// failure), and the units left out after a failure.
const (
	modelFromParam    = "luo.model.from="
	modelLeftOutParam = "luo.model.left-out="
)

// TestModelGuest runs in every stage of TestVMModel: replay the earlier
// stages on the model, check every unit, run this stage's steps, and end
// with the kexec step into the next stage.
func TestModelGuest(t *testing.T) {
	stage := vm.Stage()
	seed, n := *modelSeedFlag, *modelStepsFlag
	steps := generate(seed, vmModelUnits, n, *modelKexecsFlag)
	segs := stages(steps)
	if len(segs) != vm.Stages() {
		t.Fatalf("the sequence has %d stages, the VM %d", len(segs), vm.Stages())
	}
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	params := strings.Fields(string(b))
	if stage > 1 && !hasParam(params, modelFromParam) {
		t.Skipf("stage %d did not end with the model's live update (it failed; see there): nothing to check", stage-1)
	}
	replay := fmt.Sprintf("LUO_SEED=%d LUO_STEPS=%d LUO_KEXECS=%d go test -count=1 -run '^TestVMModel$' -v ./internal/e2e", seed, n, *modelKexecsFlag)
	r := newRunner(t, seed, guestLuod{t}, vmModelUnits, n, time.Minute, replay)
	for _, p := range params {
		if v, ok := strings.CutPrefix(p, modelLeftOutParam); ok {
			for _, u := range strings.Split(v, ",") {
				r.broken[u] = "an earlier stage"
			}
		}
	}
	waitLuod(t, control.DefaultSocket)
	first := 0
	for _, seg := range segs[:stage-1] {
		for _, s := range seg {
			r.skip(s)
		}
		first += len(seg)
	}
	label := "cold boot"
	if stage > 1 {
		label = fmt.Sprintf("boot after step %d (%s)", first, steps[first-1])
	}
	t.Logf("model: seed %d, stage %d/%d (Linux %s): steps %d-%d of %d; units %s", seed, stage, len(segs), vm.Release(),
		first+1, first+len(segs[stage-1]), n, unitNames(vmModelUnits))
	r.settle(first-1, label, nil)
	r.logState()
	logStores(t)
	// A staging of an earlier stage went with its kexec.
	r.m.staged = false
	r.stage = func(i int, s modelStep) {
		r.t.Helper()
		kernel, initrd, cmdline := nextBoot(t, r, stage)
		if o, code := luoctl(t, "update", "stage", "--kernel", kernel, "--initrd", initrd, "--cmdline", cmdline); code != 0 {
			r.fatal(i, s, "luoctl update stage: exit %d\n%s", code, o)
		}
	}
	for i, s := range segs[stage-1] {
		if s.kind == stepKexec {
			modelKexec(t, r, first+i, s, stage) // does not return
		}
		r.run(first+i, s)
	}
}

// nextBoot is the next stage's kernel, initrd and command line, with the
// markers of the model (see modelFromParam).
func nextBoot(t *testing.T, r *runner, stage int) (kernel, initrd, cmdline string) {
	t.Helper()
	kernel, initrd, cmdline, err := vm.NextBoot()
	if err != nil {
		t.Fatal(err)
	}
	cmdline += fmt.Sprintf(" %s%d", modelFromParam, stage)
	var out []string
	for u := range r.broken {
		out = append(out, u)
	}
	if len(out) > 0 {
		slices.Sort(out)
		cmdline += " " + modelLeftOutParam + strings.Join(out, ",")
	}
	return kernel, initrd, cmdline
}

// logStores logs every unit's fd store: what came through the boot.
func logStores(t *testing.T) {
	t.Helper()
	for _, u := range vmModelUnits {
		var st control.FDStore
		if err := call(t, control.DefaultSocket, control.MethodDumpFDStore, control.UnitName{Name: u.name}, &st); err != nil {
			t.Errorf("DumpFDStore %s: %v", u.name, err)
			continue
		}
		var es []string
		for _, e := range st.Entries {
			es = append(es, fmt.Sprintf("%s (%s %s, survives a kexec: %s)", e.Name, e.Type, e.Path, e.Survives))
		}
		t.Logf("model:   fd store of %s: %s", u.name, strings.Join(es, ", "))
	}
}

func hasParam(params []string, prefix string) bool {
	for _, p := range params {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// modelKexec runs the kexec step i: a live update into the next stage
// through luoctl, without --allow-loss (nothing may be lost). It does not
// return.
func modelKexec(t *testing.T, r *runner, i int, s modelStep, stage int) {
	t.Helper()
	t.Logf("model: step %d/%d [%s]: %s", i+1, r.total, r.elapsed(), s)
	kernel, initrd, cmdline := nextBoot(t, r, stage)
	args := []string{"update", "run", "--kernel", kernel, "--initrd", initrd, "--cmdline", cmdline}
	if s.staged {
		// The staged update must be what this kexec would load; a unit
		// left out since the staging changes the command line.
		var st control.Staged
		if err := call(t, control.DefaultSocket, control.MethodGetStagedUpdate, nil, &st); err != nil {
			r.fatal(i, s, "GetStagedUpdate: %v", err)
		}
		if !st.Loaded {
			r.fatal(i, s, "the staged kernel is not loaded any more")
		}
		// The stores may have changed since (a restart stores its fds
		// again): the staged run decides again, and must lose nothing.
		t.Logf("model:   staged at %s, replanned %v, changes since: %q", st.StagedAt.Format(time.TimeOnly), st.Replanned, st.Changes)
		if st.Cmdline != cmdline {
			t.Logf("model: a unit was left out since the staging: staging again")
			r.stage(i, s)
		}
		args = []string{"update", "run", "--staged"}
	}
	vmtest.ExpectKexec(t)
	// ExpectKexec announces nothing after a failure, and does not flush
	// the output then: this does, so the failure reaches the host.
	unix.IoctlSetInt(1, unix.TCSBRK, 1)
	o, code := luoctl(t, args...)
	if code != 0 || !strings.Contains(o, "reboot") {
		r.fatal(i, s, "luoctl update run: exit %d\n%s", code, o)
	}
	time.Sleep(time.Minute) // the kexec takes this process with it
	r.fatal(i, s, "still running a minute after the update said it reboots")
}

// guestLuod is luod as PID 1 of the VM.
type guestLuod struct{ t *testing.T }

func (g guestLuod) call(method string, params, reply any) error {
	return call(g.t, control.DefaultSocket, method, params, reply)
}

func (g guestLuod) luoctl(args ...string) (string, int) { return luoctl(g.t, args...) }

// newLog: luod logs on the console, which TestVMModel reads on the host.
func (guestLuod) newLog() string { return "" }
