//go:build linux

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoFaultInjectionInProduction builds luod as it ships and as the VM
// fault matrix builds it (-tags luodfault), and looks into both binaries:
// only the test build has a fault-injection path, by symbol and by the
// names of its knobs.
func TestNoFaultInjectionInProduction(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		tags   []string
		faults bool
	}{
		{"production", nil, false},
		{"luodfault", []string{"-tags", "luodfault"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := filepath.Join(dir, "luod-"+tc.name)
			args := append(append([]string{"build", "-o", bin}, tc.tags...), ".")
			build := exec.Command("go", args...)
			build.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go build %v: %v\n%s", tc.tags, err, out)
			}
			nm, err := exec.Command("go", "tool", "nm", bin).Output()
			if err != nil {
				t.Fatalf("go tool nm: %v", err)
			}
			b, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			var found []string
			for _, sym := range []string{"internal/update/updatetest.", "main.(*faults).fail"} {
				if strings.Contains(string(nm), sym) {
					found = append(found, "symbol "+sym)
				}
			}
			for _, s := range []string{"LUOD_TEST_FAULT", "test-fault", "hanging after preserve"} {
				if bytes.Contains(b, []byte(s)) {
					found = append(found, "string "+s)
				}
			}
			if tc.faults && len(found) != 5 {
				t.Errorf("the luodfault build lacks its fault injection: found only %v", found)
			}
			if !tc.faults && len(found) != 0 {
				t.Errorf("production luod contains fault injection: %v", found)
			}
		})
	}
}
