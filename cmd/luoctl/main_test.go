package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// asLuoctl makes the test binary run main instead of the tests.
const asLuoctl = "LUOCTL_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asLuoctl) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// TestExitStatus runs the binary and checks that errors reach stderr with
// the luoctl prefix and the documented exit status.
func TestExitStatus(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "sock")
	tests := []struct {
		name   string
		args   []string
		env    string
		code   int
		stderr string
	}{
		{"no luod", []string{"list"}, missing, 5, "luoctl: luod is not running? no socket at " + missing + "\n"},
		{"--socket", []string{"--socket", missing + "2", "list"}, missing, 5, "luoctl: luod is not running? no socket at " + missing + "2\n"},
		{"usage", []string{"list", "--frob"}, missing, 2, "luoctl: unknown flag: --frob\nSee 'luoctl list --help'.\n"},
		{"help", []string{"--help"}, missing, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], tt.args...)
			cmd.Env = append(os.Environ(), asLuoctl+"=1", "LUOD_SOCKET="+tt.env)
			var stderr []byte
			out, err := cmd.Output()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
				stderr = ee.Stderr
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || string(stderr) != tt.stderr {
				t.Errorf("luoctl %q: status %d, stderr %q; want %d, %q", tt.args, code, stderr, tt.code, tt.stderr)
			}
			if tt.code == 0 && len(out) == 0 {
				t.Error("no output")
			}
		})
	}
}
