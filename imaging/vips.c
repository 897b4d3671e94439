#include "vips.h"
#include <vips/vector.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <png.h>
#include <string.h>
#include <zlib.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
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
//     (libvips clears every buffer it allocates). Setting the trim threshold stops glibc
//     adjusting the mmap threshold, so that one is set too, above the largest buffers a
//     render takes. docs/BENCHMARKS.md ("Measurements behind imaging/vips.c") has the figures.
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
// orc_code_allocate_codemem (libvips issue #1211 reports the same race in
// orc_code_chunk_merge). libvips falls back to its plain C loops, which render as fast to
// within the noise (docs/BENCHMARKS.md).
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
// source for 4 KiB at a time, and a plain file source turns each request into a read(2),
// which costs several times the CPU of reading in 64 KiB blocks. The source is made from a descriptor rather than a file
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

// tp_orientation is the EXIF orientation the loader found, 1 when there is none (or none
// that is valid).
static int
tp_orientation(VipsImage *im)
{
	int orientation = 1;

	if (vips_image_get_typeof(im, VIPS_META_ORIENTATION) &&
		vips_image_get_int(im, VIPS_META_ORIENTATION, &orientation) == 0 &&
		orientation >= 1 && orientation <= 8)
		return orientation;
	return 1;
}

void
tp_read_header(VipsImage *im, tp_header *h)
{
	const char *loader = NULL;

	h->width = vips_image_get_width(im);
	h->height = vips_image_get_height(im);
	h->orientation = tp_orientation(im);

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
// 50 dB PSNR either way, less only on a zone plate made to alias; TestThumbnailShrinkOnLoad
// holds it. The factor it saves is the one that costs most of a render's CPU.
// Intermediate and ThumbnailFromIntermediate pick their factors with it too.
int
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

// tp_reduce and its helpers resample an 8-bit image with one or three bands (grey or sRGB,
// no alpha) to a smaller size with a Lanczos 3 kernel, as vips_resize does, and several times
// faster. libvips 8.14 runs its reduce in plain C loops once liborc is off (tp_disable_vectors),
// one multiply per tap and sample with the bands interleaved, which cost as much as
// everything else a first render does besides the decode. Here the vertical pass runs
// first, over whole rows at a time with SIMD (SSE2, or AVX2 where the CPU has it), two taps
// per instruction, and the horizontal pass works on the few rows it leaves, two taps of a
// pixel's three bands per vector of eight floats.
//
// The kernel, its width (2·3·shrink + 1 taps) and where it is centred (output pixel x at input
// position (x + 0.5)·shrink − 0.5, edges extended by copying) are libvips' own, so the result
// is within rounding of vips_resize's: 55 dB PSNR on photographs (TestReduceMatchesLibvips).
// Like vips_resize, a reduction by 4 or more box-shrinks by its integer half first
// (vips_shrinkv, vips_shrinkh), leaving at least a factor of 2 for the kernel.
//
// The vertical pass sums in integers (weights in 1/16384) and the horizontal pass in floats
// in a fixed order, so the SIMD and plain C paths give the same bytes on a given architecture.

#define TP_WEIGHT_ONE 16384
#define TP_STRIP 16
#define TP_MAX_TAPS 256

typedef float tp_v8f __attribute__((vector_size(32)));

// tp_axis is the resampling of one axis: for each output position, the first input position
// lo, the number of taps n and their weights, at n_max weights per output position.
typedef struct {
	int n_max;
	int *lo;
	int *n;
	short *wi;	// in 1/TP_WEIGHT_ONE, for the vertical pass
	float *wf;	// for the horizontal pass of one band
	int pairs_max;	// (n_max + 1) / 2
	tp_v8f *w8;	// for the horizontal pass of three: taps 2j and 2j + 1, four lanes each
} tp_axis;

static double
tp_lanczos3(double x)
{
	if (x == 0.0)
		return 1.0;
	if (x <= -3.0 || x >= 3.0)
		return 0.0;
	return 3.0 * sin(VIPS_PI * x) * sin(VIPS_PI * x / 3.0) / (VIPS_PI * VIPS_PI * x * x);
}

static void
tp_axis_free(tp_axis *a)
{
	g_free(a->lo);
	g_free(a->n);
	g_free(a->wi);
	g_free(a->wf);
	g_free(a->w8);
	memset(a, 0, sizeof(*a));
}

// tp_axis_init sets a up to take in_size positions to out_size, out_size <= in_size.
static int
tp_axis_init(tp_axis *a, int in_size, int out_size)
{
	double shrink = (double) in_size / out_size;
	double c[TP_MAX_TAPS];
	int o;

	memset(a, 0, sizeof(*a));
	a->n_max = in_size == out_size ? 1 : (int) rint(2 * 3 * shrink) + 1;
	if (out_size < 1 || out_size > in_size || a->n_max > TP_MAX_TAPS) {
		vips_error("tierpix", "cannot reduce %d to %d", in_size, out_size);
		return -1;
	}
	a->lo = g_new(int, out_size);
	a->n = g_new(int, out_size);
	a->wi = g_new0(short, (size_t) out_size * a->n_max);
	a->wf = g_new0(float, (size_t) out_size * a->n_max);
	a->pairs_max = (a->n_max + 1) / 2;
	a->w8 = g_new0(tp_v8f, (size_t) out_size * a->pairs_max);
	for (o = 0; o < out_size; o++) {
		short *wi = a->wi + (size_t) o * a->n_max;
		float *wf = a->wf + (size_t) o * a->n_max;
		double X, x, sum = 0.0, folded[TP_MAX_TAPS] = { 0 };
		int ix, first, lo, hi, i, isum = 0, top = 0;

		if (a->n_max == 1) {
			a->lo[o] = o;
			a->n[o] = 1;
			wi[0] = TP_WEIGHT_ONE;
			wf[0] = 1.0f;
			a->w8[o] = (tp_v8f) { 1.0f, 1.0f, 1.0f, 1.0f };
			continue;
		}
		// libvips' reduce: the kernel centred on (o + 0.5)·shrink − 0.5, tap i at
		// ix − (n − 2)/2 + i.
		X = (o + 0.5) * shrink - 0.5;
		ix = (int) floor(X);
		x = X - ix;
		for (i = 0; i < a->n_max; i++) {
			c[i] = tp_lanczos3((i - (a->n_max - 2) / 2 - x) / shrink);
			sum += c[i];
		}
		// Taps past an edge weigh on the edge pixel, as libvips' extend-by-copy has it.
		first = ix - (a->n_max - 2) / 2;
		lo = VIPS_MAX(first, 0);
		hi = VIPS_MIN(first + a->n_max - 1, in_size - 1);
		for (i = 0; i < a->n_max; i++)
			folded[VIPS_CLIP(lo, first + i, hi) - lo] += c[i] / sum;
		a->lo[o] = lo;
		a->n[o] = hi - lo + 1;
		for (i = 0; i < a->n[o]; i++) {
			wf[i] = (float) folded[i];
			wi[i] = (short) lrint(folded[i] * TP_WEIGHT_ONE);
			isum += wi[i];
			if (wi[i] > wi[top])
				top = i;
		}
		// The integer weights must sum to one exactly, or flat areas would shift.
		wi[top] += TP_WEIGHT_ONE - isum;
		for (i = 0; i < a->n[o]; i++)
			for (int b = 0; b < 4; b++)
				a->w8[(size_t) o * a->pairs_max + i / 2][(i % 2) * 4 + b] = wf[i];
	}
	return 0;
}

// tp_vpass_c sets acc[k] for k in [from, len) to the weighted sum of rows[0..n)[k].
static void
tp_vpass_c(float *acc, const VipsPel *const *rows, const short *w, int n, int from, int len)
{
	int k, t;

	for (k = from; k < len; k++) {
		int s = 0;

		for (t = 0; t < n; t++)
			s += w[t] * rows[t][k];
		acc[k] = s * (1.0f / TP_WEIGHT_ONE);
	}
}

#if defined(__x86_64__)
// tp_avx2 reports whether the CPU runs AVX2 (a flag libgcc reads once at start-up).
static gboolean
tp_avx2(void)
{
	return __builtin_cpu_supports("avx2");
}

// tp_pair is the weights of taps t and t + 1 as the pairs of 16-bit lanes pmaddwd multiplies
// with a sample of each row; the last tap of an odd count pairs with a zero weight.
static int
tp_pair(const short *w, int n, int t)
{
	return (int) ((unsigned) (unsigned short) w[t] |
		(t + 1 < n ? (unsigned) (unsigned short) w[t + 1] << 16 : 0u));
}

static void
tp_vpass_sse2(float *acc, const VipsPel *const *rows, const short *w, int n, int from, int len)
{
	const __m128i zero = _mm_setzero_si128();
	const __m128 scale = _mm_set1_ps(1.0f / TP_WEIGHT_ONE);
	int k;

	for (k = from; k + 16 <= len; k += 16) {
		__m128i s0 = zero, s1 = zero, s2 = zero, s3 = zero;
		int t;

		for (t = 0; t < n; t += 2) {
			__m128i a = _mm_loadu_si128((const __m128i *) (rows[t] + k));
			__m128i b = t + 1 < n ? _mm_loadu_si128((const __m128i *) (rows[t + 1] + k)) : zero;
			__m128i c = _mm_set1_epi32(tp_pair(w, n, t));
			__m128i lo = _mm_unpacklo_epi8(a, b);
			__m128i hi = _mm_unpackhi_epi8(a, b);

			s0 = _mm_add_epi32(s0, _mm_madd_epi16(_mm_unpacklo_epi8(lo, zero), c));
			s1 = _mm_add_epi32(s1, _mm_madd_epi16(_mm_unpackhi_epi8(lo, zero), c));
			s2 = _mm_add_epi32(s2, _mm_madd_epi16(_mm_unpacklo_epi8(hi, zero), c));
			s3 = _mm_add_epi32(s3, _mm_madd_epi16(_mm_unpackhi_epi8(hi, zero), c));
		}
		_mm_storeu_ps(acc + k, _mm_mul_ps(_mm_cvtepi32_ps(s0), scale));
		_mm_storeu_ps(acc + k + 4, _mm_mul_ps(_mm_cvtepi32_ps(s1), scale));
		_mm_storeu_ps(acc + k + 8, _mm_mul_ps(_mm_cvtepi32_ps(s2), scale));
		_mm_storeu_ps(acc + k + 12, _mm_mul_ps(_mm_cvtepi32_ps(s3), scale));
	}
	tp_vpass_c(acc, rows, w, n, k, len);
}

__attribute__((target("avx2"))) static void
tp_vpass_avx2(float *acc, const VipsPel *const *rows, const short *w, int n, int len)
{
	const __m256i zero = _mm256_setzero_si256();
	const __m256 scale = _mm256_set1_ps(1.0f / TP_WEIGHT_ONE);
	int k;

	for (k = 0; k + 32 <= len; k += 32) {
		__m256i s0 = zero, s1 = zero, s2 = zero, s3 = zero;
		int t;

		for (t = 0; t < n; t += 2) {
			__m256i a = _mm256_loadu_si256((const __m256i *) (rows[t] + k));
			__m256i b = t + 1 < n ? _mm256_loadu_si256((const __m256i *) (rows[t + 1] + k)) : zero;
			__m256i c = _mm256_set1_epi32(tp_pair(w, n, t));
			// Unpacking works within each 128-bit lane: s0 gathers samples 0-3
			// and 16-19, s1 4-7 and 20-23, s2 8-11 and 24-27, s3 12-15 and 28-31.
			__m256i lo = _mm256_unpacklo_epi8(a, b);
			__m256i hi = _mm256_unpackhi_epi8(a, b);

			s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_unpacklo_epi8(lo, zero), c));
			s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(_mm256_unpackhi_epi8(lo, zero), c));
			s2 = _mm256_add_epi32(s2, _mm256_madd_epi16(_mm256_unpacklo_epi8(hi, zero), c));
			s3 = _mm256_add_epi32(s3, _mm256_madd_epi16(_mm256_unpackhi_epi8(hi, zero), c));
		}
		_mm256_storeu_ps(acc + k, _mm256_mul_ps(_mm256_cvtepi32_ps(
			_mm256_permute2x128_si256(s0, s1, 0x20)), scale));
		_mm256_storeu_ps(acc + k + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(
			_mm256_permute2x128_si256(s2, s3, 0x20)), scale));
		_mm256_storeu_ps(acc + k + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(
			_mm256_permute2x128_si256(s0, s1, 0x31)), scale));
		_mm256_storeu_ps(acc + k + 24, _mm256_mul_ps(_mm256_cvtepi32_ps(
			_mm256_permute2x128_si256(s2, s3, 0x31)), scale));
	}
	tp_vpass_sse2(acc, rows, w, n, k, len);
}
#endif

