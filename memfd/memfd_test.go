package memfd_test

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/liveupdate/luo/memfd"
)

func TestNewSizeResize(t *testing.T) {
	f, err := memfd.New("t", 8192)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, err := memfd.Size(f); err != nil || n != 8192 {
		t.Fatalf("Size = %d, %v", n, err)
	}
	if !strings.HasPrefix(f.Name(), "memfd:t") {
		t.Errorf("name %q", f.Name())
	}
	if err := memfd.Resize(f, 100); err != nil {
		t.Fatal(err)
	}
	if n, _ := memfd.Size(f); n != 100 {
		t.Fatalf("size after resize %d", n)
	}
	// No exec seal: a preserved memfd must come back writable (see New).
	if s, err := memfd.GetSeals(f); err != nil || s != 0 {
		t.Fatalf("seals of a new memfd: %v, %v; want none", s, err)
	}
	if _, err := memfd.New("neg", -1); err == nil {
		t.Fatal("New with a negative size succeeded")
	}
}

func TestSealsAndMap(t *testing.T) {
	f, err := memfd.New("sealed", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := memfd.Map(f)
	if err != nil {
		t.Fatal(err)
	}
	copy(m, "hello")
	// A writable mapping blocks SealWrite.
	if err := memfd.AddSeals(f, memfd.SealWrite); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("SealWrite with a writable mapping: %v, want EBUSY", err)
	}
	if err := memfd.Unmap(m); err != nil {
		t.Fatal(err)
	}
	if err := memfd.AddSeals(f, memfd.SealShrink|memfd.SealGrow|memfd.SealWrite); err != nil {
		t.Fatal(err)
	}
	s, err := memfd.GetSeals(f)
	if err != nil || s != memfd.SealShrink|memfd.SealGrow|memfd.SealWrite {
		t.Fatalf("GetSeals = %v, %v", s, err)
	}
	if s.String() != "shrink|grow|write" || memfd.Seals(0).String() != "none" || memfd.Seals(0x100).String() != "0x100" {
		t.Errorf("String: %q %q %q", s, memfd.Seals(0), memfd.Seals(0x100))
	}
	err = memfd.Resize(f, 8192)
	if !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), "sealed") {
		t.Fatalf("resize of a sealed memfd: %v", err)
	}
	// Write-sealed: mapped read-only.
	ro, err := memfd.Map(f)
	if err != nil {
		t.Fatal(err)
	}
	defer memfd.Unmap(ro)
	if string(ro[:5]) != "hello" {
		t.Fatalf("read %q", ro[:5])
	}
	empty, err := memfd.New("empty", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	if b, err := memfd.Map(empty); err != nil || len(b) != 0 {
		t.Fatalf("Map(empty) = %d bytes, %v", len(b), err)
	}
}
