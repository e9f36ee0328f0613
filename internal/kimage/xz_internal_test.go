package kimage

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"strings"
	"testing"
)

// TestXZBCJBuffers decodes the xz fixture (x86 BCJ, CRC32) with BCJ buffers
// of many sizes, so that the filter stops and resumes everywhere; the
// block's CRC32, over the filtered output, proves the result.
func TestXZBCJBuffers(t *testing.T) {
	t.Parallel()
	payload, err := os.ReadFile("testdata/vmlinux.xz")
	if err != nil {
		t.Fatal(err)
	}
	stream, size := payload[:len(payload)-4], binary.LittleEndian.Uint32(payload[len(payload)-4:])
	for _, n := range []int{5, 6, 7, 8, 9, 13, 64, 4097, 64 << 10} {
		r, err := newXZReader(bytes.NewReader(stream), 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		r.(*xzReader).bcjBuf = n
		out, err := io.ReadAll(r)
		if err != nil || len(out) != int(size) {
			t.Errorf("BCJ buffer of %d bytes: %d bytes, %v; want %d", n, len(out), err, size)
		}
	}
}

func TestParseBlockHeader(t *testing.T) {
	t.Parallel()
	const lzma2 = "\x21\x01\x16" // LZMA2, 1 byte of properties: 0x16, an 8 MiB dictionary
	for _, tt := range []struct {
		name, hdr string // flags, sizes, filters, padding
		want      blockHeader
		err       string
	}{
		{name: "LZMA2", hdr: "\x00" + lzma2 + "\x00\x00", want: blockHeader{-1, -1, 8 << 20, false}},
		{name: "x86 then LZMA2", hdr: "\x01\x04\x00" + lzma2, want: blockHeader{-1, -1, 8 << 20, true}},
		{name: "sizes", hdr: "\xc0\x80\x01\xff\x7f" + lzma2, want: blockHeader{128, 16383, 8 << 20, false}},
		{name: "largest dictionary", hdr: "\x00\x21\x01\x28", want: blockHeader{-1, -1, 0xffffffff, false}},
		{name: "smallest dictionary", hdr: "\x00\x21\x01\x00", want: blockHeader{-1, -1, 4096, false}},
		{name: "reserved flags", hdr: "\x04" + lzma2, err: "reserved block flags"},
		{name: "x86 start offset", hdr: "\x01\x04\x04\x00\x10\x00\x00" + lzma2, err: "start offset not supported"},
		{name: "ARM BCJ", hdr: "\x01\x07\x00" + lzma2, err: "filter chain not supported (filter 0x7 at 1 of 2"},
		{name: "LZMA2 first", hdr: "\x01" + lzma2 + "\x04\x00", err: "filter chain not supported (filter 0x21 at 1 of 2"},
		{name: "x86 alone", hdr: "\x00\x04\x00", err: "filter chain not supported"},
		{name: "delta", hdr: "\x00\x03\x01\x00", err: "filter chain not supported"},
		{name: "dictionary too large", hdr: "\x00\x21\x01\x29", err: "dictionary size 0x29 invalid"},
		{name: "padding", hdr: "\x00" + lzma2 + "\x00\x01", err: "padding not zero"},
		{name: "properties overflow", hdr: "\x00\x21\x05\x16", err: "properties overflow"},
		{name: "bad integer", hdr: "\x40\x80\x80", err: "bad integer"},
		{name: "integer with a zero byte", hdr: "\x40\x80\x00" + lzma2, err: "bad integer"},
		{name: "cut", hdr: "\x00", err: "bad integer"},
	} {
		h, err := parseBlockHeader([]byte(tt.hdr))
		switch {
		case tt.err == "" && (err != nil || h != tt.want):
			t.Errorf("%s: parseBlockHeader(%q) = %+v, %v; want %+v", tt.name, tt.hdr, h, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s: parseBlockHeader(%q) = %+v, %v; want an error saying %q", tt.name, tt.hdr, h, err, tt.err)
		}
	}
}
