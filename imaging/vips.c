#include "vips.h"
#include <vips/vector.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

// tp_tune_malloc sets glibc's allocator for a render server, unless the environment already
// does (MALLOC_ARENA_MAX, MALLOC_TRIM_THRESHOLD_, MALLOC_MMAP_THRESHOLD_ are read at the first
// malloc and would be silently overridden otherwise).
//
//   - Two arenas instead of eight per core: every thread that calls malloc otherwise gets an
//     arena of its own, and the Go threads that run renders and libvips' workers are many,
//     each arena holding on to what its last render freed.
//   - Keep up to 16 MiB free at the top of an arena and serve blocks up to 16 MiB from the
//     arenas. With glibc's defaults (trim above 128 KiB, at first) a render gave its pixel
//     buffers back to the kernel and took them again, page-faulting and zeroing them afresh
//     (libvips clears every buffer it allocates): a 0.75 MP JPEG decoded at full size took 420-620
//     page faults and 23-28 ms of CPU per render, 16-60 faults and 15-18 ms with these
//     settings; a 2 MP PNG, 550-990 faults and 74-84 ms against 96 and 67-69 ms. Setting the
//     trim threshold stops glibc adjusting the mmap threshold, so that one is set too, above
//     the largest buffers a render takes: with 4 MiB the PNG render took 1 150 faults.
//
// mallopt must run before most threads have created their arenas; the arena limit only binds
// arenas created after it.
void
tp_tune_malloc(void)
{
#if defined(__GLIBC__) && defined(M_ARENA_MAX)
	if (!g_getenv("MALLOC_ARENA_MAX"))
		mallopt(M_ARENA_MAX, 2);
	if (!g_getenv("MALLOC_TRIM_THRESHOLD_") && !g_getenv("MALLOC_MMAP_THRESHOLD_")) {
		mallopt(M_TRIM_THRESHOLD, 16 << 20);
		mallopt(M_MMAP_THRESHOLD, 16 << 20);
	}
#endif
}

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

// tp_disable_vectors turns off libvips' run-time compiled SIMD code (liborc), as the
// VIPS_NOVECTOR environment variable would. libvips 8.14 compiles an orc program for every
// resize it builds (reducev's vector path), and liborc's allocator of executable memory is not
// safe against two threads compiling at once: under concurrent renders tierpix crashed in
// orc_code_allocate_codemem (SIGSEGV, about once in 3 000 renders of a 0.75 MP JPEG at eight
// connections; libvips issue #1211 reports the same race in orc_code_chunk_merge). libvips
// falls back to its plain C loops, which on this kind of machine render as fast to within the
// noise (12 MP to 200 px: 47-48 ms against 50 ms; 0.75 MP: 11.6 ms against 9.9-11.0 ms).
void
tp_disable_vectors(void)
{
	vips_vector_set_enabled(FALSE);
}

// tp_vectors_enabled reports whether libvips would use its run-time compiled SIMD code.
int
tp_vectors_enabled(void)
{
	return vips_vector_isenabled();
}

// TpSource is a file source that reads ahead in 64 KiB blocks. libvips' loaders ask their
// source for 4 KiB at a time, and a plain file source turns each request into a read(2):
// 1 900 system calls for a 7.7 MB JPEG, 5.5 ms of CPU on this kind of machine where reading
// it in 64 KiB blocks takes 1.6 ms. The source is made from a descriptor rather than a file
// name so that libvips never closes and reopens it behind the buffer's back ("minimising"
// file sources re-seeks the descriptor to the position the reader has reached, which would
// replay the buffered bytes).
#define TP_SOURCE_BLOCK (64 * 1024)

typedef struct {
	VipsSource parent_object;

	char *buf;	// TP_SOURCE_BLOCK bytes; a GObject instance must stay under 64 KiB
	size_t len;	// bytes in buf
	size_t pos;	// bytes of buf already handed out
} TpSource;

typedef struct {
	VipsSourceClass parent_class;
} TpSourceClass;

G_DEFINE_TYPE(TpSource, tp_source, VIPS_TYPE_SOURCE);

static gint64
tp_source_read(VipsSource *source, void *data, size_t length)
{
	TpSource *s = (TpSource *) source;
	size_t n;

	if (s->pos >= s->len) {
		gint64 got = VIPS_SOURCE_CLASS(tp_source_parent_class)->read(source, s->buf, TP_SOURCE_BLOCK);

		if (got <= 0)
			return got;
		s->len = got;
		s->pos = 0;
	}
	n = VIPS_MIN(length, s->len - s->pos);
	memcpy(data, s->buf + s->pos, n);
	s->pos += n;
	return n;
}

// tp_source_seek drops the buffer. The descriptor is ahead of the reader by what the buffer
// still holds, which a relative seek must take back.
static gint64
tp_source_seek(VipsSource *source, gint64 offset, int whence)
{
	TpSource *s = (TpSource *) source;

	if (whence == SEEK_CUR)
		offset -= (gint64) (s->len - s->pos);
	s->len = 0;
	s->pos = 0;
	return VIPS_SOURCE_CLASS(tp_source_parent_class)->seek(source, offset, whence);
}

