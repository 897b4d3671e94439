// Encoding at a quality chosen per thumbnail: tierpix encodes a thumbnail at the lowest quality
// whose decoded luma stays within an SSIM floor of the pixels it was given, for JPEG and for
// lossy WebP alike. Encoder, decoder and measure are called directly (libjpeg, libwebp) rather
// than through libvips, whose operation set-up costs as much as a small encode. See
// quality.go for the search and its bounds.

#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <jpeglib.h>
#include <webp/decode.h>
#include <webp/encode.h>

#include "vips.h"

// tp_luma writes the luma of im (8-bit, in memory, 1 to 4 bands: grey, grey and alpha, sRGB,
// sRGB and alpha) to y, w×h bytes: the grey band, or BT.601's 0.299 R + 0.587 G + 0.114 B, as
// JPEG's encoder computes it. Alpha is not looked at.
void
tp_luma(VipsImage *im, VipsPel *y)
{
	const int w = im->Xsize, bands = im->Bands;
	int row, x;

	for (row = 0; row < im->Ysize; row++) {
		const VipsPel *p = VIPS_IMAGE_ADDR(im, 0, row);
		VipsPel *q = y + (size_t) row * w;

		if (bands < 3)
			for (x = 0; x < w; x++)
				q[x] = p[x * bands];
		else
			for (x = 0; x < w; x++, p += bands)
				q[x] = (VipsPel) ((19595 * p[0] + 38470 * p[1] + 7471 * p[2] + 32768) >> 16);
	}
}

// tp_ssim is the mean SSIM of two w×h luma planes over 8×8 windows a 4-pixel step apart, as
// x264 and libwebp's tools compute it: sums over 4×4 blocks, each window four of them. Its
// values run close to the 11×11 Gaussian SSIM of the literature (a little lower on
// blocky damage, which the 8×8 windows see whole), at a fraction of the cost: a few
// additions per pixel. Images smaller than 8×8 compare as a single window.
double
tp_ssim(const VipsPel *a, const VipsPel *b, int w, int h)
{
	const double c1 = (0.01 * 255) * (0.01 * 255) * 64, c2 = (0.03 * 255) * (0.03 * 255) * 64;
	const int bw = w / 4, bh = h / 4;
	gint64 *sums;
	double total = 0.0;
	int n = 0, bx, by, x, y;

	if (bw < 2 || bh < 2) {
		double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0, m = (double) w * h;
		double mu_a, mu_b, va, vb, cov;

		for (y = 0; y < h; y++)
			for (x = 0; x < w; x++) {
				double pa = a[y * w + x], pb = b[y * w + x];

				sa += pa;
				sb += pb;
				saa += pa * pa;
				sbb += pb * pb;
				sab += pa * pb;
			}
		mu_a = sa / m;
		mu_b = sb / m;
		va = saa / m - mu_a * mu_a;
		vb = sbb / m - mu_b * mu_b;
		cov = sab / m - mu_a * mu_b;
		return ((2 * mu_a * mu_b + c1 / 64) * (2 * cov + c2 / 64)) /
			((mu_a * mu_a + mu_b * mu_b + c1 / 64) * (va + vb + c2 / 64));
	}
	// Per 4×4 block: sum a, sum b, sum a², sum b², sum ab.
	sums = g_new0(gint64, (size_t) bw * bh * 5);
	for (by = 0; by < bh; by++)
		for (y = 0; y < 4; y++) {
			const VipsPel *pa = a + (size_t) (by * 4 + y) * w;
			const VipsPel *pb = b + (size_t) (by * 4 + y) * w;

			for (bx = 0; bx < bw; bx++) {
				gint64 *s = sums + ((size_t) by * bw + bx) * 5;
				int s1 = 0, s2 = 0, s11 = 0, s22 = 0, s12 = 0;

				for (x = bx * 4; x < bx * 4 + 4; x++) {
					int va = pa[x], vb = pb[x];

					s1 += va;
					s2 += vb;
					s11 += va * va;
					s22 += vb * vb;
					s12 += va * vb;
				}
				s[0] += s1;
				s[1] += s2;
				s[2] += s11;
				s[3] += s22;
				s[4] += s12;
			}
		}
	for (by = 0; by + 1 < bh; by++)
		for (bx = 0; bx + 1 < bw; bx++) {
			gint64 t[5] = { 0 };
			double s1, s2, s11, s22, s12, vars, covar;
			int i, k;

			for (k = 0; k < 4; k++) {
				const gint64 *s = sums + ((size_t) (by + k / 2) * bw + bx + k % 2) * 5;

				for (i = 0; i < 5; i++)
					t[i] += s[i];
			}
			s1 = t[0];
			s2 = t[1];
			s11 = t[2];
			s22 = t[3];
			s12 = t[4];
			// In units of 64 samples: 64·Σx² − (Σx)² is 64² times the variance.
			vars = 64 * (s11 + s22) - s1 * s1 - s2 * s2;
			covar = 64 * s12 - s1 * s2;
			total += ((2 * s1 * s2 + c1 * 64) * (2 * covar + c2 * 64)) /
				((s1 * s1 + s2 * s2 + c1 * 64) * (vars + c2 * 64));
			n++;
		}
	g_free(sums);
	return total / n;
}