// tp_vpass sets acc[0..len) to the weighted sum of the n rows.
static void
tp_vpass(float *acc, const VipsPel *const *rows, const short *w, int n, int len)
{
#if defined(__x86_64__)
	if (tp_avx2())
		tp_vpass_avx2(acc, rows, w, n, len);
	else
		tp_vpass_sse2(acc, rows, w, n, 0, len);
#else
	tp_vpass_c(acc, rows, w, n, 0, len);
#endif
}

// tp_clip_u8 rounds v to the nearest 8-bit value; written to compile to minss and maxss
// rather than branches, which mispredict on photographs.
static VipsPel
tp_clip_u8(float v)
{
	v += 0.5f;
	v = v > 0.0f ? v : 0.0f;
	v = v < 255.0f ? v : 255.0f;
	return (VipsPel) v;
}

// tp_hpass3_body resamples one row of three-band pixels along a, from acc4, which holds
// them four floats apiece (the fourth 0) followed by two spare pixels of zeros: two taps per
// vector of eight floats, pixel 2j in the low half and 2j + 1 in the high one, in two sums
// that do not wait on each other. The AVX2 build does each vector at once, the SSE2 build in
// two halves: the same operations lane by lane in the same order, so the same result.
static inline __attribute__((always_inline)) void
tp_hpass3_body(VipsPel *out, const float *acc4, const tp_axis *a, int width)
{
	int x, j, b;

	for (x = 0; x < width; x++) {
		const float *p = acc4 + (size_t) a->lo[x] * 4;
		const tp_v8f *w = a->w8 + (size_t) x * a->pairs_max;
		const int pairs = (a->n[x] + 1) / 2;
		tp_v8f s0 = { 0.0f }, s1 = s0, v0, v1;

		for (j = 0; j + 2 <= pairs; j += 2) {
			memcpy(&v0, p + 8 * j, sizeof(v0));
			memcpy(&v1, p + 8 * j + 8, sizeof(v1));
			s0 += w[j] * v0;
			s1 += w[j + 1] * v1;
		}
		if (j < pairs) {
			memcpy(&v0, p + 8 * j, sizeof(v0));
			s0 += w[j] * v0;
		}
		s0 += s1;
		for (b = 0; b < 3; b++)
			out[3 * x + b] = tp_clip_u8(s0[b] + s0[4 + b]);
	}
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) static void
tp_hpass3_avx2(VipsPel *out, const float *acc4, const tp_axis *a, int width)
{
	tp_hpass3_body(out, acc4, a, width);
}
#endif

