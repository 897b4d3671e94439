package imaging_test

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io/fs"
	"math"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/davidbyttow/govips/v2/vips"
	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/imaging"
)

// psnrImages is the peak signal-to-noise ratio in dB of b against a over their 8-bit R, G
// and B samples (+Inf when equal); the two must be the same size.
func psnrImages(t *testing.T, a, b image.Image) float64 {
	t.Helper()
	ra, rb := a.Bounds(), b.Bounds()
	if ra.Dx() != rb.Dx() || ra.Dy() != rb.Dy() {
		t.Fatalf("got %d×%d, want %d×%d", rb.Dx(), rb.Dy(), ra.Dx(), ra.Dy())
	}
	var sum float64
	for y := range ra.Dy() {
		for x := range ra.Dx() {
			ca, cb := nrgbaAt(a, ra.Min.X+x, ra.Min.Y+y), nrgbaAt(b, rb.Min.X+x, rb.Min.Y+y)
			for _, d := range [3]float64{float64(ca.R) - float64(cb.R), float64(ca.G) - float64(cb.G), float64(ca.B) - float64(cb.B)} {
				sum += d * d
			}
		}
	}
	if sum == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/(sum/float64(3*ra.Dx()*ra.Dy())))
}

// greyPhoto is photo in shades of grey.
func greyPhoto(w, h int) *image.Gray {
	src := photo(w, h, jpegGrain)
	g := image.NewGray(src.Bounds())
	copy(g.Pix, src.Y)
	return g
}

// TestThumbnailFromIntermediate makes intermediates 400 high and checks that every size made
// from one has the size and format of Thumbnail's and is within 40 dB PSNR of it. Both are
// encoded at a fixed quality, so that the comparison measures the intermediate's loss rather
// than two searches landing on different qualities.
func TestThumbnailFromIntermediate(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		body    func(t *testing.T) []byte
		w, h    int // as displayed
		format  string
		further []int
	}{
		{
			name: "jpeg photograph", file: "p.jpg", w: 1600, h: 1200, format: tierpix.FormatJPEG,
			body:    func(t *testing.T) []byte { return encodeJPEG(t, photo(1600, 1200, jpegGrain), 0) },
			further: []int{100, 150, 200, 300, 400},
		},
		{
			// Stored 900 wide and 1200 high, turned a quarter by its EXIF orientation.
			name: "jpeg photograph, orientation 6", file: "o.jpg", w: 1200, h: 900, format: tierpix.FormatJPEG,
			body:    func(t *testing.T) []byte { return encodeJPEG(t, photo(900, 1200, jpegGrain), 6) },
			further: []int{150, 200, 400},
		},
		{
			name: "grey jpeg", file: "g.jpg", w: 1200, h: 900, format: tierpix.FormatJPEG,
			body:    func(t *testing.T) []byte { return encodeJPEG(t, greyPhoto(1200, 900), 0) },
			further: []int{100, 200, 300},
		},
		{
			name: "png photograph", file: "p.png", w: 1200, h: 800, format: tierpix.FormatPNG,
			body:    func(t *testing.T) []byte { return encodePNG(t, photoRGB(1200, 800)) },
			further: []int{100, 200, 300, 400},
		},
	}
	const interHeight = 400
	enc := imaging.Encoding{Quality: imaging.Quality{Fixed: 80}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.file, tt.body(t))
			inter, err := imaging.Intermediate(path, interHeight)
			if err != nil {
				t.Fatalf("Intermediate: %v", err)
			}
			if inter.Format != tt.format || inter.Height != interHeight || inter.Width != imaging.ThumbnailWidth(tt.w, tt.h, interHeight) {
				t.Errorf("got intermediate %s %d×%d, want %s %d×%d", inter.Format, inter.Width, inter.Height,
					tt.format, imaging.ThumbnailWidth(tt.w, tt.h, interHeight), interHeight)
			}
			// JPEG intermediates are encoded at 95 (tp_encode_intermediate); PNG ones have none.
			if wantQ := map[string]int{tierpix.FormatJPEG: 95, tierpix.FormatPNG: 0}[tt.format]; inter.Quality != wantQ {
				t.Errorf("got an intermediate at quality %d, want %d", inter.Quality, wantQ)
			}
			decode(t, inter)
			interPath := writeFile(t, "inter", inter.Body)

			check := func(what string, h int, got imaging.Rendered) {
				t.Helper()
				direct, err := imaging.Thumbnail(path, h, enc)
				if err != nil {
					t.Fatalf("Thumbnail at %d: %v", h, err)
				}
				if got.Format != direct.Format || got.Width != direct.Width || got.Height != direct.Height {
					t.Fatalf("%s: got %s %d×%d, want %s %d×%d as Thumbnail", what, got.Format, got.Width, got.Height,
						direct.Format, direct.Width, direct.Height)
				}
				p := psnrImages(t, decode(t, direct), decode(t, got))
				t.Logf("%s: %.1f dB PSNR against Thumbnail", what, p)
				if p < 40 {
					t.Errorf("%s: got %.1f dB PSNR against Thumbnail, want at least 40", what, p)
				}
			}
			for _, h := range tt.further {
				r, err := imaging.ThumbnailFromIntermediate(interPath, tt.format, tt.w, tt.h, interHeight, h, enc)
				if err != nil {
					t.Fatalf("ThumbnailFromIntermediate at %d: %v", h, err)
				}
				check("h"+strconv.Itoa(h)+" from the intermediate", h, r)
			}
		})
	}
}