struct tp_jpeg_err {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
};

static void
tp_jpeg_error_exit(j_common_ptr c)
{
	char msg[JMSG_LENGTH_MAX];

	(*c->err->format_message)(c, msg);
	vips_error("tierpix", "jpeg: %s", msg);
	longjmp(((struct tp_jpeg_err *) c->err)->jump, 1);
}

static void
tp_jpeg_quiet(j_common_ptr c)
{
}

// tp_jpeg_luma decodes the luma of a JPEG w×h into y, skipping its chroma altogether: what
// the SSIM of a probe needs, at about a third of a full decode.
static int
tp_jpeg_luma(const void *buf, size_t len, int w, int h, VipsPel *y)
{
	struct jpeg_decompress_struct d;
	struct tp_jpeg_err err;

	d.err = jpeg_std_error(&err.pub);
	err.pub.error_exit = tp_jpeg_error_exit;
	err.pub.output_message = tp_jpeg_quiet;
	if (setjmp(err.jump)) {
		jpeg_destroy_decompress(&d);
		return -1;
	}
	jpeg_create_decompress(&d);
	jpeg_mem_src(&d, (const unsigned char *) buf, len);
	jpeg_read_header(&d, TRUE);
	d.out_color_space = JCS_GRAYSCALE;
	jpeg_start_decompress(&d);
	if ((int) d.output_width != w || (int) d.output_height != h || d.output_components != 1) {
		vips_error("tierpix", "jpeg: probe decoded at %ux%u", d.output_width, d.output_height);
		jpeg_destroy_decompress(&d);
		return -1;
	}
	while ((int) d.output_scanline < h) {
		JSAMPROW row = y + (size_t) d.output_scanline * w;

		jpeg_read_scanlines(&d, &row, 1);
	}
	jpeg_finish_decompress(&d);
	jpeg_destroy_decompress(&d);
	return 0;
}

// tp_webp_luma decodes the luma of a lossy WebP w×h into y. WebP keeps luma in BT.601's
// studio range (16 to 235); it is stretched to the full range that tp_luma gives.
static int
tp_webp_luma(const void *buf, size_t len, int w, int h, VipsPel *y)
{
	int uvw = (w + 1) / 2, uvh = (h + 1) / 2;
	VipsPel *uv = g_malloc((size_t) uvw * uvh * 2);
	VipsPel lut[256];
	size_t i, n = (size_t) w * h;
	int k;

	if (!WebPDecodeYUVInto(buf, len, y, n, w, uv, (size_t) uvw * uvh, uvw,
		uv + (size_t) uvw * uvh, (size_t) uvw * uvh, uvw)) {
		g_free(uv);
		vips_error("tierpix", "webp: the probe does not decode");
		return -1;
	}
	g_free(uv);
	for (k = 0; k < 256; k++)
		lut[k] = (VipsPel) VIPS_CLIP(0, (int) ((k - 16) * 255.0 / 219.0 + 0.5), 255);
	for (i = 0; i < n; i++)
		y[i] = lut[y[i]];
	return 0;
}

