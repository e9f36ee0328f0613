//go:build !vmguest

package smoke

import (
	"slices"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/kimage"
	"github.com/liveupdate/luo/internal/vm"
	"github.com/liveupdate/luo/internal/vmtest"
)

func TestVM(t *testing.T) {
	kernels := []string{vmtest.Kernel(t, "7.2"), vmtest.Kernel(t, "7.3"), vmtest.Kernel(t, "7.2")}
	res := vmtest.Run(t, vm.Config{
		Kernels: kernels,
		Files:   map[string][]byte{"smoke/hello.txt": []byte("hello from the host\n")},
	})

	var want, got []string
	for _, k := range kernels {
		ki, err := kimage.Open(k)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, ki.Release)
	}
	for _, s := range res.Stages {
		got = append(got, s.Release)
	}
	if !slices.Equal(got, want) {
		t.Errorf("stage releases = %q, want %q", got, want)
	}

	ran := map[string][]vmtest.Status{}
	for _, r := range res.Tests {
		ran[r.Name] = append(ran[r.Name], r.Status)
		if want := map[string]string{"TestSkipped": "proves that a declared skip is reported as a skip"}[r.Name]; r.MaySkip != want {
			t.Errorf("%s in stage %d: MaySkip = %q, want %q", r.Name, r.Stage, r.MaySkip, want)
		}
	}
	for name, want := range map[string][]vmtest.Status{
		"TestStage":       {vmtest.Pass, vmtest.Pass, vmtest.Pass},
		"TestSkipped":     {vmtest.Skip, vmtest.Skip, vmtest.Skip},
		"TestHold/memfd":  {vmtest.Pass, vmtest.Skip, vmtest.Skip},
		"TestNested/a/b":  {vmtest.Pass, vmtest.Pass, vmtest.Pass},
		"TestEnvironment": {vmtest.Pass, vmtest.Pass, vmtest.Pass},
	} {
		if !slices.Equal(ran[name], want) {
			t.Errorf("%s: statuses by stage = %v, want %v", name, ran[name], want)
		}
	}

	// The stage boundaries are timestamped on arrival, in order.
	last := res.Start
	for _, s := range res.Stages {
		for _, ts := range []time.Time{s.Booted, s.Started, s.Ended} {
			if ts.Before(last) {
				t.Errorf("stage %d: timestamps out of order: booted %v, started %v, ended %v (after %v)", s.N, s.Booted, s.Started, s.Ended, last)
			}
			last = ts
		}
	}
	if len(res.Stages) != 3 || t.Failed() {
		return
	}
	// Timings, for the record.
	t.Logf("QEMU start to stage 1 init: %v, to its tests: %v",
		res.Stages[0].Booted.Sub(res.Start).Round(time.Millisecond), res.Stages[0].Started.Sub(res.Start).Round(time.Millisecond))
	for i := 1; i < len(res.Stages); i++ {
		prev, s := res.Stages[i-1], res.Stages[i]
		t.Logf("stage %d -> %d: tests' exit marker to next init %v, to next tests %v", prev.N, s.N,
			s.Booted.Sub(prev.Ended).Round(time.Millisecond), s.Started.Sub(prev.Ended).Round(time.Millisecond))
	}
	t.Logf("whole run: %v", res.End.Sub(res.Start).Round(time.Millisecond))
}
