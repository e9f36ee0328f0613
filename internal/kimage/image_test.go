package kimage_test

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/liveupdate/luo/internal/kimage"
)

func TestOpen(t *testing.T) {
	t.Parallel()
	magics := map[string]string{
		"gzip": "\x1f\x8b\x08\x00", "bzip2": "BZh9", "lzma": "\x5d\x00\x00\x00\x04", "xz": "\xfd7zXZ\x00\x00\x01",
		"lzo": "\x89LZO\x00\r\n\x1a\n", "lz4": "\x02\x21\x4c\x18", "zstd": "\x28\xb5\x2f\xfd", "none": "\x7fELF",
	}
	for compression, magic := range magics {
		t.Run(compression, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "bzImage", bzImage([]byte(magic+"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")))
			img, err := kimage.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			want := kimage.Image{Path: path, Release: "7.9.1-test", InitSize: 48 << 20, Compression: compression}
			if img.Path != want.Path || img.Release != want.Release || img.InitSize != want.InitSize || img.Compression != want.Compression {
				t.Errorf("Open = %+v, want %+v", *img, want)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	good := bzImage(compress(t, "gzip", vmlinux(4096, v5)))
	le := binary.LittleEndian
	edit := func(change func(b []byte) []byte) []byte {
		return change(append([]byte(nil), good...))
	}
	for _, tt := range []struct {
		name  string
		image []byte
		says  string
	}{
		{"empty", nil, "0 bytes, too short for a boot header"},
		{"short", good[:0x100], "256 bytes, too short for a boot header"},
		{"header cut", good[:0x230], "boot header cut short at 560 of 612 bytes"},
		{"ELF", edit(func(b []byte) []byte { copy(b, "\x7fELF"); copy(b[hdrMagic:], "\x00\x00\x00\x00"); return b }), "no HdrS boot header"},
		{"no boot flag", edit(func(b []byte) []byte { b[bootFlag] = 0; return b }), "no HdrS boot header"},
		{"protocol 2.09", edit(func(b []byte) []byte { le.PutUint16(b[hdrVersion:], 0x209); return b }), "boot protocol 2.09, older than 2.10"},
		{"payload past the end", edit(func(b []byte) []byte { le.PutUint32(b[payloadLength:], uint32(len(b))); return b }), "is outside the"},
		{"payload offset past the end", edit(func(b []byte) []byte { le.PutUint32(b[payloadOffset:], 1<<31); return b }), "is outside the"},
		{"setup past the end", edit(func(b []byte) []byte { b[setupSects] = 255; return b[:4096] }), "is outside the"},
		{"empty payload", edit(func(b []byte) []byte { le.PutUint32(b[payloadLength:], 0); return b }), "payload of 0 bytes"},
		{"no version", edit(func(b []byte) []byte { le.PutUint16(b[kernelVersion:], 0); return b }), "no kernel version string"},
		{"version past the end", edit(func(b []byte) []byte { le.PutUint16(b[kernelVersion:], 0xffff); return b }), "no kernel version string"},
		{"empty version", edit(func(b []byte) []byte { b[0x300] = ' '; return b }), "empty kernel version string"},
		{"unknown compression", edit(func(b []byte) []byte { copy(b[payloadAt():], "PK\x03\x04"); return b }), "payload starts with 50 4b 03 04"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "bzImage", tt.image)
			img, err := kimage.Open(path)
			if !errors.Is(err, kimage.ErrNotImage) || !strings.Contains(err.Error(), tt.says) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Open = %+v, %v; want an ErrNotImage that names the file and says %q", img, err, tt.says)
			}
		})
	}

	_, err := kimage.Open(filepath.Join(t.TempDir(), "nothing"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(a missing file) = %v, want ErrNotExist", err)
	}
}
