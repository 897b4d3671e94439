package origin

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/imaging"
	"github.com/tierpix/tierpix/imaging/testimage"
	"github.com/tierpix/tierpix/signing"
)

// photo draws what issue 4's benchmark sources are (testimage.Photo): like a photograph as
// far as resampling and JPEG coding are concerned.
func photo(w, h int) *image.YCbCr { return testimage.Photo(w, h, testimage.JPEGGrain) }

var (
	photosMu sync.Mutex
	photos   = map[[3]int][]byte{}
)

// photoJPEG returns photo(w, h) as a JPEG of quality 90 with the given EXIF orientation
// (0: none), made once per run.
func photoJPEG(t testing.TB, w, h, orientation int) []byte {
	t.Helper()
	photosMu.Lock()
	defer photosMu.Unlock()
	k := [3]int{w, h, orientation}
	if b, ok := photos[k]; ok {
		return b
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, photo(w, h), &jpeg.Options{Quality: 90}); err != nil {
		t.Fatalf("encode photo: %v", err)
	}
	b := buf.Bytes()
	if orientation != 0 {
		b = append(append(append([]byte{}, b[:2]...), exifOrientation(orientation)...), b[2:]...)
	}
	photos[k] = b
	return b
}

// exifOrientation is an APP1 segment holding an Exif IFD0 with the Orientation tag alone.
func exifOrientation(orientation int) []byte {
	var tiff bytes.Buffer
	tiff.WriteString("MM\x00\x2a")
	binary.Write(&tiff, binary.BigEndian, uint32(8))      // offset of IFD0
	binary.Write(&tiff, binary.BigEndian, uint16(1))      // one entry
	binary.Write(&tiff, binary.BigEndian, uint16(0x0112)) // Orientation
	binary.Write(&tiff, binary.BigEndian, uint16(3))      // SHORT
	binary.Write(&tiff, binary.BigEndian, uint32(1))      // one value
	binary.Write(&tiff, binary.BigEndian, uint16(orientation))
	binary.Write(&tiff, binary.BigEndian, uint16(0))
	binary.Write(&tiff, binary.BigEndian, uint32(0)) // no next IFD
	payload := append([]byte("Exif\x00\x00"), tiff.Bytes()...)
	seg := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(payload)+2))
	return append(seg, payload...)
}

// addPhoto uploads a photograph-like w x h JPEG through the store, as the API would.
func (e *env) addPhoto(t testing.TB, w, h int) tierpix.Image {
	t.Helper()
	return e.addBytes(t, tierpix.FormatJPEG, w, h, photoJPEG(t, w, h, 0))
}

// addBytes uploads body, an image displayed at w x h, through the store.
func (e *env) addBytes(t testing.TB, format string, w, h int, body []byte) tierpix.Image {
	t.Helper()
	f, err := os.CreateTemp(e.st.TempDir(), "upload-*")
	if err != nil {
		t.Fatalf("create upload: %v", err)
	}
	if _, err := f.Write(body); err != nil {
		t.Fatalf("write upload: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close upload: %v", err)
	}
	img := tierpix.Image{OwnerID: e.owner.ID, Name: "photo." + format, Format: format, Width: w, Height: h, SizeBytes: int64(len(body))}
	if err := e.st.CreateImage(context.Background(), &img, f.Name()); err != nil {
		t.Fatalf("CreateImage: %v", err)
	}
	return img
}

