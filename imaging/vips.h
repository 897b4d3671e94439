// Small libvips helpers for package imaging, where govips reads whole files into memory or
// lacks an option tierpix needs (fail_on, sequential access, strip on save).

#ifndef TIERPIX_IMAGING_VIPS_H
#define TIERPIX_IMAGING_VIPS_H

#include <stdlib.h>
#include <vips/vips.h>

// Formats, matching the order of the Go side.
enum {
	TP_FORMAT_JPEG = 1,
	TP_FORMAT_PNG = 2,
	TP_FORMAT_WEBP = 3,
};

// tp_quality is how a thumbnail's quality is chosen: fixed (when above 0), or the lowest in
// [qmin, qmax] whose SSIM reaches floor, searched from start in at most probes encodes.
typedef struct {
	int fixed;
	double floor;
	int qmin;      // JPEG's
	int qmin_webp; // WebP's, below which it blurs what JPEG would block
	int qmax;
	int relative;  // the target may be what JPEG at 80 gives, if lower than floor
	int start;      // the first JPEG probe
	int start_webp; // the first WebP probe
	int probes;      // JPEG's
	int probes_webp; // WebP's, fewer: a WebP probe costs some five JPEG ones
} tp_quality;

// tp_header is what the loader learnt from the file's header.
typedef struct {
	int width;
	int height;
	int orientation;
	char loader[32];
} tp_header;

// tp_rendered is an encoded thumbnail; buf is owned by libvips and freed with g_free.
typedef struct {
	void *buf;
	size_t len;
	int width;
	int height;
	int quality; // the lossy encoder's quality; 0 for PNG and lossless WebP
} tp_rendered;

void tp_tune_malloc(void);
void tp_block_untrusted(void);
void tp_disable_vectors(void);
int tp_vectors_enabled(void);
VipsSource *tp_source_new(const char *path);
int tp_load(const char *path, int format, int shrink, VipsImage **out);
int tp_open(const char *path, int format, VipsImage **out);
void tp_read_header(VipsImage *im, tp_header *h);
int tp_decode(VipsImage *im);
void tp_unref(VipsImage *im);
int tp_jpeg_shrink(int w, int h, int tw, int th);
int tp_thumbnail(const char *path, int format, int height, int out, const tp_quality *qs,
	tp_rendered *r);
int tp_intermediate(const char *path, int format, int shrink, int iw, int ih,
	tp_rendered *inter);
int tp_thumbnail_from_intermediate(const char *path, int format, int shrink, int tw, int th,
	int out, const tp_quality *qs, tp_rendered *r);
void tp_luma(VipsImage *im, VipsPel *y);
double tp_ssim(const VipsPel *a, const VipsPel *b, int w, int h);
int tp_encode_at(VipsImage *im, int format, int q, int probe, tp_rendered *r);
double tp_probe(VipsImage *im, const VipsPel *ref, VipsPel *dec, int format, int q,
	tp_rendered *r);
int tp_webp_lossless(VipsImage *im, tp_rendered *r);
int tp_encode_auto(VipsImage *im, int format, const tp_quality *qs, tp_rendered *r, int *q);
char *tp_error(void);
void tp_thread_done(void);
int tp_live_objects(void);

#endif
