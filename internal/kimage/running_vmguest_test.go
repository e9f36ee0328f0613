//go:build vmguest

package kimage_test

import (
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/kimage"
	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
)

func TestMain(m *testing.M) { vmtest.GuestMain(m) }

// TestGuestRunning checks, in each stage, that Running reads the formats
// the stage's kernel image holds. vm_test.go boots the VM.
func TestGuestRunning(t *testing.T) {
	plan, err := vm.ReadPlan()
	if err != nil {
		t.Fatal(err)
	}
	n := vm.Stage()
	if n < 1 || n > len(plan.Stages) {
		t.Fatalf("stage %d of a %d-stage plan", n, len(plan.Stages))
	}
	path := plan.Stages[n-1].Kernel
	img, err := kimage.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := vm.Release(); img.Release != got {
		t.Errorf("Open(%s).Release = %q, but the running kernel is %q", path, img.Release, got)
	}
	start := time.Now()
	want, err := img.Formats()
	imageTime := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}

	start = time.Now()
	got, err := kimage.Running()
	runningTime := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("Running() = %v, but the stage's kernel image %s holds %v", got, path, want)
	}
	if v := (kimage.Formats{LUO: "luo-v5", KHO: "kho-v4", Memfd: "memfd-v2"}); got != v {
		t.Errorf("Running() = %v, want %v", got, v)
	}
	if err := got.Accepts(want); err != nil {
		t.Error(err)
	}
	t.Logf("stage %d, Linux %s: Running() = %v in %v; Open(%s).Formats() in %v",
		n, img.Release, got, runningTime.Round(time.Millisecond), path, imageTime.Round(time.Millisecond))
}
