package kimage

import (
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz/lzma"
)

var (
	// ErrUnsupported means a payload's compression is known but cannot be
	// read (lzo).
	ErrUnsupported = errors.New("compression not supported")
	// ErrTooLarge means a payload decompresses, or says it decompresses,
	// to more than MaxDecompressed bytes.
	ErrTooLarge = errors.New("decompressed payload too large")
)

// maxWindow bounds the history an lzma, xz or zstd decoder may ask for:
// kernel builds use 32 MiB (xz), 64 MiB (lzma -9) and at most 128 MiB
// (zstd -22 --ultra).
const maxWindow = 256 << 20

// Formats decompresses the image's payload, the kernel proper, and returns
// the Live Update formats it speaks. It streams: the memory it takes is
// that of the decompressor's window (at most 256 MiB; 32 KiB for gzip, a
// few MiB for bzip2 and lz4) and a 1 MiB buffer. It fails with an error wrapping [ErrUnsupported] for an
// lzo payload, [ErrTooLarge] past [MaxDecompressed] bytes, [ErrMissing] if
// a format is absent, [ErrAmbiguous] if two versions of one format are
// present, or the decompressor's error if the payload is corrupt. For a
// 35 MB kernel it takes some 0.2 s with gzip, 0.4 s with zstd, 1.5 s with
// bzip2 or lzma and 3 s with xz (one core of the project's build machine).
func (img *Image) Formats() (Formats, error) {
	f, err := OpenFile(img.Path)
	if err != nil {
		return Formats{}, fmt.Errorf("kimage: %w", err)
	}
	defer f.Close()
	fm, err := img.formats(f)
	if err != nil {
		return Formats{}, fmt.Errorf("kimage: %s: %w", img.Path, err)
	}
	return fm, nil
}

// formats is Formats on the image file r.
func (img *Image) formats(r io.ReaderAt) (Formats, error) {
	var s scanner
	if err := img.readPayload(r, &s); err != nil {
		return Formats{}, err
	}
	fm, err := formatsOf(&s.seen)
	if err != nil {
		return Formats{}, fmt.Errorf("kernel %s: %w", img.Release, err)
	}
	return fm, nil
}

// readPayload decompresses the payload of the image in r into s.
func (img *Image) readPayload(r io.ReaderAt, s *scanner) error {
	// Kernel builds append the decompressed size, as a little-endian
	// uint32, to every compressed payload (size_append in
	// scripts/Makefile.lib); gzip has it already, as its trailer.
	var trailer [4]byte
	if _, err := r.ReadAt(trailer[:], img.payloadOff+img.payloadLen-4); err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	want := int64(binary.LittleEndian.Uint32(trailer[:]))
	if want > img.limit {
		return fmt.Errorf("%w: the payload says it decompresses to %d bytes, over the limit of %d", ErrTooLarge, want, img.limit)
	}
	stream := img.payloadLen
	if img.Compression != "gzip" {
		stream -= 4
	}
	d, err := decompressor(img.Compression, io.NewSectionReader(r, img.payloadOff, stream), img.limit)
	if err != nil {
		return fmt.Errorf("%s payload: %w", img.Compression, err)
	}
	defer d.Close()
	n, err := s.readFrom(io.LimitReader(d, img.limit+1))
	switch {
	case err != nil:
		return fmt.Errorf("%s payload: %w", img.Compression, err)
	case n > img.limit:
		return fmt.Errorf("%w: the payload decompresses to more than %d bytes", ErrTooLarge, img.limit)
	case n != want:
		return fmt.Errorf("%s payload: decompressed to %d bytes, but its trailer says %d", img.Compression, n, want)
	}
	return nil
}

// decompressor returns a reader of the decompressed stream src, compressed
// with the named compression, whose decoder allocates no more than
// needed for limit bytes of output (and maxWindow).
func decompressor(compression string, src io.Reader, limit int64) (io.ReadCloser, error) {
	window := min(limit, maxWindow)
	switch compression {
	case "gzip":
		zr, err := gzip.NewReader(bufio.NewReader(src))
		if err != nil {
			return nil, err
		}
		zr.Multistream(false)
		return zr, nil
	case "bzip2":
		return io.NopCloser(bzip2.NewReader(src)), nil
	case "lzma":
		cfg := lzma.ReaderConfig{DictCap: int(max(window, lzma.MinDictCap))}
		zr, err := cfg.NewReader(bufio.NewReader(src))
		if err != nil {
			return nil, err
		}
		return io.NopCloser(zr), nil
	case "xz":
		return newXZReader(bufio.NewReader(src), window)
	case "lz4":
		return io.NopCloser(lz4.NewReader(src)), nil
	case "zstd":
		zr, err := zstd.NewReader(src,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(uint64(max(window, zstd.MinWindowSize))),
		)
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	case "none":
		return io.NopCloser(src), nil
	case "lzo":
		return nil, fmt.Errorf("%w: no well-kept Go decoder reads lzo; rebuild the kernel with another CONFIG_KERNEL_* compression", ErrUnsupported)
	}
	return nil, fmt.Errorf("%w: %q", ErrUnsupported, compression)
}
