package kimage

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// An xzReader decompresses the first stream of an .xz file
// (https://tukaani.org/xz/xz-file-format.txt). Kernel builds filter the
// payload through the x86 BCJ filter before LZMA2 (scripts/xz_wrap.sh),
// which github.com/ulikunitz/xz does not support: this reader parses the
// container itself, decodes LZMA2 with that module's lzma package, undoes
// the BCJ filter and verifies each block's check.
type xzReader struct {
	src     *countingReader
	maxDict int64
	bcjBuf  int  // the size of the BCJ filter's buffer
	check   byte // the stream's check type
	block   io.Reader
	sum     hash.Hash
	hdr     blockHeader
	start   int64 // src.n at the block's compressed data
	out     int64 // bytes the block decompressed to so far
	err     error
}

// xz filter IDs.
const (
	xzFilterX86   = 0x04
	xzFilterLZMA2 = 0x21
)

// newXZReader reads the stream header from src and returns the reader of
// the decompressed data, using a dictionary of at most maxDict bytes.
func newXZReader(src io.Reader, maxDict int64) (io.ReadCloser, error) {
	z := &xzReader{src: &countingReader{r: src}, maxDict: max(maxDict, lzma.MinDictCap), bcjBuf: 64 << 10}
	var h [12]byte
	if _, err := io.ReadFull(z.src, h[:]); err != nil {
		return nil, fmt.Errorf("xz stream header: %w", noEOF(err))
	}
	if string(h[:6]) != "\xfd7zXZ\x00" {
		return nil, errors.New("xz: bad magic")
	}
	if crc32.ChecksumIEEE(h[6:8]) != binary.LittleEndian.Uint32(h[8:]) {
		return nil, errors.New("xz: stream header CRC mismatch")
	}
	if h[6] != 0 || h[7]&0xf0 != 0 {
		return nil, fmt.Errorf("xz: unsupported stream flags %#x %#x", h[6], h[7])
	}
	z.check = h[7]
	switch z.check {
	case 0x00, 0x01, 0x04, 0x0a: // none, CRC32, CRC64, SHA-256
	default:
		return nil, fmt.Errorf("xz: check type %#x not supported", z.check)
	}
	return z, nil
}

// Read implements io.Reader.
func (z *xzReader) Read(p []byte) (int, error) {
	for z.err == nil {
		if z.block == nil {
			z.err = z.nextBlock()
			continue
		}
		n, err := z.block.Read(p)
		z.sum.Write(p[:n])
		z.out += int64(n)
		if err == io.EOF {
			err = z.endBlock()
		}
		z.err = err
		if n > 0 {
			return n, nil
		}
	}
	return 0, z.err
}

// Close implements io.Closer; it does nothing.
func (z *xzReader) Close() error { return nil }

// A blockHeader holds what a block header says.
type blockHeader struct {
	compressed, uncompressed int64 // -1 if absent
	dict                     int64 // the LZMA2 dictionary size
	x86                      bool  // the x86 BCJ filter comes first
}

// nextBlock reads the next block header, or returns io.EOF at the index
// that follows the last block.
func (z *xzReader) nextBlock() error {
	var hdr [1024]byte
	if _, err := io.ReadFull(z.src, hdr[:1]); err != nil {
		return fmt.Errorf("xz block header: %w", noEOF(err))
	}
	if hdr[0] == 0 {
		return io.EOF // the index: the blocks are done; the rest is not read
	}
	size := (int(hdr[0]) + 1) * 4
	if _, err := io.ReadFull(z.src, hdr[1:size]); err != nil {
		return fmt.Errorf("xz block header: %w", noEOF(err))
	}
	if crc32.ChecksumIEEE(hdr[:size-4]) != binary.LittleEndian.Uint32(hdr[size-4:]) {
		return errors.New("xz: block header CRC mismatch")
	}
	h, err := parseBlockHeader(hdr[1 : size-4])
	if err != nil {
		return err
	}
	// A dictionary larger than the output allowed is never filled.
	z.hdr, z.start, z.out = h, z.src.n, 0
	lz, err := lzma.Reader2Config{DictCap: int(min(h.dict, z.maxDict))}.NewReader2(z.src)
	if err != nil {
		return fmt.Errorf("xz: %w", err)
	}
	z.block = lz
	if h.x86 {
		z.block = &bcjX86{r: lz, buf: make([]byte, z.bcjBuf)}
	}
	switch z.check {
	case 0x00:
		z.sum = nopHash{}
	case 0x01:
		z.sum = crc32.NewIEEE()
	case 0x04:
		z.sum = crc64.New(crc64.MakeTable(crc64.ECMA))
	case 0x0a:
		z.sum = sha256.New()
	}
	return nil
}

