// Package imaging is tierpix's libvips work: sniffing, validating uploads and rendering
// thumbnails. Both the API (validation) and the origin (rendering) use it, which keeps the two
// apart from each other and from govips.
//
// libvips is started once per process through govips (Start), which also routes libvips'
// log output to slog. The image work itself goes through a few small cgo helpers (vips.c)
// rather than govips, because govips reads whole files into memory before decoding and does
// not expose the loader options validation needs:
//
//   - Validate opens the file with the loader for the format its magic bytes name, in
//     sequential mode and failing on errors. The header alone gives the dimensions, so the
//     pixel cap is enforced before a single pixel is decoded; the full decode that follows
//     streams through a few scanlines, so validating a 50 MP JPEG stays within a few MB.
//     Interlaced PNGs are the exception: libvips decodes them whole, bounded by the pixel cap.
//     "Failing on errors" is libvips' fail_on=error: truncation, bad headers, bad tables and
//     PNG checksum or zlib errors reject a file, while damage libjpeg only warns about (stray
//     bytes in the compressed data, which it conceals) does not, because cameras and editors
//     produce such warnings on files that display fine.
//   - Thumbnail runs libvips' thumbnail operation, which applies the EXIF orientation, turns
//     CMYK into sRGB and resizes with Lanczos 3. JPEGs are shrunk on load, by the largest of
//     8, 4 and 2 that the reduction allows (as imgproxy does; libvips' own choice is one step
//     smaller and costs up to twice the CPU for no visible difference: tp_jpeg_shrink in
//     vips.c has the figures). Both sides of the result are worked out from the header and
//     forced: shrink-on-load rounds each side on its own, and scaling by the height alone
//     would carry that rounding into the width (a 6000×403 panorama came out 1493 px wide
//     at 100 px high instead of 1489). An image tagged with
//     an ICC profile is then transformed from it to sRGB, so that stripping the profile keeps
//     its colours; untagged images are taken to be sRGB and left alone. The result is
//     encoded as the Encoding says (the original's format unless it names another) with
//     every metadata block stripped (libvips still writes the JFIF pixel density). JPEG
//     (4:2:0 chroma, optimised Huffman tables) and lossy WebP (alpha kept losslessly) are
//     encoded at the lowest quality that keeps the thumbnail within an SSIM floor of its
//     own pixels, or at a fixed one (Quality, in quality.go); a WebP of a synthetic picture
//     is also encoded losslessly, and the smaller kept. PNG keeps the alpha channel, as
//     8-bit truecolour or grey, written with libpng: photographs with Huffman coding alone
//     after the "sub" filter, synthetic pictures at zlib level 6 unfiltered (tp_png_encode
//     in vips.c tells them apart and has the figures). Palette PNGs come back as truecolour
//     (re-quantising would cost more than it saves at thumbnail sizes) and 16-bit PNGs
//     come back with 8 bits per sample, which browsers show the same and which is half
//     the size.
//
// Validate and Thumbnail are safe for concurrent use. Each call pins its goroutine to an OS
// thread and releases libvips' per-thread state when done. Concurrency across calls is the
// caller's to bound, best to the number of cores: more renders at once only make each cost
// more CPU. libvips itself runs each operation on Config.Concurrency threads (one by
// default; two cost more CPU per render on a server that already renders one per core).
package imaging

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"github.com/davidbyttow/govips/v2/vips"
	"github.com/tierpix/tierpix"
)

// Config sets up libvips for a proxy workload.
type Config struct {
	// Concurrency is libvips' worker threads per operation. Default 1: the server runs
	// operations in parallel already.
	Concurrency int
}

// Validate reports a configuration that libvips cannot start with.
func (c Config) Validate() error {
	if c.Concurrency < 0 {
		return fmt.Errorf("imaging: concurrency must not be negative, got %d", c.Concurrency)
	}
	return nil
}

var (
	startOnce sync.Once
	startErr  error
	started   atomic.Bool
	// debugLog receives the libvips detail behind client-facing errors, which carry only a
	// client-safe message. It is the logger given to Start.
	debugLog atomic.Pointer[slog.Logger]
)

// errNotStarted is returned by Validate and Thumbnail when Start has not run: libvips would
// otherwise start on first use with govips' defaults (operation cache on, untrusted loaders
// allowed).
var errNotStarted = errors.New("imaging: libvips is not started; call imaging.Start first")