// TestReduceMatchesLibvips checks imaging's own Lanczos 3 reduction against libvips' resize
// on a PNG original, where every step is lossless: the intermediate against vips_resize of
// the original, and further sizes (one with the box pre-shrink, one without) against
// vips_resize of the intermediate. They differ only in rounding.
func TestReduceMatchesLibvips(t *testing.T) {
	const w, h, interHeight = 1200, 800, 400
	path := writeFile(t, "p.png", encodePNG(t, photoRGB(w, h)))
	inter, err := imaging.Intermediate(path, interHeight)
	if err != nil {
		t.Fatal(err)
	}
	interPath := writeFile(t, "inter.png", inter.Body)

	// resized is libvips' Lanczos 3 resize of the file at src to width×height.
	resized := func(src string, width, height int) image.Image {
		t.Helper()
		ref, err := vips.NewImageFromFile(src)
		if err != nil {
			t.Fatal(err)
		}
		defer ref.Close()
		if err := ref.ResizeWithVScale(float64(width)/float64(ref.Width()), float64(height)/float64(ref.Height()), vips.KernelLanczos3); err != nil {
			t.Fatal(err)
		}
		if ref.Width() != width || ref.Height() != height {
			t.Fatalf("got reference %d×%d, want %d×%d", ref.Width(), ref.Height(), width, height)
		}
		body, _, err := ref.ExportPng(&vips.PngExportParams{StripMetadata: true})
		if err != nil {
			t.Fatal(err)
		}
		return decode(t, imaging.Rendered{Body: body, Format: tierpix.FormatPNG, Width: width, Height: height})
	}

	tests := []struct {
		name string
		got  func() imaging.Rendered
		ref  func(r imaging.Rendered) image.Image
	}{
		{name: "original to the intermediate, by 2", got: func() imaging.Rendered { return inter },
			ref: func(r imaging.Rendered) image.Image { return resized(path, r.Width, r.Height) }},
		{name: "intermediate to 300, by 1.33", got: func() imaging.Rendered {
			r, err := imaging.ThumbnailFromIntermediate(interPath, tierpix.FormatPNG, w, h, interHeight, 300, imaging.Encoding{})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}, ref: func(r imaging.Rendered) image.Image { return resized(interPath, r.Width, r.Height) }},
		{name: "intermediate to 90, box by 2 then by 2.2", got: func() imaging.Rendered {
			r, err := imaging.ThumbnailFromIntermediate(interPath, tierpix.FormatPNG, w, h, interHeight, 90, imaging.Encoding{})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}, ref: func(r imaging.Rendered) image.Image { return resized(interPath, r.Width, r.Height) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.got()
			p := psnrImages(t, tt.ref(r), decode(t, r))
			t.Logf("%.1f dB PSNR against vips_resize", p)
			if p < 50 {
				t.Errorf("got %.1f dB PSNR against vips_resize, want at least 50", p)
			}
		})
	}
}

