package kimage

import (
	"bytes"
	"io"
	"slices"
)

// A compatible string in kernel memory is a kind's prefix, "-v", one to
// maxDigits digits and a NUL, preceded by a byte that cannot be part of
// such a name (or by nothing). The LUO and KHO strings are string literals;
// the memfd one is inline in a struct's char array, after pointer bytes.
const (
	maxDigits = 9
	// maxMatch is the length of the longest compatible string, NUL
	// included.
	maxMatch = len("memfd") + len("-v") + maxDigits + 1
	// scanChunk is how much a scanner reads at a time.
	scanChunk = 1 << 20
)

// A scanner collects the compatible strings of a stream of kernel memory.
// The zero value is ready to use.
type scanner struct {
	// seen holds, for each kind, the distinct strings found, sorted.
	seen [len(kinds)][]string
	buf  []byte
}

// readFrom reads r to its end, records every compatible string in it and
// returns the number of bytes read. Strings never span two calls.
func (s *scanner) readFrom(r io.Reader) (int64, error) {
	// keep is what a chunk carries over to the next: the bytes of a
	// string that may continue in it, and the byte before.
	const keep = maxMatch + 1
	if s.buf == nil {
		s.buf = make([]byte, keep+scanChunk)
	}
	buf := s.buf
	var n int64
	have, from := 0, 0 // bytes carried over; first position not yet scanned
	for {
		m, err := fill(r, buf[have:])
		n += int64(m)
		end := have + m
		switch err {
		case nil:
		case io.EOF:
			s.scan(buf[:end], from, end-1)
			return n, nil
		default:
			return n, err
		}
		last := end - maxMatch // the last position whose longest string fits
		s.scan(buf[:end], from, last)
		copy(buf, buf[end-keep:end])
		have, from = keep, last+1-(end-keep)
	}
}

// fill reads from r until buf is full or r fails. Unlike io.ReadFull, it
// returns io.EOF for any end of r and passes on any other error as is,
// io.ErrUnexpectedEOF from a decompressor included.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// scan records the compatible strings of buf that start at a position in
// [from, to]. The byte before from, if any, must be in buf.
func (s *scanner) scan(buf []byte, from, to int) {
	if from > to {
		return
	}
	for i, k := range kinds {
		needle := []byte(k.prefix + "-v")
		for p := from; p <= to; {
			j := bytes.Index(buf[p:], needle)
			if j < 0 || p+j > to {
				break
			}
			p += j
			if v, ok := compatibleAt(buf, p, len(needle)); ok {
				if at, found := slices.BinarySearch(s.seen[i], v); !found {
					s.seen[i] = slices.Insert(s.seen[i], at, v)
				}
			}
			p++
		}
	}
}

// compatibleAt returns the compatible string at buf[p:], whose prefix and
// "-v" take n bytes, if there is one.
func compatibleAt(buf []byte, p, n int) (string, bool) {
	if p > 0 && nameByte(buf[p-1]) {
		return "", false
	}
	i := p + n
	j := i
	for j < len(buf) && j-i < maxDigits && '0' <= buf[j] && buf[j] <= '9' {
		j++
	}
	if j == i || j >= len(buf) || buf[j] != 0 {
		return "", false
	}
	return string(buf[p:j]), true
}

// nameByte reports whether b may be part of a compatible string's name.
func nameByte(b byte) bool {
	return 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '_' || b == '-'
}