// Start initialises libvips once per process: VIPS_BLOCK_UNTRUSTED set before start, the
// operation cache off, warnings routed to logger. It also sets glibc's malloc for rendering
// (two arenas, freed buffers kept for reuse rather than returned to the kernel after every
// render) unless MALLOC_ARENA_MAX, MALLOC_TRIM_THRESHOLD_ or MALLOC_MMAP_THRESHOLD_ are set;
// see tp_tune_malloc in vips.c. Calling it again is a no-op that returns the first call's
// error.
func Start(cfg Config, logger *slog.Logger) error {
	startOnce.Do(func() {
		startErr = start(cfg, logger)
		started.Store(startErr == nil)
	})
	return startErr
}

// Started reports whether Start has run and succeeded.
func Started() bool { return started.Load() }

func start(cfg Config, logger *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 1
	}
	if logger == nil {
		logger = slog.Default()
	}
	debugLog.Store(logger)
	// Before libvips starts its threads, so that they allocate under these settings.
	tuneMalloc()

	// libvips reads the variable in vips_init: loaders not fuzzed for hostile input
	// (ImageMagick, PDF, MATLAB, ...) are never picked, whatever bytes arrive.
	if err := os.Setenv("VIPS_BLOCK_UNTRUSTED", "1"); err != nil {
		return fmt.Errorf("set VIPS_BLOCK_UNTRUSTED: %w", err)
	}
	// Set before Startup so that govips' own start-up chatter is filtered too.
	vips.LoggingSettings(func(domain string, level vips.LogLevel, msg string) {
		switch level {
		case vips.LogLevelError, vips.LogLevelCritical:
			logger.Error(msg, "component", "libvips", "domain", domain)
		case vips.LogLevelWarning:
			logger.Warn(msg, "component", "libvips", "domain", domain)
		}
	}, vips.LogLevelWarning)
	// The operation cache is off as in imgproxy: a proxy rarely repeats an operation on the
	// same file, and cached operations would keep file handles and decoded pixels alive.
	err := vips.Startup(&vips.Config{
		ConcurrencyLevel: cfg.Concurrency,
		MaxCacheFiles:    0,
		MaxCacheMem:      0,
		MaxCacheSize:     0,
	})
	if err != nil {
		return fmt.Errorf("start libvips: %w", err)
	}
	blockUntrusted()
	// Before any render: liborc's compiler crashes when two renders build resizes at once.
	disableVectors()
	return nil
}

// PNGMagic starts every PNG file; the origin checks cached renders against it too.
var PNGMagic = []byte("\x89PNG\r\n\x1a\n")

var jpegMagic = []byte{0xFF, 0xD8, 0xFF}

// Sniff returns tierpix.FormatJPEG or tierpix.FormatPNG from the magic bytes at the start of a
// file, or "" for anything else. It needs at most the first 8 bytes.
func Sniff(head []byte) string {
	switch {
	case bytes.HasPrefix(head, PNGMagic):
		return tierpix.FormatPNG
	case bytes.HasPrefix(head, jpegMagic):
		return tierpix.FormatJPEG
	}
	return ""
}

// sniffFile reads the magic bytes of the file at path.
func sniffFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	head := make([]byte, len(PNGMagic))
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return Sniff(head[:n]), nil
}

// Info is what validation learns about an original.
type Info struct {
	Format string // tierpix.FormatJPEG or tierpix.FormatPNG
	Width  int    // as displayed, after EXIF orientation
	Height int    // as displayed, after EXIF orientation
}

// Client-facing validation errors. They are built afresh each time because *tierpix.Error
// carries a mutable Fields map.
func errUnsupported() error {
	const msg = "Only PNG and JPEG images are accepted."
	return &tierpix.Error{Code: tierpix.EUNSUPPORTED, Message: msg, Fields: map[string]string{"image": msg}}
}

func errCorrupt() error {
	const msg = "The image data is corrupt or truncated."
	return &tierpix.Error{Code: tierpix.EUNPROCESSABLE, Message: msg, Fields: map[string]string{"image": msg}}
}

func errTooManyPixels(w, h int, limit int64) error {
	msg := fmt.Sprintf("The image is %d×%d = %d pixels; the limit is %d.", w, h, int64(w)*int64(h), limit)
	return &tierpix.Error{Code: tierpix.EUNPROCESSABLE, Message: msg, Fields: map[string]string{"image": msg}}
}

