// Package kimagetest writes kernel images for tests of code that reads them
// with package kimage: copies of a real bzImage whose kernel speaks other
// Live Update formats, to show that a live update into it is refused.
//
// Only tests import it. It needs no privileges.
package kimagetest

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/liveupdate/luo/internal/kimage"
)

// Boot header fields (Documentation/arch/x86/boot.rst), as file offsets.
const (
	hdrSetupSects    = 0x1f1 // u8: sectors of setup code; 0 means 4
	hdrSyssize       = 0x1f4 // u32: size of the protected-mode code in 16-byte units
	hdrPayloadOffset = 0x248 // u32: from the protected-mode code
	hdrPayloadLength = 0x24c // u32
)

// Image writes a copy of the bzImage src with its compatible strings
// replaced, as by [Rewrite], into a temporary directory of t, and returns
// its path. It fails t if Rewrite fails.
func Image(t testing.TB, src string, replace map[string]string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := Rewrite(dst, src, replace); err != nil {
		t.Fatal(err)
	}
	return dst
}

// Rewrite writes to dst a copy of the x86 bzImage src whose kernel speaks
// other Live Update formats: in the decompressed payload, every compatible
// string that is a key of replace (such as "memfd-v2") becomes that key's
// value (such as "memfd-v9"), which must have the same length. Strings
// match as [kimage.Image.Formats] reads them: NUL-terminated, after a byte
// that cannot be part of the name. Each key must occur at least once. A
// value that is no compatible string ("memfd-x2") removes the format.
//
// The payload, which must be gzip-compressed like that of the LUO test
// kernels, is compressed again and written in place of the old one, the
// rest of the file after it; the header's payload_length and syssize say
// the new sizes. [kimage.Open] and Formats read the copy as they read the
// original, but find the new strings. The copy is meant to be read, not
// booted: the decompressor inside expects the old payload.
func Rewrite(dst, src string, replace map[string]string) error {
	if len(replace) == 0 {
		return fmt.Errorf("kimagetest: nothing to replace in %s", src)
	}
	for old, new := range replace {
		if old == "" || len(new) != len(old) {
			return fmt.Errorf("kimagetest: cannot replace %q by %q: not of the same length", old, new)
		}
	}
	img, err := kimage.Open(src)
	if err != nil {
		return fmt.Errorf("kimagetest: %w", err)
	}
	if img.Compression != "gzip" {
		return fmt.Errorf("kimagetest: %s: a %s payload; only gzip payloads can be rewritten", src, img.Compression)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("kimagetest: %w", err)
	}
	le := binary.LittleEndian
	setup := int(b[hdrSetupSects])
	if setup == 0 {
		setup = 4
	}
	pm := (setup + 1) * 512
	off, n := pm+int(le.Uint32(b[hdrPayloadOffset:])), int(le.Uint32(b[hdrPayloadLength:]))

	zr, err := gzip.NewReader(bytes.NewReader(b[off : off+n]))
	if err != nil {
		return fmt.Errorf("kimagetest: %s: payload: %w", src, err)
	}
	zr.Multistream(false)
	raw, err := io.ReadAll(zr)
	if err != nil {
		return fmt.Errorf("kimagetest: %s: payload: %w", src, err)
	}
	// Find every string first, then replace, so that keys and values may
	// overlap ("luo-v5" -> "luo-v6" and "luo-v6" -> "luo-v5").
	type edit struct {
		at  int
		new string
	}
	var edits []edit
	for old, new := range replace {
		at := find(raw, old+"\x00")
		if len(at) == 0 {
			return fmt.Errorf("kimagetest: %s: the kernel has no compatible string %q", src, old)
		}
		for _, i := range at {
			edits = append(edits, edit{i, new})
		}
	}
	for _, e := range edits {
		copy(raw[e.at:], e.new)
	}

	var z bytes.Buffer
	zw := gzip.NewWriter(&z) // like gzip -n: no name, no time
	if _, err := zw.Write(raw); err != nil {
		return fmt.Errorf("kimagetest: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("kimagetest: %w", err)
	}
	out := make([]byte, 0, len(b)-n+z.Len())
	out = append(out, b[:off]...)
	out = append(out, z.Bytes()...)
	out = append(out, b[off+n:]...)
	le.PutUint32(out[hdrPayloadLength:], uint32(z.Len()))
	le.PutUint32(out[hdrSyssize:], uint32((len(out)-pm+15)/16))
	if err := os.WriteFile(dst, out, 0o644); err != nil {
		return fmt.Errorf("kimagetest: %w", err)
	}
	return nil
}

// find returns the offsets of s in b where it follows a byte that cannot
// be part of a compatible string's name, or starts b.
func find(b []byte, s string) []int {
	var at []int
	for i := 0; ; i += len(s) {
		j := bytes.Index(b[i:], []byte(s))
		if j < 0 {
			return at
		}
		i += j
		if i == 0 || !nameByte(b[i-1]) {
			at = append(at, i)
		}
	}
}

// nameByte reports whether c may be part of a compatible string's name.
func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// BzImage returns a bzImage whose payload is payload: a boot sector and
// two sectors of setup code with a valid boot header (protocol 2.15) and
// the version string version (its release is what precedes the first
// space), then 0x400 bytes of protected-mode code, the payload and 0x200
// bytes more. kimage.Open takes it; nothing boots it.
func BzImage(version string, payload []byte) []byte {
	const (
		setup         = 2
		bootFlag      = 0x1fe
		hdrMagic      = 0x202
		hdrVersion    = 0x206
		kernelVersion = 0x20e
		initSize      = 0x260
	)
	pm := (setup + 1) * 512
	b := make([]byte, pm+0x400, pm+0x400+len(payload)+0x200)
	le := binary.LittleEndian
	b[hdrSetupSects] = setup
	le.PutUint16(b[bootFlag:], 0xaa55)
	copy(b[hdrMagic:], "HdrS")
	le.PutUint16(b[hdrVersion:], 0x20f)
	copy(b[0x300:0x3ff], version+"\x00")
	le.PutUint16(b[kernelVersion:], 0x300-0x200)
	le.PutUint32(b[hdrPayloadOffset:], 0x400)
	le.PutUint32(b[hdrPayloadLength:], uint32(len(payload)))
	le.PutUint32(b[initSize:], 48<<20)
	b = append(b, payload...)
	return append(b, make([]byte, 0x200)...)
}
