package imaging

// Intermediates: a larger rendering of an original that the origin keeps so that further
// sizes of the same image are rendered from it rather than from the original. The C side is
// in vips.c (tp_intermediate, tp_thumbnail_from_intermediate), sharing the colour handling,
// the encoders and the shrink-on-load rule of Thumbnail.
//
// The origin makes an intermediate on its own, in the background after an image's first
// render, so that the first render costs no more than a plain thumbnail. Intermediate decodes
// the original once, shrunk on load by the largest factor that still leaves the
// intermediate's size (for a 12 MP JPEG and an intermediate 400 high, 4 where a thumbnail
// 200 high would take 8), and resamples that to the intermediate. Both it and
// ThumbnailFromIntermediate resample with tp_reduce, a Lanczos 3 reduction as libvips' own
// but several times faster with liborc off (images with alpha keep libvips' premultiplying
// thumbnail). The intermediate is encoded to be decoded again cheaply and with little loss:
// JPEG at quality 95 with 4:2:0 chroma for JPEG originals (a thumbnail rendered from it is
// some 43 dB from one rendered from the original on photographs), and for PNG originals PNG
// exactly as a served thumbnail (lossless, alpha kept), which ThumbnailFromIntermediate
// serves as it is when a PNG of the intermediate's own height is asked.

/*
#cgo pkg-config: vips
#include "vips.h"
*/
import "C"

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"unsafe"

	"github.com/tierpix/tierpix"
)

// ThumbnailWidth is the width of a thumbnail of the given height of an original displayed
// at w x h: the height scaled by the aspect ratio, rounded, at least 1 and never more than w.
// Thumbnail forces this width; ThumbnailFromIntermediate needs it from the original, since
// the intermediate's own width is already rounded once.
func ThumbnailWidth(w, h, height int) int {
	if h < 1 {
		return 1
	}
	return max(1, min(w, int(float64(w)*float64(height)/float64(h)+0.5)))
}

// jpegShrink is the JPEG shrink-on-load factor for reducing a w x h image to tw x th:
// tp_jpeg_shrink in vips.c, the rule Thumbnail follows.
func jpegShrink(w, h, tw, th int) int {
	return int(C.tp_jpeg_shrink(C.int(w), C.int(h), C.int(tw), C.int(th)))
}