// Validate checks an uploaded file: the format by magic bytes (EUNSUPPORTED otherwise), the
// pixel count from the header against maxPixels before any pixel is decoded (EUNPROCESSABLE),
// then a full decode that fails on corrupt or truncated data (EUNPROCESSABLE). Errors are
// *tierpix.Error with a client-safe message and the field "image". A maxPixels of zero or
// less sets no limit. Errors that are not the upload's fault (the file cannot be opened,
// libvips is not started) are plain errors, so they surface as internal errors.
//
// The decode is admitted by budget (nil: no limit) at the cost DecodeCost estimates from the
// header, after the pixel cap: a job over the whole budget is EUNPROCESSABLE, one that finds
// no room in time EUNAVAILABLE.
func Validate(ctx context.Context, path string, maxPixels int64, budget *Budget) (Info, error) {
	if !started.Load() {
		return Info{}, errNotStarted
	}
	format, err := sniffFile(path)
	if err != nil {
		return Info{}, err
	}
	if format == "" {
		return Info{}, errUnsupported()
	}
	hd, err := readHeader(path)
	if err != nil {
		logDetail("read header", path, err)
		return Info{}, err
	}
	if maxPixels > 0 && int64(hd.width)*int64(hd.height) > maxPixels {
		return Info{}, errTooManyPixels(hd.width, hd.height, maxPixels)
	}
	release, err := budget.Acquire(ctx, hd.cost())
	if err != nil {
		return Info{}, err
	}
	defer release()

	defer lockThread()()
	im, h, err := openHeader(path, format)
	if err != nil {
		logDetail("open header", path, err)
		return Info{}, errCorrupt()
	}
	defer im.close()
	// The loader is chosen from the magic bytes, so this holds by construction; it is checked
	// so that a change in how files are opened cannot let another loader through unnoticed.
	if h.loader != loaders[format] {
		logDetail("loader mismatch", path, fmt.Errorf("sniffed %s, opened by %q", format, h.loader))
		return Info{}, errUnsupported()
	}
	if maxPixels > 0 && int64(h.width)*int64(h.height) > maxPixels {
		return Info{}, errTooManyPixels(h.width, h.height, maxPixels)
	}
	if err := im.decode(); err != nil {
		logDetail("decode", path, err)
		return Info{}, errCorrupt()
	}

	info := Info{Format: format, Width: h.width, Height: h.height}
	// Orientations 5 to 8 turn the image by a quarter, so it displays with the sides swapped.
	if h.orientation >= 5 {
		info.Width, info.Height = info.Height, info.Width
	}
	return info, nil
}

// logDetail records the libvips detail behind an upload's rejection. It is Debug: a bad
// upload is the client's doing, and the client gets the reason in the response.
func logDetail(step, path string, err error) {
	if l := debugLog.Load(); l != nil {
		l.Debug("image rejected", "step", step, "path", path, "err", err)
	}
}

// Rendered is an encoded thumbnail.
type Rendered struct {
	Body    []byte
	Format  string // the Encoding's
	Width   int
	Height  int
	Quality int // the JPEG or lossy WebP quality chosen; 0 for PNG and lossless WebP
}

// Thumbnail renders the original at path with exactly the given height (or at its own size
// when it is not taller), the original's aspect ratio, EXIF orientation applied and metadata
// stripped, encoded as enc says (PNG and WebP keep alpha). It uses libvips' thumbnail from
// the file so JPEG shrink-on-load applies.
//
// The original is expected to have passed Validate, so every failure here is an internal
// error; a missing file wraps fs.ErrNotExist. A height below 1 is EINVALID.
func Thumbnail(path string, height int, enc Encoding) (Rendered, error) {
	if !started.Load() {
		return Rendered{}, errNotStarted
	}
	if height < 1 || height > maxCoord {
		return Rendered{}, tierpix.Invalid("height", fmt.Sprintf("must be between 1 and %d", maxCoord))
	}
	format, err := sniffFile(path)
	if err != nil {
		return Rendered{}, err
	}
	if format == "" {
		return Rendered{}, fmt.Errorf("thumbnail %s: the original is neither PNG nor JPEG", path)
	}
	out, err := enc.outFormat(format)
	if err != nil {
		return Rendered{}, err
	}

	defer lockThread()()
	r, err := thumbnail(path, format, height, out, enc.Quality)
	if err != nil {
		return Rendered{}, fmt.Errorf("thumbnail %s at height %d: %w", path, height, err)
	}
	return r, nil
}