static void
tp_hpass3_base(VipsPel *out, const float *acc4, const tp_axis *a, int width)
{
	tp_hpass3_body(out, acc4, a, width);
}

// tp_hpass resamples one row of acc (bands interleaved) along a into out; for three bands
// through acc4, of 4·(in width + 2) floats.
static void
tp_hpass(VipsPel *out, const float *acc, float *acc4, int in_width, int bands,
	const tp_axis *a, int width)
{
	int x, t, b;

	if (bands == 3) {
		for (x = 0; x < in_width; x++)
			memcpy(acc4 + 4 * x, acc + 3 * x, 3 * sizeof(float));
#if defined(__x86_64__)
		if (tp_avx2())
			tp_hpass3_avx2(out, acc4, a, width);
		else
			tp_hpass3_base(out, acc4, a, width);
#else
		tp_hpass3_base(out, acc4, a, width);
#endif
		return;
	}
	for (x = 0; x < width; x++) {
		const float *p = acc + (size_t) a->lo[x] * bands;
		const float *w = a->wf + (size_t) x * a->n_max;

		for (b = 0; b < bands; b++) {
			float s = 0.0f;

			for (t = 0; t < a->n[x]; t++)
				s += w[t] * p[t * bands + b];
			out[x * bands + b] = tp_clip_u8(s);
		}
	}
}

