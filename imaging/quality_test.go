package imaging_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/davidbyttow/govips/v2/vips"
	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/imaging"
	"github.com/tierpix/tierpix/imaging/testimage"
)

// photoOriginal writes a 900×600 photograph-like original with the given grain, as a PNG or
// (at quality 95) a JPEG, and returns its path.
func photoOriginal(t *testing.T, format string, grain int32) string {
	t.Helper()
	if format == tierpix.FormatPNG {
		return writeFile(t, "p.png", encodePNG(t, testimage.PhotoRGB(900, 600, grain)))
	}
	return writeFile(t, "p.jpg", encodeJPEG(t, testimage.Photo(900, 600, grain), 0))
}

// Thumbnail heights of the quality tests: 150 (225×150, small enough that the search probes
// the whole thumbnail) and 400 (600×400, where it probes a sample of bands).
var qualityHeights = []int{150, 400}

func render(t *testing.T, path string, height int, enc imaging.Encoding) imaging.Rendered {
	t.Helper()
	r, err := imaging.Thumbnail(path, height, enc)
	if err != nil {
		t.Fatalf("thumbnail at %d as %+v: %v", height, enc, err)
	}
	return r
}

func TestQualityValidate(t *testing.T) {
	tests := []struct {
		name    string
		q       imaging.Quality
		wantErr bool
	}{
		{name: "zero: per image at the default floor", q: imaging.Quality{}},
		{name: "fixed 1", q: imaging.Quality{Fixed: 1}},
		{name: "fixed 100", q: imaging.Quality{Fixed: 100}},
		{name: "floor 0.98", q: imaging.Quality{Floor: 0.98}},
		{name: "negative fixed", q: imaging.Quality{Fixed: -1}, wantErr: true},
		{name: "fixed above 100", q: imaging.Quality{Fixed: 101}, wantErr: true},
		{name: "negative floor", q: imaging.Quality{Floor: -0.1}, wantErr: true},
		{name: "floor 1", q: imaging.Quality{Floor: 1}, wantErr: true},
		{name: "floor above 1", q: imaging.Quality{Floor: 1.5}, wantErr: true},
		{name: "floor NaN", q: imaging.Quality{Floor: math.NaN()}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.q.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("got %v, want an error: %v", err, tt.wantErr)
			}
		})
	}
}

// TestBadEncoding checks that an Encoding that cannot be used fails before any rendering, in
// Thumbnail and ThumbnailFromIntermediate alike.
func TestBadEncoding(t *testing.T) {
	path := writeFile(t, "p.png", encodePNG(t, markedPicture(90, 60)))
	for _, enc := range []imaging.Encoding{
		{Format: "gif"},
		{Quality: imaging.Quality{Fixed: 101}},
		{Format: tierpix.FormatWebP, Quality: imaging.Quality{Floor: 1}},
	} {
		t.Run(fmt.Sprintf("%+v", enc), func(t *testing.T) {
			if _, err := imaging.Thumbnail(path, 30, enc); err == nil {
				t.Errorf("Thumbnail: got no error, want one")
			}
			if _, err := imaging.ThumbnailFromIntermediate(path, tierpix.FormatPNG, 90, 60, 60, 30, enc); err == nil {
				t.Errorf("ThumbnailFromIntermediate: got no error, want one")
			}
		})
	}
}

// TestQualitySmoothBelowGrainy checks that the search adapts to the picture: a smooth
// photograph gets a lower quality than the same one with grain, in JPEG and WebP, from PNG
// and JPEG originals.
func TestQualitySmoothBelowGrainy(t *testing.T) {
	for _, src := range []string{tierpix.FormatPNG, tierpix.FormatJPEG} {
		smooth, grainy := photoOriginal(t, src, 0), photoOriginal(t, src, jpegGrain)
		for _, out := range []string{tierpix.FormatJPEG, tierpix.FormatWebP} {
			for _, h := range qualityHeights {
				t.Run(fmt.Sprintf("%s to %s at %d", src, out, h), func(t *testing.T) {
					enc := imaging.Encoding{Format: out}
					s, g := render(t, smooth, h, enc), render(t, grainy, h, enc)
					t.Logf("smooth: quality %d, %d bytes; grainy: quality %d, %d bytes", s.Quality, len(s.Body), g.Quality, len(g.Body))
					if s.Quality >= g.Quality {
						t.Errorf("got quality %d for the smooth photograph, want below the grainy one's %d", s.Quality, g.Quality)
					}
				})
			}
		}
	}
}

