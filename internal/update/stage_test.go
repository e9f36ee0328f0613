package update_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/liveupdate/luo/internal/unit"
	"github.com/liveupdate/luo/internal/update"
	"github.com/liveupdate/luo/internal/update/updatetest"
)

// opNames lists the names of the fake kernel's operations since mark.
func opNames(k *updatetest.Kernel, mark int) []string {
	var out []string
	for _, op := range k.Ops()[mark:] {
		out = append(out, op.Name)
	}
	return out
}

// TestStageThenRun: staging plans with a trial preservation and loads the
// kernel, changing no unit; the staged run then neither tries nor loads
// again, and carries everything as an unstaged run does.
func TestStageThenRun(t *testing.T) {
	k, h := machine(t)
	st, plan, err := update.Stage(k, h, testImage, false)
	if err != nil {
		t.Fatalf("Stage: %v", err)
	}
	if st.Target != testImage || st.At.IsZero() || st.Plan != plan || plan.Refusal(false) != nil {
		t.Errorf("staged %+v", st)
	}
	if got := k.Image(); got == nil || got.Kernel != testImage.Kernel {
		t.Fatalf("staging loaded %v", got)
	}
	if len(h.stopped) != 0 {
		t.Errorf("staging stopped %v", h.stopped)
	}
	if !strings.Contains(strings.Join(opNames(k, 0), " "), "create preserve") {
		t.Errorf("staging made no trial preservation: %v", opNames(k, 0))
	}
	if c := st.Changes(h.snapshot(true), h.quota); len(c) != 0 {
		t.Errorf("changes right after staging: %q", c)
	}

	mark := len(k.Ops())
	req := update.Request{Kind: update.Kexec, Staged: st}
	next, err := k.Boot(func() error { return update.Run(context.Background(), k, h, req) })
	if err != nil {
		t.Fatalf("staged Run returned instead of rebooting: %v", err)
	}
	ops := opNames(k, mark)
	for _, op := range ops {
		if op == "load" || op == "unload" {
			t.Errorf("staged run did %s: %v", op, ops)
		}
	}
	// One session only (luod's); no trial session.
	if n := strings.Count(strings.Join(ops, " "), "create"); n != 1 {
		t.Errorf("staged run created %d sessions, want 1 (no trial): %v", n, ops)
	}
	r := mustRestore(t, next)
	if r.Manifest.To.Image != testImage.Kernel {
		t.Errorf("manifest to %+v", r.Manifest.To)
	}
	if got := contents(t, entry(r.Units, "a.service", "one").File); got != "A1" {
		t.Errorf("a.service/one came back as %q", got)
	}
}

// TestStagedChanges: what the staged plan no longer says shows up in
// Changes, and a staged run refuses a loss that appeared since.
func TestStagedChanges(t *testing.T) {
	k, h := machine(t)
	st, _, err := update.Stage(k, h, testImage, false)
	if err != nil {
		t.Fatal(err)
	}
	a := h.find("a.service")
	h.memfd(a, "three", "A3")
	h.pipe(a, "sock")
	got := strings.Join(st.Changes(h.snapshot(true), h.quota), "\n")
	for _, want := range []string{`a.service "three": new, preserve`, `a.service "sock": new, lost`} {
		if !strings.Contains(got, want) {
			t.Errorf("changes lack %q:\n%s", want, got)
		}
	}
	err = update.Run(context.Background(), k, h, update.Request{Kind: update.Kexec, Staged: st})
	var uerr *update.Error
	if !errors.As(err, &uerr) || uerr.Phase != update.PhasePlan || !strings.Contains(err.Error(), "sock") {
		t.Fatalf("staged run with a new loss: %v", err)
	}
	if len(h.stopped) != 0 {
		t.Errorf("refused run stopped %v", h.stopped)
	}
	if k.Image() == nil {
		t.Error("a refused staged run unloaded the staged kernel")
	}
}

// TestStagedAbortKeepsKernel: a staged run that fails after stopping
// brings the units back and leaves the kernel staged; a kernel unloaded
// behind luod's back is reported, not rebooted into.
func TestStagedAbortKeepsKernel(t *testing.T) {
	k, h := machine(t)
	st, _, err := update.Stage(k, h, testImage, false)
	if err != nil {
		t.Fatal(err)
	}
	k.Fail = func(op updatetest.Op) error {
		if op.Name == "exec" {
			return errors.New("reboot refused")
		}
		return nil
	}
	err = update.Run(context.Background(), k, h, update.Request{Kind: update.Kexec, Staged: st})
	var uerr *update.Error
	if !errors.As(err, &uerr) || uerr.Phase != update.PhaseReboot || !uerr.Restored {
		t.Fatalf("staged run failing at reboot: %v", err)
	}
	if !equal(h.resumed, []string{"a.service", "s.service"}) {
		t.Errorf("resumed %v", h.resumed)
	}
	if k.Image() == nil {
		t.Error("the abort of a staged run unloaded the staged kernel")
	}
	k.Fail = nil

	if err := update.Unstage(k); err != nil {
		t.Fatal(err)
	}
	h.stopped = nil
	err = update.Run(context.Background(), k, h, update.Request{Kind: update.Kexec, Staged: st})
	if !errors.As(err, &uerr) || uerr.Phase != update.PhaseLoad || !errors.Is(err, update.ErrNotStaged) {
		t.Fatalf("staged run without a loaded kernel: %v", err)
	}
	if len(h.stopped) != 0 {
		t.Errorf("stopped %v", h.stopped)
	}
}

// TestStageRefused: a plan that would lose an fd is not staged (nothing is
// loaded) unless the loss is allowed.
func TestStageRefused(t *testing.T) {
	k, h := machine(t)
	u := h.unit("p.service", unit.PreserveYes, true)
	h.pipe(u, "sock")
	st, plan, err := update.Stage(k, h, testImage, false)
	var uerr *update.Error
	if st != nil || plan == nil || !errors.As(err, &uerr) || uerr.Phase != update.PhasePlan {
		t.Fatalf("Stage with a loss: %v, %v", st, err)
	}
	if k.Image() != nil {
		t.Error("a refused staging loaded the kernel")
	}
	if st, _, err = update.Stage(k, h, testImage, true); err != nil || st == nil || k.Image() == nil {
		t.Fatalf("Stage allowing the loss: %v", err)
	}
}
