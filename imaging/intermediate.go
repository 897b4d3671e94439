package imaging

// Intermediates: a larger rendering of an original that the origin keeps so that further
// sizes of the same image are rendered from it rather than from the original.
//
// This file belongs to the origin's work (issue 4, "further sizes"); it is kept apart from
// vips.c, whose static helpers it cannot call, so a few lines mirror vips.c: tpi_to_srgb and
// tpi_finish are tp_to_srgb and tp_finish, tpi_encode holds the export settings of
// tp_thumbnail, and jpegShrink is tp_jpeg_shrink. Keep them in step (the origin's tests
// compare the encoder settings of the two paths), or fold this file into vips.c. Files are
// opened with vips.c's tp_load, which reads ahead.
//
// The first render of an image with an intermediate decodes the original once, shrunk on load
// by the largest factor that still leaves the intermediate's size (for a 12 MP JPEG and an
// intermediate 400 high, 4 where the thumbnail alone would take 8: the intermediate's price),
// resamples that to the intermediate and keeps it in memory, and renders the requested
// thumbnail from the intermediate's pixels. The intermediate is encoded to be decoded again cheaply and with little loss: JPEG
// at quality 95 with 4:2:0 chroma for JPEG originals (a thumbnail rendered from it is some
// 42-43 dB from one rendered from the original on photographs; full chroma would add 0.4 dB
// for a third more work), and PNG at compression 1 for PNG originals (lossless, alpha kept).

