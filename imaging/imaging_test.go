package imaging_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/davidbyttow/govips/v2/vips"
	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/imaging"
)

// lockedBuffer collects the log output of libvips, which logs from whatever thread it is on.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// vipsLog is what the logger given to Start has received.
var vipsLog lockedBuffer

func TestMain(m *testing.M) {
	logger := slog.New(slog.NewTextHandler(&vipsLog, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := imaging.Start(imaging.Config{}, logger); err != nil {
		fmt.Fprintln(os.Stderr, "start imaging:", err)
		os.Exit(1)
	}
	if path := os.Getenv(validateChildEnv); path != "" {
		os.Exit(validateChild(path))
	}
	if spec := os.Getenv(renderChildEnv); spec != "" {
		os.Exit(renderChild(spec))
	}
	os.Exit(m.Run())
}

// checkError fails unless err is a *tierpix.Error with the code and the message, the latter
// also under the field "image".
func checkError(t *testing.T, err error, code, message string) {
	t.Helper()
	var e *tierpix.Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v, want a *tierpix.Error with code %s", err, code)
	}
	if e.Code != code {
		t.Errorf("got code %s, want %s", e.Code, code)
	}
	if e.Message != message {
		t.Errorf("got message %q, want %q", e.Message, message)
	}
	if e.Fields["image"] != message {
		t.Errorf("got field image %q, want %q", e.Fields["image"], message)
	}
}

func TestStartAgain(t *testing.T) {
	// libvips is already up from TestMain; a second Start, even with a config that would not
	// validate, is a no-op that returns the first call's result.
	if err := imaging.Start(imaging.Config{Concurrency: -1}, nil); err != nil {
		t.Errorf("got %v, want nil", err)
	}
}

// TestVectorsDisabled checks that Start turned off libvips' run-time compiled SIMD code:
// liborc crashes when concurrent renders compile at once (see tp_disable_vectors).
func TestVectorsDisabled(t *testing.T) {
	if imaging.VectorsEnabled() {
		t.Error("libvips would use liborc after Start; want it off")
	}
}

// TestLogging checks that libvips' warnings about a damaged file reach the logger given to
// Start at Warn, and that the detail behind a rejection is logged at Debug.
func TestLogging(t *testing.T) {
	b := encodePNG(t, markedPicture(200, 200))
	s, e := idatRange(t, b)
	path := writeFile(t, "cut.png", b[:s+(e-s)/2])
	if _, err := imaging.Validate(context.Background(), path, 0, nil); tierpix.ErrorCode(err) != tierpix.EUNPROCESSABLE {
		t.Fatalf("got %v, want %s", err, tierpix.EUNPROCESSABLE)
	}
	var warned, detailed bool
	for _, line := range strings.Split(vipsLog.String(), "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "component=libvips") {
			warned = true
		}
		if strings.Contains(line, "level=DEBUG") && strings.Contains(line, "image rejected") && strings.Contains(line, path) {
			detailed = true
		}
	}
	if !warned {
		t.Errorf("got no libvips warning in the log, want one; log:\n%s", vipsLog.String())
	}
	if !detailed {
		t.Errorf("got no debug line about %s, want one", path)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     imaging.Config
		wantErr bool
	}{
		{name: "zero means default", cfg: imaging.Config{}},
		{name: "explicit", cfg: imaging.Config{Concurrency: 4}},
		{name: "negative", cfg: imaging.Config{Concurrency: -1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("got error %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestSniff(t *testing.T) {
	tests := []struct {
		name string
		head []byte
		want string
	}{
		{name: "png", head: []byte("\x89PNG\r\n\x1a\n"), want: tierpix.FormatPNG},
		{name: "png with more", head: []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"), want: tierpix.FormatPNG},
		{name: "jpeg jfif", head: []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 'J', 'F'}, want: tierpix.FormatJPEG},
		{name: "jpeg bare", head: []byte{0xFF, 0xD8, 0xFF}, want: tierpix.FormatJPEG},
		{name: "png cut short", head: []byte("\x89PNG\r\n\x1a")},
		{name: "jpeg cut short", head: []byte{0xFF, 0xD8}},
		{name: "gif", head: []byte("GIF89a\x01\x00")},
		{name: "webp", head: []byte("RIFF\x24\x00\x00\x00WEBP")},
		{name: "bmp", head: []byte("BM\x3a\x00\x00\x00\x00\x00")},
		{name: "text", head: []byte("hello, world")},
		{name: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := imaging.Sniff(tt.head); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// bmp is a 1×1 24-bit BMP.
func bmp() []byte {
	var b bytes.Buffer
	b.WriteString("BM")
	binary.Write(&b, binary.LittleEndian, []uint32{58, 0, 54, 40, 1, 1})
	binary.Write(&b, binary.LittleEndian, []uint16{1, 24})
	binary.Write(&b, binary.LittleEndian, []uint32{0, 4, 2835, 2835, 0, 0})
	b.Write([]byte{0, 0, 255, 0})
	return b.Bytes()
}

// webp is a 1×1 lossless WebP.
var webp = []byte("RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00")

func gifImage(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	img := image.NewPaletted(image.Rect(0, 0, 4, 4), color.Palette{color.Black, color.White})
	if err := gif.Encode(&buf, img, nil); err != nil {
		t.Fatalf("encode gif: %v", err)
	}
	return buf.Bytes()
}

// bombPNG is a PNG of a few hundred bytes whose header claims w×h RGB pixels; its image data
// is a short zlib stream, so decoding it would fail as truncated, but the pixel cap must
// reject it before any decoding starts.
func bombPNG(t *testing.T, w, h uint32) []byte {
	t.Helper()
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0) // 8-bit RGB, deflate, adaptive filter, no interlace
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(make([]byte, 64*1024))
	zw.Close()
	out := []byte("\x89PNG\r\n\x1a\n")
	out = append(out, pngChunk("IHDR", ihdr)...)
	out = append(out, pngChunk("IDAT", z.Bytes())...)
	return append(out, pngChunk("IEND", nil)...)
}

// jpegScanStart returns the offset of the first entropy-coded byte of a baseline JPEG.
func jpegScanStart(t *testing.T, b []byte) int {
	t.Helper()
	i := bytes.Index(b, []byte{0xFF, 0xDA})
	if i < 0 {
		t.Fatalf("got no SOS marker, want one")
	}
	return i + 2 + int(binary.BigEndian.Uint16(b[i+2:]))
}

// idatRange returns the offsets of the data of a PNG's first IDAT chunk.
func idatRange(t *testing.T, b []byte) (int, int) {
	t.Helper()
	i := bytes.Index(b, []byte("IDAT"))
	if i < 4 {
		t.Fatalf("got no IDAT chunk, want one")
	}
	n := int(binary.BigEndian.Uint32(b[i-4:]))
	return i + 4, i + 4 + n
}

func TestValidate(t *testing.T) {
	photo := encodeJPEG(t, smoothNoise(320, 200), 0)
	pic := encodePNG(t, markedPicture(90, 60))
	const (
		unsupported = "Only PNG and JPEG images are accepted."
		corrupt     = "The image data is corrupt or truncated."
	)

	tests := []struct {
		name      string
		file      string // the name only: the extension must not matter
		data      func(t *testing.T) []byte
		maxPixels int64
		want      imaging.Info
		wantCode  string
		wantMsg   string
	}{
		{name: "jpeg", file: "a.jpg", data: func(*testing.T) []byte { return photo },
			want: imaging.Info{Format: tierpix.FormatJPEG, Width: 320, Height: 200}},
		{name: "png", file: "a.png", data: func(*testing.T) []byte { return pic },
			want: imaging.Info{Format: tierpix.FormatPNG, Width: 90, Height: 60}},
		{name: "png named jpg", file: "a.jpg", data: func(*testing.T) []byte { return pic },
			want: imaging.Info{Format: tierpix.FormatPNG, Width: 90, Height: 60}},
		{name: "1x1 png", file: "a.png", data: func(t *testing.T) []byte { return encodePNG(t, markedPicture(1, 1)) },
			want: imaging.Info{Format: tierpix.FormatPNG, Width: 1, Height: 1}},
		{name: "grey jpeg", file: "a.jpg", data: func(t *testing.T) []byte { return encodeJPEG(t, image.NewGray(image.Rect(0, 0, 30, 50)), 0) },
			want: imaging.Info{Format: tierpix.FormatJPEG, Width: 30, Height: 50}},
		{name: "exactly at the pixel cap", file: "a.png", data: func(*testing.T) []byte { return pic }, maxPixels: 90 * 60,
			want: imaging.Info{Format: tierpix.FormatPNG, Width: 90, Height: 60}},

		{name: "gif named png", file: "a.png", data: gifImage, wantCode: tierpix.EUNSUPPORTED, wantMsg: unsupported},
		{name: "webp named jpg", file: "a.jpg", data: func(*testing.T) []byte { return webp }, wantCode: tierpix.EUNSUPPORTED, wantMsg: unsupported},
		{name: "bmp named png", file: "a.png", data: func(*testing.T) []byte { return bmp() }, wantCode: tierpix.EUNSUPPORTED, wantMsg: unsupported},
		{name: "text named jpg", file: "a.jpg", data: func(*testing.T) []byte { return []byte("just some text\n") }, wantCode: tierpix.EUNSUPPORTED, wantMsg: unsupported},
		{name: "svg named png", file: "a.png", data: func(*testing.T) []byte { return []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`) }, wantCode: tierpix.EUNSUPPORTED, wantMsg: unsupported},
		{name: "empty", file: "a.png", data: func(*testing.T) []byte { return nil }, wantCode: tierpix.EUNSUPPORTED, wantMsg: unsupported},

		{name: "one pixel over the cap", file: "a.png", data: func(*testing.T) []byte { return pic }, maxPixels: 90*60 - 1,
			wantCode: tierpix.EUNPROCESSABLE, wantMsg: "The image is 90×60 = 5400 pixels; the limit is 5399."},
		{name: "decompression bomb", file: "a.png", data: func(t *testing.T) []byte { return bombPNG(t, 30000, 30000) }, maxPixels: 50_000_000,
			wantCode: tierpix.EUNPROCESSABLE, wantMsg: "The image is 30000×30000 = 900000000 pixels; the limit is 50000000."},
		{name: "jpeg bomb", file: "a.jpg", data: func(t *testing.T) []byte {
			// A real 16×16 JPEG whose SOF claims 60000×60000.
			b := bytes.Clone(encodeJPEG(t, smoothNoise(16, 16), 0))
			i := bytes.Index(b, []byte{0xFF, 0xC0})
			binary.BigEndian.PutUint16(b[i+5:], 60000)
			binary.BigEndian.PutUint16(b[i+7:], 60000)
			return b
		}, maxPixels: 50_000_000,
			wantCode: tierpix.EUNPROCESSABLE, wantMsg: "The image is 60000×60000 = 3600000000 pixels; the limit is 50000000."},

		{name: "truncated jpeg", file: "a.jpg", data: func(t *testing.T) []byte {
			s := jpegScanStart(t, photo)
			return photo[:s+(len(photo)-s)/2]
		}, wantCode: tierpix.EUNPROCESSABLE, wantMsg: corrupt},
		{name: "jpeg cut in its header", file: "a.jpg", data: func(*testing.T) []byte { return photo[:40] },
			wantCode: tierpix.EUNPROCESSABLE, wantMsg: corrupt},
		{name: "jpeg with a bogus huffman table", file: "a.jpg", data: func(t *testing.T) []byte {
			b := bytes.Clone(photo)
			i := bytes.Index(b, []byte{0xFF, 0xC4})
			for k := i + 5; k < i+5+16; k++ { // code counts that overflow the code space
				b[k] = 0xFF
			}
			return b
		}, wantCode: tierpix.EUNPROCESSABLE, wantMsg: corrupt},
		{name: "jpeg using an undefined quantisation table", file: "a.jpg", data: func(t *testing.T) []byte {
			b := bytes.Clone(photo)
			i := bytes.Index(b, []byte{0xFF, 0xC0})
			b[i+2+8+2] = 3 // the first component's table selector; only tables 0 and 1 exist
			return b
		}, wantCode: tierpix.EUNPROCESSABLE, wantMsg: corrupt},
		{name: "truncated png", file: "a.png", data: func(t *testing.T) []byte {
			s, e := idatRange(t, pic)
			return pic[:s+(e-s)/2]
		}, wantCode: tierpix.EUNPROCESSABLE, wantMsg: corrupt},
		{name: "png cut in its header", file: "a.png", data: func(*testing.T) []byte { return pic[:20] },
			wantCode: tierpix.EUNPROCESSABLE, wantMsg: corrupt},
		{name: "png with damaged image data", file: "a.png", data: func(t *testing.T) []byte {
			b := bytes.Clone(pic)
			s, e := idatRange(t, b)
			for k := s + 4; k < e; k += 3 {
				b[k] ^= 0x5A
			}
			return b
		}, wantCode: tierpix.EUNPROCESSABLE, wantMsg: corrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.file, tt.data(t))
			got, err := imaging.Validate(context.Background(), path, tt.maxPixels, nil)
			if tt.wantCode != "" {
				checkError(t, err, tt.wantCode, tt.wantMsg)
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestValidateMissingFile(t *testing.T) {
	_, err := imaging.Validate(context.Background(), filepath.Join(t.TempDir(), "gone.png"), 0, nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want an error wrapping fs.ErrNotExist", err)
	}
	if code := tierpix.ErrorCode(err); code != tierpix.EINTERNAL {
		t.Errorf("got code %s, want %s", code, tierpix.EINTERNAL)
	}
}

// decode decodes a rendered thumbnail, checking that it is in the format and of the size
// reported. WebP, which the standard library does not read, goes through libvips.
func decode(t *testing.T, r imaging.Rendered) image.Image {
	t.Helper()
	var img image.Image
	if r.Format == tierpix.FormatWebP {
		img = decodeWebP(t, r.Body)
	} else {
		var format string
		var err error
		img, format, err = image.Decode(bytes.NewReader(r.Body))
		if err != nil {
			t.Fatalf("decode thumbnail: %v", err)
		}
		if format != r.Format {
			t.Errorf("got encoded format %s, want %s", format, r.Format)
		}
	}
	if b := img.Bounds(); b.Dx() != r.Width || b.Dy() != r.Height {
		t.Errorf("got %d×%d pixels, want the reported %d×%d", b.Dx(), b.Dy(), r.Width, r.Height)
	}
	return img
}

// TestOrientation checks that an EXIF orientation gives displayed dimensions from Validate and
// an upright thumbnail: the red marker of the displayed picture stays in the top-left corner.
func TestOrientation(t *testing.T) {
	display := markedPicture(90, 60)
	tests := []struct {
		name        string
		orientation int
		stored      image.Point
	}{
		{name: "none", orientation: 0, stored: image.Pt(90, 60)},
		{name: "1 upright", orientation: 1, stored: image.Pt(90, 60)},
		{name: "2 mirrored", orientation: 2, stored: image.Pt(90, 60)},
		{name: "3 upside down", orientation: 3, stored: image.Pt(90, 60)},
		{name: "4 flipped", orientation: 4, stored: image.Pt(90, 60)},
		{name: "5 transposed", orientation: 5, stored: image.Pt(60, 90)},
		{name: "6 turned clockwise", orientation: 6, stored: image.Pt(60, 90)},
		{name: "7 transversed", orientation: 7, stored: image.Pt(60, 90)},
		{name: "8 turned anticlockwise", orientation: 8, stored: image.Pt(60, 90)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stored := storedFor(display, tt.orientation)
			if got := stored.Bounds().Size(); got != tt.stored {
				t.Fatalf("got stored size %v, want %v", got, tt.stored)
			}
			path := writeFile(t, "o.jpg", encodeJPEG(t, stored, tt.orientation))

			r := orientedThumbnail(t, path)
			img := decode(t, r)
			corners := []struct {
				name string
				x, y int
				want color.NRGBA
			}{
				{"top left", 3, 3, red},
				{"top right", r.Width - 4, 3, green},
				{"bottom left", 3, r.Height - 4, green},
				{"bottom right", r.Width - 4, r.Height - 4, green},
			}
			for _, c := range corners {
				if got := nrgbaAt(img, c.x, c.y); !near(got, c.want, 40) {
					t.Errorf("%s: got %v, want about %v", c.name, got, c.want)
				}
			}
			if m := jpegMarkers(t, r.Body); strings.Contains(strings.Join(m, " "), "APP1") {
				t.Errorf("got markers %v, want no APP1 (Exif)", m)
			}
		})
	}
}

func TestThumbnailSize(t *testing.T) {
	tests := []struct {
		name         string
		w, h         int
		format       string
		height       int
		wantW, wantH int
	}{
		{name: "jpeg landscape", w: 640, h: 480, format: tierpix.FormatJPEG, height: 200, wantW: 267, wantH: 200},
		{name: "jpeg portrait", w: 300, h: 1000, format: tierpix.FormatJPEG, height: 400, wantW: 120, wantH: 400},
		{name: "jpeg odd ratio", w: 1001, h: 333, format: tierpix.FormatJPEG, height: 200, wantW: 601, wantH: 200},
		{name: "png odd ratio", w: 333, h: 517, format: tierpix.FormatPNG, height: 100, wantW: 64, wantH: 100},
		{name: "png to 1 pixel high", w: 300, h: 200, format: tierpix.FormatPNG, height: 1, wantW: 2, wantH: 1},
		{name: "jpeg as high as asked", w: 120, h: 200, format: tierpix.FormatJPEG, height: 200, wantW: 120, wantH: 200},
		{name: "small jpeg not upscaled", w: 50, h: 30, format: tierpix.FormatJPEG, height: 200, wantW: 50, wantH: 30},
		{name: "small png not upscaled", w: 50, h: 30, format: tierpix.FormatPNG, height: 200, wantW: 50, wantH: 30},
		{name: "1x1 png", w: 1, h: 1, format: tierpix.FormatPNG, height: 200, wantW: 1, wantH: 1},
		{name: "1x1 jpeg", w: 1, h: 1, format: tierpix.FormatJPEG, height: 400, wantW: 1, wantH: 1},
		// JPEG shrink-on-load rounds each side up on its own, which must not leak into the
		// aspect ratio: these came out 1493 and 1000 px wide when only the height was asked.
		{name: "jpeg panorama", w: 6000, h: 403, format: tierpix.FormatJPEG, height: 100, wantW: 1489, wantH: 100},
		{name: "thin jpeg", w: 4000, h: 5, format: tierpix.FormatJPEG, height: 1, wantW: 800, wantH: 1},
		{name: "1x5000 jpeg", w: 1, h: 5000, format: tierpix.FormatJPEG, height: 200, wantW: 1, wantH: 200},
		{name: "5000x1 png", w: 5000, h: 1, format: tierpix.FormatPNG, height: 200, wantW: 5000, wantH: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pic := markedPicture(tt.w, tt.h)
			var data []byte
			if tt.format == tierpix.FormatPNG {
				data = encodePNG(t, pic)
			} else {
				data = encodeJPEG(t, pic, 0)
			}
			r, err := imaging.Thumbnail(writeFile(t, "original", data), tt.height, imaging.Encoding{})
			if err != nil {
				t.Fatalf("thumbnail: %v", err)
			}
			if r.Format != tt.format {
				t.Errorf("got format %s, want %s", r.Format, tt.format)
			}
			if r.Height != tt.wantH {
				t.Errorf("got height %d, want %d", r.Height, tt.wantH)
			}
			if d := r.Width - tt.wantW; d < -1 || d > 1 {
				t.Errorf("got width %d, want %d±1", r.Width, tt.wantW)
			}
			decode(t, r)
		})
	}
}

func TestThumbnailPNG(t *testing.T) {
	// Alpha: transparent left third, half-transparent middle, opaque blue right third.
	alpha := image.NewNRGBA(image.Rect(0, 0, 90, 60))
	for y := range 60 {
		for x := range 90 {
			a := uint8(255)
			switch {
			case x < 30:
				a = 0
			case x < 60:
				a = 128
			}
			alpha.SetNRGBA(x, y, color.NRGBA{B: 200, A: a})
		}
	}
	// Palette with a transparent entry: transparent left half, orange right half.
	pal := image.NewPaletted(image.Rect(0, 0, 90, 60), color.Palette{color.NRGBA{}, color.NRGBA{R: 250, G: 130, A: 255}})
	for y := range 60 {
		for x := 45; x < 90; x++ {
			pal.SetColorIndex(x, y, 1)
		}
	}
	// 16 bits per sample, opaque (so Go writes 16-bit truecolour without alpha).
	deep := image.NewRGBA64(image.Rect(0, 0, 90, 60))
	for y := range 60 {
		for x := range 90 {
			deep.SetRGBA64(x, y, color.RGBA64{R: 0xFFFF, G: 0x8080, B: 0x2020, A: 0xFFFF})
		}
	}
	deepAlpha := image.NewNRGBA64(image.Rect(0, 0, 90, 60))
	for y := range 60 {
		for x := range 90 {
			a := uint16(0xFFFF)
			if x < 45 {
				a = 0
			}
			deepAlpha.SetNRGBA64(x, y, color.NRGBA64{R: 0x1010, G: 0xC0C0, B: 0x4040, A: a})
		}
	}
	grey16 := image.NewGray16(image.Rect(0, 0, 90, 60))
	for y := range 60 {
		for x := range 90 {
			grey16.SetGray16(x, y, color.Gray16{Y: 0x6060})
		}
	}

	type probe struct {
		x, y int
		want color.NRGBA
	}
	tests := []struct {
		name          string
		img           image.Image
		wantColorType byte // PNG IHDR colour type: 0 grey, 2 RGB, 4 grey+alpha, 6 RGBA
		probes        []probe
	}{
		{name: "alpha", img: alpha, wantColorType: 6, probes: []probe{
			{2, 10, color.NRGBA{A: 0}}, {15, 10, color.NRGBA{B: 200, A: 128}}, {28, 10, color.NRGBA{B: 200, A: 255}},
		}},
		{name: "palette with transparency", img: pal, wantColorType: 6, probes: []probe{
			{2, 10, color.NRGBA{A: 0}}, {28, 10, color.NRGBA{R: 250, G: 130, A: 255}},
		}},
		{name: "16-bit rgb", img: deep, wantColorType: 2, probes: []probe{
			{15, 10, color.NRGBA{R: 255, G: 128, B: 32, A: 255}},
		}},
		{name: "16-bit rgba", img: deepAlpha, wantColorType: 6, probes: []probe{
			{2, 10, color.NRGBA{A: 0}}, {28, 10, color.NRGBA{R: 16, G: 192, B: 64, A: 255}},
		}},
		{name: "16-bit grey", img: grey16, wantColorType: 0, probes: []probe{
			{15, 10, color.NRGBA{R: 96, G: 96, B: 96, A: 255}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "p.png", encodePNG(t, tt.img))
			info, err := imaging.Validate(context.Background(), path, 0, nil)
			if err != nil {
				t.Fatalf("validate: %v", err)
			}
			if want := (imaging.Info{Format: tierpix.FormatPNG, Width: 90, Height: 60}); info != want {
				t.Errorf("got %+v, want %+v", info, want)
			}
			r, err := imaging.Thumbnail(path, 20, imaging.Encoding{})
			if err != nil {
				t.Fatalf("thumbnail: %v", err)
			}
			if r.Width != 30 || r.Height != 20 {
				t.Errorf("got %d×%d, want 30×20", r.Width, r.Height)
			}
			img := decode(t, r)
			ihdr := pngChunks(t, r.Body)[0].data
			if depth, ct := ihdr[8], ihdr[9]; depth != 8 || ct != tt.wantColorType {
				t.Errorf("got bit depth %d colour type %d, want 8 and %d", depth, ct, tt.wantColorType)
			}
			for _, p := range tt.probes {
				got := nrgbaAt(img, p.x, p.y)
				if got.A == 0 && p.want.A == 0 {
					continue // the colour of a transparent pixel does not matter
				}
				if !near(got, p.want, 3) {
					t.Errorf("at %d,%d: got %v, want %v", p.x, p.y, got, p.want)
				}
			}
		})
	}
}

// TestThumbnailCMYK checks that a CMYK JPEG comes back as an sRGB JPEG of the same colour.
func TestThumbnailCMYK(t *testing.T) {
	rgb := image.NewNRGBA(image.Rect(0, 0, 80, 60))
	for i := range rgb.Pix {
		rgb.Pix[i] = []byte{200, 30, 30, 255}[i%4]
	}
	ref, err := vips.NewImageFromBuffer(encodeJPEG(t, rgb, 0))
	if err != nil {
		t.Fatalf("load with govips: %v", err)
	}
	t.Cleanup(ref.Close)
	if err := ref.ToColorSpace(vips.InterpretationCMYK); err != nil {
		t.Fatalf("to cmyk: %v", err)
	}
	data, _, err := ref.ExportJpeg(&vips.JpegExportParams{Quality: 95})
	if err != nil {
		t.Fatalf("export cmyk jpeg: %v", err)
	}
	if in, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
		t.Fatalf("decode original: %v", err)
	} else if _, ok := in.(*image.CMYK); !ok {
		t.Fatalf("got original of type %T, want *image.CMYK", in)
	}
	path := writeFile(t, "cmyk.jpg", data)

	if _, err := imaging.Validate(context.Background(), path, 0, nil); err != nil {
		t.Fatalf("validate: %v", err)
	}
	warnings := strings.Count(vipsLog.String(), "level=WARN")
	r, err := imaging.Thumbnail(path, 30, imaging.Encoding{})
	if err != nil {
		t.Fatalf("thumbnail: %v", err)
	}
	// vips_thumbnail leaves the CMYK profile on its sRGB result; transforming from it again
	// made libvips warn "profile incompatible with image" on every CMYK render.
	if n := strings.Count(vipsLog.String(), "level=WARN") - warnings; n != 0 {
		t.Errorf("got %d libvips warnings rendering a good CMYK file, want none; log:\n%s", n, vipsLog.String())
	}
	img := decode(t, r)
	if _, ok := img.(*image.YCbCr); !ok {
		t.Errorf("got thumbnail of type %T, want *image.YCbCr (sRGB)", img)
	}
	if got, want := nrgbaAt(img, 20, 15), (color.NRGBA{R: 200, G: 30, B: 30, A: 255}); !near(got, want, 30) {
		t.Errorf("got %v, want about %v", got, want)
	}
	for _, m := range jpegMarkers(t, r.Body) {
		if strings.HasPrefix(m, "APP2") || strings.HasPrefix(m, "APP14") {
			t.Errorf("got marker %s, want no ICC profile and no Adobe (CMYK) segment", m)
		}
	}
}

// TestThumbnailStripsMetadata feeds originals that carry Exif, comments, text and profile
// metadata and checks that none of it reaches the thumbnail.
func TestThumbnailStripsMetadata(t *testing.T) {
	t.Run("jpeg", func(t *testing.T) {
		data := encodeJPEG(t, markedPicture(90, 60), 1)
		com := []byte{0xFF, 0xFE, 0, 9, 's', 'e', 'c', 'r', 'e', 't', '!'}
		data = append(append(append([]byte{}, data[:2]...), com...), data[2:]...)
		path := writeFile(t, "m.jpg", data)
		if m := jpegMarkers(t, data); !strings.Contains(strings.Join(m, " "), "APP1:Exif") {
			t.Fatalf("got original markers %v, want APP1:Exif", m)
		}
		r, err := imaging.Thumbnail(path, 30, imaging.Encoding{})
		if err != nil {
			t.Fatalf("thumbnail: %v", err)
		}
		for _, m := range jpegMarkers(t, r.Body) {
			if m == "COM" || (strings.HasPrefix(m, "APP") && !strings.HasPrefix(m, "APP0:JFIF")) {
				t.Errorf("got marker %s, want none but JFIF", m)
			}
		}
		if bytes.Contains(r.Body, []byte("Exif")) || bytes.Contains(r.Body, []byte("secret")) {
			t.Errorf("got Exif or comment bytes in the thumbnail, want none")
		}
	})
	t.Run("png", func(t *testing.T) {
		data := encodePNG(t, markedPicture(90, 60))
		data = insertPNGChunk(data, pngChunk("eXIf", exifTIFF(1)))
		data = insertPNGChunk(data, pngChunk("tEXt", []byte("Comment\x00secret!")))
		path := writeFile(t, "m.png", data)
		r, err := imaging.Thumbnail(path, 30, imaging.Encoding{})
		if err != nil {
			t.Fatalf("thumbnail: %v", err)
		}
		// pHYs (pixel density) is written by libvips even when stripping; it says nothing
		// about the picture's origin.
		allowed := map[string]bool{"pHYs": true, "IHDR": true, "PLTE": true, "tRNS": true, "IDAT": true, "IEND": true}
		for _, c := range pngChunks(t, r.Body) {
			if !allowed[c.typ] {
				t.Errorf("got chunk %s, want only image chunks", c.typ)
			}
		}
	})
}

// TestPNGOrientation checks that a PNG's eXIf orientation is honoured like a JPEG's.
func TestPNGOrientation(t *testing.T) {
	display := markedPicture(90, 60)
	data := encodePNG(t, storedFor(display, 6))
	data = insertPNGChunk(data, pngChunk("eXIf", exifTIFF(6)))
	path := writeFile(t, "o.png", data)
	r := orientedThumbnail(t, path)
	img := decode(t, r)
	if got := nrgbaAt(img, 3, 3); !near(got, red, 10) {
		t.Errorf("top left: got %v, want %v", got, red)
	}
}

func TestThumbnailErrors(t *testing.T) {
	good := writeFile(t, "g.png", encodePNG(t, markedPicture(10, 10)))
	tests := []struct {
		name     string
		path     string
		height   int
		wantCode string
		wantIs   error
	}{
		{name: "zero height", path: good, height: 0, wantCode: tierpix.EINVALID},
		{name: "negative height", path: good, height: -5, wantCode: tierpix.EINVALID},
		{name: "missing file", path: filepath.Join(t.TempDir(), "gone.jpg"), height: 20, wantCode: tierpix.EINTERNAL, wantIs: fs.ErrNotExist},
		{name: "not an image", path: writeFile(t, "t.jpg", []byte("text")), height: 20, wantCode: tierpix.EINTERNAL},
		{name: "truncated", path: writeFile(t, "c.png", encodePNG(t, markedPicture(200, 200))[:300]), height: 20, wantCode: tierpix.EINTERNAL},
		// Shrunk on load by 8, so read through tp_load rather than vips_thumbnail.
		{name: "truncated jpeg", path: writeFile(t, "c.jpg", cutJPEG(t, encodeJPEG(t, smoothNoise(400, 300), 0))), height: 20, wantCode: tierpix.EINTERNAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := imaging.Thumbnail(tt.path, tt.height, imaging.Encoding{})
			if code := tierpix.ErrorCode(err); code != tt.wantCode {
				t.Errorf("got code %q (%v), want %q", code, err, tt.wantCode)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("got %v, want an error wrapping %v", err, tt.wantIs)
			}
		})
	}
}

// TestConcurrent runs validations and renders from many goroutines at once, each checking its
// own result, so that shared state in the cgo layer would show up as wrong answers or crashes.
func TestConcurrent(t *testing.T) {
	type job struct {
		path   string
		w, h   int
		format string
	}
	var jobs []job
	for i := range 6 {
		w, h := 60+i*17, 40+i*11
		jobs = append(jobs,
			job{writeFile(t, "c.jpg", encodeJPEG(t, markedPicture(w, h), 0)), w, h, tierpix.FormatJPEG},
			job{writeFile(t, "c.png", encodePNG(t, markedPicture(w, h))), w, h, tierpix.FormatPNG})
	}
	bad := writeFile(t, "bad.png", encodePNG(t, markedPicture(100, 100))[:200])

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 8 {
		wg.Go(func() {
			for i := range 5 {
				j := jobs[(g+i)%len(jobs)]
				info, err := imaging.Validate(context.Background(), j.path, 0, nil)
				if err != nil || info != (imaging.Info{Format: j.format, Width: j.w, Height: j.h}) {
					errs <- fmt.Errorf("validate %s: got %+v, %v; want %dx%d", j.format, info, err, j.w, j.h)
				}
				r, err := imaging.Thumbnail(j.path, 20, imaging.Encoding{})
				if err != nil || r.Height != 20 || r.Format != j.format {
					errs <- fmt.Errorf("thumbnail %s: got %d high %s, %v; want 20 high", j.format, r.Height, r.Format, err)
				}
				if _, err := imaging.Validate(context.Background(), bad, 0, nil); tierpix.ErrorCode(err) != tierpix.EUNPROCESSABLE {
					errs <- fmt.Errorf("validate bad: got %v, want %s", err, tierpix.EUNPROCESSABLE)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// encodeJPEGFile is jpeg.Encode to a file, for images too large to hold twice.
func encodeJPEGFile(t testing.TB, path string, img image.Image) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	defer f.Close()
	if err := jpeg.Encode(f, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatalf("encode: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// TestThumbnailICC checks that a JPEG tagged with a wide-gamut profile (Display P3) is
// converted to sRGB before its profile is stripped, so that it keeps its colours.
func TestThumbnailICC(t *testing.T) {
	want := color.NRGBA{R: 230, G: 20, B: 20, A: 255}
	rgb := image.NewNRGBA(image.Rect(0, 0, 80, 60))
	for i := range rgb.Pix {
		rgb.Pix[i] = []byte{want.R, want.G, want.B, 255}[i%4]
	}
	ref, err := vips.NewImageFromBuffer(encodeJPEG(t, rgb, 0))
	if err != nil {
		t.Fatalf("load with govips: %v", err)
	}
	t.Cleanup(ref.Close)
	if err := ref.TransformICCProfile("p3"); err != nil {
		t.Fatalf("to p3: %v", err)
	}
	data, _, err := ref.ExportJpeg(&vips.JpegExportParams{Quality: 95})
	if err != nil {
		t.Fatalf("export p3 jpeg: %v", err)
	}
	if m := strings.Join(jpegMarkers(t, data), " "); !strings.Contains(m, "APP2:ICC_PROFILE") {
		t.Fatalf("got original markers %s, want an ICC profile", m)
	}
	in, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decode original: %v", err)
	}
	if got := nrgbaAt(in, 20, 15); near(got, want, 12) {
		t.Fatalf("got original pixels %v, want P3 values unlike sRGB %v", got, want)
	}

	r, err := imaging.Thumbnail(writeFile(t, "p3.jpg", data), 30, imaging.Encoding{})
	if err != nil {
		t.Fatalf("thumbnail: %v", err)
	}
	if got := nrgbaAt(decode(t, r), 20, 15); !near(got, want, 12) {
		t.Errorf("got %v, want about %v", got, want)
	}
	for _, m := range jpegMarkers(t, r.Body) {
		if strings.HasPrefix(m, "APP2") {
			t.Errorf("got marker %s, want no ICC profile", m)
		}
	}
}

// TestNoLeaks checks that validations and renders, failed ones included, give back every
// file descriptor and every byte libvips tracks: each VipsImage is unreferenced and the
// per-thread buffers are released.
func TestNoLeaks(t *testing.T) {
	jpg := writeFile(t, "l.jpg", encodeJPEG(t, smoothNoise(400, 300), 6))
	pngPath := writeFile(t, "l.png", encodePNG(t, markedPicture(300, 200)))
	full := encodePNG(t, markedPicture(300, 300))
	s, e := idatRange(t, full)
	cut := writeFile(t, "cut.png", full[:s+(e-s)/2])
	big := writeFile(t, "big.jpg", encodeJPEG(t, photo(600, 400, jpegGrain), 0))
	// Every encoder and both ways of choosing a quality.
	encodings := []imaging.Encoding{
		{},
		{Format: tierpix.FormatWebP},
		{Format: tierpix.FormatJPEG, Quality: imaging.Quality{Fixed: 80}},
		{Format: tierpix.FormatPNG},
	}

	interDir := t.TempDir()
	run := func() {
		for i, p := range []string{jpg, pngPath} {
			info, err := imaging.Validate(context.Background(), p, 0, nil)
			if err != nil {
				t.Fatalf("validate %s: %v", p, err)
			}
			if _, err := imaging.Validate(context.Background(), p, 100, nil); tierpix.ErrorCode(err) != tierpix.EUNPROCESSABLE {
				t.Fatalf("validate %s over the cap: got %v, want %s", p, err, tierpix.EUNPROCESSABLE)
			}
			for _, enc := range encodings {
				if _, err := imaging.Thumbnail(p, 50, enc); err != nil {
					t.Fatalf("thumbnail %s as %+v: %v", p, enc, err)
				}
			}
			inter, err := imaging.Intermediate(p, 100)
			if err != nil {
				t.Fatalf("intermediate of %s: %v", p, err)
			}
			ip := filepath.Join(interDir, strconv.Itoa(i))
			if err := os.WriteFile(ip, inter.Body, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, h := range []int{60, 100} { // resampled; as it is for the PNG
				for _, enc := range encodings {
					if _, err := imaging.ThumbnailFromIntermediate(ip, info.Format, info.Width, info.Height, 100, h, enc); err != nil {
						t.Fatalf("thumbnail %s at %d from its intermediate as %+v: %v", p, h, enc, err)
					}
				}
			}
		}
		// Large enough for the quality search to probe a sample of bands (tp_sample).
		for _, enc := range encodings {
			if _, err := imaging.Thumbnail(big, 400, enc); err != nil {
				t.Fatalf("thumbnail %s as %+v: %v", big, enc, err)
			}
		}
		if _, err := imaging.Validate(context.Background(), cut, 0, nil); tierpix.ErrorCode(err) != tierpix.EUNPROCESSABLE {
			t.Fatalf("validate cut: got %v, want %s", err, tierpix.EUNPROCESSABLE)
		}
		if _, err := imaging.Thumbnail(cut, 50, imaging.Encoding{}); err == nil {
			t.Fatalf("thumbnail cut: got nil, want an error")
		}
		if _, err := imaging.Thumbnail(cut, 50, imaging.Encoding{Format: tierpix.FormatWebP}); err == nil {
			t.Fatalf("thumbnail cut as webp: got nil, want an error")
		}
		if _, err := imaging.Intermediate(cut, 100); err == nil {
			t.Fatalf("intermediate of cut: got nil, want an error")
		}
		if _, err := imaging.ThumbnailFromIntermediate(cut, tierpix.FormatPNG, 300, 300, 200, 100, imaging.Encoding{}); err == nil {
			t.Fatalf("thumbnail from a cut intermediate: got nil, want an error")
		}
	}
	openFDs := func() int {
		fds, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("cannot count file descriptors: %v", err)
		}
		return len(fds)
	}
	run() // warm up: libvips allocates some state once per process
	var before, after vips.MemoryStats
	vips.ReadVipsMemStats(&before)
	fdsBefore := openFDs()
	objectsBefore := imaging.LiveObjects()
	for range 10 {
		run()
	}
	// libvips' worker threads hand back some buffers after an operation returns, so the
	// counters may lag a moment, either way; a leak is growth that stays. Wait for the counts
	// to come back to where they were (or below) before calling it one.
	deadline := time.Now().Add(5 * time.Second)
	for {
		vips.ReadVipsMemStats(&after)
		settled := imaging.LiveObjects() <= objectsBefore && after.Files <= before.Files &&
			after.Allocs <= before.Allocs && after.Mem <= before.Mem && openFDs() <= fdsBefore
		if settled || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := imaging.LiveObjects(); got > objectsBefore {
		t.Errorf("got %d libvips objects alive, want at most %d", got, objectsBefore)
	}
	if got := openFDs(); got > fdsBefore {
		t.Errorf("got %d file descriptors open, want at most %d", got, fdsBefore)
	}
	if after.Files > before.Files {
		t.Errorf("got %d files open in libvips, want at most %d", after.Files, before.Files)
	}
	if after.Allocs > before.Allocs || after.Mem > before.Mem {
		t.Errorf("got %d allocations of %d bytes, want at most %d of %d", after.Allocs, after.Mem, before.Allocs, before.Mem)
	}
}

// orientedThumbnail validates a 90×60 (as displayed) image stored under an orientation and
// renders it 30 px high, checking the displayed size and the thumbnail's size on the way.
func orientedThumbnail(t *testing.T, path string) imaging.Rendered {
	t.Helper()
	info, err := imaging.Validate(context.Background(), path, 0, nil)
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	if info.Width != 90 || info.Height != 60 {
		t.Errorf("got displayed %d×%d, want 90×60", info.Width, info.Height)
	}
	r, err := imaging.Thumbnail(path, 30, imaging.Encoding{})
	if err != nil {
		t.Fatalf("thumbnail: %v", err)
	}
	if r.Width != 45 || r.Height != 30 {
		t.Errorf("got thumbnail %d×%d, want 45×30", r.Width, r.Height)
	}
	return r
}

// cutJPEG cuts a JPEG halfway through its entropy-coded data.
func cutJPEG(t *testing.T, b []byte) []byte {
	t.Helper()
	start := jpegScanStart(t, b)
	return b[:start+(len(b)-start)/2]
}

// TestThumbnailShrinkOnLoad checks that widening JPEG shrink-on-load to imgproxy's factors
// (8 from a factor of 8 on, where libvips' thumbnail keeps 4 until 16) costs no visible
// quality: a thumbnail of a photograph-like JPEG must be as close to a Lanczos 3 resize of
// the fully decoded original as that resize is to itself once encoded at the same JPEG
// settings, give or take a decibel of PSNR.
func TestThumbnailShrinkOnLoad(t *testing.T) {
	const w, h = 1600, 1200
	path := filepath.Join(t.TempDir(), "photo.jpg")
	encodeJPEGFile(t, path, photo(w, h, jpegGrain))
	tests := []struct {
		name   string
		height int
	}{
		{name: "shrink 8 where thumbnail picks 4", height: 100},
		{name: "shrink 4 where thumbnail picks 2", height: 240},
		{name: "shrink 2 where thumbnail picks 1", height: 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// At the quality the reference is encoded at: the test is about the
			// resampling, not the quality search.
			r, err := imaging.Thumbnail(path, tt.height, imaging.Encoding{Quality: imaging.Quality{Fixed: 80}})
			if err != nil {
				t.Fatalf("thumbnail: %v", err)
			}
			got := decode(t, r)

			ref, err := vips.NewImageFromFile(path)
			if err != nil {
				t.Fatalf("load reference: %v", err)
			}
			t.Cleanup(ref.Close)
			if err := ref.ResizeWithVScale(float64(r.Width)/w, float64(r.Height)/h, vips.KernelLanczos3); err != nil {
				t.Fatalf("resize reference: %v", err)
			}
			if ref.Width() != r.Width || ref.Height() != r.Height {
				t.Fatalf("got reference %d×%d, want %d×%d", ref.Width(), ref.Height(), r.Width, r.Height)
			}
			refPix, err := ref.ToBytes()
			if err != nil {
				t.Fatalf("reference pixels: %v", err)
			}
			enc, _, err := ref.ExportJpeg(&vips.JpegExportParams{Quality: 80, SubsampleMode: vips.VipsForeignSubsampleOn, StripMetadata: true})
			if err != nil {
				t.Fatalf("encode reference: %v", err)
			}
			encoded := decode(t, imaging.Rendered{Body: enc, Format: tierpix.FormatJPEG, Width: r.Width, Height: r.Height})

			floor, ours := psnr(t, encoded, refPix), psnr(t, got, refPix)
			t.Logf("%d px high: %.2f dB from the full-decode reference (%.2f dB for the reference's own encoding)", tt.height, ours, floor)
			if ours < floor-1 {
				t.Errorf("got %.2f dB PSNR, want at least %.2f (1 dB below the encoding's own loss)", ours, floor-1)
			}
		})
	}
}

// psnr is the peak signal-to-noise ratio in dB of img against packed 8-bit RGB pixels of
// the same size.
func psnr(t *testing.T, img image.Image, rgb []byte) float64 {
	t.Helper()
	b := img.Bounds()
	if len(rgb) != b.Dx()*b.Dy()*3 {
		t.Fatalf("got %d reference bytes, want %d×%d×3", len(rgb), b.Dx(), b.Dy())
	}
	var sum float64
	for y := range b.Dy() {
		for x := range b.Dx() {
			c := nrgbaAt(img, b.Min.X+x, b.Min.Y+y)
			p := rgb[(y*b.Dx()+x)*3:]
			for i, v := range []uint8{c.R, c.G, c.B} {
				d := float64(v) - float64(p[i])
				sum += d * d
			}
		}
	}
	mse := sum / float64(len(rgb))
	if mse == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/mse)
}
