#include "vips.h"

#include <string.h>

// tp_block_untrusted stops libvips from using loaders that are not fuzzed for hostile input
// (ImageMagick, matload, ...). The VIPS_BLOCK_UNTRUSTED environment variable does the same at
// startup; this covers a libvips that was started before the variable was set.
void
tp_block_untrusted(void)
{
#if VIPS_MAJOR_VERSION > 8 || (VIPS_MAJOR_VERSION == 8 && VIPS_MINOR_VERSION >= 13)
	vips_block_untrusted_set(TRUE);
#endif
}

// tp_open opens path with the loader of the format the magic bytes named, so a file can only
// ever be read by the loader for the format it was accepted as. The filename is passed to the
// loader as is: unlike vips_image_new_from_file, no "[options]" suffix is parsed out of it.
// Only the header is read here; sequential access lets a later decode stream the pixels
// through a small buffer instead of holding the whole image.
int
tp_open(const char *path, int format, VipsImage **out)
{
	switch (format) {
	case TP_FORMAT_JPEG:
		return vips_jpegload(path, out,
			"access", VIPS_ACCESS_SEQUENTIAL,
			"fail_on", VIPS_FAIL_ON_ERROR,
			NULL);
	case TP_FORMAT_PNG:
		return vips_pngload(path, out,
			"access", VIPS_ACCESS_SEQUENTIAL,
			"fail_on", VIPS_FAIL_ON_ERROR,
			NULL);
	}
	vips_error("tierpix", "unknown format %d", format);
	return -1;
}

void
tp_read_header(VipsImage *im, tp_header *h)
{
	const char *loader = NULL;
	int orientation = 1;

	h->width = vips_image_get_width(im);
	h->height = vips_image_get_height(im);
	if (vips_image_get_typeof(im, VIPS_META_ORIENTATION) &&
		vips_image_get_int(im, VIPS_META_ORIENTATION, &orientation) == 0 &&
		orientation >= 1 && orientation <= 8)
		h->orientation = orientation;
	else
		h->orientation = 1;

	h->loader[0] = '\0';
	if (vips_image_get_typeof(im, VIPS_META_LOADER) &&
		vips_image_get_string(im, VIPS_META_LOADER, &loader) == 0 && loader)
		g_strlcpy(h->loader, loader, sizeof(h->loader));
}

// tp_decode decodes every pixel once. vips_avg pulls the image through in strips, so with
// sequential access the memory it needs is a few scanlines wide, and with fail_on error any
// corrupt or truncated data makes it fail.
int
tp_decode(VipsImage *im)
{
	double avg;

	return vips_avg(im, &avg, NULL);
}

void
tp_unref(VipsImage *im)
{
	if (im)
		g_object_unref(im);
}

// tp_to_srgb turns an image that carries an ICC profile into sRGB, so that stripping the
// profile on save keeps its colours. vips_thumbnail's own export_profile is not used for this:
// in libvips 8.14 it also transforms untagged images, from its fallback sRGB profile to the
// built-in one, which visibly shifts saturated colours (pure blue gains red). An image
// without a profile is taken to be sRGB already; a profile libvips cannot use is ignored, as
// vips_thumbnail itself does.
//
// A profile that does not fit the image is ignored too, without asking lcms: vips_thumbnail
// turns CMYK into sRGB but leaves the CMYK profile attached, and transforming from it would
// log "profile incompatible with image" on every CMYK render and fall back to an sRGB to sRGB
// transform of the whole thumbnail.
static int
tp_to_srgb(VipsImage *in, VipsImage **out)
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

