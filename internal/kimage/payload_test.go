package kimage_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/liveupdate/luo/internal/kimage"
)

// formatsOf writes the image b to a file and returns what Open and Formats
// say of it.
func formatsOf(t *testing.T, b []byte) (kimage.Formats, error) {
	t.Helper()
	img, err := kimage.Open(writeFile(t, "bzImage", b))
	if err != nil {
		t.Fatal(err)
	}
	return img.Formats()
}

func TestFormats(t *testing.T) {
	t.Parallel()
	raw := vmlinux(256<<10, v5)
	for _, c := range compressions {
		t.Run(c, func(t *testing.T) {
			t.Parallel()
			img, err := kimage.Open(writeFile(t, "bzImage", bzImage(compress(t, c, raw))))
			if err != nil {
				t.Fatal(err)
			}
			if img.Compression != c {
				t.Errorf("Compression = %q, want %q", img.Compression, c)
			}
			got, err := img.Formats()
			if err != nil || got != v5 {
				t.Fatalf("Formats() = %v, %v; want %v", got, err, v5)
			}
		})
	}
}

var updateFixtures = flag.Bool("kimage.update", false, "rewrite testdata/vmlinux.* with the compressors of the kernel build")

// fixtures are payloads made by the tools and options of a kernel build
// (scripts/Makefile.lib, arch/x86/boot/compressed/Makefile) from
// vmlinux(fixtureSize, v5): go test -run TestFixtures -kimage.update
// writes them again.
var fixtures = []struct{ compression, file, cmd string }{
	{"gzip", "vmlinux.gz", "gzip -n -f -9"},
	{"bzip2", "vmlinux.bz2", "bzip2 -9"},
	{"lzma", "vmlinux.lzma", "lzma -9"},
	{"xz", "vmlinux.xz", "xz --check=crc32 --x86 --lzma2=,dict=32MiB"}, // scripts/xz_wrap.sh for x86
	{"lz4", "vmlinux.lz4", "lz4 -l -9"},
	{"zstd", "vmlinux.zst", "zstd -22 --ultra -q"},
}

const fixtureSize = 64 << 10

// TestFixtures decompresses payloads made by the real tools, among them
// the two that no Go encoder makes: bzip2, and xz with the x86 BCJ filter.
func TestFixtures(t *testing.T) {
	t.Parallel()
	raw := vmlinux(fixtureSize, v5)
	for _, fx := range fixtures {
		path := filepath.Join("testdata", fx.file)
		if *updateFixtures {
			cmd := exec.Command("sh", "-c", fx.cmd)
			cmd.Stdin = bytes.NewReader(raw)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: %v", fx.cmd, err)
			}
			if fx.compression != "gzip" {
				out = binary.LittleEndian.AppendUint32(out, uint32(len(raw)))
			}
			if err := os.WriteFile(path, out, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Run(fx.compression, func(t *testing.T) {
			t.Parallel()
			payload, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			stream := payload
			if fx.compression != "gzip" {
				stream = payload[:len(payload)-4]
			}
			d, err := kimage.Decompress(fx.compression, bytes.NewReader(stream), kimage.MaxDecompressed)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			got, err := io.ReadAll(d)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, raw) {
				i := 0
				for i < min(len(got), len(raw)) && got[i] == raw[i] {
					i++
				}
				t.Fatalf("%s decompresses to %d bytes that differ from the %d of the input at %d", path, len(got), len(raw), i)
			}
			if f, err := formatsOf(t, bzImage(payload)); err != nil || f != v5 {
				t.Fatalf("Formats() = %v, %v; want %v", f, err, v5)
			}
		})
	}
}

