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
};

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
int tp_thumbnail(const char *path, int format, int height, tp_rendered *r);
int tp_thumbnail_with_intermediate(const char *path, int format, int shrink,
	int tw, int th, int iw, int ih, tp_rendered *thumb, tp_rendered *inter);
int tp_thumbnail_from_intermediate(const char *path, int format, int shrink, int tw, int th,
	tp_rendered *r);
char *tp_error(void);
void tp_thread_done(void);
int tp_live_objects(void);

#endif