static int
tp_webp_append(const uint8_t *data, size_t len, const WebPPicture *pic)
{
	g_byte_array_append((GByteArray *) pic->custom_ptr, data, len);
	return 1;
}

// TP_WEBP_METHOD is WebP's effort (libwebp's method), for probes and what is served alike:
// libwebp's default and libvips'. Probes at method 2 cost a third as much, but judge its
// output worse than method 4's at the same quality, so the search picked qualities too high.
#define TP_WEBP_METHOD 4

// tp_webp_encode encodes im (sRGB or grey, with or without alpha, 8-bit, in memory) as WebP
// with libwebp at the given method: lossy at quality q (alpha kept, losslessly compressed),
// or lossless. No metadata is written. Spatial noise shaping is off and the loop filter
// weak (libwebp's defaults, 50 and 60, smooth fine texture away): at the SSIM the quality
// search aims for, that made the bench's photographs some 5% smaller.
static int
tp_webp_encode(VipsImage *im, int q, int lossless, int method, tp_rendered *r)
{
	const int w = im->Xsize, h = im->Ysize, bands = im->Bands;
	const gboolean alpha = bands == 2 || bands == 4;
	WebPConfig config;
	WebPPicture pic;
	GByteArray *buf;
	VipsPel *rgb = NULL;
	const VipsPel *src;
	int stride, ok;

	if (!WebPConfigInit(&config) || !WebPPictureInit(&pic)) {
		vips_error("tierpix", "webp: library version mismatch");
		return -1;
	}
	// Lossless at libwebp's least effort: it is only kept when smaller than the lossy one,
	// which it seldom is once a picture is resized, so it must cost little to try.
	config.quality = lossless ? 0 : q;
	config.lossless = lossless;
	config.method = lossless ? 0 : method;
	config.sns_strength = 0;
	config.filter_strength = 20;
	config.alpha_quality = 100;
	pic.use_argb = lossless;
	pic.width = w;
	pic.height = h;
	// Grey is spread to three bands for libwebp, which takes only RGB(A).
	if (bands < 3) {
		const int out = alpha ? 4 : 3;
		int x, y;

		rgb = g_malloc((size_t) w * h * out);
		for (y = 0; y < h; y++) {
			const VipsPel *p = VIPS_IMAGE_ADDR(im, 0, y);
			VipsPel *o = rgb + (size_t) y * w * out;

			for (x = 0; x < w; x++, p += bands, o += out) {
				o[0] = o[1] = o[2] = p[0];
				if (alpha)
					o[3] = p[1];
			}
		}
		src = rgb;
		stride = w * out;
	}
	else {
		src = VIPS_IMAGE_ADDR(im, 0, 0);
		stride = VIPS_IMAGE_SIZEOF_LINE(im);
	}
	ok = alpha ? WebPPictureImportRGBA(&pic, src, stride) :
		WebPPictureImportRGB(&pic, src, stride);
	g_free(rgb);
	if (!ok) {
		WebPPictureFree(&pic);
		vips_error("tierpix", "webp: out of memory");
		return -1;
	}
	buf = g_byte_array_new();
	pic.writer = tp_webp_append;
	pic.custom_ptr = buf;
	ok = WebPEncode(&config, &pic);
	WebPPictureFree(&pic);
	if (!ok) {
		g_byte_array_unref(buf);
		vips_error("tierpix", "webp: encode failed (error %d)", pic.error_code);
		return -1;
	}
	r->len = buf->len;
	r->buf = g_byte_array_free(buf, FALSE);
	r->width = w;
	r->height = h;
	return 0;
}

