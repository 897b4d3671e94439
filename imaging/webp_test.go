package imaging_test

import (
	"bytes"
	"image"
	"strings"
	"testing"

	"github.com/davidbyttow/govips/v2/vips"
	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/imaging"
)

// VP8X flags (the WebP container specification): everything but alpha names metadata or
// animation, which a thumbnail must not carry.
const (
	vp8xAlpha    = 0x10
	vp8xFlagMask = 0x3e // ICC 0x20, alpha 0x10, EXIF 0x08, XMP 0x04, animation 0x02
)

// xmpPacket is an XMP packet carrying a marker that must not reach a thumbnail.
const xmpPacket = `<x:xmpmeta xmlns:x="adobe:ns:meta/">secret</x:xmpmeta>`

// taggedPhotoJPEG is a photograph-like JPEG carrying Exif, XMP and a Display P3 ICC profile.
func taggedPhotoJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	ref, err := vips.NewImageFromBuffer(encodeJPEG(t, photo(w, h, jpegGrain), 1))
	if err != nil {
		t.Fatalf("load with govips: %v", err)
	}
	defer ref.Close()
	if err := ref.TransformICCProfile("p3"); err != nil {
		t.Fatalf("to p3: %v", err)
	}
	data, _, err := ref.ExportJpeg(&vips.JpegExportParams{Quality: 90})
	if err != nil {
		t.Fatalf("export p3 jpeg: %v", err)
	}
	payload := append([]byte("http://ns.adobe.com/xap/1.0/\x00"), xmpPacket...)
	seg := []byte{0xFF, 0xE1, byte((len(payload) + 2) >> 8), byte(len(payload) + 2)}
	data = append(append(append([]byte{}, data[:2]...), append(seg, payload...)...), data[2:]...)
	m := strings.Join(jpegMarkers(t, data), " ")
	for _, want := range []string{"APP1:Exif", "APP1:http://ns.adob", "APP2:ICC_PROFILE"} {
		if !strings.Contains(m, want) {
			t.Fatalf("got original markers %s, want %s among them", m, want)
		}
	}
	return data
}

// alphaPhotoPNG is a photograph-like w×h PNG, transparent in its left third, fading in over
// the middle one (an alpha of every value) and opaque in the right one, carrying Exif, a
// text comment and XMP.
func alphaPhotoPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	src := photoRGB(w, h)
	img := image.NewNRGBA(src.Bounds())
	copy(img.Pix, src.Pix)
	for y := range h {
		for x := range w {
			a := uint8(255)
			switch {
			case x < w/3:
				a = 0
			case x < 2*w/3:
				a = uint8((x - w/3) * 255 / (w / 3))
			}
			img.Pix[y*img.Stride+4*x+3] = a
		}
	}
	data := encodePNG(t, img)
	data = insertPNGChunk(data, pngChunk("eXIf", exifTIFF(1)))
	data = insertPNGChunk(data, pngChunk("tEXt", []byte("Comment\x00secret!")))
	return insertPNGChunk(data, pngChunk("iTXt", []byte("XML:com.adobe.xmp\x00\x00\x00\x00\x00"+xmpPacket)))
}

// checkWebPContainer checks that r is a WebP holding image data only: VP8 (lossy) or VP8L
// (lossless) with, for alpha or a canvas header, ALPH and VP8X, whose flags name alpha alone
// and whose canvas is r's size. It reports whether the image data is lossy.
func checkWebPContainer(t *testing.T, r imaging.Rendered, wantAlpha bool) (lossy bool) {
	t.Helper()
	if r.Format != tierpix.FormatWebP {
		t.Fatalf("got format %q, want %q", r.Format, tierpix.FormatWebP)
	}
	var kinds []string
	var hasAlpha bool
	for _, c := range webpChunks(t, r.Body) {
		kinds = append(kinds, c.fourCC)
		switch c.fourCC {
		case "VP8 ":
			lossy = true
		case "VP8L":
			hasAlpha = hasAlpha || c.data[4]&0x10 != 0 // the header's alpha_is_used bit
		case "ALPH":
			hasAlpha = true
		case "VP8X":
			if len(c.data) != 10 {
				t.Fatalf("got a VP8X chunk of %d bytes, want 10", len(c.data))
			}
			if f := c.data[0]; f&vp8xFlagMask&^vp8xAlpha != 0 {
				t.Errorf("got VP8X flags %#x, want none but alpha (%#x)", f, vp8xAlpha)
			}
			cw := 1 + (int(c.data[4]) | int(c.data[5])<<8 | int(c.data[6])<<16)
			ch := 1 + (int(c.data[7]) | int(c.data[8])<<8 | int(c.data[9])<<16)
			if cw != r.Width || ch != r.Height {
				t.Errorf("got a VP8X canvas of %d×%d, want %d×%d", cw, ch, r.Width, r.Height)
			}
		default:
			t.Errorf("got chunk %q, want only VP8, VP8L, VP8X and ALPH", c.fourCC)
		}
	}
	t.Logf("%d bytes, quality %d, chunks %q", len(r.Body), r.Quality, kinds)
	if hasAlpha != wantAlpha {
		t.Errorf("got chunks %q with alpha %v, want alpha %v", kinds, hasAlpha, wantAlpha)
	}
	for _, s := range []string{"Exif", "secret", "xmpmeta", "acsp" /* every ICC profile's signature */} {
		if bytes.Contains(r.Body, []byte(s)) {
			t.Errorf("got %q in the WebP, want no metadata", s)
		}
	}
	return lossy
}