// tp_finish brings a thumbnail to what tierpix serves: sRGB (or grey) with 8 bits per sample.
// vips_thumbnail has already turned CMYK into sRGB.
static int
tp_finish(VipsImage *in, VipsImage **out)
{
	VipsImage *srgb;
	VipsInterpretation target;
	int res;

	if (tp_to_srgb(in, &srgb))
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

// tp_target works out the size of a thumbnail at the given height from the header of
// path: the displayed size (after the EXIF orientation) scaled to that height, never up.
static int
tp_target(const char *path, int format, int height, int *width_out, int *height_out)
{
	VipsImage *im;
	tp_header h;
	int w, hh;

	if (tp_open(path, format, &im))
		return -1;
	tp_read_header(im, &h);
	g_object_unref(im);
	w = h.width;
	hh = h.height;
	if (h.orientation >= 5) {
		w = h.height;
		hh = h.width;
	}
	if (height > hh)
		height = hh;
	*height_out = height;
	*width_out = VIPS_CLIP(1, (int) ((double) w * height / hh + 0.5), w);
	return 0;
}

// tp_thumbnail renders path at the given height (never upscaling), applies the EXIF
// orientation, converts to sRGB and encodes in format with all metadata stripped.
//
// Both sides of the result are computed here and forced, rather than asking
// vips_thumbnail for the height alone: JPEG shrink-on-load rounds each side up on its own
// (shrunk by 8 on load, a 6000x403 image is 750x51 rather than 750x50.4), and scaling that
// by height alone carries the rounding of the short side into the width, pixels off the
// original's aspect ratio (1493 px instead of 1489 at 100 px high) and worse for thin images
// (4000x5 came out 1000x1 instead of 800x1).
int
tp_thumbnail(const char *path, int format, int height, tp_rendered *r)
{
	VipsImage *thumb = NULL;
	VipsImage *final = NULL;
	int width;
	int res;

	memset(r, 0, sizeof(*r));
	if (tp_target(path, format, height, &width, &height))
		return -1;
	if (vips_thumbnail(path, &thumb, width,
		"height", height,
		"size", VIPS_SIZE_FORCE,
		"crop", VIPS_INTERESTING_NONE,
		"fail_on", VIPS_FAIL_ON_ERROR,
		NULL))
		return -1;

	res = tp_finish(thumb, &final);
	g_object_unref(thumb);
	if (res)
		return -1;

	switch (format) {
	case TP_FORMAT_JPEG:
		// Chroma subsampling is set rather than left to "auto" (which
		// switches it off from Q 90 up), so the output does not change
		// character if the quality is ever tuned: 4:2:0, as the web expects.
		res = vips_jpegsave_buffer(final, &r->buf, &r->len,
			"Q", 80,
			"subsample_mode", VIPS_FOREIGN_SUBSAMPLE_ON,
			"optimize_coding", TRUE,
			"strip", TRUE,
			NULL);
		break;
	case TP_FORMAT_PNG:
		res = vips_pngsave_buffer(final, &r->buf, &r->len,
			"compression", 6,
			"strip", TRUE,
			NULL);
		break;
	default:
		vips_error("tierpix", "unknown format %d", format);
		res = -1;
	}
	if (res == 0) {
		r->width = vips_image_get_width(final);
		r->height = vips_image_get_height(final);
	}
	g_object_unref(final);
	return res;
}

// tp_error returns and clears libvips' error buffer. The buffer is process-wide, so under
// concurrency it may hold another operation's message too; it is only ever logged.
char *
tp_error(void)
{
	return vips_error_buffer_copy();
}

// tp_thread_done frees libvips' per-thread state. Go moves goroutines between OS threads,
// so each operation locks its thread and releases that state when done.
void
tp_thread_done(void)
{
	vips_thread_shutdown();
}

static void *
tp_count_object(VipsObject *object, void *a, void *b)
{
	(*(int *) a)++;
	return NULL;
}

// tp_live_objects counts the VipsObjects (images, operations, sources, ...) alive in the
// process. Tests use it to show that every image is unreferenced.
int
tp_live_objects(void)
{
	int n = 0;

	vips_object_map((VipsSListMap2Fn) tp_count_object, &n, NULL);
	return n;
}
