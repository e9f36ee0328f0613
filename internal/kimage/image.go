package kimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
)

// ErrNotImage means a file is not an x86 bzImage that this package can
// read: it has no boot header, a header too short or too old, or fields
// that point outside the file.
var ErrNotImage = errors.New("not a readable x86 bzImage")

// Fields of the x86 boot protocol header (Documentation/arch/x86/boot.rst),
// as offsets in the file.
const (
	hdrSetupSects    = 0x1f1 // u8: 512-byte sectors of setup code after the boot sector; 0 means 4
	hdrBootFlag      = 0x1fe // u16: 0xAA55
	hdrMagic         = 0x202 // "HdrS"
	hdrVersion       = 0x206 // u16: boot protocol version
	hdrKernelVersion = 0x20e // u16: offset of the version string, minus 0x200
	hdrPayloadOffset = 0x248 // u32: payload offset from the protected-mode code (2.08+)
	hdrPayloadLength = 0x24c // u32: payload length (2.08+)
	hdrInitSize      = 0x260 // u32: memory needed while decompressing (2.10+)
	hdrLen           = 0x264 // the header bytes Open needs
	minVersion       = 0x20a // 2.10: the first protocol with all of the above
)

// An Image is a kernel image, as read by [Open]. Its methods read the file
// again, each time they are called.
type Image struct {
	// Path is the image's file.
	Path string
	// Release is the kernel's release string, as uname -r prints it:
	// the first word of the header's kernel_version string.
	Release string
	// InitSize is the number of bytes of contiguous memory, from the load
	// address, that the kernel needs before it can run: the header's
	// init_size. A kexec must find that much room.
	InitSize int64
	// Compression names the payload's compression: "gzip", "bzip2",
	// "lzma", "xz", "lz4", "zstd", "lzo" or "none".
	Compression string

	payloadOff, payloadLen int64
	// limit bounds the decompressed payload; MaxDecompressed but in tests.
	limit int64
}

// MaxDecompressed is the most bytes [Image.Formats] decompresses from a
// payload before it gives up with [ErrTooLarge]; kernels take some tens of
// MiB.
const MaxDecompressed = 1 << 30

// Open reads the boot header of the x86 bzImage at path, and the first
// bytes of its payload to tell its compression. It fails with an error
// wrapping [ErrNotImage] if the file is no bzImage (or one whose boot
// protocol predates 2.10), if the header is cut short, or if the
// payload or version string lies outside the file. It does not read the
// payload itself: see [Image.Formats].
func Open(path string) (*Image, error) {
	f, err := OpenFile(path)
	if err != nil {
		return nil, fmt.Errorf("kimage: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("kimage: %w", err)
	}
	img, err := readHeader(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("kimage: %s: %w", path, err)
	}
	img.Path = path
	return img, nil
}

// OpenFile opens a kernel image or initrd to read: a regular file only,
// without blocking (a FIFO would block the open until a writer comes).
// Everything that reads or loads an image named by a client opens it so.
func OpenFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s: not a regular file (%s)", path, st.Mode().Type())
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// readHeader reads an Image from the size bytes of r.
func readHeader(r io.ReaderAt, size int64) (*Image, error) {
	var hdr [hdrLen]byte
	if n, err := r.ReadAt(hdr[:], 0); n < len(hdr) {
		if err == io.EOF {
			if n <= hdrMagic+4 || string(hdr[hdrMagic:hdrMagic+4]) != "HdrS" {
				return nil, fmt.Errorf("%w: %d bytes, too short for a boot header", ErrNotImage, n)
			}
			return nil, fmt.Errorf("%w: boot header cut short at %d of %d bytes", ErrNotImage, n, hdrLen)
		}
		return nil, err
	}
	le := binary.LittleEndian
	if string(hdr[hdrMagic:hdrMagic+4]) != "HdrS" || le.Uint16(hdr[hdrBootFlag:]) != 0xaa55 {
		return nil, fmt.Errorf("%w: no HdrS boot header", ErrNotImage)
	}
	if v := le.Uint16(hdr[hdrVersion:]); v < minVersion {
		return nil, fmt.Errorf("%w: boot protocol %d.%02d, older than 2.10", ErrNotImage, v>>8, v&0xff)
	}
	img := &Image{
		InitSize: int64(le.Uint32(hdr[hdrInitSize:])),
		limit:    MaxDecompressed,
	}

	setup := int64(hdr[hdrSetupSects])
	if setup == 0 {
		setup = 4
	}
	img.payloadOff = (setup+1)*512 + int64(le.Uint32(hdr[hdrPayloadOffset:]))
	img.payloadLen = int64(le.Uint32(hdr[hdrPayloadLength:]))
	if img.payloadLen < 8 || img.payloadOff+img.payloadLen > size {
		return nil, fmt.Errorf("%w: payload of %d bytes at %d is outside the %d-byte file",
			ErrNotImage, img.payloadLen, img.payloadOff, size)
	}

	kv := int64(le.Uint16(hdr[hdrKernelVersion:]))
	if kv == 0 || kv+0x200 >= size {
		return nil, fmt.Errorf("%w: no kernel version string (kernel_version %#x)", ErrNotImage, kv)
	}
	var buf [256]byte
	n, err := r.ReadAt(buf[:], kv+0x200)
	if n == 0 {
		return nil, fmt.Errorf("version string: %w", err)
	}
	version, _, _ := bytes.Cut(buf[:n], []byte{0})
	img.Release, _, _ = strings.Cut(string(version), " ")
	if img.Release == "" {
		return nil, fmt.Errorf("%w: empty kernel version string", ErrNotImage)
	}

	var magic [8]byte
	if _, err := r.ReadAt(magic[:], img.payloadOff); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	img.Compression = compressionOf(magic[:])
	if img.Compression == "" {
		return nil, fmt.Errorf("%w: payload starts with % x, the magic of no known compression", ErrNotImage, magic)
	}
	return img, nil
}

// compressionOf names the compression of a payload from its first 8 bytes,
// or returns "" (lib/decompress.c lists the kernel's magic numbers).
func compressionOf(b []byte) string {
	for _, c := range []struct{ name, magic string }{
		{"gzip", "\x1f\x8b"},
		{"bzip2", "BZh"},
		{"lzma", "\x5d\x00\x00"},
		{"xz", "\xfd7zXZ\x00"},
		{"lzo", "\x89LZO\x00\r\n\x1a"},
		{"lz4", "\x02\x21\x4c\x18"}, // the legacy frame format
		{"zstd", "\x28\xb5\x2f\xfd"},
		{"none", "\x7fELF"},
	} {
		if bytes.HasPrefix(b, []byte(c.magic)) {
			return c.name
		}
	}
	return ""
}