// TestQualityFloor checks that raising the SSIM floor never lowers the quality or the size,
// and raises them where the default floor left room.
func TestQualityFloor(t *testing.T) {
	raised := false
	for _, src := range []string{tierpix.FormatPNG, tierpix.FormatJPEG} {
		path := photoOriginal(t, src, jpegGrain)
		for _, out := range []string{tierpix.FormatJPEG, tierpix.FormatWebP} {
			for _, h := range qualityHeights {
				t.Run(fmt.Sprintf("%s to %s at %d", src, out, h), func(t *testing.T) {
					def := render(t, path, h, imaging.Encoding{Format: out})
					high := render(t, path, h, imaging.Encoding{Format: out, Quality: imaging.Quality{Floor: 0.98}})
					t.Logf("floor %.2f: quality %d, %d bytes; floor 0.98: quality %d, %d bytes",
						imaging.DefaultSSIMFloor, def.Quality, len(def.Body), high.Quality, len(high.Body))
					if high.Quality < def.Quality || len(high.Body) < len(def.Body) {
						t.Errorf("got quality %d in %d bytes at floor 0.98, want at least the default floor's %d in %d",
							high.Quality, len(high.Body), def.Quality, len(def.Body))
					}
					raised = raised || high.Quality > def.Quality
				})
			}
		}
	}
	if !raised {
		t.Errorf("got the same quality at floor 0.98 as at %.2f everywhere, want it higher somewhere", imaging.DefaultSSIMFloor)
	}
}

// TestQualityJPEGNotAboveQ80 checks that a JPEG thumbnail of a JPEG original chosen per image
// is never bigger than the quality-80 one tierpix served before: the search stops at 80.
func TestQualityJPEGNotAboveQ80(t *testing.T) {
	for _, grain := range []int32{0, jpegGrain, pngGrain} {
		path := photoOriginal(t, tierpix.FormatJPEG, grain)
		for _, h := range qualityHeights {
			t.Run(fmt.Sprintf("grain %d at %d", grain, h), func(t *testing.T) {
				auto := render(t, path, h, imaging.Encoding{})
				q80 := render(t, path, h, imaging.Encoding{Quality: imaging.Quality{Fixed: 80}})
				t.Logf("per image: quality %d, %d bytes; fixed: %d bytes", auto.Quality, len(auto.Body), len(q80.Body))
				if auto.Format != tierpix.FormatJPEG || auto.Quality < imaging.MinQuality || auto.Quality > 80 {
					t.Errorf("got %s at quality %d, want JPEG at %d to 80", auto.Format, auto.Quality, imaging.MinQuality)
				}
				if len(auto.Body) > len(q80.Body) {
					t.Errorf("got %d bytes, want at most quality 80's %d", len(auto.Body), len(q80.Body))
				}
			})
		}
	}
}

