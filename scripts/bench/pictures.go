package main

import (
	"bufio"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"

	"github.com/tierpix/tierpix/imaging/testimage"
)

// The pictures of the formats scenario (formats.go). Its bytes-and-SSIM table wants several
// different pictures of each source, since the encoder's quality is chosen per picture; but
// every seeded image of a source is a hard link of one file, and testimage.Photo has one
// fixed seed. So image 0 of a source is the source itself and images 1 to formatImages-1 are
// variants made here from a seed: photographs with more or less detail, and screenshots.

// formatImages is how many different pictures of each source the table measures.
const formatImages = 8

// formatsVersion names the generators below in the cache directory; bump it when they change.
const formatsVersion = "formats-v1"

// screenshotSource is the synthetic source of the formats scenario: a 1920x1080 screenshot
// of a dashboard (flat areas, rules, charts, text-like glyphs, a photo inset), as PNG.
var screenshotSource = source{key: "shot", label: "2 MP PNG screenshot", w: 1920, h: 1080, png: true, formatSeeds: 4000}

// formatSources are the sources of the formats scenario: the bench's own and the screenshot.
func formatSources() []source { return append(append([]source(nil), sources...), screenshotSource) }

// makeFormatPictures writes the formatImages pictures of every source of the formats
// scenario into dir unless a previous run left them, and returns their paths by source key.
// Image 0 of a bench source is its file in paths; the screenshot has no image 0 elsewhere.
func makeFormatPictures(dir string, paths map[string]string) (map[string][]string, error) {
	dir = filepath.Join(dir, formatsVersion)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create pictures dir: %w", err)
	}
	out := map[string][]string{}
	for _, s := range formatSources() {
		for i := range formatImages {
			if i == 0 && s.key != screenshotSource.key {
				out[s.key] = append(out[s.key], paths[s.key])
				continue
			}
			ext := ".jpg"
			if s.png {
				ext = ".png"
			}
			path := filepath.Join(dir, fmt.Sprintf("%s-%d%s", s.key, i, ext))
			out[s.key] = append(out[s.key], path)
			if _, err := os.Stat(path); err == nil {
				continue
			}
			logf("making %s (%dx%d)", filepath.Base(path), s.w, s.h)
			seed := uint64(i)<<32 | uint64(s.w)
			err := writeAtomically(path, func(f *bufio.Writer) error {
				switch {
				case s.key == screenshotSource.key:
					return png.Encode(f, screenshot(s.w, s.h, seed))
				case s.png:
					return png.Encode(f, toRGBA(variantPhoto(s.w, s.h, pngGrain, seed)))
				}
				return jpeg.Encode(f, variantPhoto(s.w, s.h, jpegGrain, seed), &jpeg.Options{Quality: 90})
			})
			if err != nil {
				return nil, fmt.Errorf("make %s: %w", path, err)
			}
		}
	}
	return out, nil
}

// seeded is a random source from seed, mixed first (splitmix64's finaliser) so that nearby
// seeds start apart: xorshift's first outputs follow its seed's bits closely.
func seeded(seed uint64) testimage.Rand {
	z := seed + 0x9E3779B97F4A7C15
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	return testimage.Rand(z ^ z>>31 | 1)
}

func clamp8(v int32) uint8 { return uint8(max(0, min(255, v))) }

// variantPhoto is a picture made as testimage.Photo makes its one, from seed, with the
// amount of detail drawn from the seed too: from smooth (a sky, a portrait's background:
// little texture, fine grain) to busy (foliage: strong texture and grain), since how far a
// quality can drop depends on exactly that.
func variantPhoto(w, h int, grain int32, seed uint64) *image.YCbCr {
	r := seeded(seed)
	detail := 0.35 + float32(r.Next()%1000)/1000*1.3 // 0.35..1.65 of Photo's amounts
	grain = max(2, int32(float32(grain)*detail))
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	large := testimage.NewNoiseField(w, h, 160+int(r.Next()%200), 50, &r)
	texture := testimage.NewNoiseField(w, h, 24+int(r.Next()%32), 22*detail, &r)
	fine := testimage.NewNoiseField(w, h, 4+int(r.Next()%6), 8*detail, &r)
	// The brightness gradient runs along a direction of the seed's.
	angle := float64(r.Next()%360) * math.Pi / 180
	gx, gy := float32(math.Cos(angle)), float32(math.Sin(angle))
	span := float32(math.Abs(float64(gx))*float64(w) + math.Abs(float64(gy))*float64(h))
	from := min(0, gx*float32(w)) + min(0, gy*float32(h))
	for y := range h {
		row := img.Y[y*img.YStride:]
		for x := range w {
			t := (gx*float32(x) + gy*float32(y) - from) / span
			v := 30 + 170*t + large.At(x, y) + texture.At(x, y) + fine.At(x, y)
			row[x] = clamp8(int32(v) + r.Grain(grain))
		}
	}
	cw, ch := (w+1)/2, (h+1)/2
	cb := testimage.NewNoiseField(cw, ch, 96, 30, &r)
	cr := testimage.NewNoiseField(cw, ch, 96, 30, &r)
	hue := float32(r.Next()%80) - 40
	for y := range ch {
		for x := range cw {
			img.Cb[y*img.CStride+x] = clamp8(int32(100+hue+60*float32(x)/float32(cw)+cb.At(x, y)) + r.Grain(grain/3))
			img.Cr[y*img.CStride+x] = clamp8(int32(160-hue-60*float32(y)/float32(ch)+cr.At(x, y)) + r.Grain(grain/3))
		}
	}
	return img
}

