//go:build linux

package unit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadEnvironmentFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "env")
	os.WriteFile(p, []byte("# comment\n; comment\n\nA=1\nexport B = two \nC=\"quoted value\"\nD='single'\nE=long\\\nline\n"), 0o644)
	got, err := ReadEnvironmentFile(p)
	want := []string{"A=1", "B=two", "C=quoted value", "D=single", "E=longline"}
	if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("ReadEnvironmentFile = %q, %v; want %q", got, err, want)
	}
	os.WriteFile(p, []byte("no equals sign\n"), 0o644)
	if _, err := ReadEnvironmentFile(p); err == nil || !strings.Contains(err.Error(), "invalid line") {
		t.Errorf("a line without = : %v", err)
	}
	os.WriteFile(p, nil, 0o644)
	if got, err := ReadEnvironmentFile(p); err != nil || len(got) != 0 {
		t.Errorf("an empty file: %q, %v", got, err)
	}
	if _, err := ReadEnvironmentFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
}

// TestReadEnvironmentFileNeverBlocks: a FIFO (or a device) as
// EnvironmentFile= blocked luod's loop until someone wrote to it.
func TestReadEnvironmentFileNeverBlocks(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "env")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, "/dev/zero", t.TempDir()} {
		done := make(chan error, 1)
		go func() { _, err := ReadEnvironmentFile(p); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrNotRegular) {
				t.Errorf("%s: %v, want ErrNotRegular", p, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: ReadEnvironmentFile blocks", p)
		}
	}
}