// TestQualityMeetsTarget measures, in Go, the luma SSIM of each thumbnail against the exact
// pixels it was encoded from (the PNG rendering of the same thumbnail) and checks the search's
// contract: at least the target (the floor, or for a JPEG original what JPEG at quality 80
// gives if lower), unless even the highest quality the search may pick (80 for JPEG, 95 for
// WebP) falls short of it, less a small allowance: the search measures WebP's luma in the
// codec's own range and probes large thumbnails on a sample. A search that settled low
// blindly fails this on the grainy pictures.
func TestQualityMeetsTarget(t *testing.T) {
	const allowance = 0.015
	for _, src := range []string{tierpix.FormatPNG, tierpix.FormatJPEG} {
		for _, grain := range []int32{0, jpegGrain, pngGrain} {
			path := photoOriginal(t, src, grain)
			for _, h := range qualityHeights {
				ref, w, hh := luma(decode(t, render(t, path, h, imaging.Encoding{Format: tierpix.FormatPNG})))
				measure := func(enc imaging.Encoding) (imaging.Rendered, float64) {
					r := render(t, path, h, enc)
					y, _, _ := luma(decode(t, r))
					return r, ssim(ref, y, w, hh)
				}
				target := imaging.DefaultSSIMFloor
				if src == tierpix.FormatJPEG {
					_, s80 := measure(imaging.Encoding{Format: tierpix.FormatJPEG, Quality: imaging.Quality{Fixed: 80}})
					target = min(target, s80)
				}
				for _, out := range []string{tierpix.FormatJPEG, tierpix.FormatWebP} {
					t.Run(fmt.Sprintf("%s grain %d to %s at %d", src, grain, out, h), func(t *testing.T) {
						top := imaging.MaxQuality
						if out == tierpix.FormatJPEG {
							top = 80
						}
						_, sTop := measure(imaging.Encoding{Format: out, Quality: imaging.Quality{Fixed: top}})
						r, s := measure(imaging.Encoding{Format: out})
						want := min(target, sTop) - allowance
						t.Logf("quality %d: SSIM %.4f; target %.4f, %.4f at quality %d", r.Quality, s, target, sTop, top)
						if s < want {
							t.Errorf("got SSIM %.4f at quality %d, want at least %.4f", s, r.Quality, want)
						}
					})
				}
			}
		}
	}
}

// jpegDQT returns the payloads of a JPEG's quantisation table segments, in order.
func jpegDQT(t *testing.T, b []byte) []byte {
	t.Helper()
	var dqt []byte
	for p := 2; p+4 <= len(b) && b[p+1] != 0xDA; {
		n := int(binary.BigEndian.Uint16(b[p+2:]))
		if b[p+1] == 0xDB {
			dqt = append(dqt, b[p+4:p+2+n]...)
		}
		p += 2 + n
	}
	if len(dqt) == 0 {
		t.Fatalf("got no DQT segment, want one")
	}
	return dqt
}

// TestQualityFixed checks that a fixed quality is the one used: the JPEG's quantisation
// tables are the ones libjpeg makes for that quality (libvips encoding the same pixels at it),
// and WebP grows with the quality asked.
func TestQualityFixed(t *testing.T) {
	path := photoOriginal(t, tierpix.FormatJPEG, jpegGrain)
	const h = 200
	pixels, err := vips.NewImageFromBuffer(render(t, path, h, imaging.Encoding{Format: tierpix.FormatPNG}).Body)
	if err != nil {
		t.Fatalf("load with govips: %v", err)
	}
	defer pixels.Close()
	qualities := []int{1, 37, 80, 100}
	t.Run("jpeg", func(t *testing.T) {
		for _, q := range qualities {
			r := render(t, path, h, imaging.Encoding{Quality: imaging.Quality{Fixed: q}})
			if r.Quality != q {
				t.Errorf("fixed %d: got quality %d, want %d", q, r.Quality, q)
			}
			want, _, err := pixels.ExportJpeg(&vips.JpegExportParams{Quality: q, SubsampleMode: vips.VipsForeignSubsampleOn, StripMetadata: true})
			if err != nil {
				t.Fatalf("reference at %d: %v", q, err)
			}
			if got, want := jpegDQT(t, r.Body), jpegDQT(t, want); string(got) != string(want) {
				t.Errorf("fixed %d: got quantisation tables unlike libjpeg's at quality %d", q, q)
			}
		}
	})
	t.Run("webp", func(t *testing.T) {
		last := 0
		for _, q := range qualities {
			r := render(t, path, h, imaging.Encoding{Format: tierpix.FormatWebP, Quality: imaging.Quality{Fixed: q}})
			if r.Quality != q {
				t.Errorf("fixed %d: got quality %d, want %d", q, r.Quality, q)
			}
			if !checkWebPContainer(t, r, false) {
				t.Errorf("fixed %d: got lossless, want lossy", q)
			}
			if len(r.Body) <= last {
				t.Errorf("fixed %d: got %d bytes, want more than the quality below's %d", q, len(r.Body), last)
			}
			last = len(r.Body)
		}
	})
}
