package vm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