// psnr is the peak signal-to-noise ratio, in dB, of encoded image b against encoded image a
// over their 8-bit R, G and B samples; +Inf for identical pixels.
func psnr(t *testing.T, a, b []byte) float64 {
	t.Helper()
	ia, _, err := image.Decode(bytes.NewReader(a))
	if err != nil {
		t.Fatalf("decode reference: %v", err)
	}
	ib, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decode image: %v", err)
	}
	ra, rb := ia.Bounds(), ib.Bounds()
	if ra.Dx() != rb.Dx() || ra.Dy() != rb.Dy() {
		t.Fatalf("sizes: got %dx%d, want %dx%d", rb.Dx(), rb.Dy(), ra.Dx(), ra.Dy())
	}
	var sum float64
	for y := range ra.Dy() {
		for x := range ra.Dx() {
			r1, g1, b1, _ := ia.At(ra.Min.X+x, ra.Min.Y+y).RGBA()
			r2, g2, b2, _ := ib.At(rb.Min.X+x, rb.Min.Y+y).RGBA()
			for _, d := range [3]float64{float64(r1>>8) - float64(r2>>8), float64(g1>>8) - float64(g2>>8), float64(b1>>8) - float64(b2>>8)} {
				sum += d * d
			}
		}
	}
	mse := sum / float64(3*ra.Dx()*ra.Dy())
	if mse == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/mse)
}

// intermediateFiles lists the intermediate files of an image's cache dir.
func (o *Origin) intermediateFiles(t *testing.T, id string) []string {
	t.Helper()
	dir, _ := o.imageDir(id)
	names, _ := filepath.Glob(filepath.Join(dir, "i*"))
	for i, n := range names {
		names[i] = filepath.Base(n)
	}
	return names
}

var photoTier = tierpix.Tier{Name: "Photo", ThumbnailHeights: []int{100, 150, 200, 300, 400}}

func TestFurtherSizesFromIntermediate(t *testing.T) {
	tests := []struct {
		name      string
		format    string
		w, h      int // as displayed
		body      func(t *testing.T) []byte
		first     int    // the height asked first
		wantInter string // the intermediate the first render leaves
		further   []int
	}{
		{
			name: "jpeg photograph", format: tierpix.FormatJPEG, w: 2400, h: 1800,
			body:  func(t *testing.T) []byte { return photoJPEG(t, 2400, 1800, 0) },
			first: 200, wantInter: "i400-v" + renderVersion, further: []int{150, 300, 400, 100},
		},
		{
			// Turned a quarter by its EXIF orientation: stored 1200 wide and 1600 high.
			name: "jpeg photograph, orientation 6", format: tierpix.FormatJPEG, w: 1600, h: 1200,
			body:  func(t *testing.T) []byte { return photoJPEG(t, 1200, 1600, 6) },
			first: 100, wantInter: "i400-v" + renderVersion, further: []int{150, 300, 400},
		},
		{
			// PNG keeps alpha through a lossless intermediate; the first height is the largest.
			name: "png with alpha", format: tierpix.FormatPNG, w: 1200, h: 800,
			body:  func(t *testing.T) []byte { return encodeImage(t, tierpix.FormatPNG, 1200, 800) },
			first: 400, wantInter: "i400-v" + renderVersion, further: []int{150, 100},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, photoTier, Config{})
			img := e.addBytes(t, tt.format, tt.w, tt.h, tt.body(t))
			src := e.st.OriginalPath(img.ID)
			fetchH := func(h int) response {
				t.Helper()
				res := get(t, e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(h)}))
				if res.status != http.StatusOK {
					t.Fatalf("h%d: got %d, want 200 (%s)", h, res.status, res.body)
				}
				return res
			}

			first := fetchH(tt.first)
			e.origin.waitIntermediates(t)
			if got := e.origin.intermediateFiles(t, img.ID); len(got) != 1 || got[0] != tt.wantInter {
				t.Fatalf("intermediates after h%d: got %v, want [%s]", tt.first, got, tt.wantInter)
			}
			direct, err := imaging.Thumbnail(src, tt.first, imaging.Encoding{})
			if err != nil {
				t.Fatal(err)
			}
			if p := psnr(t, direct.Body, first.body); p < 35 {
				t.Errorf("h%d (first, from the intermediate's pixels): PSNR %.1f dB against a direct render, want at least 35", tt.first, p)
			}
			for i, h := range tt.further {
				res := fetchH(h)
				direct, err := imaging.Thumbnail(src, h, imaging.Encoding{})
				if err != nil {
					t.Fatal(err)
				}
				p := psnr(t, direct.Body, res.body)
				t.Logf("h%d from the intermediate: PSNR %.1f dB against a direct render", h, p)
				if p < 35 {
					t.Errorf("h%d: PSNR %.1f dB against a direct render, want at least 35", h, p)
				}
				if got := e.origin.Stats().FromIntermediate; got != uint64(i+1) {
					t.Errorf("renders from the intermediate after h%d: got %d, want %d", h, got, i+1)
				}
				if tt.format == tierpix.FormatPNG {
					m, _, err := image.Decode(bytes.NewReader(res.body))
					if err != nil {
						t.Fatal(err)
					}
					if _, _, _, a := m.At(0, 0).RGBA(); a == 0xffff {
						t.Errorf("h%d: alpha at the translucent corner: got opaque, want translucent", h)
					}
				}
			}
			if got, want := requestStats(e.origin), (Stats{Renders: uint64(1 + len(tt.further)), Intermediates: 1, FromIntermediate: uint64(len(tt.further))}); got != want {
				t.Errorf("stats: got %+v, want %+v", got, want)
			}
		})
	}
}

