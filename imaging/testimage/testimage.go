// Package testimage makes pictures that decode, resample and compress like photographs, for
// the tests and benchmarks of imaging and origin and for `make bench`: the same recipe
// everywhere, so their figures are about alike pictures. Flat or merely smooth pictures decode
// and compress far faster than photographs, which would flatter every figure measured on them.
package testimage

import "image"

// Grain amplitudes of the benchmark sources: JPEG photographs, and PNGs with heavier grain.
const (
	JPEGGrain = 13
	PNGGrain  = 55
)

// Rand is a small deterministic random source (xorshift), fast enough for 24 MP of grain.
type Rand uint64

// Next returns 32 random bits.
func (r *Rand) Next() uint32 {
	x := uint64(*r)
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	*r = Rand(x)
	return uint32(x >> 32)
}

// Grain is roughly Gaussian noise with a standard deviation of about 0.58·amp: the sum of four
// uniform bytes.
func (r *Rand) Grain(amp int32) int32 {
	v := r.Next()
	s := int32(v&0xff) + int32(v>>8&0xff) + int32(v>>16&0xff) + int32(v>>24) - 510
	return s * amp / 256
}

// NoiseField is smooth value noise: random values on a grid of cell-sized squares,
// interpolated bilinearly in between.
type NoiseField struct {
	cell, gw int
	grid     []float32
}

// NewNoiseField makes a field over w×h of cell-sized squares with values in ±amp.
func NewNoiseField(w, h, cell int, amp float32, r *Rand) NoiseField {
	gw, gh := w/cell+2, h/cell+2
	f := NoiseField{cell: cell, gw: gw, grid: make([]float32, gw*gh)}
	for i := range f.grid {
		f.grid[i] = (float32(r.Next()%2001)/1000 - 1) * amp
	}
	return f
}

// At is the field at (x, y).
func (f *NoiseField) At(x, y int) float32 {
	fx := float32(x%f.cell) / float32(f.cell)
	fy := float32(y%f.cell) / float32(f.cell)
	i := y/f.cell*f.gw + x/f.cell
	a, b, c, d := f.grid[i], f.grid[i+1], f.grid[i+f.gw], f.grid[i+f.gw+1]
	top := a + (b-a)*fx
	return top + (c+(d-c)*fx-top)*fy
}

func clampByte(v int32) uint8 { return uint8(max(0, min(255, v))) }

// Photo makes a w×h picture that compresses like a photograph: gradients in brightness and
// colour, smooth noise at three scales (large shapes, texture, fine detail) and per-pixel
// grain in every channel. Flat or merely smooth pictures decode and compress far faster than
// photographs, which would flatter every figure measured on them.
func Photo(w, h int, grain int32) *image.YCbCr {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	r := Rand(0x9E3779B97F4A7C15)
	large := NewNoiseField(w, h, 256, 50, &r)
	texture := NewNoiseField(w, h, 40, 22, &r)
	fine := NewNoiseField(w, h, 7, 8, &r)
	for y := range h {
		row := img.Y[y*img.YStride:]
		for x := range w {
			v := 30 + 170*float32(x+y)/float32(w+h) + large.At(x, y) + texture.At(x, y) + fine.At(x, y)
			row[x] = clampByte(int32(v) + r.Grain(grain))
		}
	}
	cw, ch := (w+1)/2, (h+1)/2
	cb := NewNoiseField(cw, ch, 96, 30, &r)
	cr := NewNoiseField(cw, ch, 96, 30, &r)
	for y := range ch {
		for x := range cw {
			img.Cb[y*img.CStride+x] = clampByte(int32(100+60*float32(x)/float32(cw)+cb.At(x, y)) + r.Grain(grain/3))
			img.Cr[y*img.CStride+x] = clampByte(int32(160-60*float32(y)/float32(ch)+cr.At(x, y)) + r.Grain(grain/3))
		}
	}
	return img
}

// PhotoRGB is Photo as an opaque RGBA picture, which image/png writes as 8-bit RGB.
func PhotoRGB(w, h int, grain int32) *image.RGBA {
	src := Photo(w, h, grain)
	dst := image.NewRGBA(src.Bounds())
	for y := range h {
		for x := range w {
			dst.Set(x, y, src.At(x, y))
		}
	}
	return dst
}