// Intermediate renders the original at path at interHeight (at most the original's own
// height), for ThumbnailFromIntermediate: see the top of this file for its encoding.
func Intermediate(path string, interHeight int) (Rendered, error) {
	if !started.Load() {
		return Rendered{}, errNotStarted
	}
	if interHeight < 1 || interHeight > maxCoord {
		return Rendered{}, fmt.Errorf("intermediate %s: height %d must be between 1 and %d", path, interHeight, maxCoord)
	}
	format, err := sniffFile(path)
	if err != nil {
		return Rendered{}, err
	}
	if format == "" {
		return Rendered{}, fmt.Errorf("intermediate %s: the original is neither PNG nor JPEG", path)
	}

	defer lockThread()()
	im, h, err := openHeader(path, format)
	if err != nil {
		return Rendered{}, fmt.Errorf("intermediate %s: %w", path, err)
	}
	im.close()
	w, hh := h.width, h.height
	if h.orientation >= 5 {
		w, hh = hh, w
	}
	ih := min(interHeight, hh)
	iw := ThumbnailWidth(w, hh, ih)
	shrink := 1
	if format == tierpix.FormatJPEG {
		shrink = jpegShrink(w, hh, iw, ih)
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var i C.tp_rendered
	if C.tp_intermediate(cpath, cFormat(format), C.int(shrink), C.int(iw), C.int(ih), &i) != 0 {
		return Rendered{}, fmt.Errorf("intermediate %s at height %d: %w", path, ih, vipsError())
	}
	defer C.g_free(C.gpointer(i.buf))
	return fromC(i, format), nil
}

// ThumbnailFromIntermediate renders a thumbnail of the given height from an intermediate
// interHeight high made by Intermediate for an original in format displayed at origWidth x
// origHeight, encoded as enc says: the same size as Thumbnail of the original gives (the
// width comes from the original, not from the intermediate, whose width is rounded already).
// The intermediate's size follows from the original's, so its header is not read first: the
// render is a decode (shrunk on load as Thumbnail shrinks JPEGs), a resample and an encode.
// A file that is not such an intermediate fails to decode. A PNG intermediate asked at its own
// height as a PNG is already that thumbnail, encoded as served: it is returned as it is once
// its header and every chunk's checksum check out, which a damaged file fails.
func ThumbnailFromIntermediate(path, format string, origWidth, origHeight, interHeight, height int, enc Encoding) (Rendered, error) {
	if !started.Load() {
		return Rendered{}, errNotStarted
	}
	if format != tierpix.FormatJPEG && format != tierpix.FormatPNG {
		return Rendered{}, fmt.Errorf("thumbnail %s: unknown format %q", path, format)
	}
	if origWidth < 1 || origHeight < 1 || height < 1 || interHeight < height || interHeight > origHeight {
		return Rendered{}, fmt.Errorf("thumbnail %s: height %d from an intermediate %d high of a %dx%d original", path, height, interHeight, origWidth, origHeight)
	}
	out, err := enc.outFormat(format)
	if err != nil {
		return Rendered{}, err
	}
	th := min(height, origHeight)
	tw := ThumbnailWidth(origWidth, origHeight, th)
	iw := ThumbnailWidth(origWidth, origHeight, interHeight)
	if format == tierpix.FormatPNG && out == tierpix.FormatPNG && tw == iw && th == interHeight {
		return pngAsServed(path, tw, th)
	}
	shrink := 1
	if format == tierpix.FormatJPEG {
		shrink = jpegShrink(iw, interHeight, tw, th)
	}

	defer lockThread()()
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var r C.tp_rendered
	qs := enc.Quality.c(format)
	if C.tp_thumbnail_from_intermediate(cpath, cFormat(format), C.int(shrink), C.int(tw), C.int(th), cFormat(out), &qs, &r) != 0 {
		return Rendered{}, fmt.Errorf("thumbnail %s at height %d from an intermediate: %w", path, height, vipsError())
	}
	defer C.g_free(C.gpointer(r.buf))
	return fromC(r, out), nil
}

// pngAsServed returns the PNG intermediate at path, w x h, as the thumbnail of its own size,
// after checking that it is whole: an 8-bit PNG of that size, not interlaced, every chunk's
// CRC right, IDAT data, and IEND last.
func pngAsServed(path string, w, h int) (Rendered, error) {
	body, err := os.ReadFile(path)
	if err != nil {
		return Rendered{}, fmt.Errorf("read intermediate %s: %w", path, err)
	}
	if err := checkPNG(body, w, h); err != nil {
		return Rendered{}, fmt.Errorf("intermediate %s: %w", path, err)
	}
	return Rendered{Body: body, Format: tierpix.FormatPNG, Width: w, Height: h}, nil
}

// checkPNG reports why b is not a whole 8-bit, non-interlaced PNG of w x h, or nil.
func checkPNG(b []byte, w, h int) error {
	if !bytes.HasPrefix(b, PNGMagic) {
		return errors.New("no PNG signature")
	}
	idat := false
	for p, first := len(PNGMagic), true; ; first = false {
		if len(b)-p < 12 {
			return fmt.Errorf("truncated chunk at byte %d", p)
		}
		n := int(binary.BigEndian.Uint32(b[p:]))
		if n > len(b)-p-12 {
			return fmt.Errorf("truncated chunk at byte %d", p)
		}
		typ, data := string(b[p+4:p+8]), b[p+8:p+8+n]
		if crc32.ChecksumIEEE(b[p+4:p+8+n]) != binary.BigEndian.Uint32(b[p+8+n:]) {
			return fmt.Errorf("bad CRC in %q chunk at byte %d", typ, p)
		}
		p += 12 + n
		switch {
		case first:
			if typ != "IHDR" || n != 13 {
				return fmt.Errorf("first chunk %q, want IHDR", typ)
			}
			gw, gh := int(binary.BigEndian.Uint32(data)), int(binary.BigEndian.Uint32(data[4:]))
			if gw != w || gh != h {
				return fmt.Errorf("size %dx%d, want %dx%d", gw, gh, w, h)
			}
			if depth, interlace := data[8], data[12]; depth != 8 || interlace != 0 {
				return fmt.Errorf("bit depth %d, interlace %d: not as served", depth, interlace)
			}
		case typ == "IDAT":
			idat = true
		case typ == "IEND":
			if p != len(b) || !idat {
				return errors.New("IEND before the end or without IDAT")
			}
			return nil
		}
	}
}