// tp_jpeg_encode encodes im as tierpix serves JPEGs at quality q: 4:2:0 chroma (set rather
// than "auto", which would switch it off from Q 90 up), optimised Huffman tables (a cheap
// second pass that makes every serving smaller; left out of probes, whose bytes are thrown
// away and whose pixels it does not change), every metadata block stripped.
static int
tp_jpeg_encode(VipsImage *im, int q, gboolean probe, tp_rendered *r)
{
	if (vips_jpegsave_buffer(im, &r->buf, &r->len,
		"Q", q,
		"subsample_mode", VIPS_FOREIGN_SUBSAMPLE_ON,
		"optimize_coding", !probe,
		"strip", TRUE,
		NULL))
		return -1;
	r->width = im->Xsize;
	r->height = im->Ysize;
	return 0;
}

// tp_encode_at encodes im (in memory) in format at quality q; probe marks an encode whose
// bytes are only decoded again.
int
tp_encode_at(VipsImage *im, int format, int q, int probe, tp_rendered *r)
{
	memset(r, 0, sizeof(*r));
	switch (format) {
	case TP_FORMAT_JPEG:
		return tp_jpeg_encode(im, q, probe, r);
	case TP_FORMAT_WEBP:
		return tp_webp_encode(im, q, FALSE, TP_WEBP_METHOD, r);
	}
	vips_error("tierpix", "no quality for format %d", format);
	return -1;
}

// tp_probe encodes im at q, decodes the luma again into dec and returns its SSIM against ref
// (im's luma), or a negative number on failure. The encoded bytes are kept in r.
double
tp_probe(VipsImage *im, const VipsPel *ref, VipsPel *dec, int format, int q, tp_rendered *r)
{
	int res;

	if (tp_encode_at(im, format, q, TRUE, r))
		return -1;
	res = format == TP_FORMAT_JPEG ?
		tp_jpeg_luma(r->buf, r->len, im->Xsize, im->Ysize, dec) :
		tp_webp_luma(r->buf, r->len, im->Xsize, im->Ysize, dec);
	if (res) {
		g_free(r->buf);
		memset(r, 0, sizeof(*r));
		return -1;
	}
	return tp_ssim(ref, dec, im->Xsize, im->Ysize);
}

// tp_webp_lossless encodes im as lossless WebP.
int
tp_webp_lossless(VipsImage *im, tp_rendered *r)
{
	memset(r, 0, sizeof(*r));
	return tp_webp_encode(im, 0, TRUE, TP_WEBP_METHOD, r);
}

// TP_SAMPLE_ROWS is the band height probes sample (a JPEG MCU row at 4:2:0 and a WebP
// macroblock row, so that a band is coded as it is in the whole image: exactly for JPEG's
// luma, nearly for WebP), and TP_SAMPLE_PIXELS about how many pixels a sample keeps: fewer
// for WebP, whose encoder costs some ten times JPEG's a pixel (one band of a 4:3 or wider
// thumbnail 200 px high, two of a portrait one).
#define TP_SAMPLE_ROWS 16
#define TP_SAMPLE_PIXELS 40000
#define TP_SAMPLE_PIXELS_WEBP 5000

// TP_WEBP_MARGIN is added to a target taken from JPEG at TP_REFERENCE_Q for a WebP: WebP's
// probes are of a sample its encoder codes a little otherwise than the whole, and without it
// the worst WebP of the bench came out a hair below the JPEG it was to match.
#define TP_WEBP_MARGIN 0.02

// tp_sample returns im itself (referenced) when it is small, else a new memory image of whole
// TP_SAMPLE_ROWS-row bands of it spread evenly top to bottom, about TP_SAMPLE_PIXELS in all:
// what the probes of a large thumbnail encode, so that a search costs about the same at any
// height.
static VipsImage *
tp_sample(VipsImage *im, int pixels)
{
	const int bands = im->Ysize / TP_SAMPLE_ROWS;
	const size_t line = VIPS_IMAGE_SIZEOF_LINE(im);
	int keep, i;
	VipsImage *s;

	keep = (int) (pixels / ((double) im->Xsize * TP_SAMPLE_ROWS) + 0.5);
	if (keep < 1)
		keep = 1;
	if ((size_t) im->Xsize * im->Ysize <= (size_t) pixels * 3 / 2 || keep >= bands) {
		g_object_ref(im);
		return im;
	}
	s = vips_image_new_memory();
	if (vips_image_pipelinev(s, VIPS_DEMAND_STYLE_ANY, im, NULL)) {
		g_object_unref(s);
		return NULL;
	}
	s->Ysize = keep * TP_SAMPLE_ROWS;
	if (vips_image_write_prepare(s)) {
		g_object_unref(s);
		return NULL;
	}
	for (i = 0; i < keep; i++) {
		const int from = (int) ((i + 0.5) * bands / keep) * TP_SAMPLE_ROWS;

		memcpy(VIPS_IMAGE_ADDR(s, 0, i * TP_SAMPLE_ROWS), VIPS_IMAGE_ADDR(im, 0, from),
			line * TP_SAMPLE_ROWS);
	}
	return s;
}