static void
tp_source_finalize(GObject *gobject)
{
	TpSource *s = (TpSource *) gobject;

	VIPS_FREE(s->buf);
	G_OBJECT_CLASS(tp_source_parent_class)->finalize(gobject);
}

static void
tp_source_class_init(TpSourceClass *class)
{
	GObjectClass *gobject_class = G_OBJECT_CLASS(class);
	VipsObjectClass *object_class = VIPS_OBJECT_CLASS(class);
	VipsSourceClass *source_class = VIPS_SOURCE_CLASS(class);

	gobject_class->finalize = tp_source_finalize;
	object_class->nickname = "tp_source";
	object_class->description = "file source reading ahead in 64 KiB blocks";
	source_class->read = tp_source_read;
	source_class->seek = tp_source_seek;
}

static void
tp_source_init(TpSource *s)
{
	s->buf = g_malloc(TP_SOURCE_BLOCK);
}

// tp_source_new opens path for reading through a TpSource.
VipsSource *
tp_source_new(const char *path)
{
	VipsSource *source;
	int fd;

	if ((fd = vips_tracked_open(path, O_RDONLY | O_CLOEXEC, 0)) == -1) {
		vips_error_system(errno, "tierpix", "unable to open \"%s\"", path);
		return NULL;
	}
	// The source keeps a duplicate of the descriptor and closes it when it is freed.
	source = VIPS_SOURCE(g_object_new(tp_source_get_type(), "descriptor", fd, NULL));
	if (vips_object_build(VIPS_OBJECT(source))) {
		VIPS_UNREF(source);
	}
	vips_tracked_close(fd);
	return source;
}

// tp_load opens path with the loader of the format the magic bytes named, so a file can only
// ever be read by the loader for the format it was accepted as. The file is read through a
// TpSource: unlike vips_image_new_from_file, nothing in the name is parsed as "[options]".
// Only the header is read here; sequential access lets a later decode stream the pixels
// through a small buffer instead of holding the whole image. A shrink above 1 has libjpeg
// decode a JPEG at 1/shrink of its size; it must be 1 for PNGs.
int
tp_load(const char *path, int format, int shrink, VipsImage **out)
{
	VipsSource *source;
	int res;

	if (format != TP_FORMAT_JPEG && format != TP_FORMAT_PNG) {
		vips_error("tierpix", "unknown format %d", format);
		return -1;
	}
	if (!(source = tp_source_new(path)))
		return -1;
	if (format == TP_FORMAT_JPEG)
		res = vips_jpegload_source(source, out,
			"shrink", VIPS_MAX(shrink, 1),
			"access", VIPS_ACCESS_SEQUENTIAL,
			"fail_on", VIPS_FAIL_ON_ERROR,
			NULL);
	else if (shrink > 1) {
		vips_error("tierpix", "PNGs do not shrink on load");
		res = -1;
	}
	else
		res = vips_pngload_source(source, out,
			"access", VIPS_ACCESS_SEQUENTIAL,
			"fail_on", VIPS_FAIL_ON_ERROR,
			NULL);
	g_object_unref(source);
	return res;
}

