package imaging_test

import (
	"fmt"
	"image"
	"image/color"
	"testing"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/imaging"
)

// TestIntermediateOddSizes renders originals of awkward shapes and pixel formats through the
// intermediate paths (their own resampler and PNG encoder): one pixel wide, a few pixels,
// widths around the vector lengths, very wide, grey, alpha, 16 bits, a palette. Each must give
// an intermediate and further sizes of exactly the size Thumbnail gives. Run with `go test -asan`
// (which instruments the package's C and every allocation), it also shows that none of them
// reads or writes out of bounds.
func TestIntermediateOddSizes(t *testing.T) {
	widths := []int{1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 4001}
	heights := []int{801, 1203}
	kinds := []struct {
		name   string
		format string
		make   func(w, h int) image.Image
	}{
		{"jpeg", tierpix.FormatJPEG, func(w, h int) image.Image { return photo(w, h, jpegGrain) }},
		{"jpeg grey", tierpix.FormatJPEG, func(w, h int) image.Image { return greyPhoto(w, h) }},
		{"png rgb", tierpix.FormatPNG, func(w, h int) image.Image { return photoRGB(w, h) }},
		{"png rgba", tierpix.FormatPNG, func(w, h int) image.Image {
			src := photoRGB(w, h)
			m := image.NewNRGBA(src.Bounds())
			copy(m.Pix, src.Pix)
			for i := 3; i < len(m.Pix); i += 4 {
				m.Pix[i] = uint8(i / 4 % 256)
			}
			return m
		}},
		{"png grey", tierpix.FormatPNG, func(w, h int) image.Image { return greyPhoto(w, h) }},
		{"png grey alpha 16", tierpix.FormatPNG, func(w, h int) image.Image {
			m := image.NewNRGBA64(image.Rect(0, 0, w, h))
			for y := range h {
				for x := range w {
					v := uint16((x*131 + y*71) * 97)
					m.SetNRGBA64(x, y, color.NRGBA64{R: v, G: v, B: v, A: uint16(y * 50)})
				}
			}
			return m
		}},
		{"png rgb 16", tierpix.FormatPNG, func(w, h int) image.Image {
			m := image.NewRGBA64(image.Rect(0, 0, w, h))
			for y := range h {
				for x := range w {
					m.SetRGBA64(x, y, color.RGBA64{R: uint16(x * 977), G: uint16(y * 531), B: uint16((x + y) * 313), A: 0xffff})
				}
			}
			return m
		}},
		{"png palette", tierpix.FormatPNG, func(w, h int) image.Image {
			m := image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{color.Black, color.White, color.RGBA{200, 30, 30, 255}, color.RGBA{10, 90, 250, 128}})
			for i := range m.Pix {
				m.Pix[i] = uint8(i * 7 % 4)
			}
			return m
		}},
	}
	for _, k := range kinds {
		for _, h := range heights {
			for _, w := range widths {
				if k.format == tierpix.FormatPNG && w > 1000 && h > 1000 {
					continue // slow to encode in Go, and 4001x801 covers it
				}
				t.Run(fmt.Sprintf("%s %dx%d", k.name, w, h), func(t *testing.T) {
					var body []byte
					if k.format == tierpix.FormatJPEG {
						body = encodeJPEG(t, k.make(w, h), 0)
					} else {
						body = encodePNG(t, k.make(w, h))
					}
					path := writeFile(t, "src", body)
					inter, err := imaging.Intermediate(path, 400)
					if err != nil {
						t.Fatalf("Intermediate: %v", err)
					}
					if inter.Height != 400 || inter.Width != imaging.ThumbnailWidth(w, h, 400) {
						t.Fatalf("intermediate: got %dx%d, want %dx400", inter.Width, inter.Height, imaging.ThumbnailWidth(w, h, 400))
					}
					ipath := writeFile(t, "inter", inter.Body)
					for _, further := range []int{1, 100, 200, 399, 400} {
						r, err := imaging.ThumbnailFromIntermediate(ipath, k.format, w, h, 400, further, imaging.Encoding{})
						if err != nil {
							t.Fatalf("h%d from the intermediate: %v", further, err)
						}
						if got, want := [2]int{r.Width, r.Height}, [2]int{imaging.ThumbnailWidth(w, h, further), further}; got != want {
							t.Errorf("h%d from the intermediate: got %v, want %v", further, got, want)
						}
					}
				})
			}
		}
	}
}
