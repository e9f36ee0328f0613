package vmtest

import (
	"compress/gzip"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
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
	if diff := diffLines(want, got); diff != "" {
		t.Errorf("initrd mismatch (-want +got):\n%s", diff)
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

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2)":   "SeaBIOS (version 1.16.2)",
		"Booting from ROM..\x1bc\x1b[?7l\x1b[2Jvminit: stage 1": "Booting from ROM..vminit: stage 1",
		"\tpanic: x\r":          "\tpanic: x",
		"caf\u00e9 \x00\x07end": "caf\u00e9 end",
	} {
		if got := printable([]byte(in)); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}