// tp_reducible reports whether tp_reduce can take in to width×height.
static gboolean
tp_reducible(VipsImage *in, int width, int height)
{
	return in->Coding == VIPS_CODING_NONE &&
		in->BandFmt == VIPS_FORMAT_UCHAR &&
		(in->Bands == 1 || in->Bands == 3) &&
		width <= in->Xsize && height <= in->Ysize;
}

// tp_reduce_lanczos resamples in (tp_reducible) to exactly width×height into a new memory
// image. It reads in top to bottom in strips of TP_STRIP rows into a ring that holds the rows
// the kernel spans, so a sequential decode streams through it and is never held whole.
static int
tp_reduce_lanczos(VipsImage *in, int width, int height, VipsImage **out)
{
	const int bands = in->Bands;
	const size_t line = (size_t) in->Xsize * bands;
	tp_axis ax, ay;
	VipsRegion *region = NULL;
	VipsImage *im = NULL;
	VipsPel *ring = NULL, *row = NULL;
	const VipsPel **rows = NULL;
	float *acc = NULL, *acc4 = NULL;
	int ring_rows, next = 0, y, t, res = -1;

	memset(&ay, 0, sizeof(ay));
	if (tp_axis_init(&ax, in->Xsize, width) || tp_axis_init(&ay, in->Ysize, height))
		goto done;
	ring_rows = ay.n_max + TP_STRIP;
	ring = g_malloc(ring_rows * line);
	rows = g_new(const VipsPel *, ay.n_max);
	acc = g_new0(float, line);
	acc4 = g_new0(float, 4 * ((size_t) in->Xsize + 2));
	row = g_malloc((size_t) width * bands);

	im = vips_image_new_memory();
	if (vips_image_pipelinev(im, VIPS_DEMAND_STYLE_THINSTRIP, in, NULL))
		goto done;
	im->Xsize = width;
	im->Ysize = height;
	region = vips_region_new(in);
	for (y = 0; y < height; y++) {
		const int lo = ay.lo[y], n = ay.n[y];

		// lo never decreases, and the ring holds the ring_rows rows read last.
		while (next < lo + n) {
			VipsRect r = { 0, next, in->Xsize, VIPS_MIN(TP_STRIP, in->Ysize - next) };
			int i;

			if (vips_region_prepare(region, &r))
				goto done;
			for (i = 0; i < r.height; i++)
				memcpy(ring + ((next + i) % ring_rows) * line,
					VIPS_REGION_ADDR(region, 0, next + i), line);
			next += r.height;
		}
		for (t = 0; t < n; t++)
			rows[t] = ring + ((lo + t) % ring_rows) * line;
		tp_vpass(acc, rows, ay.wi + (size_t) y * ay.n_max, n, (int) line);
		tp_hpass(row, acc, acc4, in->Xsize, bands, &ax, width);
		if (vips_image_write_line(im, y, row))
			goto done;
	}
	*out = im;
	im = NULL;
	res = 0;
done:
	VIPS_UNREF(region);
	VIPS_UNREF(im);
	g_free(row);
	g_free(acc4);
	g_free(acc);
	g_free(rows);
	g_free(ring);
	tp_axis_free(&ax);
	tp_axis_free(&ay);
	return res;
}

