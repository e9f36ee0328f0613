package kimage_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/liveupdate/luo/internal/kimage"
)

// FuzzFormats feeds arbitrary files to Open's header parser and Formats,
// with a 1 MiB limit on the decompressed payload, which bounds what the
// decompressors allocate. Neither may panic; Open fails only with
// ErrNotImage; Formats returns only well-formed strings.
func FuzzFormats(f *testing.F) {
	raw := vmlinux(8<<10, v5)
	for _, c := range compressions {
		f.Add(bzImage(compress(f, c, raw)))
	}
	for _, fx := range fixtures {
		if b, err := os.ReadFile(filepath.Join("testdata", fx.file)); err == nil {
			f.Add(bzImage(b))
		}
	}
	noMemfd := v5
	noMemfd.Memfd = ""
	f.Add(bzImage(compress(f, "gzip", vmlinux(8<<10, noMemfd, "kho-v3"))))
	f.Add(bzImage([]byte("\x89LZO\x00\r\n\x1a\n\x10\x30\x20\x40\x09\x40\x01\x05\x03\x00\x00\x01")))
	f.Add(bzImage(compress(f, "zstd", vmlinux(2<<20, v5))[:4096]))
	f.Add([]byte("\x7fELF"))
	f.Add(bzImage(nil)[:0x240])

	valid := regexp.MustCompile(`^(luo|kho|memfd)-v[0-9]{1,9}$`)
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := kimage.ReadImage(b, 1<<20)
		if err != nil {
			if !errors.Is(err, kimage.ErrNotImage) {
				t.Fatalf("ReadImage: %v, not an ErrNotImage", err)
			}
			return
		}
		fm, err := img.FormatsOf(b)
		if err != nil {
			return
		}
		for _, s := range []string{fm.LUO, fm.KHO, fm.Memfd} {
			if !valid.MatchString(s) {
				t.Fatalf("Formats() = %#v: %q is no compatible string", fm, s)
			}
		}
		if fm.LUO[:3] != "luo" || fm.KHO[:3] != "kho" || fm.Memfd[:5] != "memfd" {
			t.Fatalf("Formats() = %#v: strings in the wrong fields", fm)
		}
	})
}