// TestFurtherSizeEncodedAsDirect checks that a render from an intermediate is encoded with
// the same JPEG settings (quantisation tables, chroma subsampling) as a render from the
// original: imaging keeps the two encoders apart, and they must not drift.
func TestFurtherSizeEncodedAsDirect(t *testing.T) {
	e := newEnv(t, photoTier, Config{})
	img := e.addPhoto(t, 2400, 1800)
	for _, h := range []int{200, 300} {
		if res := get(t, e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(h)})); res.status != http.StatusOK {
			t.Fatalf("h%d: got %d, want 200", h, res.status)
		}
		e.origin.waitIntermediates(t)
	}
	if got := e.origin.Stats().FromIntermediate; got != 1 {
		t.Fatalf("renders from the intermediate: got %d, want 1", got)
	}
	further, err := os.ReadFile(mustDiskPath(t, e.origin, img.ID, 300))
	if err != nil {
		t.Fatal(err)
	}
	direct, err := imaging.Thumbnail(e.st.OriginalPath(img.ID), 300, imaging.Encoding{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := jpegCoding(t, further), jpegCoding(t, direct.Body); got != want {
		t.Errorf("coding of the further size:\ngot  %s\nwant %s (a direct render's)", got, want)
	}
}

func mustDiskPath(t *testing.T, o *Origin, id string, v int) string {
	t.Helper()
	p, ok := o.diskPath(id, v)
	if !ok {
		t.Fatalf("no disk path for %s", id)
	}
	return p
}

// jpegCoding describes how a JPEG is coded: its quantisation tables and its frame header
// (precision, size, components and their sampling factors).
func jpegCoding(t *testing.T, b []byte) string {
	t.Helper()
	var out bytes.Buffer
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xFF {
			t.Fatalf("JPEG marker expected at %d", i)
		}
		marker := b[i+1]
		n := int(binary.BigEndian.Uint16(b[i+2:]))
		seg := b[i+4 : i+2+n]
		switch {
		case marker == 0xDB:
			fmt.Fprintf(&out, "DQT %x; ", seg)
		case marker >= 0xC0 && marker <= 0xC2:
			fmt.Fprintf(&out, "SOF%d %x; ", marker-0xC0, seg)
		case marker == 0xDA:
			return out.String()
		}
		i += 2 + n
	}
	t.Fatal("no SOS marker")
	return ""
}