/*
#cgo pkg-config: vips
#include "vips.h"
#include <string.h>

// tpi_to_srgb mirrors tp_to_srgb in vips.c: an image tagged with a compatible ICC profile is
// transformed from it to sRGB, anything else is taken to be sRGB already.
static int
tpi_to_srgb(VipsImage *in, VipsImage **out)
{
	const void *icc;
	size_t icc_len;

	if (vips_image_get_typeof(in, VIPS_META_ICC_NAME) &&
		vips_image_get_blob(in, VIPS_META_ICC_NAME, &icc, &icc_len) == 0 &&
		vips_icc_is_compatible_profile(in, icc, icc_len) &&
		vips_icc_transform(in, out, "srgb",
			"embedded", TRUE,
			"intent", VIPS_INTENT_RELATIVE,
			"depth", 8,
			NULL) == 0)
		return 0;
	vips_error_clear();
	*out = in;
	g_object_ref(in);
	return 0;
}

// tpi_finish mirrors tp_finish in vips.c: sRGB (or grey), 8 bits per sample.
static int
tpi_finish(VipsImage *in, VipsImage **out)
{
	VipsImage *srgb;
	VipsInterpretation target;
	int res;

	if (tpi_to_srgb(in, &srgb))
		return -1;
	switch (vips_image_get_interpretation(srgb)) {
	case VIPS_INTERPRETATION_CMYK:
	case VIPS_INTERPRETATION_RGB16:
		target = VIPS_INTERPRETATION_sRGB;
		break;
	case VIPS_INTERPRETATION_GREY16:
		target = VIPS_INTERPRETATION_B_W;
		break;
	default:
		if (vips_image_get_format(srgb) == VIPS_FORMAT_UCHAR) {
			*out = srgb;
			return 0;
		}
		res = vips_cast(srgb, out, VIPS_FORMAT_UCHAR, "shift", TRUE, NULL);
		g_object_unref(srgb);
		return res;
	}
	res = vips_colourspace(srgb, out, target, NULL);
	g_object_unref(srgb);
	return res;
}

// tpi_encode encodes a served thumbnail with tp_thumbnail's export settings.
static int
tpi_encode(VipsImage *im, int format, tp_rendered *r)
{
	int res;

	switch (format) {
	case TP_FORMAT_JPEG:
		res = vips_jpegsave_buffer(im, &r->buf, &r->len,
			"Q", 80,
			"subsample_mode", VIPS_FOREIGN_SUBSAMPLE_ON,
			"optimize_coding", TRUE,
			"strip", TRUE,
			NULL);
		break;
	case TP_FORMAT_PNG:
		res = vips_pngsave_buffer(im, &r->buf, &r->len,
			"compression", 6,
			"strip", TRUE,
			NULL);
		break;
	default:
		vips_error("tierpix", "unknown format %d", format);
		return -1;
	}
	if (res == 0) {
		r->width = vips_image_get_width(im);
		r->height = vips_image_get_height(im);
	}
	return res;
}

// tpi_encode_intermediate encodes an intermediate: fast to decode again, close to lossless.
static int
tpi_encode_intermediate(VipsImage *im, int format, tp_rendered *r)
{
	int res;

	switch (format) {
	case TP_FORMAT_JPEG:
		// 4:2:0 like the thumbnails made from it: full chroma would cost a third more to
		// encode and decode for some 0.4 dB.
		res = vips_jpegsave_buffer(im, &r->buf, &r->len,
			"Q", 95,
			"subsample_mode", VIPS_FOREIGN_SUBSAMPLE_ON,
			"strip", TRUE,
			NULL);
		break;
	case TP_FORMAT_PNG:
		res = vips_pngsave_buffer(im, &r->buf, &r->len,
			"compression", 1,
			"strip", TRUE,
			NULL);
		break;
	default:
		vips_error("tierpix", "unknown format %d", format);
		return -1;
	}
	if (res == 0) {
		r->width = vips_image_get_width(im);
		r->height = vips_image_get_height(im);
	}
	return res;
}

// tpi_resize runs libvips' thumbnail on an open image to exactly width x height (EXIF
// orientation applied) and finishes it to 8-bit sRGB.
static int
tpi_resize(VipsImage *in, int width, int height, VipsImage **out)
{
	VipsImage *t;
	int res;

	if (vips_thumbnail_image(in, &t, width,
		"height", height,
		"size", VIPS_SIZE_FORCE,
		"crop", VIPS_INTERESTING_NONE,
		NULL))
		return -1;
	res = tpi_finish(t, out);
	g_object_unref(t);
	return res;
}

// tpi_render_with_intermediate decodes path once (shrunk on load by shrink), renders the
// intermediate of iw x ih into memory and encodes it, then renders the thumbnail of tw x th
// from the intermediate's pixels.
static int
tpi_render_with_intermediate(const char *path, int format, int shrink,
	int tw, int th, int iw, int ih, tp_rendered *thumb, tp_rendered *inter)
{
	VipsImage *in = NULL, *big = NULL, *mem = NULL, *clean = NULL, *small = NULL;
	int res = -1;

	memset(thumb, 0, sizeof(*thumb));
	memset(inter, 0, sizeof(*inter));
	if (tp_load(path, format, shrink, &in))
		return -1;
	if (tpi_resize(in, iw, ih, &big))
		goto done;
	// The one pass over the original happens here; the intermediate is small.
	if (!(mem = vips_image_copy_memory(big)))
		goto done;
	// Upright and sRGB now: the thumbnail below must neither turn nor transform it again.
	if (vips_copy(mem, &clean, NULL))
		goto done;
	vips_image_remove(clean, VIPS_META_ICC_NAME);
	vips_image_remove(clean, VIPS_META_ORIENTATION);
	if (tpi_encode_intermediate(clean, format, inter))
		goto done;
	if (tpi_resize(clean, tw, th, &small))
		goto done;
	res = tpi_encode(small, format, thumb);
done:
	if (res) {
		g_free(inter->buf);
		memset(inter, 0, sizeof(*inter));
	}
	if (small) g_object_unref(small);
	if (clean) g_object_unref(clean);
	if (mem) g_object_unref(mem);
	if (big) g_object_unref(big);
	g_object_unref(in);
	return res;
}

// tpi_render_from_intermediate renders the thumbnail of tw x th from the intermediate at path
// (shrunk on load by shrink).
static int
tpi_render_from_intermediate(const char *path, int format, int shrink, int tw, int th,
	tp_rendered *r)
{
	VipsImage *in, *small;
	int res;

	memset(r, 0, sizeof(*r));
	if (tp_load(path, format, shrink, &in))
		return -1;
	res = tpi_resize(in, tw, th, &small);
	g_object_unref(in);
	if (res)
		return -1;
	res = tpi_encode(small, format, r);
	g_object_unref(small);
	return res;
}
*/
import "C"