func TestFormatsErrors(t *testing.T) {
	t.Parallel()
	gz := func(f kimage.Formats, extra ...string) []byte {
		return bzImage(compress(t, "gzip", vmlinux(64<<10, f, extra...)))
	}
	noMemfd, noLUO := v5, v5
	noMemfd.Memfd, noLUO.LUO = "", ""
	withTrailer := func(compression string, raw []byte, size uint32) []byte {
		p := compress(t, compression, raw)
		binary.LittleEndian.PutUint32(p[len(p)-4:], size)
		return bzImage(p)
	}
	corrupt := func(b []byte) []byte {
		for i := payloadAt() + 2000; i < payloadAt()+2100; i++ {
			b[i] ^= 0x5a
		}
		return b
	}
	big := vmlinux(200<<10, v5)
	for _, tt := range []struct {
		name  string
		image []byte
		limit int64
		is    error // if not nil, errors.Is(err, is)
		says  []string
	}{
		{name: "no memfd", image: gz(noMemfd), is: kimage.ErrMissing,
			says: []string{"kernel 7.9.1-test: missing Live Update format: no memfd-vN string (built without CONFIG_LIVEUPDATE_MEMFD?)"}},
		{name: "no LUO", image: gz(noLUO), is: kimage.ErrMissing,
			says: []string{"no luo-vN string (built without CONFIG_LIVEUPDATE?)"}},
		{name: "none at all", image: gz(kimage.Formats{}), is: kimage.ErrMissing,
			says: []string{"no luo-vN string (built without CONFIG_LIVEUPDATE?), no kho-vN string (built without CONFIG_KEXEC_HANDOVER?), no memfd-vN string"}},
		{name: "two memfd versions", image: gz(v5, "memfd-v3"), is: kimage.ErrAmbiguous,
			says: []string{"ambiguous Live Update format: memfd-v2 and memfd-v3"}},
		{name: "two LUO versions", image: gz(v5, "luo-v10"), is: kimage.ErrAmbiguous,
			says: []string{"ambiguous Live Update format: luo-v10 and luo-v5"}},
		{name: "missing and ambiguous", image: gz(noMemfd, "kho-v3"), is: kimage.ErrAmbiguous,
			says: []string{"missing Live Update format: no memfd-vN", "ambiguous Live Update format: kho-v3 and kho-v4"}},
		{name: "lzo", image: bzImage([]byte("\x89LZO\x00\r\n\x1a\n\x10\x30\x20\x40\x09\x40\x01\x05\x03\x00\x00\x01")), is: kimage.ErrUnsupported,
			says: []string{"lzo payload: compression not supported"}},
		{name: "trailer over the limit", image: bzImage(compress(t, "zstd", big)), limit: 100 << 10, is: kimage.ErrTooLarge,
			says: []string{"the payload says it decompresses to ", "bytes, over the limit of 102400"}},
		{name: "stream over the limit", image: withTrailer("zstd", big, 1000), limit: 100 << 10, is: kimage.ErrTooLarge,
			says: []string{"the payload decompresses to more than 102400 bytes"}},
		{name: "gzip stream over the limit", image: bzImage(compress(t, "gzip", big)), limit: 100 << 10, is: kimage.ErrTooLarge},
		{name: "trailer mismatch", image: withTrailer("lz4", big, uint32(len(big)-1)),
			says: []string{"lz4 payload: decompressed to", "but its trailer says"}},
		{name: "corrupt gzip", image: corrupt(gz(v5)), says: []string{"gzip payload: "}},
		{name: "corrupt xz", image: corrupt(bzImage(compress(t, "xz", big))), says: []string{"xz payload: "}},
		{name: "corrupt zstd", image: corrupt(bzImage(compress(t, "zstd", big))), says: []string{"zstd payload: "}},
		{name: "corrupt lzma", image: corrupt(bzImage(compress(t, "lzma", big))), says: []string{"lzma payload: "}},
		{name: "truncated xz", image: func() []byte {
			p := compress(t, "xz", big)
			return bzImage(append(p[:len(p)/2:len(p)/2], p[len(p)-4:]...))
		}(), says: []string{"xz payload: ", "EOF"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "bzImage", tt.image)
			img, err := kimage.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if tt.limit != 0 {
				img.SetLimit(tt.limit)
			}
			f, err := img.Formats()
			if err == nil {
				t.Fatalf("Formats() = %v, want an error", f)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Formats() = %v, want an error wrapping %v", err, tt.is)
			}
			for _, s := range append(tt.says, path) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Formats() = %v; want it to say %q", err, s)
				}
			}
		})
	}
}

// TestScanBoundaries places the strings across the scanner's 1 MiB reads,
// at the start and at the end of the kernel.
func TestScanBoundaries(t *testing.T) {
	t.Parallel()
	const chunk = 1 << 20
	base := vmlinux(chunk+4096, kimage.Formats{LUO: v5.LUO, KHO: v5.KHO})
	with := func(at int, s string) []byte {
		b := append([]byte(nil), base...)
		copy(b[at:], s)
		return b
	}
	for at := chunk - 24; at <= chunk+4; at++ {
		for _, pre := range []string{"\x00", "x"} {
			b := with(at, pre+"memfd-v2\x00")
			f, err := formatsOf(t, bzImage(compress(t, "none", b)))
			if pre == "x" {
				if !errors.Is(err, kimage.ErrMissing) {
					t.Errorf("x%q at %d: Formats() = %v, %v; want ErrMissing", "memfd-v2\x00", at, f, err)
				}
				continue
			}
			if err != nil || f != v5 {
				t.Errorf("%q at %d: Formats() = %v, %v; want %v", pre+"memfd-v2\x00", at, f, err, v5)
			}
		}
	}

	// At the very start and the very end.
	b := append([]byte("memfd-v2\x00"), base...)
	if f, err := formatsOf(t, bzImage(compress(t, "gzip", b))); err != nil || f != v5 {
		t.Errorf("at the start: Formats() = %v, %v; want %v", f, err, v5)
	}
	b = append(append([]byte(nil), base...), "\x00memfd-v2\x00"...)
	if f, err := formatsOf(t, bzImage(compress(t, "gzip", b))); err != nil || f != v5 {
		t.Errorf("at the end: Formats() = %v, %v; want %v", f, err, v5)
	}
	b = append(append([]byte(nil), base...), "\x00memfd-v2"...)
	if f, err := formatsOf(t, bzImage(compress(t, "gzip", b))); !errors.Is(err, kimage.ErrMissing) {
		t.Errorf("at the end without NUL: Formats() = %v, %v; want ErrMissing", f, err)
	}
}

func ExampleFormats_Accepts() {
	running := kimage.Formats{LUO: "luo-v5", KHO: "kho-v4", Memfd: "memfd-v2"}
	next := kimage.Formats{LUO: "luo-v5", KHO: "kho-v4", Memfd: "memfd-v3"}
	fmt.Println(running.Accepts(next))
	// Output: live update formats differ: memfd memfd-v2 -> memfd-v3: every open of /dev/liveupdate fails with EIO for the whole boot of the next kernel, so nothing can be retrieved
}
