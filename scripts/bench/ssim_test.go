package main

import (
	"image"
	"image/color"
	"math"
	"testing"

	"github.com/tierpix/tierpix/imaging/testimage"
)

// noisy returns a copy of l with grain of amplitude amp added (clamped to 0..255).
func noisy(l luma, amp int32, seed uint64) luma {
	r := testimage.Rand(seed)
	out := luma{w: l.w, h: l.h, y: make([]float64, len(l.y))}
	for i, v := range l.y {
		n := float64(int32(r.Next()%uint32(2*amp+1)) - amp)
		out.y[i] = max(0, min(255, v+n))
	}
	return out
}

func constant(w, h int, v float64) luma {
	l := luma{w: w, h: h, y: make([]float64, w*h)}
	for i := range l.y {
		l.y[i] = v
	}
	return l
}

func TestSSIM(t *testing.T) {
	photo := lumaOf(testimage.Photo(96, 64, testimage.JPEGGrain))
	less, more := noisy(photo, 6, 1), noisy(photo, 24, 2)

	same, err := ssim(photo, photo)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(same-1) > 1e-12 {
		t.Errorf("identical pictures: got %v, want 1", same)
	}

	sLess, _ := ssim(photo, less)
	sMore, _ := ssim(photo, more)
	if !(sMore < sLess && sLess < 1) {
		t.Errorf("got %.4f for grain ±6 and %.4f for ±24, want ±24 < ±6 < 1", sLess, sMore)
	}

	back, _ := ssim(less, photo)
	if math.Abs(back-sLess) > 1e-12 {
		t.Errorf("ssim(noisy, photo) = %v, ssim(photo, noisy) = %v, want them equal", back, sLess)
	}

	// Two flat pictures, 100 and 110: the variances and covariance are 0, so the contrast and
	// structure term is C2/C2 = 1 and SSIM is the luminance term alone,
	// (2·100·110 + C1) / (100² + 110² + C1) with C1 = 2.55² = 6.5025, at every position.
	want := (22000 + 6.5025) / (22100 + 6.5025) // 0.995476...
	for _, side := range []int{11, 12, 30} {
		got, err := ssim(constant(side, side, 100), constant(side, side, 110))
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-want) > 1e-12 {
			t.Errorf("flat %dx%d pictures 100 and 110: got %.9f, want %.9f", side, side, got, want)
		}
	}

	// A picture against its negative: the luminance term is 1 around mid-grey and the
	// covariance negative, so SSIM is well below 0.
	neg := luma{w: photo.w, h: photo.h, y: make([]float64, len(photo.y))}
	for i, v := range photo.y {
		neg.y[i] = 255 - v
	}
	if got, _ := ssim(photo, neg); got >= 0 {
		t.Errorf("a picture against its negative: got %.4f, want < 0", got)
	}
}

func TestSSIMErrors(t *testing.T) {
	tests := []struct {
		name string
		a, b luma
	}{
		{name: "sizes differ", a: constant(20, 20, 1), b: constant(20, 21, 1)},
		{name: "smaller than the window", a: constant(10, 40, 1), b: constant(10, 40, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ssim(tt.a, tt.b); err == nil {
				t.Errorf("got no error, want one")
			}
		})
	}
}

func TestSSIMKernel(t *testing.T) {
	k := ssimKernel()
	var sum float64
	for _, v := range k {
		sum += v
	}
	if math.Abs(sum-1) > 1e-12 {
		t.Errorf("kernel sums to %v, want 1", sum)
	}
	// exp(-25/4.5) relative to the centre: the edge of the 11-tap window.
	if got, want := k[0]/k[5], math.Exp(-25/4.5); math.Abs(got-want) > 1e-12 {
		t.Errorf("edge/centre = %v, want %v", got, want)
	}
}

func TestLumaOf(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 2, 1))
	img.Set(0, 0, color.RGBA{255, 0, 0, 255})
	img.Set(1, 0, color.RGBA{10, 20, 30, 255})
	l := lumaOf(img)
	for i, want := range []float64{0.299 * 255, 0.299*10 + 0.587*20 + 0.114*30} {
		if math.Abs(l.y[i]-want) > 1e-9 {
			t.Errorf("pixel %d: got %v, want %v", i, l.y[i], want)
		}
	}
}

// TestSSIMAgainstScikitImage checks ssim against scikit-image 0.19's structural_similarity
// with the paper's settings (gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
// data_range=255), which also averages over the positions where the window fits, on two
// pairs of 40x30 pictures made from integer formulas (computed once, in Debian's
// python3-skimage).
func TestSSIMAgainstScikitImage(t *testing.T) {
	tests := []struct {
		name string
		a, b func(x, y int) float64
		want float64
	}{
		{
			name: "busy pattern, clamped noise",
			a:    func(x, y int) float64 { return float64((x*x*3 + y*5 + x*y) % 256) },
			b: func(x, y int) float64 {
				return float64(max(0, min(255, (x*x*3+y*5+x*y)%256+(x*31+y*17)%23-11)))
			},
			want: 0.9960109140399093,
		},
		{
			name: "gradient, small noise",
			a:    func(x, y int) float64 { return float64(100 + x*3 + y*2) },
			b:    func(x, y int) float64 { return float64(100 + x*3 + y*2 + (x*7+y*3)%9 - 4) },
			want: 0.9460279168011851,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := constant(40, 30, 0), constant(40, 30, 0)
			for y := range 30 {
				for x := range 40 {
					a.y[y*40+x], b.y[y*40+x] = tt.a(x, y), tt.b(x, y)
				}
			}
			got, err := ssim(a, b)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("got %.12f, want %.12f", got, tt.want)
			}
		})
	}
}