// tp_open is tp_load without shrinking.
int
tp_open(const char *path, int format, VipsImage **out)
{
	return tp_load(path, format, 1, out);
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

// tp_jpeg_shrink is the JPEG shrink-on-load factor for reducing a w×h image (as stored) to
// tw×th: the largest of 8, 4 and 2 that neither side's factor is below, as imgproxy picks it.
// libjpeg then decodes each 8×8 block to 1, 2 or 4 pixels a side, so the inverse DCT, the
// upsampling, the colour conversion and the resize that follows all see up to 64 times fewer
// pixels.
//
// libvips' thumbnail picks one step less, to leave "at least a factor of two" for its
// Lanczos resize; on photographs the difference to a render from the full decode is beyond
// 50 dB PSNR either way (12 MP to 200 px high: 51.7 dB at shrink 8, 52.6 dB at 4; 0.75 MP:
// 50.0 dB at 2, identical at 1), about 2 dB less only on a zone plate, made to alias;
// TestThumbnailShrinkOnLoad holds it. The factor it saves is the one that costs: a 200 px
// render took 46 ms of CPU from 12 MP shrunk by 8 against 63 ms by 4, and 13 ms from
// 0.75 MP shrunk by 2 against 23.5 ms unshrunk.
static int
tp_jpeg_shrink(int w, int h, int tw, int th)
{
	double factor = VIPS_MIN((double) w / tw, (double) h / th);

	if (factor >= 8)
		return 8;
	if (factor >= 4)
		return 4;
	if (factor >= 2)
		return 2;
	return 1;
}

// tp_resize does for a JPEG shrunk on load what vips_thumbnail does after its own load:
// into the processing space (CMYK becomes sRGB; sRGB and grey stay), a Lanczos 3 resize
// to width×height as displayed, then the EXIF orientation applied to the small result
// (copied to memory first, since turning it reads it out of order). JPEGs have no alpha to
// premultiply. vips_thumbnail_image would do the same with more intermediate images, whose
// caches cost a third more memory (3.8 against 2.7 MB tracked by libvips for a 24 MP JPEG).
static int
tp_resize(VipsImage *in, int orientation, int width, int height, VipsImage **out)
{
	VipsObject *scope = VIPS_OBJECT(vips_image_new());
	VipsImage **t = (VipsImage **) vips_object_local_array(scope, 4);
	VipsImage *im;
	int res = -1;

	// The size as stored, before the orientation turns it.
	if (orientation >= 5) {
		int tmp = width;

		width = height;
		height = tmp;
	}
	if (vips_colourspace(in, &t[0],
		in->Bands < 3 ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB,
		NULL) ||
		vips_resize(t[0], &t[1], (double) width / t[0]->Xsize,
			"vscale", (double) height / t[0]->Ysize,
			NULL))
		goto done;
	im = t[1];
	if (orientation > 1) {
		if (!(t[2] = vips_image_copy_memory(im)) ||
			vips_autorot(t[2], &t[3], NULL))
			goto done;
		im = t[3];
	}
	g_object_ref(im);
	*out = im;
	res = 0;
done:
	g_object_unref(scope);
	return res;
}

// tp_thumbnail renders path at the given height (never upscaling), applies the EXIF
// orientation, converts to sRGB and encodes in format with all metadata stripped.
//
// The file is opened once for its header, which gives the size of the result. A JPEG worth
// shrinking on load (tp_jpeg_shrink) is then opened again with that factor, which libjpeg
// must be given before it decodes, and resized by tp_resize. Everything else, PNGs and JPEGs
// too small to shrink, goes to vips_thumbnail from the file as before: shrink-on-load gains
// nothing there, and vips_thumbnail_source, which could read through a TpSource, ignores
// fail_on in libvips 8.14 (a truncated PNG renders, grey below the cut).
//
// Both sides of the result are computed here and forced, rather than asking libvips for
// the height alone: JPEG shrink-on-load rounds each side up on its own (shrunk by 8 on
// load, a 6000x403 image is 750x51 rather than 750x50.4), and scaling that by height alone
// carries the rounding of the short side into the width, pixels off the original's aspect
// ratio (1493 px instead of 1489 at 100 px high) and worse for thin images (4000x5 came out
// 1000x1 instead of 800x1).
int
tp_thumbnail(const char *path, int format, int height, tp_rendered *r)
{
	VipsImage *in = NULL;
	VipsImage *thumb = NULL;
	VipsImage *final = NULL;
	tp_header h;
	int w, hh, width;
	int shrink = 1;
	int res;

	memset(r, 0, sizeof(*r));
	if (tp_open(path, format, &in))
		return -1;
	tp_read_header(in, &h);
	g_object_unref(in);
	in = NULL;

	// The size as displayed, after the EXIF orientation, scaled to the height asked.
	w = h.width;
	hh = h.height;
	if (h.orientation >= 5) {
		w = h.height;
		hh = h.width;
	}
	if (height > hh)
		height = hh;
	width = VIPS_CLIP(1, (int) ((double) w * height / hh + 0.5), w);

	// The shrink compares the target as stored, before the orientation turns it.
	if (format == TP_FORMAT_JPEG)
		shrink = h.orientation >= 5 ?
			tp_jpeg_shrink(h.width, h.height, height, width) :
			tp_jpeg_shrink(h.width, h.height, width, height);

	if (shrink > 1) {
		if (tp_load(path, format, shrink, &in))
			return -1;
		res = tp_resize(in, h.orientation, width, height, &thumb);
		g_object_unref(in);
	}
	else
		res = vips_thumbnail(path, &thumb, width,
			"height", height,
			"size", VIPS_SIZE_FORCE,
			"crop", VIPS_INTERESTING_NONE,
			"fail_on", VIPS_FAIL_ON_ERROR,
			NULL);
	if (res)
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
		// Optimised Huffman tables take a second pass over the coefficients,
		// 0.25 ms for a 267x200 thumbnail, and make it 5% smaller for every
		// time it is served. Interlacing and the mozjpeg options (trellis
		// quantisation, deringing, scan optimisation) stay off, as they are by
		// default: Debian's libjpeg-turbo ignores the latter anyway.
		res = vips_jpegsave_buffer(final, &r->buf, &r->len,
			"Q", 80,
			"subsample_mode", VIPS_FOREIGN_SUBSAMPLE_ON,
			"optimize_coding", TRUE,
			"strip", TRUE,
			NULL);
		break;
	case TP_FORMAT_PNG:
		// zlib level 6 against 1: 0.5 ms more for a 356x200 thumbnail of a
		// photograph (which deflate barely compresses either way), 7 ms more
		// but 28% smaller for one of a synthetic picture, the kind PNG
		// originals often are. A thumbnail is rendered once and served many
		// times, so the bytes win. libvips filters no rows by default.
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
