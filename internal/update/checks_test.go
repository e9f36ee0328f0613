package update

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/liveupdate/luo/internal/kexec"
	"github.com/liveupdate/luo/internal/kimage"
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
		{"other formats", func(f *Facts) { f.Formats = errors.New("memfd-v2 here, memfd-v3 there") }, nil, CheckFormats, "every fd is lost"},
		{"other LUO format", func(f *Facts) { f.Panics = errors.New("luo-v5 -> luo-v6: the next kernel panics at boot") }, nil, CheckFormats, "panics"},
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

// TestFormatsCheckAllowLoss: --allow-loss overrides formats that lose the
// state, never one that makes the next kernel panic.
func TestFormatsCheckAllowLoss(t *testing.T) {
	target := kexec.Image{Kernel: "/boot/k", Cmdline: "liveupdate=on"}
	for _, tc := range []struct {
		name      string
		facts     Facts
		allowLoss bool
		refused   bool
	}{
		{"loss refused", Facts{Cmdline: "liveupdate=on", Formats: errors.New("memfd")}, false, true},
		{"loss allowed", Facts{Cmdline: "liveupdate=on", Formats: errors.New("memfd")}, true, false},
		{"panic refused", Facts{Cmdline: "liveupdate=on", Panics: errors.New("luo")}, false, true},
		{"panic refused despite allow-loss", Facts{Cmdline: "liveupdate=on", Panics: errors.New("luo")}, true, true},
		{"other checks are not overridden", Facts{Cmdline: "liveupdate=on", Formats: errors.New("memfd"), Device: errors.New("EBUSY")}, true, true},
	} {
		p := &Plan{Kind: Kexec, Checks: Checks(tc.facts, target)}
		if err := p.Refusal(tc.allowLoss); (err != nil) != tc.refused {
			t.Errorf("%s: Refusal = %v", tc.name, err)
		}
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

// bzImage writes a gzip bzImage of release 7.2.99 whose kernel holds the
// given format strings, needing initSize bytes to decompress.
func bzImage(t *testing.T, initSize uint32, formats ...string) string {
	t.Helper()
	var payload bytes.Buffer
	zw := gzip.NewWriter(&payload)
	zw.Write([]byte("\x00\x00vmlinux"))
	for _, f := range formats {
		zw.Write([]byte("\x00" + f + "\x00rodata"))
	}
	zw.Close()
	b := make([]byte, 1024+payload.Len())
	b[0x1f1] = 1 // setup sectors: the payload is at (1+1)*512
	binary.LittleEndian.PutUint16(b[0x1fe:], 0xaa55)
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], 0x20f)
	binary.LittleEndian.PutUint16(b[0x20e:], 0x300-0x200)
	copy(b[0x300:], "7.2.99 (test)\x00")
	binary.LittleEndian.PutUint32(b[0x24c:], uint32(payload.Len()))
	binary.LittleEndian.PutUint32(b[0x260:], initSize)
	copy(b[1024:], payload.Bytes())
	p := filepath.Join(t.TempDir(), "bzImage")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSystemInspectOnTheHost(t *testing.T) {
	k := bzImage(t, 50<<20, "luo-v5", "kho-v4", "memfd-v2")
	initrd := filepath.Join(t.TempDir(), "initrd")
	os.WriteFile(initrd, make([]byte, 1000), 0o644)
	s := NewSystem(filepath.Join(t.TempDir(), "no-liveupdate"))
	s.running = func() (kimage.Formats, error) {
		return kimage.Formats{LUO: "luo-v5", KHO: "kho-v4", Memfd: "memfd-v2"}, nil
	}
	f := s.Inspect(kexec.Image{Kernel: k, Initrd: initrd})
	if !errors.Is(f.Device, os.ErrNotExist) {
		t.Errorf("Device = %v, want not found", f.Device)
	}
	if len(f.Segments) != 2 || f.Segments[0] != 50<<20 || f.Segments[1] != 1000 || f.Images != nil {
		t.Errorf("segments %v (%v)", f.Segments, f.Images)
	}
	if f.Formats != nil || f.Panics != nil || f.FormatsDetail != "luo-v5 kho-v4 memfd-v2" {
		t.Errorf("formats %v, %v, %q", f.Formats, f.Panics, f.FormatsDetail)
	}
	if _, err := os.Stat("/sys/kernel/debug/kho"); err != nil && f.KHO == nil {
		t.Error("KHO reported on without debugfs or device")
	}

	notBz := filepath.Join(t.TempDir(), "x")
	os.WriteFile(notBz, make([]byte, 4096), 0o644)
	short := filepath.Join(t.TempDir(), "short")
	os.WriteFile(short, make([]byte, 0x100), 0o644)
	for _, tc := range []struct{ kernel, want string }{
		{notBz, "kexec_file_load would not load it"},
		{filepath.Join(t.TempDir(), "missing"), "no such file"},
		{short, "too short"},
	} {
		if _, err := segments(kexec.Image{Kernel: tc.kernel}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("segments(%s) = %v, want ~%q", tc.kernel, err, tc.want)
		}
		if f := s.Inspect(kexec.Image{Kernel: tc.kernel}); f.Images == nil || f.Formats != nil {
			t.Errorf("Inspect(%s): images %v, formats %v", tc.kernel, f.Images, f.Formats)
		}
	}
}

// TestSystemFormats: the running kernel's formats against an image's: a
// different LUO format is a panic, any other difference or unknown a loss.
func TestSystemFormats(t *testing.T) {
	same := bzImage(t, 1, "luo-v5", "kho-v4", "memfd-v2")
	for _, tc := range []struct {
		name         string
		running      kimage.Formats
		runningErr   error
		image        string
		loss, panics string
	}{
		{"same", kimage.Formats{LUO: "luo-v5", KHO: "kho-v4", Memfd: "memfd-v2"}, nil, same, "", ""},
		{"memfd differs", kimage.Formats{LUO: "luo-v5", KHO: "kho-v4", Memfd: "memfd-v1"}, nil, same, "EIO", ""},
		{"KHO differs", kimage.Formats{LUO: "luo-v5", KHO: "kho-v3", Memfd: "memfd-v2"}, nil, same, "KHO revival", ""},
		{"LUO differs", kimage.Formats{LUO: "luo-v4", KHO: "kho-v4", Memfd: "memfd-v2"}, nil, same, "", "panics at boot"},
		{"LUO and memfd differ", kimage.Formats{LUO: "luo-v4", KHO: "kho-v4", Memfd: "memfd-v1"}, nil, same, "", "panics at boot"},
		{"running unknown", kimage.Formats{}, errors.New("no /proc/kcore"), same, "this kernel's LUO formats: no /proc/kcore", ""},
		{"image lacks memfd", kimage.Formats{LUO: "luo-v5", KHO: "kho-v4", Memfd: "memfd-v2"}, nil, bzImage(t, 1, "luo-v5", "kho-v4"), "missing", ""},
		{"image lacks LUO", kimage.Formats{LUO: "luo-v5", KHO: "kho-v4", Memfd: "memfd-v2"}, nil, bzImage(t, 1, "kho-v4", "memfd-v2"), "missing", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSystem("")
			s.running = func() (kimage.Formats, error) { return tc.running, tc.runningErr }
			loss, panics, detail := s.formats(tc.image)
			if (loss == nil) != (tc.loss == "") || loss != nil && !strings.Contains(loss.Error(), tc.loss) {
				t.Errorf("loss %v, want ~%q", loss, tc.loss)
			}
			if (panics == nil) != (tc.panics == "") || panics != nil && !strings.Contains(panics.Error(), tc.panics) {
				t.Errorf("panics %v, want ~%q", panics, tc.panics)
			}
			if (loss == nil && panics == nil) != (detail != "") {
				t.Errorf("detail %q", detail)
			}
		})
	}
}

// TestSystemFormatsCached: an image is decompressed once per version of
// its file.
func TestSystemFormatsCached(t *testing.T) {
	s := NewSystem("")
	s.running = func() (kimage.Formats, error) {
		return kimage.Formats{LUO: "luo-v5", KHO: "kho-v4", Memfd: "memfd-v2"}, nil
	}
	p := bzImage(t, 1, "luo-v5", "kho-v4", "memfd-v2")
	if loss, _, _ := s.formats(p); loss != nil {
		t.Fatal(loss)
	}
	other := bzImage(t, 1, "luo-v5", "kho-v4", "memfd-v3")
	b, _ := os.ReadFile(other)
	if err := os.WriteFile(p, b, 0o644); err != nil { // a new version of the file
		t.Fatal(err)
	}
	os.Chtimes(p, time.Now(), time.Now().Add(time.Hour))
	if loss, _, _ := s.formats(p); loss == nil || !strings.Contains(loss.Error(), "memfd-v3") {
		t.Errorf("after the image changed: %v", loss)
	}
	if len(s.images) != 2 {
		t.Errorf("%d images cached, want 2", len(s.images))
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