// toRGBA converts a picture to opaque RGBA, which image/png writes as 8-bit RGB.
func toRGBA(src image.Image) *image.RGBA {
	b := src.Bounds()
	dst := image.NewRGBA(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			dst.Set(x, y, src.At(x, y))
		}
	}
	return dst
}

// canvas draws the screenshot: flat fills, anti-aliased lines and glyphs.
type canvas struct {
	img *image.RGBA
	r   testimage.Rand
}

func (c *canvas) fill(x0, y0, x1, y1 int, col color.RGBA) {
	b := c.img.Bounds()
	for y := max(y0, b.Min.Y); y < min(y1, b.Max.Y); y++ {
		for x := max(x0, b.Min.X); x < min(x1, b.Max.X); x++ {
			c.img.SetRGBA(x, y, col)
		}
	}
}

// blend paints col over pixel (x, y) with coverage a (0..1).
func (c *canvas) blend(x, y int, col color.RGBA, a float64) {
	if !(image.Point{x, y}.In(c.img.Bounds())) || a <= 0 {
		return
	}
	a = min(a, 1)
	o := c.img.RGBAAt(x, y)
	mix := func(p, q uint8) uint8 { return uint8(float64(p)*(1-a) + float64(q)*a + 0.5) }
	c.img.SetRGBA(x, y, color.RGBA{mix(o.R, col.R), mix(o.G, col.G), mix(o.B, col.B), 255})
}

// line draws an anti-aliased segment of the given width: each pixel near it is covered by
// how far its centre lies inside the stroke, as a rasteriser with one sample's worth of
// smoothing does.
func (c *canvas) line(x0, y0, x1, y1, width float64, col color.RGBA) {
	pad := width/2 + 1
	dx, dy := x1-x0, y1-y0
	l2 := dx*dx + dy*dy
	for y := int(math.Floor(min(y0, y1) - pad)); y <= int(math.Ceil(max(y0, y1)+pad)); y++ {
		for x := int(math.Floor(min(x0, x1) - pad)); x <= int(math.Ceil(max(x0, x1)+pad)); x++ {
			px, py := float64(x)+0.5, float64(y)+0.5
			t := 0.0
			if l2 > 0 {
				t = max(0, min(1, ((px-x0)*dx+(py-y0)*dy)/l2))
			}
			d := math.Hypot(px-(x0+t*dx), py-(y0+t*dy))
			c.blend(x, y, col, width/2+0.5-d)
		}
	}
}

// text writes n glyph-like marks from (x, y): each a 5x7 cell pattern drawn 1 px per cell at
// a size of 7x11, with the soft edges of hinted, anti-aliased text, and a space now and then.
// It returns the x where it stopped.
func (c *canvas) text(x, y, n int, col color.RGBA) int {
	for range n {
		if c.r.Next()%6 == 0 {
			x += 5
			continue
		}
		bits := c.r.Next()
		for gy := range 7 {
			for gx := range 5 {
				if bits>>(uint(gy*5+gx)%32)&1 == 0 || (gy*5+gx)%7 == 3 {
					continue
				}
				px, py := x+gx, y+2+gy
				c.blend(px, py, col, 1)
				// The half-covered neighbours of an anti-aliased stem.
				c.blend(px+1, py, col, 0.35)
				c.blend(px, py+1, col, 0.2)
			}
		}
		x += 7
	}
	return x
}