// TestIntermediateAlpha checks that a PNG with alpha keeps it through its intermediate and
// every size made from it, with the colour of transparent pixels kept out of the visible
// ones (libvips premultiplies before resampling).
func TestIntermediateAlpha(t *testing.T) {
	const w, h = 1200, 800
	// Transparent red left half (its colour must not bleed), opaque blue right half.
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.NRGBA{R: 255, A: 0}
			if x >= w/2 {
				c = color.NRGBA{B: 200, A: 255}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	path := writeFile(t, "a.png", encodePNG(t, img))
	inter, err := imaging.Intermediate(path, 400)
	if err != nil {
		t.Fatal(err)
	}
	interPath := writeFile(t, "inter.png", inter.Body)
	rendered := []imaging.Rendered{inter}
	for _, th := range []int{200, 100} {
		r, err := imaging.ThumbnailFromIntermediate(interPath, tierpix.FormatPNG, w, h, 400, th, imaging.Encoding{})
		if err != nil {
			t.Fatal(err)
		}
		rendered = append(rendered, r)
	}
	for _, r := range rendered {
		m := decode(t, r)
		if got := nrgbaAt(m, 1, 1); got.A != 0 {
			t.Errorf("h%d at the transparent corner: got %v, want alpha 0", r.Height, got)
		}
		// Next to the edge, inside the opaque half: any red here came from the
		// transparent pixels.
		if got := nrgbaAt(m, r.Width/2+1, r.Height/2); got.A < 200 || got.R > 3 {
			t.Errorf("h%d next to the edge: got %v, want opaque blue without red", r.Height, got)
		}
	}
}

// TestPNGIntermediateServedAsIs checks that a PNG intermediate asked at its own height comes
// back as it is, and that a damaged one fails rather than being served.
func TestPNGIntermediateServedAsIs(t *testing.T) {
	const w, h = 1200, 800
	path := writeFile(t, "p.png", encodePNG(t, photoRGB(w, h)))
	inter, err := imaging.Intermediate(path, 400)
	if err != nil {
		t.Fatal(err)
	}
	r, err := imaging.ThumbnailFromIntermediate(writeFile(t, "inter.png", inter.Body), tierpix.FormatPNG, w, h, 400, 400, imaging.Encoding{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.Body, inter.Body) || r.Width != inter.Width || r.Height != 400 || r.Format != tierpix.FormatPNG {
		t.Errorf("got %d bytes %d×%d %s, want the intermediate's %d bytes %d×400 png", len(r.Body), r.Width, r.Height, r.Format, len(inter.Body), inter.Width)
	}

	s, _ := idatRange(t, inter.Body)
	flipped := bytes.Clone(inter.Body)
	flipped[s+100] ^= 0x10
	tests := []struct {
		name       string
		body       []byte
		origWidth  int
		origHeight int
	}{
		{name: "a bit flipped in the data", body: flipped, origWidth: w, origHeight: h},
		{name: "cut short", body: inter.Body[:len(inter.Body)/2], origWidth: w, origHeight: h},
		{name: "zeros", body: make([]byte, len(inter.Body)), origWidth: w, origHeight: h},
		{name: "without IEND", body: inter.Body[:len(inter.Body)-12], origWidth: w, origHeight: h},
		{name: "another size", body: inter.Body, origWidth: w + 30, origHeight: h},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := imaging.ThumbnailFromIntermediate(writeFile(t, "bad.png", tt.body), tierpix.FormatPNG, tt.origWidth, tt.origHeight, 400, 400, imaging.Encoding{})
			if err == nil {
				t.Errorf("got no error, want one")
			}
		})
	}
	if _, err := imaging.ThumbnailFromIntermediate(filepath.Join(t.TempDir(), "missing"), tierpix.FormatPNG, w, h, 400, 400, imaging.Encoding{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v, want a not-exist error", err)
	}
}

// TestPNGEncoding checks the PNG encoder on originals rendered at their own size, where
// libvips passes the pixels through: every pixel comes back exactly, in the colour type of
// its bands, and photographs are coded with Huffman codes alone (zlib's FLEVEL 0, "fastest")
// while synthetic pictures keep the string search (level 6: FLEVEL 2, "default").
func TestPNGEncoding(t *testing.T) {
	synthetic := markedPicture(300, 200)
	grey := image.NewGray(image.Rect(0, 0, 300, 200))
	for i := range grey.Pix {
		grey.Pix[i] = uint8(i / 300)
	}
	tests := []struct {
		name          string
		img           image.Image
		wantColorType byte
		wantLevel     byte
	}{
		{name: "photograph", img: photoRGB(300, 200), wantColorType: 2, wantLevel: 0},
		{name: "grey photograph", img: greyPhoto(300, 200), wantColorType: 0, wantLevel: 0},
		{name: "synthetic", img: synthetic, wantColorType: 2, wantLevel: 2},
		{name: "grey gradient", img: grey, wantColorType: 0, wantLevel: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := imaging.Thumbnail(writeFile(t, "p.png", encodePNG(t, tt.img)), 200, imaging.Encoding{})
			if err != nil {
				t.Fatal(err)
			}
			chunks := pngChunks(t, r.Body)
			if ct := chunks[0].data[9]; ct != tt.wantColorType {
				t.Errorf("got colour type %d, want %d", ct, tt.wantColorType)
			}
			var idat []byte
			for _, c := range chunks {
				if c.typ == "IDAT" {
					idat = append(idat, c.data...)
				}
			}
			if level := idat[1] >> 6; level != tt.wantLevel {
				t.Errorf("got zlib FLEVEL %d, want %d", level, tt.wantLevel)
			}
			got, err := png.Decode(bytes.NewReader(r.Body))
			if err != nil {
				t.Fatal(err)
			}
			if p := psnrImages(t, tt.img, got); !math.IsInf(p, 1) {
				t.Errorf("got %.1f dB PSNR against the original, want identical pixels", p)
			}
		})
	}
}
