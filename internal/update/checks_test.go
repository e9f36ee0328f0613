package update

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/liveupdate/luo/internal/kexec"
)

func TestChecks(t *testing.T) {
	good := Facts{Cmdline: "liveupdate=on", Scratch: []int64{64 << 20, 32 << 20}, Segments: []int64{40 << 20, 20 << 20}, FormatsDetail: "luo-v5 memfd-v2 kho-v4"}
	target := kexec.Image{Kernel: "/boot/k", Cmdline: "console=ttyS0 liveupdate=on"}
	for _, tc := range []struct {
		name   string
		facts  func(*Facts)
		target func(*kexec.Image)
		check  string // the one check that fails ("" none)
		detail string // of that check, or of the checked one
	}{
		{"all good", nil, nil, "", ""},
		{"device busy", func(f *Facts) { f.Device = errors.New("open /dev/liveupdate: device or resource busy") }, nil, CheckDevice, "busy"},
		{"no liveupdate=on next", nil, func(t *kexec.Image) { t.Cmdline = "console=ttyS0" }, CheckCmdline, "would not restore anything"},
		{"liveupdate=off next", nil, func(t *kexec.Image) { t.Cmdline = "liveupdate=on liveupdate=off" }, CheckCmdline, "missing"},
		{"not on this kernel", func(f *Facts) { f.Cmdline = "quiet" }, nil, "", "not on this kernel's command line"},
		{"KHO off here", func(f *Facts) { f.KHO = errors.New("KHO is off") }, nil, CheckKHO, "KHO is off"},
		{"kho=off next", nil, func(t *kexec.Image) { t.Cmdline += " kho=off" }, CheckKHO, "kho=off in the next command line"},
		{"kho=0 next", nil, func(t *kexec.Image) { t.Cmdline += " kho=0" }, CheckKHO, "kho=off"},
		{"kho=on next", nil, func(t *kexec.Image) { t.Cmdline += " kho=on" }, "", ""},
		{"segment too big", func(f *Facts) { f.Segments = []int64{70 << 20} }, nil, CheckScratch, "EADDRNOTAVAIL"},
		{"total too big", func(f *Facts) { f.Segments = []int64{60 << 20, 30 << 20, 10 << 20} }, nil, CheckScratch, "kho_scratch="},
		{"scratch unknown", func(f *Facts) { f.Scratch = nil }, nil, "", "scratch size unknown"},
		{"image unreadable", func(f *Facts) { f.Images = errors.New("/boot/k: not a bzImage") }, nil, CheckScratch, "not a bzImage"},
		{"other formats", func(f *Facts) { f.Formats = errors.New("memfd-v2 here, memfd-v3 there") }, nil, CheckFormats, "memfd-v3"},
		{"no kernel", nil, func(t *kexec.Image) { t.Kernel = "" }, CheckLoadable, "no kernel given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, tg := good, target
			if tc.facts != nil {
				tc.facts(&f)
			}
			if tc.target != nil {
				tc.target(&tg)
			}
			cs := Checks(f, tg)
			var failed []string
			all := ""
			for _, c := range cs {
				if !c.OK {
					failed = append(failed, c.Name)
					if c.Name == tc.check && !strings.Contains(c.Detail, tc.detail) {
						t.Errorf("%s: detail %q, want ~%q", c.Name, c.Detail, tc.detail)
					}
				}
				all += c.Detail + "\n"
			}
			want := []string{}
			if tc.check != "" {
				want = []string{tc.check}
			}
			if strings.Join(failed, ",") != strings.Join(want, ",") {
				t.Errorf("failed checks %v, want %v", failed, want)
			}
			if tc.check == "" && !strings.Contains(all, tc.detail) {
				t.Errorf("details %q lack %q", all, tc.detail)
			}
		})
	}
}

func TestLUOSessionName(t *testing.T) {
	if got := LUOSessionName("counter.service", "state"); got != "luod/counter/state" {
		t.Errorf("short name = %q", got)
	}
	long := LUOSessionName(strings.Repeat("u", 60)+".service", "state")
	if len(long) != 63 || !strings.HasPrefix(long, "luod/uuu") || !Reserved(long) {
		t.Errorf("long name %q (%d bytes)", long, len(long))
	}
	if long != LUOSessionName(strings.Repeat("u", 60)+".service", "state") {
		t.Error("not deterministic")
	}
	if long == LUOSessionName(strings.Repeat("u", 60)+".service", "other") {
		t.Error("different names collide")
	}
	if exact := LUOSessionName(strings.Repeat("e", 63-len("luod//x"))+".service", "x"); len(exact) != 63 || !strings.HasSuffix(exact, "/x") {
		t.Errorf("a name of exactly 63 bytes is hashed: %q", exact)
	}
	for name, want := range map[string]bool{"luod": true, "luod/x": true, "luodx": false, "cache": false, "": false} {
		if Reserved(name) != want {
			t.Errorf("Reserved(%q) = %v", name, !want)
		}
	}
}

// bzImage writes a file with a bzImage setup header giving init_size.
func bzImage(t *testing.T, initSize uint32, size int) string {
	t.Helper()
	b := make([]byte, size)
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint32(b[0x260:], initSize)
	p := filepath.Join(t.TempDir(), "bzImage")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSystemInspectOnTheHost(t *testing.T) {
	k := bzImage(t, 50<<20, 4096)
	initrd := filepath.Join(t.TempDir(), "initrd")
	os.WriteFile(initrd, make([]byte, 1000), 0o644)
	f := System{Device: filepath.Join(t.TempDir(), "no-liveupdate")}.Inspect(kexec.Image{Kernel: k, Initrd: initrd})
	if !errors.Is(f.Device, os.ErrNotExist) {
		t.Errorf("Device = %v, want not found", f.Device)
	}
	if len(f.Segments) != 2 || f.Segments[0] != 50<<20 || f.Segments[1] != 1000 || f.Images != nil {
		t.Errorf("segments %v (%v)", f.Segments, f.Images)
	}
	if _, err := os.Stat("/sys/kernel/debug/kho"); err != nil && f.KHO == nil {
		t.Error("KHO reported on without debugfs or device")
	}

	notBz := filepath.Join(t.TempDir(), "x")
	os.WriteFile(notBz, make([]byte, 4096), 0o644)
	short := filepath.Join(t.TempDir(), "short")
	os.WriteFile(short, make([]byte, 0x100), 0o644)
	for _, tc := range []struct{ kernel, want string }{
		{notBz, "not a bzImage"},
		{filepath.Join(t.TempDir(), "missing"), "no such file"},
		{short, "EOF"},
	} {
		if _, err := segments(kexec.Image{Kernel: tc.kernel}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("segments(%s) = %v, want ~%q", tc.kernel, err, tc.want)
		}
	}
}

func TestParseScratch(t *testing.T) {
	if got := parseScratch([]byte("0x4000000\n0x2000000\nbogus\n")); len(got) != 2 || got[0] != 64<<20 || got[1] != 32<<20 {
		t.Errorf("parseScratch = %v", got)
	}
	if got := parseScratch(nil); got == nil || len(got) != 0 {
		t.Errorf("parseScratch(nil) = %#v, want an empty, known list", got)
	}
}
