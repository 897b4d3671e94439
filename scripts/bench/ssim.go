package main

import (
	"fmt"
	"image"
	"math"
)

// luma is a picture's luma plane, Y = 0.299R + 0.587G + 0.114B of its 8-bit samples, kept
// in float64 so that a reference resampled in float loses nothing to rounding.
type luma struct {
	w, h int
	y    []float64
}

// lumaOf computes the luma plane of img (its 8-bit R, G and B; alpha is ignored: the bench's
// pictures are opaque).
func lumaOf(img image.Image) luma {
	r := img.Bounds()
	l := luma{w: r.Dx(), h: r.Dy(), y: make([]float64, r.Dx()*r.Dy())}
	for y := range l.h {
		for x := range l.w {
			cr, cg, cb, _ := img.At(r.Min.X+x, r.Min.Y+y).RGBA()
			l.y[y*l.w+x] = lumaOfRGB(float64(cr>>8), float64(cg>>8), float64(cb>>8))
		}
	}
	return l
}

func lumaOfRGB(r, g, b float64) float64 { return 0.299*r + 0.587*g + 0.114*b }

// The constants of SSIM as Wang, Bovik, Sheikh and Simoncelli define it (IEEE TIP 2004): an
// 11x11 circular-symmetric Gaussian window of standard deviation 1.5, normalised to sum 1,
// K1 = 0.01 and K2 = 0.03 for a dynamic range L of 255.
const (
	ssimWindow = 11
	ssimSigma  = 1.5
	ssimC1     = (0.01 * 255) * (0.01 * 255)
	ssimC2     = (0.03 * 255) * (0.03 * 255)
)

// ssimKernel is the 1-D Gaussian whose outer product is the window, normalised to sum 1 (so
// the 2-D window sums to 1 too).
func ssimKernel() [ssimWindow]float64 {
	var k [ssimWindow]float64
	var sum float64
	for i := range k {
		d := float64(i - ssimWindow/2)
		k[i] = math.Exp(-d * d / (2 * ssimSigma * ssimSigma))
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	return k
}

// ssim is the mean structural similarity of two luma planes of the same size, over every
// position of the window that lies wholly inside the picture (no padding, as the reference
// implementation's 'valid' filtering). 1 means identical; it is symmetric in a and b.
func ssim(a, b luma) (float64, error) {
	if a.w != b.w || a.h != b.h {
		return 0, fmt.Errorf("ssim: sizes differ: %dx%d and %dx%d", a.w, a.h, b.w, b.h)
	}
	if a.w < ssimWindow || a.h < ssimWindow {
		return 0, fmt.Errorf("ssim: a %dx%d picture is smaller than the %d-pixel window", a.w, a.h, ssimWindow)
	}
	// The five local statistics are Gaussian-weighted sums, filtered separably: first along
	// rows into (w-10) x h planes, then along columns into (w-10) x (h-10).
	k := ssimKernel()
	ow, oh := a.w-ssimWindow+1, a.h-ssimWindow+1
	planes := [5][]float64{}
	for i := range planes {
		planes[i] = make([]float64, ow*a.h)
	}
	for y := range a.h {
		ra, rb := a.y[y*a.w:(y+1)*a.w], b.y[y*b.w:(y+1)*b.w]
		for x := range ow {
			var sa, sb, saa, sbb, sab float64
			for i, w := range k {
				va, vb := ra[x+i], rb[x+i]
				sa += w * va
				sb += w * vb
				saa += w * va * va
				sbb += w * vb * vb
				sab += w * va * vb
			}
			o := y*ow + x
			planes[0][o], planes[1][o], planes[2][o], planes[3][o], planes[4][o] = sa, sb, saa, sbb, sab
		}
	}
	var total float64
	for y := range oh {
		for x := range ow {
			var s [5]float64
			for i, w := range k {
				o := (y+i)*ow + x
				for p := range s {
					s[p] += w * planes[p][o]
				}
			}
			ma, mb := s[0], s[1]
			va, vb, cov := s[2]-ma*ma, s[3]-mb*mb, s[4]-ma*mb
			total += (2*ma*mb + ssimC1) * (2*cov + ssimC2) / ((ma*ma + mb*mb + ssimC1) * (va + vb + ssimC2))
		}
	}
	return total / float64(ow*oh), nil
}
