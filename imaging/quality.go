package imaging

/*
#cgo pkg-config: vips libjpeg libwebp
#include "vips.h"
*/
import "C"

import (
	"fmt"

	"github.com/tierpix/tierpix"
)

// Encoding is what a thumbnail is encoded as: its format (the original's when empty) and how
// its quality is chosen. The zero Encoding is the original's format at a quality per image.
type Encoding struct {
	Format  string // tierpix.FormatJPEG, FormatPNG or FormatWebP; "" for the original's
	Quality Quality
}

// Quality is how JPEG and lossy WebP thumbnails choose their quality (PNG and lossless WebP
// have none).
//
// Per image (Fixed 0), a thumbnail is encoded at the lowest quality from MinQuality
// (MinQualityWebP for WebP) to MaxQuality whose decoded luma keeps an SSIM of at least Floor against the pixels it was
// encoded from: a busy photograph keeps a high quality, a smooth one goes lower, where one
// fixed quality is too much for the one and about enough for the other. The SSIM is measured
// on the thumbnail itself (8×8 windows, tp_ssim in encode.c), so a search of a few encodes
// of a small image costs little next to the decode of the original. Bisection takes at most
// qualityProbes encodes, starting from the quality that photographs mostly end at.
type Quality struct {
	Fixed int     // 1 to 100: every thumbnail at this quality (tierpix used 80 before); 0: per image
	Floor float64 // the SSIM floor per image; 0 for DefaultSSIMFloor
}

// Bounds of the per-image search. DefaultSSIMFloor is set so that thumbnails of photographs
// stay at or above 0.96 luma SSIM (11×11 Gaussian) against an exact Lanczos rendering of the
// original: docs/BENCHMARKS.md has the measurements.
const (
	DefaultSSIMFloor  = 0.95
	MinQuality        = 40
	MinQualityWebP    = 60
	MaxQuality        = 95
	qualityStart      = 66
	qualityStartWebP  = 82
	qualityProbes     = 4
	qualityProbesWebP = 3
)

// MaxWebPSide is the widest and tallest picture WebP can hold.
const MaxWebPSide = 16383

// Validate reports a quality setting that cannot be used.
func (q Quality) Validate() error {
	if q.Fixed < 0 || q.Fixed > 100 {
		return fmt.Errorf("imaging: a fixed quality must be 1 to 100, got %d", q.Fixed)
	}
	if !(q.Floor >= 0 && q.Floor < 1) { // NaN too
		return fmt.Errorf("imaging: the SSIM floor must be from 0 to below 1, got %g", q.Floor)
	}
	return nil
}

// c is q for the C side, rendering an original in format: for a JPEG original the target may
// be what JPEG at quality 80 gives (see tp_encode_auto), for a PNG one it is the floor.
func (q Quality) c(format string) C.tp_quality {
	floor := q.Floor
	if floor == 0 {
		floor = DefaultSSIMFloor
	}
	return C.tp_quality{
		fixed:       C.int(q.Fixed),
		floor:       C.double(floor),
		qmin:        MinQuality,
		qmin_webp:   MinQualityWebP,
		qmax:        MaxQuality,
		start:       qualityStart,
		start_webp:  qualityStartWebP,
		probes:      qualityProbes,
		probes_webp: qualityProbesWebP,
		relative:    C.int(boolInt(format == tierpix.FormatJPEG)),
	}
}

// outFormat is the format a thumbnail of an original in format is encoded in under enc, or
// why enc cannot be used.
func (enc Encoding) outFormat(format string) (string, error) {
	if err := enc.Quality.Validate(); err != nil {
		return "", err
	}
	switch enc.Format {
	case "":
		return format, nil
	case tierpix.FormatJPEG, tierpix.FormatPNG, tierpix.FormatWebP:
		return enc.Format, nil
	}
	return "", fmt.Errorf("imaging: cannot encode %q", enc.Format)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
