package kimage

import (
	"bytes"
	"io"
)

// ReadImage is Open for the image b, with limit in place of
// MaxDecompressed.
func ReadImage(b []byte, limit int64) (*Image, error) {
	img, err := readHeader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, err
	}
	img.limit = limit
	return img, nil
}

// FormatsOf is img.Formats for img read from b by ReadImage.
func (img *Image) FormatsOf(b []byte) (Formats, error) {
	return img.formats(bytes.NewReader(b))
}

// SetLimit replaces MaxDecompressed for img.
func (img *Image) SetLimit(n int64) { img.limit = n }

// Decompress returns the decompressed stream of a payload without its size
// trailer.
func Decompress(compression string, src io.Reader, limit int64) (io.ReadCloser, error) {
	return decompressor(compression, src, limit)
}
