package imaging

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/tierpix/tierpix"
)

// fileHeader is what the cost of a decode depends on, read from the file's own header in Go,
// before libvips opens it.
type fileHeader struct {
	width, height int
	bands         int  // samples per pixel, as decoded
	sampleBytes   int  // 1, or 2 for 16-bit PNG
	fullFrame     bool // the decoder holds the whole image at once (interlaced PNG, progressive JPEG)
	progressive   bool // a progressive JPEG: its whole frame is DCT coefficients
}

// Cost model of a decode, calibrated on libvips 8.14 (docs/RELIABILITY.md, case 2):
//   - an interlaced PNG is decoded into a whole frame first: width x height x bands x sample
//     bytes, and the pipeline behind it adds about 40% (a 7000x7000 16-bit RGBA PNG, 392 MB
//     of frame, peaked at 400-550 MB);
//   - a progressive JPEG keeps 16-bit DCT coefficients of every component for the whole image
//     and libvips a decoded frame beside them: about 3 bytes per pixel per component (a
//     7000x7000 RGB one peaked at 427 MB);
//   - anything else is read a strip at a time: a few hundred rows, whatever the height.
const (
	decodeBase      = 16 << 20 // libvips' buffers and the encoder, per job
	fullFrameFactor = 1.4
	progressiveBPC  = 3 // bytes per pixel per component of a progressive JPEG
	stripRows       = 256
)

// DecodeCost estimates the memory a decode of the image at path takes (a validation, or a
// render from it), from its header alone. A file whose header cannot be read is EUNPROCESSABLE,
// as it would be to libvips.
func DecodeCost(path string) (int64, error) {
	h, err := readHeader(path)
	if err != nil {
		return 0, err
	}
	return h.cost(), nil
}

// FullDecodeCost is the cost of the worst decode of an image of pixels pixels: a whole frame
// of 16-bit RGBA.
func FullDecodeCost(pixels int64) int64 {
	return fileHeader{width: int(pixels), height: 1, bands: 4, sampleBytes: 2, fullFrame: true}.cost()
}

func (h fileHeader) cost() int64 {
	px := int64(h.width) * int64(h.height)
	if h.progressive {
		return decodeBase + px*int64(h.bands)*progressiveBPC
	}
	if h.fullFrame {
		return decodeBase + int64(float64(px*int64(h.bands*h.sampleBytes))*fullFrameFactor)
	}
	return decodeBase + int64(h.width)*stripRows*int64(h.bands*h.sampleBytes)*2
}

func readHeader(path string) (fileHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileHeader{}, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 4096)
	magic, err := r.Peek(len(PNGMagic))
	if err != nil {
		return fileHeader{}, errCorrupt()
	}
	switch Sniff(magic) {
	case tierpix.FormatPNG:
		return pngHeader(r)
	case tierpix.FormatJPEG:
		return jpegHeader(r)
	}
	return fileHeader{}, errUnsupported()
}

// pngHeader reads the IHDR chunk, which the PNG format puts first.
func pngHeader(r io.Reader) (fileHeader, error) {
	var b [8 + 8 + 13]byte
	if _, err := io.ReadFull(r, b[:]); err != nil || string(b[12:16]) != "IHDR" {
		return fileHeader{}, errCorrupt()
	}
	d := b[16:]
	h := fileHeader{width: int(binary.BigEndian.Uint32(d[0:4])), height: int(binary.BigEndian.Uint32(d[4:8]))}
	depth, colour, interlace := d[8], d[9], d[12]
	switch colour {
	case 0:
		h.bands = 1
	case 2:
		h.bands = 3
	case 3:
		h.bands = 4 // a palette expands to RGB, or RGBA with transparency
	case 4:
		h.bands = 2
	case 6:
		h.bands = 4
	default:
		return fileHeader{}, errCorrupt()
	}
	h.sampleBytes = 1
	if depth == 16 {
		h.sampleBytes = 2
	}
	h.fullFrame = interlace != 0
	if h.width < 1 || h.height < 1 {
		return fileHeader{}, errCorrupt()
	}
	return h, nil
}

// jpegHeader walks the markers up to the first start-of-frame.
func jpegHeader(r *bufio.Reader) (fileHeader, error) {
	var soi [2]byte
	if _, err := io.ReadFull(r, soi[:]); err != nil {
		return fileHeader{}, errCorrupt()
	}
	for {
		b, err := r.ReadByte()
		if err != nil {
			return fileHeader{}, errCorrupt()
		}
		if b != 0xFF {
			continue // fill or stray bytes between segments
		}
		m, err := r.ReadByte()
		for err == nil && m == 0xFF {
			m, err = r.ReadByte()
		}
		if err != nil {
			return fileHeader{}, errCorrupt()
		}
		switch {
		case m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD7):
			continue // no length
		case m == 0xD9 || m == 0xDA:
			return fileHeader{}, errCorrupt() // end of image or scan before any frame
		}
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return fileHeader{}, errCorrupt()
		}
		n := int(binary.BigEndian.Uint16(l[:])) - 2
		if n < 0 {
			return fileHeader{}, errCorrupt()
		}
		if m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC {
			var sof [6]byte
			if n < len(sof) {
				return fileHeader{}, errCorrupt()
			}
			if _, err := io.ReadFull(r, sof[:]); err != nil {
				return fileHeader{}, errCorrupt()
			}
			h := fileHeader{
				height:      int(binary.BigEndian.Uint16(sof[1:3])),
				width:       int(binary.BigEndian.Uint16(sof[3:5])),
				bands:       int(sof[5]),
				sampleBytes: 1,
				// SOF2, SOF6, SOF10, SOF14: progressive, held whole; the others stream.
				progressive: m&0x03 == 0x02,
			}
			if h.width < 1 || h.height < 1 || h.bands < 1 {
				return fileHeader{}, errCorrupt()
			}
			return h, nil
		}
		if _, err := r.Discard(n); err != nil {
			return fileHeader{}, errCorrupt()
		}
	}
}