// parseBlockHeader parses a block header between its size byte and its
// CRC.
func parseBlockHeader(b []byte) (blockHeader, error) {
	h := blockHeader{compressed: -1, uncompressed: -1}
	flags := b[0]
	b = b[1:]
	if flags&0x3c != 0 {
		return h, fmt.Errorf("xz: reserved block flags %#x", flags)
	}
	var err error
	if flags&0x40 != 0 {
		if h.compressed, b, err = xzVarint(b); err != nil {
			return h, err
		}
	}
	if flags&0x80 != 0 {
		if h.uncompressed, b, err = xzVarint(b); err != nil {
			return h, err
		}
	}
	filters := int(flags&3) + 1
	for i := range filters {
		var id, n int64
		if id, b, err = xzVarint(b); err != nil {
			return h, err
		}
		if n, b, err = xzVarint(b); err != nil {
			return h, err
		}
		if n > int64(len(b)) {
			return h, errors.New("xz: filter properties overflow the block header")
		}
		props := b[:n]
		b = b[n:]
		last := i == filters-1
		switch {
		case id == xzFilterX86 && !last && i == 0 && n == 0:
			h.x86 = true
		case id == xzFilterX86 && n != 0:
			return h, errors.New("xz: x86 BCJ filter with a start offset not supported")
		case id == xzFilterLZMA2 && last && n == 1:
			bits := props[0] & 0x3f
			if bits > 40 {
				return h, fmt.Errorf("xz: LZMA2 dictionary size %#x invalid", props[0])
			}
			h.dict = 0xffffffff
			if bits < 40 {
				h.dict = int64(2|bits&1) << (bits/2 + 11)
			}
		default:
			return h, fmt.Errorf("xz: filter chain not supported (filter %#x at %d of %d; only the x86 BCJ filter then LZMA2)", id, i+1, filters)
		}
	}
	if h.dict == 0 {
		return h, errors.New("xz: block without LZMA2 filter")
	}
	if len(bytes.Trim(b, "\x00")) != 0 {
		return h, errors.New("xz: block header padding not zero")
	}
	return h, nil
}

// endBlock checks the end of a block whose data is all read: sizes,
// padding and check.
func (z *xzReader) endBlock() error {
	compressed := z.src.n - z.start
	if z.hdr.compressed >= 0 && z.hdr.compressed != compressed {
		return fmt.Errorf("xz: block of %d compressed bytes, header says %d", compressed, z.hdr.compressed)
	}
	if z.hdr.uncompressed >= 0 && z.hdr.uncompressed != z.out {
		return fmt.Errorf("xz: block of %d bytes, header says %d", z.out, z.hdr.uncompressed)
	}
	var pad [3 + sha256.Size]byte
	npad := int(-compressed & 3)
	if _, err := io.ReadFull(z.src, pad[:npad+z.sum.Size()]); err != nil {
		return fmt.Errorf("xz block check: %w", noEOF(err))
	}
	if !bytes.Equal(pad[:npad], make([]byte, npad)) {
		return errors.New("xz: block padding not zero")
	}
	got := z.sum.Sum(nil)
	if z.check == 0x01 || z.check == 0x04 { // little-endian in the file
		for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
			got[i], got[j] = got[j], got[i]
		}
	}
	if !bytes.Equal(got, pad[npad:npad+z.sum.Size()]) {
		return errors.New("xz: block check mismatch: the payload is corrupt")
	}
	z.block = nil
	return nil
}