import (
	"bytes"
	"fmt"
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

// jpegShrink is the JPEG shrink-on-load factor for reducing a w x h image to tw x th, as
// tp_jpeg_shrink in vips.c picks it: the largest of 8, 4 and 2 that neither side's factor is
// below (1 when none is).
func jpegShrink(w, h, tw, th int) int {
	s := min(float64(w)/float64(tw), float64(h)/float64(th))
	switch {
	case s >= 8:
		return 8
	case s >= 4:
		return 4
	case s >= 2:
		return 2
	}
	return 1
}

// ThumbnailWithIntermediate renders the original at path at height, as Thumbnail does, and
// from the same decode an intermediate interHeight high (both at most the original's own
// height), in the original's format. The intermediate is for ThumbnailFromIntermediate:
// see the top of this file for its encoding. No intermediate is made (inter is zero, thumb
// rendered by Thumbnail) when it would be as tall as the original itself or shorter than
// the thumbnail.
//
// The thumbnail is rendered from the intermediate's pixels, not from the original's, so that
// every size of an image comes from the same intermediate; it is within some 43 dB of
// Thumbnail's on photographs.
func ThumbnailWithIntermediate(path string, height, interHeight int) (thumb, inter Rendered, err error) {
	if !started.Load() {
		return Rendered{}, Rendered{}, errNotStarted
	}
	if height < 1 || height > maxCoord || interHeight < 1 || interHeight > maxCoord {
		return Rendered{}, Rendered{}, fmt.Errorf("thumbnail %s: heights %d and %d must be between 1 and %d", path, height, interHeight, maxCoord)
	}
	format, err := sniffFile(path)
	if err != nil {
		return Rendered{}, Rendered{}, err
	}
	if format == "" {
		return Rendered{}, Rendered{}, fmt.Errorf("thumbnail %s: the original is neither PNG nor JPEG", path)
	}

	unlock := lockThread()
	im, h, err := openHeader(path, format)
	if err != nil {
		unlock()
		return Rendered{}, Rendered{}, fmt.Errorf("thumbnail %s: %w", path, err)
	}
	im.close()
	w, hh := h.width, h.height
	if h.orientation >= 5 {
		w, hh = hh, w
	}
	th := min(height, hh)
	ih := min(interHeight, hh)
	if ih < th || ih >= hh {
		unlock()
		thumb, err = Thumbnail(path, height)
		return thumb, Rendered{}, err
	}
	tw := ThumbnailWidth(w, hh, th)
	iw := ThumbnailWidth(w, hh, ih)
	shrink := 1
	if format == tierpix.FormatJPEG {
		shrink = jpegShrink(w, hh, iw, ih)
	}

	defer unlock()
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var t, i C.tp_rendered
	if C.tpi_render_with_intermediate(cpath, cFormat(format), C.int(shrink), C.int(tw), C.int(th), C.int(iw), C.int(ih), &t, &i) != 0 {
		return Rendered{}, Rendered{}, fmt.Errorf("thumbnail %s at height %d with an intermediate at %d: %w", path, height, ih, vipsError())
	}
	defer C.g_free(C.gpointer(t.buf))
	defer C.g_free(C.gpointer(i.buf))
	return fromC(t, format), fromC(i, format), nil
}

// ThumbnailFromIntermediate renders a thumbnail of the given height from an intermediate
// interHeight high made by ThumbnailWithIntermediate for an original in format displayed at
// origWidth x origHeight: the same size and format as Thumbnail of the original gives (the
// width comes from the original, not from the intermediate, whose width is rounded already).
// The intermediate's size follows from the original's, so its header is not read first: the
// render is a decode (shrunk on load as Thumbnail shrinks JPEGs), a resample and an encode.
// A file that is not such an intermediate fails to decode.
func ThumbnailFromIntermediate(path, format string, origWidth, origHeight, interHeight, height int) (Rendered, error) {
	if !started.Load() {
		return Rendered{}, errNotStarted
	}
	if format != tierpix.FormatJPEG && format != tierpix.FormatPNG {
		return Rendered{}, fmt.Errorf("thumbnail %s: unknown format %q", path, format)
	}
	if origWidth < 1 || origHeight < 1 || height < 1 || interHeight < height || interHeight > origHeight {
		return Rendered{}, fmt.Errorf("thumbnail %s: height %d from an intermediate %d high of a %dx%d original", path, height, interHeight, origWidth, origHeight)
	}
	th := min(height, origHeight)
	tw := ThumbnailWidth(origWidth, origHeight, th)
	shrink := 1
	if format == tierpix.FormatJPEG {
		shrink = jpegShrink(ThumbnailWidth(origWidth, origHeight, interHeight), interHeight, tw, th)
	}

	defer lockThread()()
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var r C.tp_rendered
	if C.tpi_render_from_intermediate(cpath, cFormat(format), C.int(shrink), C.int(tw), C.int(th), &r) != 0 {
		return Rendered{}, fmt.Errorf("thumbnail %s at height %d from an intermediate: %w", path, height, vipsError())
	}
	defer C.g_free(C.gpointer(r.buf))
	return fromC(r, format), nil
}

// fromC copies a result out of libvips' buffer, which the caller frees.
func fromC(r C.tp_rendered, format string) Rendered {
	return Rendered{
		Body:   bytes.Clone(unsafe.Slice((*byte)(r.buf), int(r.len))),
		Format: format,
		Width:  int(r.width),
		Height: int(r.height),
	}
}
