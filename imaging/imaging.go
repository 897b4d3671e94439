// Package imaging is tierpix's libvips work: sniffing, validating uploads and rendering
// thumbnails. Both the API (validation) and the origin (rendering) use it, which keeps the two
// apart from each other and from govips.
//
// SKELETON: the exported API below is fixed; the bodies are to be written.
package imaging

import (
	"log/slog"
)

// Config sets up libvips for a proxy workload.
type Config struct {
	// Concurrency is libvips' worker threads per operation. Default 1: the server runs
	// operations in parallel already.
	Concurrency int
}

// Start initialises libvips once per process: VIPS_BLOCK_UNTRUSTED set before start, the
// operation cache off, warnings routed to logger. Calling it again is a no-op.
func Start(cfg Config, logger *slog.Logger) error { panic("unimplemented") }

// Sniff returns tierpix.FormatJPEG or tierpix.FormatPNG from the magic bytes at the start of a
// file, or "" for anything else. It needs at most the first 8 bytes.
func Sniff(head []byte) string { panic("unimplemented") }

// Info is what validation learns about an original.
type Info struct {
	Format string // tierpix.FormatJPEG or tierpix.FormatPNG
	Width  int    // as displayed, after EXIF orientation
	Height int    // as displayed, after EXIF orientation
}

// Validate checks an uploaded file: the format by magic bytes (EUNSUPPORTED otherwise), the
// pixel count from the header against maxPixels before any pixel is decoded (EUNPROCESSABLE),
// then a full decode that fails on corrupt or truncated data (EUNPROCESSABLE). Errors are
// *tierpix.Error with a client-safe message and the field "image".
func Validate(path string, maxPixels int64) (Info, error) { panic("unimplemented") }

// Rendered is an encoded thumbnail.
type Rendered struct {
	Body   []byte
	Format string // same as the original's
	Width  int
	Height int
}

// Thumbnail renders the original at path with exactly the given height (or at its own size
// when it is not taller), the original's aspect ratio, EXIF orientation applied and metadata
// stripped, in the original's format (PNG keeps alpha). It uses libvips' thumbnail from the
// file so JPEG shrink-on-load applies.
func Thumbnail(path string, height int) (Rendered, error) { panic("unimplemented") }