// screenshot draws a w x h dashboard from seed: a title bar, a side bar with a list, cards
// with a line chart, a bar chart, a table and a paragraph, and a photo inset, in a light or
// dark theme. Screenshots and charts are what PNG originals often are: flat areas and sharp
// edges, where a lossy encoder's ringing shows and a lossless one compresses well.
func screenshot(w, h int, seed uint64) *image.RGBA {
	c := &canvas{img: image.NewRGBA(image.Rect(0, 0, w, h)), r: seeded(seed)}
	dark := c.r.Next()%2 == 0
	bg, panel, ink, faint, rule := color.RGBA{246, 247, 249, 255}, color.RGBA{255, 255, 255, 255},
		color.RGBA{33, 37, 41, 255}, color.RGBA{120, 126, 134, 255}, color.RGBA{222, 226, 230, 255}
	if dark {
		bg, panel, ink, faint, rule = color.RGBA{24, 26, 31, 255}, color.RGBA{36, 39, 46, 255},
			color.RGBA{230, 232, 235, 255}, color.RGBA{140, 146, 156, 255}, color.RGBA{58, 62, 70, 255}
	}
	accents := []color.RGBA{{13, 110, 253, 255}, {220, 53, 69, 255}, {25, 135, 84, 255}, {255, 153, 0, 255}, {111, 66, 193, 255}}
	accent := accents[c.r.Next()%uint32(len(accents))]
	c.fill(0, 0, w, h, bg)

	// Title bar and side bar with a list, one row selected.
	c.fill(0, 0, w, 48, accent)
	c.text(20, 18, 18, color.RGBA{255, 255, 255, 255})
	side := w / 8
	c.fill(0, 48, side, h, panel)
	c.fill(side, 48, side+1, h, rule)
	for i, y := 0, 70; y < h-30; i, y = i+1, y+30 {
		if i == 3 {
			c.fill(0, y-7, side, y+21, rule)
		}
		c.text(20, y, 6+int(c.r.Next()%14), ink)
	}

	// Cards: a 2x2 grid in the main area.
	gap := 24
	left, top := side+gap, 48+gap
	cw, ch := (w-left-2*gap)/2, (h-top-2*gap)/2
	cards := [4]image.Rectangle{}
	for i := range cards {
		x0, y0 := left+(i%2)*(cw+gap), top+(i/2)*(ch+gap)
		cards[i] = image.Rect(x0, y0, x0+cw, y0+ch)
		c.fill(x0-1, y0-1, x0+cw+1, y0+ch+1, rule)
		c.fill(x0, y0, x0+cw, y0+ch, panel)
		c.text(x0+16, y0+14, 10+int(c.r.Next()%10), ink)
	}

	// A line chart: axes, grid, three series of anti-aliased polylines.
	p := cards[0].Inset(40)
	p.Min.Y += 10
	for gy := p.Min.Y; gy <= p.Max.Y; gy += (p.Dy()) / 5 {
		c.fill(p.Min.X, gy, p.Max.X, gy+1, rule)
		c.text(p.Min.X-34, gy-6, 3, faint)
	}
	for s := range 3 {
		col := accents[(int(accent.R)+s)%len(accents)]
		v := float64(p.Min.Y) + float64(p.Dy())*(0.3+0.4*float64(c.r.Next()%100)/100)
		px := float64(p.Min.X)
		for x := p.Min.X + 12; x <= p.Max.X; x += 12 {
			nv := v + (float64(c.r.Next()%61)-30)*float64(p.Dy())/300
			nv = max(float64(p.Min.Y), min(float64(p.Max.Y), nv))
			c.line(px, v, float64(x), nv, 2, col)
			px, v = float64(x), nv
		}
	}

	// A bar chart of flat bars on a baseline.
	p = cards[1].Inset(40)
	p.Min.Y += 10
	c.fill(p.Min.X, p.Max.Y, p.Max.X, p.Max.Y+1, faint)
	bars := 12
	bw := p.Dx() / bars
	for i := range bars {
		bh := p.Dy() * int(20+c.r.Next()%80) / 100
		c.fill(p.Min.X+i*bw+bw/5, p.Max.Y-bh, p.Min.X+(i+1)*bw-bw/5, p.Max.Y, accents[i%2*2])
		c.text(p.Min.X+i*bw+bw/5, p.Max.Y+6, 2, faint)
	}

	// A table with striped rows.
	p = cards[2].Inset(16)
	p.Min.Y += 30
	for i, y := 0, p.Min.Y; y+24 <= p.Max.Y; i, y = i+1, y+24 {
		if i%2 == 1 {
			c.fill(p.Min.X, y, p.Max.X, y+24, bg)
		}
		for col := range 4 {
			c.text(p.Min.X+8+col*p.Dx()/4, y+6, 4+int(c.r.Next()%8), ink)
		}
	}

	// A paragraph and a photo inset.
	p = cards[3].Inset(16)
	p.Min.Y += 30
	photoW, photoH := p.Dx()*2/5, p.Dy()*3/5
	ph := variantPhoto(photoW, photoH, jpegGrain, seed^0xABCDEF)
	for y := range photoH {
		for x := range photoW {
			r, g, b, _ := ph.At(x, y).RGBA()
			c.img.SetRGBA(p.Min.X+x, p.Min.Y+y, color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 255})
		}
	}
	for y := p.Min.Y; y+18 <= p.Max.Y; y += 18 {
		x0 := p.Min.X
		if y < p.Min.Y+photoH+8 {
			x0 += photoW + 16
		}
		c.text(x0, y, (p.Max.X-x0)/7-1, ink)
	}
	return c.img
}
