package vm

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKernelRelease(t *testing.T) {
	// A fake image: boot header magic, kernel_version pointing at 0x300.
	img := make([]byte, 0x400)
	copy(img[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(img[0x20e:], 0x300-0x200)
	copy(img[0x300:], "7.2.13 (root@vm) #1 SMP PREEMPT_DYNAMIC\x00junk")
	path := filepath.Join(t.TempDir(), "bzImage")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := KernelRelease(path); got != "7.2.13" || err != nil {
		t.Errorf("KernelRelease(fake) = %q, %v; want 7.2.13", got, err)
	}
	if err := os.WriteFile(path, make([]byte, 0x400), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := KernelRelease(path); err == nil || !strings.Contains(err.Error(), "not an x86 bzImage") {
		t.Errorf("KernelRelease(zeros) = %v, want a not-a-bzImage error", err)
	}

	// The real kernels, when present.
	for version, prefix := range map[string]string{"7.2": "7.2.", "7.3": "7.3."} {
		k, _, err := findKernel(version)
		if err != nil || k == "" {
			continue
		}
		if got, err := KernelRelease(k); err != nil || !strings.HasPrefix(got, prefix) {
			t.Errorf("KernelRelease(%s) = %q, %v; want %s*", k, got, err, prefix)
		}
	}
}

func TestFindKernel(t *testing.T) {
	k := filepath.Join(t.TempDir(), "bzImage")
	if err := os.WriteFile(k, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LUO_TEST_KERNEL", k)
	t.Setenv("LUO_TEST_KERNEL_7_3", "")
	t.Setenv("LUO_TEST_KERNEL_7_9", filepath.Join(t.TempDir(), "missing"))
	if got, _, err := findKernel("7.2"); got != k || err != nil {
		t.Errorf("findKernel(7.2) = %q, %v; want $LUO_TEST_KERNEL %q", got, err, k)
	}
	if _, _, err := findKernel("7.9"); err == nil {
		t.Errorf("findKernel(7.9) with $LUO_TEST_KERNEL_7_9 naming a missing file: no error")
	}
	got, tried, err := findKernel("7.3")
	if err != nil {
		t.Fatal(err)
	}
	if got == "" && !strings.Contains(strings.Join(tried, " "), filepath.Join(".cache", "kernel", "7.3", "bzImage")) {
		t.Errorf("findKernel(7.3) tried %q, want the .cache/kernel path among them", tried)
	}
}