// TestWebP renders photographs as WebP: a JPEG carrying Exif, XMP and an ICC profile, and a
// PNG with alpha and metadata of its own. Each must come out lossy, at a quality within the
// search's bounds, with no metadata, at the size asked, looking like the lossless (PNG)
// rendering of the same thumbnail, and with its alpha channel exactly as that one's.
func TestWebP(t *testing.T) {
	tests := []struct {
		name         string
		body         func(t *testing.T) []byte
		height       int
		wantW, wantH int
		alpha        bool
		opaque       image.Rectangle // compared by SSIM with the PNG rendering
	}{
		{
			name: "jpeg with exif, xmp and icc", body: func(t *testing.T) []byte { return taggedPhotoJPEG(t, 800, 600) },
			height: 200, wantW: 267, wantH: 200, opaque: image.Rect(0, 0, 267, 200),
		},
		{
			name: "png with alpha", body: func(t *testing.T) []byte { return alphaPhotoPNG(t, 600, 400) },
			height: 200, wantW: 300, wantH: 200, alpha: true, opaque: image.Rect(210, 0, 300, 200),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "original", tt.body(t))
			r, err := imaging.Thumbnail(path, tt.height, imaging.Encoding{Format: tierpix.FormatWebP})
			if err != nil {
				t.Fatalf("thumbnail: %v", err)
			}
			if r.Width != tt.wantW || r.Height != tt.wantH {
				t.Errorf("got %d×%d, want %d×%d", r.Width, r.Height, tt.wantW, tt.wantH)
			}
			if !checkWebPContainer(t, r, tt.alpha) {
				t.Errorf("got a lossless WebP of a photograph, want lossy")
			}
			if r.Quality < imaging.MinQualityWebP || r.Quality > imaging.MaxQuality {
				t.Errorf("got quality %d, want %d to %d", r.Quality, imaging.MinQualityWebP, imaging.MaxQuality)
			}

			ref, err := imaging.Thumbnail(path, tt.height, imaging.Encoding{Format: tierpix.FormatPNG})
			if err != nil {
				t.Fatalf("png thumbnail: %v", err)
			}
			got, want := decode(t, r), decode(t, ref)
			for y := range r.Height {
				for x := range r.Width {
					if g, w := nrgbaAt(got, x, y).A, nrgbaAt(want, x, y).A; g != w {
						t.Fatalf("at %d,%d: got alpha %d, want %d as in the PNG (alpha is kept losslessly)", x, y, g, w)
					}
				}
			}
			if tt.alpha {
				if a := nrgbaAt(got, 2, 2).A; a != 0 {
					t.Errorf("at the transparent corner: got alpha %d, want 0", a)
				}
			}
			gy, w, h := luma(crop(got, tt.opaque))
			wy, _, _ := luma(crop(want, tt.opaque))
			s := ssim(wy, gy, w, h)
			t.Logf("SSIM %.4f against the PNG rendering", s)
			if s < 0.9 {
				t.Errorf("got SSIM %.4f against the PNG rendering, want at least 0.9", s)
			}
		})
	}
}

// crop returns the part of img in r, at r's coordinates from the top-left of img.
func crop(img image.Image, r image.Rectangle) image.Image {
	return img.(interface {
		SubImage(image.Rectangle) image.Image
	}).SubImage(r.Add(img.Bounds().Min))
}

