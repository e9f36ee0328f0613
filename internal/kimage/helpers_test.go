package kimage_test

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"

	"github.com/liveupdate/luo/internal/kimage"
	"github.com/liveupdate/luo/internal/kimage/kimagetest"
)

// decoys are near misses of compatible strings, in every synthetic kernel:
// none of them may be read as a format.
var decoys = []string{
	"xluo-v7\x00",               // preceded by a letter
	"_kho-v7\x00",               // by an underscore
	"-memfd-v7\x00",             // by a dash
	"9luo-v7\x00",               // by a digit
	"kho-v7x\x00",               // no NUL after the digits
	"luo-v\x00",                 // no digits
	"memfd-v1234567890\x00",     // ten digits
	"LUO-v7\x00",                // upper case
	"memfd-v7",                  // no NUL at all (the next decoy follows)
	"kho-7\x00", "memfd_v7\x00", // no "-v"
}

// vmlinux returns a synthetic kernel of about size bytes: an ELF magic,
// then pseudo-random x86-like code full of E8/E9 rel32 calls and jumps (for
// the xz BCJ filter), strings and zeros, the decoys, and the non-empty
// formats of f plus each of extra in the two layouts of the real kernels:
// NUL-terminated literals among other strings (LUO, KHO and extra), and the
// memfd handler's compatible inline in a struct's char array, after a
// pointer and padded with NULs. The same arguments give the same bytes.
func vmlinux(size int, f kimage.Formats, extra ...string) []byte {
	rng := rand.New(rand.NewPCG(7, 2))
	b := make([]byte, 0, size+1024)
	b = append(b, "\x7fELF\x02\x01\x01\x00"...)
	words := []string{"blob-size", "compatible", "preserved-memory-map", "kernel/liveupdate/luo_core.c", "fdt", "LUO", "./include/linux/kho/abi/luo.h"}
	place := func(frac int, parts ...string) {
		for len(b) < size*frac/8 {
			switch rng.IntN(4) {
			case 0, 1: // code with calls and jumps
				for range 64 {
					switch rng.IntN(6) {
					case 0:
						rel := uint32(rng.IntN(1 << 20))
						if rng.IntN(2) == 0 {
							rel = -rel
						}
						b = append(b, 0xe8|byte(rng.IntN(2)))
						b = binary.LittleEndian.AppendUint32(b, rel)
					case 1:
						b = append(b, 0x48, 0x89, byte(0xc0+rng.IntN(64)))
					default:
						b = append(b, []byte{0x55, 0x5d, 0xc3, 0x90, 0x0f, 0x1f, 0x44, 0x00}[rng.IntN(8)])
					}
				}
			case 2: // string literals
				for range 8 {
					b = append(b, words[rng.IntN(len(words))]...)
					b = append(b, 0)
				}
			case 3:
				b = append(b, make([]byte, rng.IntN(256))...)
			}
		}
		for _, p := range parts {
			b = append(b, p...)
		}
	}
	place(1, decoys...)
	place(2)
	if f.KHO != "" {
		place(3, "blob-size\x00", f.KHO, "\x00compatible\x00")
	}
	if f.LUO != "" {
		place(4, "luo_session.c\x00LUO\x00", f.LUO, "\x00./include/")
	}
	for _, e := range extra {
		place(5, "\x00", e, "\x00")
	}
	if f.Memfd != "" {
		var field [64]byte // struct liveupdate_file_handler: ..., char compatible[...]
		copy(field[:], f.Memfd)
		place(6, "\x00\x00\xc0\x76\x03\x82\xff\xff\xff\xff", string(field[:]))
	}
	place(8)
	return b
}

// compressions lists what compress can produce: every compression Formats
// reads but bzip2, which has no Go encoder (testdata has a bzip2 payload).
var compressions = []string{"gzip", "zstd", "xz", "lzma", "lz4", "none"}

// compress returns raw as the payload of a kernel build: compressed, and
// followed by its size as a little-endian uint32 (size_append in
// scripts/Makefile.lib) unless compressed with gzip, whose trailer has it.
func compress(t testing.TB, compression string, raw []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	var err error
	switch compression {
	case "gzip":
		w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		if _, err = w.Write(raw); err == nil {
			err = w.Close()
		}
		if err != nil {
			t.Fatalf("compress gzip: %v", err)
		}
		return b.Bytes()
	case "zstd":
		var w *zstd.Encoder
		if w, err = zstd.NewWriter(&b, zstd.WithWindowSize(1<<16)); err == nil {
			if _, err = w.Write(raw); err == nil {
				err = w.Close()
			}
		}
	case "xz":
		var w *xz.Writer
		// Blocks of 32 KiB: several in a stream.
		if w, err = (xz.WriterConfig{CheckSum: xz.CRC32, DictCap: 1 << 16, BlockSize: 1 << 15}).NewWriter(&b); err == nil {
			if _, err = w.Write(raw); err == nil {
				err = w.Close()
			}
		}
	case "lzma":
		var w *lzma.Writer
		if w, err = (lzma.WriterConfig{DictCap: 1 << 16, EOSMarker: true}).NewWriter(&b); err == nil {
			if _, err = w.Write(raw); err == nil {
				err = w.Close()
			}
		}
	case "lz4":
		w := lz4.NewWriter(&b)
		if err = w.Apply(lz4.LegacyOption(true)); err == nil {
			if _, err = w.Write(raw); err == nil {
				err = w.Close()
			}
		}
	case "none":
		b.Write(raw)
	default:
		t.Fatalf("compress: no %s encoder", compression)
	}
	if err != nil {
		t.Fatalf("compress %s: %v", compression, err)
	}
	return binary.LittleEndian.AppendUint32(b.Bytes(), uint32(len(raw)))
}

// Boot header offsets, as in Documentation/arch/x86/boot.rst.
const (
	setupSects    = 0x1f1
	bootFlag      = 0x1fe
	hdrMagic      = 0x202
	hdrVersion    = 0x206
	kernelVersion = 0x20e
	payloadOffset = 0x248
	payloadLength = 0x24c
)

// bzImage returns a bzImage whose payload is payload (kimagetest.BzImage),
// with the version string "7.9.1-test (nobody@nowhere) #1 SMP".
func bzImage(payload []byte) []byte {
	return kimagetest.BzImage("7.9.1-test (nobody@nowhere) #1 SMP", payload)
}

// payloadAt returns the offset of the payload of a bzImage made by
// bzImage.
func payloadAt() int { return 3*512 + 0x400 }

// writeFile writes b to a new file in a temporary directory and returns
// its path.
func writeFile(t testing.TB, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