// tp_encode_auto encodes im (in memory) in format (JPEG or WebP) at the lowest quality in
// [qs->qmin, qs->qmax] whose decoded luma keeps an SSIM of at least the target against im's;
// the chosen quality is returned in *q. The target is qs->floor, or what JPEG at quality
// TP_REFERENCE_Q gives the image if that is lower: a thumbnail is never worse than the fixed
// quality tierpix used before gave it (grainy pictures, which no quality in reach brings to the
// floor, keep their JPEG at that quality and get a WebP that matches it), and never better
// than the floor needs. The search is a bisection of at most qs->probes probes (encode, luma
// decode, SSIM) of a sample of the image (tp_sample), then one encode of the whole at the
// quality found. With qs->fixed set, it is the one encode at that quality.
#define TP_REFERENCE_Q 80

int
tp_encode_auto(VipsImage *im, int format, const tp_quality *qs, tp_rendered *r, int *q)
{
	VipsImage *sample;
	VipsPel *ref, *dec;
	tp_rendered probe;
	double target;
	int lo = format == TP_FORMAT_JPEG ? qs->qmin : qs->qmin_webp, hi = qs->qmax, i, res = -1;
	size_t n;

	memset(r, 0, sizeof(*r));
	if (qs->fixed > 0) {
		*q = qs->fixed;
		return tp_encode_at(im, format, qs->fixed, FALSE, r);
	}
	if (!(sample = tp_sample(im, format == TP_FORMAT_WEBP ? TP_SAMPLE_PIXELS_WEBP : TP_SAMPLE_PIXELS)))
		return -1;
	n = (size_t) sample->Xsize * sample->Ysize;
	ref = g_malloc(n);
	dec = g_malloc(n);
	tp_luma(sample, ref);
	target = qs->floor;
	// Only a JPEG original has a JPEG at TP_REFERENCE_Q to compare with; a probe of it for
	// any other would be thrown away.
	if (qs->relative) {
		const double s = tp_probe(sample, ref, dec, TP_FORMAT_JPEG, TP_REFERENCE_Q, &probe);

		if (s < 0)
			goto done;
		g_free(probe.buf);
		if (s < target)
			target = format == TP_FORMAT_WEBP ? VIPS_MIN(target, s + TP_WEBP_MARGIN) : s;
	}
	if (format == TP_FORMAT_JPEG) {
		if (target < qs->floor)
			lo = hi = TP_REFERENCE_Q;
		else
			hi = VIPS_MIN(hi, TP_REFERENCE_Q);
	}
	// hi meets the target until a probe says otherwise; the answer lies in [lo, hi].
	for (i = 0; i < (format == TP_FORMAT_WEBP ? qs->probes_webp : qs->probes) && lo < hi; i++) {
		const int start = format == TP_FORMAT_JPEG ? qs->start : qs->start_webp;
		const int mid = i == 0 ? VIPS_CLIP(lo, start, hi - 1) : (lo + hi) / 2;
		const double s = tp_probe(sample, ref, dec, format, mid, &probe);

		if (s < 0)
			goto done;
		g_free(probe.buf);
		if (s >= target)
			hi = mid;
		else
			lo = mid + 1;
	}
	*q = hi;
	res = tp_encode_at(im, format, hi, FALSE, r);
done:
	g_free(ref);
	g_free(dec);
	g_object_unref(sample);
	return res;
}
