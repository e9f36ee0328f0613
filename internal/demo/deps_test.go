package demo

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestCommandsDoNotLinkTesting keeps package testing, and with it the VM test
// harness, out of every command: the demo builds and boots its VM with
// package vm, never with package vmtest.
func TestCommandsDoNotLinkTesting(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command("go", "list", "-deps", "github.com/liveupdate/luo/cmd/...").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, bad := range []string{"testing", "github.com/liveupdate/luo/internal/vmtest"} {
		if slices.Contains(deps, bad) {
			t.Errorf("a command under cmd/ links %s", bad)
		}
	}
	if !slices.Contains(deps, "github.com/liveupdate/luo/internal/vm") {
		t.Errorf("go list -deps of the commands lacks internal/vm; is the demo still under cmd/?\n%s", out)
	}
}