// TestDamagedIntermediate checks that an intermediate that does not decode is replaced by a
// render from the original, which makes a new one.
func TestDamagedIntermediate(t *testing.T) {
	e := newEnv(t, photoTier, Config{})
	img := e.addPhoto(t, 2400, 1800)
	u := func(h int) string { return e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(h)}) }
	if res := get(t, u(200)); res.status != http.StatusOK {
		t.Fatalf("h200: got %d, want 200", res.status)
	}
	e.origin.waitIntermediates(t)
	dir, _ := e.origin.imageDir(img.ID)
	inter := filepath.Join(dir, "i400-v"+renderVersion)
	// A crash before the data reached the disk leaves zeros behind the rename.
	if err := os.WriteFile(inter, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := get(t, u(300)); res.status != http.StatusOK {
		t.Fatalf("h300: got %d, want 200", res.status)
	}
	e.origin.waitIntermediates(t)
	if got, want := requestStats(e.origin), (Stats{Renders: 2, Intermediates: 2}); got != want {
		t.Errorf("stats: got %+v, want %+v (h300 from the original, with a new intermediate)", got, want)
	}
	if b, err := os.ReadFile(inter); err != nil || !validBody(tierpix.FormatJPEG, b) {
		t.Errorf("intermediate after the render: got %d bytes (err %v), want a whole JPEG", len(b), err)
	}
	if res := get(t, u(150)); res.status != http.StatusOK || e.origin.Stats().FromIntermediate != 1 {
		t.Errorf("h150: got %d with %d renders from the intermediate, want 200 with 1", res.status, e.origin.Stats().FromIntermediate)
	}
}

// TestPurgeDropsIntermediate checks that a deleted image's intermediate goes with it: a new
// image under the same id (as after a restore) renders from its own original.
func TestPurgeDropsIntermediate(t *testing.T) {
	e := newEnv(t, photoTier, Config{})
	img := e.addPhoto(t, 2400, 1800)
	u := func(h int) string { return e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(h)}) }
	if res := get(t, u(200)); res.status != http.StatusOK {
		t.Fatalf("h200: got %d, want 200", res.status)
	}
	e.origin.waitIntermediates(t)
	if got := e.origin.intermediateFiles(t, img.ID); len(got) != 1 {
		t.Fatalf("intermediates: got %v, want one", got)
	}
	e.origin.Purge(img.ID)
	if got := e.origin.intermediateFiles(t, img.ID); len(got) != 0 {
		t.Errorf("intermediates after purge: got %v, want none", got)
	}
	if res := get(t, u(300)); res.status != http.StatusOK {
		t.Fatalf("h300 after purge: got %d, want 200", res.status)
	}
	if got := e.origin.Stats().FromIntermediate; got != 0 {
		t.Errorf("renders from an intermediate after purge: got %d, want 0", got)
	}
}

func TestIntermediateHeight(t *testing.T) {
	tests := []struct {
		name    string
		heights []int
		imgH    int
		eff     int
		want    int
	}{
		{name: "largest of the tier", heights: []int{200, 400}, imgH: 3000, eff: 200, want: 400},
		{name: "asked the largest, smaller ones exist", heights: []int{200, 400}, imgH: 3000, eff: 400, want: 400},
		{name: "one height only", heights: []int{200}, imgH: 3000, eff: 200, want: 0},
		{name: "capped at the original: no gain", heights: []int{200, 800}, imgH: 600, eff: 200, want: 0},
		{name: "original less than twice as high", heights: []int{200, 400}, imgH: 750, eff: 200, want: 400},
		{name: "original exactly twice as high", heights: []int{200, 400}, imgH: 800, eff: 200, want: 400},
		{name: "all heights cap to one", heights: []int{400, 800}, imgH: 300, eff: 300, want: 0},
		{name: "preview above the tier", heights: []int{100}, imgH: 3000, eff: 200, want: 0},
		{name: "no heights", heights: nil, imgH: 3000, eff: 200, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := tierpix.Image{Width: tt.imgH * 4 / 3, Height: tt.imgH}
			if got := intermediateHeight(img, tierpix.Tier{ThumbnailHeights: tt.heights}, tt.eff); got != tt.want {
				t.Errorf("intermediateHeight: got %d, want %d", got, tt.want)
			}
		})
	}
}

// waitIntermediates waits until the intermediates queued so far are made (or dropped), for at
// most 20 s.
func (o *Origin) waitIntermediates(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		o.interMu.Lock()
		n := len(o.interQueued)
		o.interMu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d intermediates still queued after 20 s", n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
