package vm

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cavaliergopher/cpio"
)

func TestStageFromCmdline(t *testing.T) {
	for _, tt := range []struct {
		cmdline string
		want    int
	}{
		{"console=ttyS0 panic=-1 liveupdate=on quiet vmtest.stage=2\n", 2},
		{"vmtest.stage=1", 1},
		{"console=ttyS0 quiet", 0},
		{"vmtest.stage=x", 0},
		{"vmtest.stage=0", 0},
		{"myvmtest.stage=3", 0},
	} {
		if got := stageFromCmdline(tt.cmdline); got != tt.want {
			t.Errorf("stageFromCmdline(%q) = %d, want %d", tt.cmdline, got, tt.want)
		}
	}
	p := Plan{Cmdline: "console=ttyS0 liveupdate=on"}
	if got, want := p.StageCmdline(3), "console=ttyS0 liveupdate=on vmtest.stage=3"; got != want {
		t.Errorf("StageCmdline(3) = %q, want %q", got, want)
	}
}

func TestDiskPath(t *testing.T) {
	for _, tt := range []struct {
		name, want string // want "" means an error
	}{
		{"bin/luod", "/r/bin/luod"},
		{"etc/luod/system/a.service", "/r/etc/luod/system/a.service"},
		{"./x", "/r/x"},
		{"a/../b", "/r/b"},
		{"", ""},
		{"/etc/passwd", ""},
		{"../x", ""},
		{"a/../../x", ""},
		{"test.bin", ""},
		{"plan.json", ""},
		{"boot/x", ""},
	} {
		got, err := diskPath("/r", tt.name)
		if (err != nil) != (tt.want == "") || got != tt.want {
			t.Errorf("diskPath(%q) = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

func TestWriteInitrd(t *testing.T) {
	dir := t.TempDir()
	init := filepath.Join(dir, "init")
	if err := os.WriteFile(init, []byte("#!init"), 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "initrd.img")
	if err := writeInitrd(dst, init); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	r := cpio.NewReader(zr)
	var got []string
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entry := h.Name + " " + h.Mode.String()
		if h.Mode.IsRegular() {
			b, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			entry += " " + string(b)
		}
		got = append(got, entry)
	}
	want := []string{
		"dev 040755", "proc 040755", "sys 040755", "tmp 040755", "run 040755", "vmtest 040755",
		"init 0100755 #!init",
	}
	if !slices.Equal(got, want) {
		t.Errorf("initrd entries:\n got %q\nwant %q", got, want)
	}
}