// TestWebPSynthetic renders a chart-like PNG at its own size as WebP: lossless comes out far
// smaller than lossy would, so it is kept, whatever the quality setting, and it gives the
// PNG rendering's pixels back exactly.
func TestWebPSynthetic(t *testing.T) {
	const w, h = 600, 400
	path := writeFile(t, "chart.png", encodePNG(t, chartPicture(w, h)))
	ref, err := imaging.Thumbnail(path, h, imaging.Encoding{Format: tierpix.FormatPNG})
	if err != nil {
		t.Fatalf("png thumbnail: %v", err)
	}
	want := decode(t, ref)
	// What lossy WebP makes of the same pixels at the lowest quality the search may pick.
	vref, err := vips.NewImageFromBuffer(ref.Body)
	if err != nil {
		t.Fatalf("load with govips: %v", err)
	}
	defer vref.Close()
	lossy, _, err := vref.ExportWebp(&vips.WebpExportParams{Quality: imaging.MinQualityWebP, ReductionEffort: 4, StripMetadata: true})
	if err != nil {
		t.Fatalf("lossy webp: %v", err)
	}

	tests := []struct {
		name   string
		height int
		q      imaging.Quality
	}{
		{name: "quality per image", height: h},
		{name: "fixed quality", height: h, q: imaging.Quality{Fixed: 80}},
		{name: "asked taller than the original", height: 2 * h},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := imaging.Thumbnail(path, tt.height, imaging.Encoding{Format: tierpix.FormatWebP, Quality: tt.q})
			if err != nil {
				t.Fatalf("thumbnail: %v", err)
			}
			if r.Width != w || r.Height != h {
				t.Errorf("got %d×%d, want %d×%d", r.Width, r.Height, w, h)
			}
			if checkWebPContainer(t, r, false) {
				t.Errorf("got lossy WebP of a synthetic picture, want lossless")
			}
			if r.Quality != 0 {
				t.Errorf("got quality %d, want 0 (lossless)", r.Quality)
			}
			t.Logf("lossless %d bytes, lossy at %d %d bytes, PNG %d bytes", len(r.Body), imaging.MinQualityWebP, len(lossy), len(ref.Body))
			if len(r.Body) >= len(lossy) {
				t.Errorf("got %d bytes, want fewer than lossy WebP's %d", len(r.Body), len(lossy))
			}
			got := decode(t, r)
			for y := range h {
				for x := range w {
					if g, w := nrgbaAt(got, x, y), nrgbaAt(want, x, y); g != w {
						t.Fatalf("at %d,%d: got %v, want %v as in the PNG", x, y, g, w)
					}
				}
			}
		})
	}
}

// TestWebPFromIntermediate renders WebP thumbnails from intermediates of a JPEG and a PNG
// original, at the intermediate's own height too: a PNG intermediate is served as it is only
// when a PNG is asked (TestPNGIntermediateServedAsIs), never in place of a WebP.
func TestWebPFromIntermediate(t *testing.T) {
	tests := []struct {
		name   string
		body   func(t *testing.T) []byte
		format string
		w, h   int
	}{
		{name: "jpeg", format: tierpix.FormatJPEG, w: 1200, h: 900,
			body: func(t *testing.T) []byte { return encodeJPEG(t, photo(1200, 900, jpegGrain), 0) }},
		{name: "png", format: tierpix.FormatPNG, w: 1200, h: 800,
			body: func(t *testing.T) []byte { return encodePNG(t, photoRGB(1200, 800)) }},
	}
	const interHeight = 400
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "original", tt.body(t))
			inter, err := imaging.Intermediate(path, interHeight)
			if err != nil {
				t.Fatalf("intermediate: %v", err)
			}
			if inter.Format != tt.format {
				t.Errorf("got an intermediate in %s, want %s (the original's)", inter.Format, tt.format)
			}
			interPath := writeFile(t, "inter", inter.Body)
			for _, h := range []int{200, interHeight} {
				r, err := imaging.ThumbnailFromIntermediate(interPath, tt.format, tt.w, tt.h, interHeight, h, imaging.Encoding{Format: tierpix.FormatWebP})
				if err != nil {
					t.Fatalf("h%d from the intermediate: %v", h, err)
				}
				if want := imaging.ThumbnailWidth(tt.w, tt.h, h); r.Width != want || r.Height != h {
					t.Errorf("h%d: got %d×%d, want %d×%d", h, r.Width, r.Height, want, h)
				}
				if !checkWebPContainer(t, r, false) || r.Quality < imaging.MinQualityWebP {
					t.Errorf("h%d: got quality %d, want lossy from %d up", h, r.Quality, imaging.MinQualityWebP)
				}
				ref, err := imaging.Thumbnail(path, h, imaging.Encoding{Format: tierpix.FormatPNG})
				if err != nil {
					t.Fatalf("png thumbnail at %d: %v", h, err)
				}
				gy, w, hh := luma(decode(t, r))
				wy, _, _ := luma(decode(t, ref))
				if s := ssim(wy, gy, w, hh); s < 0.9 {
					t.Errorf("h%d: got SSIM %.4f against Thumbnail's PNG rendering, want at least 0.9", h, s)
				}
			}
		})
	}
}
