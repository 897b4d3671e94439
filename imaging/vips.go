package imaging

/*
#cgo pkg-config: vips libpng
#cgo LDFLAGS: -lm
#include "vips.h"
*/
import "C"

import (
	"bytes"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/tierpix/tierpix"
)

// maxCoord is VIPS_MAX_COORD, the largest width or height libvips handles: the bound of the
// heights a thumbnail may be asked for.
const maxCoord = C.VIPS_MAX_COORD

// header is what the loader learnt from a file's header, before any pixel is decoded.
type header struct {
	width, height int
	orientation   int    // EXIF orientation 1..8, 1 when absent
	loader        string // libvips loader nickname, such as "jpegload"
}

// loaders maps each accepted format to the libvips loader that must have opened it (from a
// source: see tp_open).
var loaders = map[string]string{
	tierpix.FormatJPEG: "jpegload_source",
	tierpix.FormatPNG:  "pngload_source",
}

func cFormat(format string) C.int {
	switch format {
	case tierpix.FormatJPEG:
		return C.TP_FORMAT_JPEG
	case tierpix.FormatPNG:
		return C.TP_FORMAT_PNG
	case tierpix.FormatWebP:
		return C.TP_FORMAT_WEBP
	}
	return 0
}

// vipsError takes the message libvips left for the failure that just happened.
func vipsError() error {
	s := C.tp_error()
	defer C.g_free(C.gpointer(s))
	return fmt.Errorf("libvips: %s", C.GoString(s))
}

// lockThread pins the goroutine to its OS thread for the length of one libvips operation and
// returns the function that releases libvips' per-thread buffers and the thread. Without the
// pin, vips_thread_shutdown could run on a thread other than the one that did the work.
func lockThread() func() {
	runtime.LockOSThread()
	return func() {
		C.tp_thread_done()
		runtime.UnlockOSThread()
	}
}

// vipsImage is an open libvips image; close releases it.
type vipsImage struct {
	p *C.VipsImage
}

// openHeader opens path with the loader for format, reading only the header. The error is
// libvips' own message: for a file whose magic bytes matched, a failure here means the data
// is damaged.
func openHeader(path, format string) (*vipsImage, header, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var p *C.VipsImage
	if C.tp_open(cpath, cFormat(format), &p) != 0 {
		return nil, header{}, vipsError()
	}
	var h C.tp_header
	C.tp_read_header(p, &h)
	return &vipsImage{p: p}, header{
		width:       int(h.width),
		height:      int(h.height),
		orientation: int(h.orientation),
		loader:      C.GoString(&h.loader[0]),
	}, nil
}

// decode streams every pixel through libvips once, failing on corrupt or truncated data.
func (im *vipsImage) decode() error {
	if C.tp_decode(im.p) != 0 {
		return vipsError()
	}
	return nil
}

func (im *vipsImage) close() {
	C.tp_unref(im.p)
	im.p = nil
}

// thumbnail runs libvips' thumbnail on the file (an original in format) and encodes the
// result in out.
func thumbnail(path, format string, height int, out string, q Quality) (Rendered, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var r C.tp_rendered
	qs := q.c(format)
	if C.tp_thumbnail(cpath, cFormat(format), C.int(height), cFormat(out), &qs, &r) != 0 {
		return Rendered{}, vipsError()
	}
	defer C.g_free(C.gpointer(r.buf))
	return fromC(r, out), nil
}

// fromC copies a result out of libvips' buffer, which the caller frees.
func fromC(r C.tp_rendered, format string) Rendered {
	return Rendered{
		Body:    bytes.Clone(unsafe.Slice((*byte)(r.buf), int(r.len))),
		Format:  format,
		Width:   int(r.width),
		Height:  int(r.height),
		Quality: int(r.quality),
	}
}

// tuneMalloc sets glibc's allocator for rendering; see tp_tune_malloc in vips.c.
func tuneMalloc() { C.tp_tune_malloc() }

// disableVectors keeps libvips from compiling SIMD code at run time; see tp_disable_vectors.
func disableVectors() { C.tp_disable_vectors() }

// vectorsEnabled reports whether libvips would compile SIMD code at run time.
func vectorsEnabled() bool { return C.tp_vectors_enabled() != 0 }

// blockUntrusted keeps libvips from loading with operations marked untrusted.
func blockUntrusted() { C.tp_block_untrusted() }

// liveObjects counts the libvips objects alive in the process, for leak tests.
func liveObjects() int { return int(C.tp_live_objects()) }