// tp_reduce is tp_reduce_lanczos after vips_resize's integer box shrink: by the integer
// part of half the factor, on each axis where that is 2 or more.
static int
tp_reduce(VipsImage *in, int width, int height, VipsImage **out)
{
	VipsObject *scope = VIPS_OBJECT(vips_image_new());
	VipsImage **t = (VipsImage **) vips_object_local_array(scope, 2);
	int vshrink = VIPS_MAX(1, (int) floor((double) in->Ysize / height / 2));
	int hshrink = VIPS_MAX(1, (int) floor((double) in->Xsize / width / 2));
	int res = -1;

	if (vshrink > 1) {
		if (vips_shrinkv(in, &t[0], vshrink, "ceil", TRUE, NULL))
			goto done;
		in = t[0];
	}
	if (hshrink > 1) {
		if (vips_shrinkh(in, &t[1], hshrink, "ceil", TRUE, NULL))
			goto done;
		in = t[1];
	}
	res = tp_reduce_lanczos(in, width, height, out);
done:
	g_object_unref(scope);
	return res;
}

// tp_resize does for an image without alpha (a JPEG shrunk on load, an intermediate, a PNG
// without alpha) what vips_thumbnail does after its own load: into the processing space
// (CMYK becomes sRGB, 16 bits become 8; sRGB and grey stay), a Lanczos 3 resize to
// width×height as displayed, then the EXIF orientation applied to the small result (in
// memory first, since turning it reads it out of order). vips_thumbnail_image would do the
// same with more intermediate images, whose caches cost a third more memory (3.8 against
// 2.7 MB tracked by libvips for a 24 MP JPEG). With fast set, the resize is tp_reduce where
// it applies rather than vips_resize; Thumbnail keeps vips_resize, so that the thumbnails it
// has rendered and cached do not change.
static int
tp_resize(VipsImage *in, int orientation, int width, int height, gboolean fast, VipsImage **out)
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
		NULL))
		goto done;
	if (t[0]->Xsize == width && t[0]->Ysize == height) {
		t[1] = t[0];
		g_object_ref(t[1]);
	}
	else if (fast && tp_reducible(t[0], width, height)) {
		if (tp_reduce(t[0], width, height, &t[1]))
			goto done;
	}
	else if (vips_resize(t[0], &t[1], (double) width / t[0]->Xsize,
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

// PNG thumbnails (and PNG intermediates, which are served as thumbnails too) are written with
// libpng directly rather than vips_pngsave, for the one choice libvips does not offer:
// zlib's strategy. On photographs, deflate's search for repeated strings finds next to
// nothing and costs most of the encode, whatever the level: Huffman coding alone, after the
// "sub" filter (each byte less the one a pixel to its left), is several times as fast and no
// bigger. On synthetic pictures (screenshots, charts, icons) the string search is what
// compresses, and unfiltered rows do best: those keep level 6 unfiltered, libvips' default. tp_png_encode tells the two apart before encoding.

// tp_png_entropy is the order-0 entropy, in bits per byte, of im's rows after the "sub"
// filter: close to what Huffman coding alone makes of them (each byte in that many bits).
static double
tp_png_entropy(VipsImage *im)
{
	const int bpp = im->Bands;
	const size_t line = VIPS_IMAGE_SIZEOF_LINE(im);
	guint64 hist[256] = { 0 }, n = 0;
	double bits = 0.0;
	int y, i;
	size_t x;

	for (y = 0; y < im->Ysize; y++) {
		const VipsPel *p = VIPS_IMAGE_ADDR(im, 0, y);

		for (x = 0; x < (size_t) bpp && x < line; x++)
			hist[p[x]]++;
		for (; x < line; x++)
			hist[(VipsPel) (p[x] - p[x - bpp])]++;
		n += line;
	}
	for (i = 0; i < 256; i++)
		if (hist[i])
			bits -= hist[i] * log2((double) hist[i] / n);
	return n ? bits / n : 0.0;
}

static void
tp_png_error(png_structp png, png_const_charp msg)
{
	vips_error("tierpix", "png: %s", msg);
	png_longjmp(png, 1);
}

static void
tp_png_warning(png_structp png, png_const_charp msg)
{
}

static void
tp_png_append(png_structp png, png_bytep data, png_size_t len)
{
	g_byte_array_append((GByteArray *) png_get_io_ptr(png), data, len);
}

static void
tp_png_flush(png_structp png)
{
}

// tp_png_write encodes im (8-bit, one to four bands, in memory) as a PNG with no chunks but
// IHDR, IDAT and IEND, the given row filter and zlib strategy at level 6.
static int
tp_png_write(VipsImage *im, int filter, int strategy, tp_rendered *r)
{
	static const int types[] = { 0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
		PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA };
	GByteArray *buf = g_byte_array_sized_new(VIPS_IMAGE_SIZEOF_IMAGE(im) / 2 + 1024);
	png_structp png;
	png_infop info;
	int y;

	if (!(png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL,
			  tp_png_error, tp_png_warning)) ||
		!(info = png_create_info_struct(png))) {
		vips_error("tierpix", "png: out of memory");
		png_destroy_write_struct(&png, NULL);
		g_byte_array_unref(buf);
		return -1;
	}
	// Nothing set before this and read after a longjmp changes in between.
	if (setjmp(png_jmpbuf(png))) {
		png_destroy_write_struct(&png, &info);
		g_byte_array_unref(buf);
		return -1;
	}
	png_set_write_fn(png, buf, tp_png_append, tp_png_flush);
	png_set_IHDR(png, info, im->Xsize, im->Ysize, 8, types[im->Bands],
		PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_set_filter(png, PNG_FILTER_TYPE_BASE, filter);
	png_set_compression_level(png, 6);
	png_set_compression_strategy(png, strategy);
	png_write_info(png, info);
	for (y = 0; y < im->Ysize; y++)
		png_write_row(png, VIPS_IMAGE_ADDR(im, 0, y));
	png_write_end(png, info);
	png_destroy_write_struct(&png, &info);
	r->len = buf->len;
	r->buf = g_byte_array_free(buf, FALSE);
	r->width = im->Xsize;
	r->height = im->Ysize;
	return 0;
}

// tp_png_encode encodes a PNG thumbnail. Rows whose sub-filtered bytes keep at least half
// their bits under Huffman coding (tp_png_entropy of 4 bits a byte or more: 4.3 to 6.1 on
// grainy and smooth photographs at 200 and 400 px high, against 0.8 to 3.2 on screenshots,
// charts, diagrams and icons) are photographic: Huffman alone after "sub". The others go
// through level 6 unfiltered, as vips_pngsave wrote every PNG before (the same bytes but its
// pHYs chunk), unless that comes out larger than the entropy promises Huffman alone would (a
// blurred photograph at 3.6 bits: 578 KB), which then gets its turn too, the smaller of the
// two kept (292 KB).
static int
tp_png_encode(VipsImage *in, tp_rendered *r)
{
	VipsImage *im;
	double entropy;
	tp_rendered huff;
	int res;

	if (in->BandFmt != VIPS_FORMAT_UCHAR || in->Coding != VIPS_CODING_NONE ||
		in->Bands < 1 || in->Bands > 4) {
		vips_error("tierpix", "png: cannot encode %d bands of format %d",
			in->Bands, in->BandFmt);
		return -1;
	}
	if (!(im = vips_image_copy_memory(in)))
		return -1;
	entropy = tp_png_entropy(im);
	if (entropy >= 4.0)
		res = tp_png_write(im, PNG_FILTER_SUB, Z_HUFFMAN_ONLY, r);
	else if ((res = tp_png_write(im, PNG_FILTER_NONE, Z_DEFAULT_STRATEGY, r)) == 0 &&
		r->len > 1.05 * entropy / 8 * VIPS_IMAGE_SIZEOF_IMAGE(im) &&
		tp_png_write(im, PNG_FILTER_SUB, Z_HUFFMAN_ONLY, &huff) == 0) {
		if (huff.len < r->len) {
			g_free(r->buf);
			*r = huff;
		}
		else
			g_free(huff.buf);
	}
	g_object_unref(im);
	return res;
}

// tp_encode encodes a thumbnail in format out as tierpix serves it, every metadata block
// stripped: JPEG and lossy WebP at the quality qs picks (tp_encode_auto in encode.c), PNG by
// tp_png_encode. A WebP of a synthetic picture (the rows' entropy as tp_png_encode measures it
// below 4 bits a byte: screenshots, charts, icons) is encoded losslessly too, and the smaller
// of the two kept: lossless WebP is exact and on such pictures usually the smaller.
static int
tp_encode(VipsImage *in, int out, const tp_quality *qs, tp_rendered *r)
{
	VipsImage *im;
	tp_rendered lossless;
	int res, q = 0;

	memset(r, 0, sizeof(*r));
	if (in->BandFmt != VIPS_FORMAT_UCHAR || in->Coding != VIPS_CODING_NONE ||
		in->Bands < 1 || in->Bands > 4) {
		vips_error("tierpix", "cannot encode %d bands of format %d", in->Bands, in->BandFmt);
		return -1;
	}
	if (!(im = vips_image_copy_memory(in)))
		return -1;
	switch (out) {
	case TP_FORMAT_JPEG:
		res = tp_encode_auto(im, out, qs, r, &q);
		break;
	case TP_FORMAT_PNG:
		// Level 6 rather than 1 costs nothing on photographs, which skip the string
		// search, and makes synthetic pictures, the kind PNG originals often are,
		// markedly smaller. A thumbnail is rendered once and served many times.
		res = tp_png_encode(im, r);
		break;
	case TP_FORMAT_WEBP:
		if ((res = tp_encode_auto(im, out, qs, r, &q)) == 0 &&
			tp_png_entropy(im) < 4.0 &&
			tp_webp_lossless(im, &lossless) == 0) {
			if (lossless.len < r->len) {
				g_free(r->buf);
				*r = lossless;
				q = 0;
			}
			else
				g_free(lossless.buf);
		}
		break;
	default:
		vips_error("tierpix", "unknown format %d", out);
		res = -1;
	}
	if (res == 0) {
		r->width = im->Xsize;
		r->height = im->Ysize;
		r->quality = q;
	}
	g_object_unref(im);
	return res;
}

// tp_encode_intermediate encodes an intermediate (see intermediate.go), to be decoded again
// cheaply and with little loss. A JPEG at quality 95 with 4:2:0 chroma, without optimised
// Huffman tables, since it is decoded rather than served: thumbnails made from it are some
// 43 dB from ones made from the original, where full chroma would add 0.4 dB for a third more
// work to encode and decode. A PNG exactly as a served thumbnail (lossless, alpha kept), so
// that it is also the thumbnail of its own height: ThumbnailFromIntermediate serves it as it
// is. On photographs that costs less than the zlib level 1 it had before (tp_png_encode).
static int
tp_encode_intermediate(VipsImage *im, int format, tp_rendered *r)
{
	const int q = 95;
	int res;

	if (format != TP_FORMAT_JPEG)
		return tp_encode(im, format, NULL, r);
	res = vips_jpegsave_buffer(im, &r->buf, &r->len,
		"Q", q,
		"subsample_mode", VIPS_FOREIGN_SUBSAMPLE_ON,
		"strip", TRUE,
		NULL);
	if (res == 0) {
		r->width = vips_image_get_width(im);
		r->height = vips_image_get_height(im);
		r->quality = q;
	}
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
tp_thumbnail(const char *path, int format, int height, int out, const tp_quality *qs,
	tp_rendered *r)
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
		res = tp_resize(in, h.orientation, width, height, FALSE, &thumb);
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
	res = tp_encode(final, out, qs, r);
	g_object_unref(final);
	return res;
}

// tp_scale brings an open image (shrunk on load or not) to width×height as displayed, upright,
// for the intermediate paths. Images without alpha go through tp_resize with tp_reduce.
// Images with alpha go through vips_thumbnail_image, which premultiplies the colours by the
// alpha before resampling (a Lanczos kernel would otherwise bleed the colour of transparent
// pixels into the visible ones) and undoes it after; tp_reduce has no such step.
static int
tp_scale(VipsImage *in, int width, int height, VipsImage **out)
{
	if (vips_image_hasalpha(in))
		return vips_thumbnail_image(in, out, width,
			"height", height,
			"size", VIPS_SIZE_FORCE,
			"crop", VIPS_INTERESTING_NONE,
			NULL);
	return tp_resize(in, tp_orientation(in), width, height, TRUE, out);
}

// tp_intermediate decodes path once (shrunk on load by shrink) and renders and encodes the
// intermediate of iw×ih (as displayed), upright and in sRGB: thumbnails rendered from it must
// neither turn nor transform it again. On failure inter holds no buffer.
int
tp_intermediate(const char *path, int format, int shrink, int iw, int ih, tp_rendered *inter)
{
	VipsObject *scope = VIPS_OBJECT(vips_image_new());
	VipsImage **t = (VipsImage **) vips_object_local_array(scope, 4);
	int res = -1;

	memset(inter, 0, sizeof(*inter));
	if (tp_load(path, format, shrink, &t[0]) ||
		tp_scale(t[0], iw, ih, &t[1]) ||
		tp_finish(t[1], &t[2]) ||
		vips_copy(t[2], &t[3], NULL))
		goto done;
	vips_image_remove(t[3], VIPS_META_ICC_NAME);
	vips_image_remove(t[3], VIPS_META_ORIENTATION);
	if (tp_encode_intermediate(t[3], format, inter))
		goto done;
	res = 0;
done:
	if (res) {
		g_free(inter->buf);
		memset(inter, 0, sizeof(*inter));
	}
	g_object_unref(scope);
	return res;
}

// tp_thumbnail_from_intermediate renders the thumbnail of tw×th from the intermediate at path
// (shrunk on load by shrink).
int
tp_thumbnail_from_intermediate(const char *path, int format, int shrink, int tw, int th,
	int out, const tp_quality *qs, tp_rendered *r)
{
	VipsObject *scope = VIPS_OBJECT(vips_image_new());
	VipsImage **t = (VipsImage **) vips_object_local_array(scope, 3);
	int res = -1;

	memset(r, 0, sizeof(*r));
	if (tp_load(path, format, shrink, &t[0]) ||
		tp_scale(t[0], tw, th, &t[1]) ||
		tp_finish(t[1], &t[2]) ||
		tp_encode(t[2], out, qs, r))
		goto done;
	res = 0;
done:
	if (res) {
		g_free(r->buf);
		memset(r, 0, sizeof(*r));
	}
	g_object_unref(scope);
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