// xzVarint decodes a multibyte integer of the xz format from b.
func xzVarint(b []byte) (int64, []byte, error) {
	var x int64
	for i := 0; i < len(b) && i < 9; i++ {
		c := b[i]
		x |= int64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if i > 0 && c == 0 {
				break
			}
			return x, b[i+1:], nil
		}
	}
	return 0, nil, errors.New("xz: bad integer in block header")
}

// A countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// nopHash is the check of type none.
type nopHash struct{}

func (nopHash) Write(p []byte) (int, error) { return len(p), nil }
func (nopHash) Sum(b []byte) []byte         { return b }
func (nopHash) Reset()                      {}
func (nopHash) Size() int                   { return 0 }
func (nopHash) BlockSize() int              { return 1 }

// noEOF turns io.EOF, in the middle of a structure, into
// io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// bcjX86 undoes the x86 BCJ filter on the stream it reads. It is a port
// of bcj_x86 in XZ Embedded (lib/xz/xz_dec_bcj.c in Linux; public domain,
// by Lasse Collin and Igor Pavlov).
type bcjX86 struct {
	r io.Reader
	// buf[start:filtered] is ready to return; buf[filtered:end] is not
	// filtered yet, for want of the bytes that follow.
	buf                  []byte
	start, filtered, end int
	eof                  bool
	pos                  uint32 // the stream position of buf[filtered]
	prevMask             uint32
}

func (b *bcjX86) Read(p []byte) (int, error) {
	for b.start == b.filtered {
		if b.eof {
			if b.filtered == b.end {
				return 0, io.EOF
			}
			b.filtered = b.end // the last bytes are left as they are
			break
		}
		n := copy(b.buf, b.buf[b.filtered:b.end])
		b.start, b.filtered, b.end = 0, 0, n
		m, err := b.r.Read(b.buf[n:])
		b.end += m
		if err == io.EOF {
			b.eof = true
		} else if err != nil {
			return 0, err
		}
		b.filtered = b.x86(b.buf[:b.end])
		b.pos += uint32(b.filtered)
	}
	n := copy(p, b.buf[b.start:b.filtered])
	b.start += n
	return n, nil
}

// x86 filters buf and returns how many bytes of it are done; the others
// need the bytes that follow.
func (b *bcjX86) x86(buf []byte) int {
	maskToAllowed := [8]bool{true, true, true, false, true, false, false, false}
	maskToBitNum := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
	msbyte := func(c byte) bool { return c == 0x00 || c == 0xff }

	size := len(buf)
	if size <= 4 {
		return 0
	}
	size -= 4
	prevPos := -1
	prevMask := b.prevMask
	i := 0
	for ; i < size; i++ {
		if buf[i]&0xfe != 0xe8 {
			continue
		}
		prevPos = i - prevPos
		if prevPos > 3 {
			prevMask = 0
		} else {
			prevMask = (prevMask << (prevPos - 1)) & 7
			if prevMask != 0 {
				c := buf[i+4-int(maskToBitNum[prevMask])]
				if !maskToAllowed[prevMask] || msbyte(c) {
					prevPos = i
					prevMask = prevMask<<1 | 1
					continue
				}
			}
		}
		prevPos = i
		if !msbyte(buf[i+4]) {
			prevMask = prevMask<<1 | 1
			continue
		}
		src := binary.LittleEndian.Uint32(buf[i+1:])
		var dest uint32
		for {
			dest = src - (b.pos + uint32(i) + 5)
			if prevMask == 0 {
				break
			}
			j := maskToBitNum[prevMask] * 8
			if !msbyte(byte(dest >> (24 - j))) {
				break
			}
			src = dest ^ (1<<(32-j) - 1)
		}
		dest &= 0x01ffffff
		dest |= 0 - (dest & 0x01000000)
		binary.LittleEndian.PutUint32(buf[i+1:], dest)
		i += 4
	}
	prevPos = i - prevPos
	if prevPos > 3 {
		b.prevMask = 0
	} else {
		b.prevMask = prevMask << (prevPos - 1)
	}
	return i
}
