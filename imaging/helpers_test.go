package imaging_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/davidbyttow/govips/v2/vips"
	"github.com/tierpix/tierpix/imaging/testimage"
)

// writeFile writes data to a fresh file named name in a temporary directory.
func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
	return path
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatalf("encode png: %v", err)
	}
	return buf.Bytes()
}

// encodeJPEG encodes img and, for orientation 1..8, splices an Exif APP1 segment carrying that
// orientation right after the SOI marker, where cameras put it.
func encodeJPEG(t testing.TB, img image.Image, orientation int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatalf("encode jpeg: %v", err)
	}
	b := buf.Bytes()
	if orientation == 0 {
		return b
	}
	out := append([]byte{}, b[:2]...)
	out = append(out, exifSegment(orientation)...)
	return append(out, b[2:]...)
}

// exifTIFF is a big-endian TIFF structure with one IFD0 entry: Orientation (0x0112, SHORT).
func exifTIFF(orientation int) []byte {
	var b bytes.Buffer
	b.WriteString("MM\x00\x2a")                             // byte order, magic
	binary.Write(&b, binary.BigEndian, uint32(8))           // offset of IFD0
	binary.Write(&b, binary.BigEndian, uint16(1))           // one entry
	binary.Write(&b, binary.BigEndian, uint16(0x0112))      // tag: Orientation
	binary.Write(&b, binary.BigEndian, uint16(3))           // type: SHORT
	binary.Write(&b, binary.BigEndian, uint32(1))           // count
	binary.Write(&b, binary.BigEndian, uint16(orientation)) // value, left-justified
	binary.Write(&b, binary.BigEndian, uint16(0))           // padding
	binary.Write(&b, binary.BigEndian, uint32(0))           // no next IFD
	return b.Bytes()
}

func exifSegment(orientation int) []byte {
	payload := append([]byte("Exif\x00\x00"), exifTIFF(orientation)...)
	seg := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(payload)+2))
	return append(seg, payload...)
}

// pngChunk encodes one PNG chunk with its CRC.
func pngChunk(typ string, data []byte) []byte {
	out := make([]byte, 8, 12+len(data))
	binary.BigEndian.PutUint32(out, uint32(len(data)))
	copy(out[4:], typ)
	out = append(out, data...)
	crc := crc32.ChecksumIEEE(out[4:])
	return binary.BigEndian.AppendUint32(out, crc)
}

// pngChunks splits a PNG into its chunks (type and data), failing on a malformed stream.
func pngChunks(t testing.TB, b []byte) []struct {
	typ  string
	data []byte
} {
	t.Helper()
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("got no PNG signature, want one")
	}
	var chunks []struct {
		typ  string
		data []byte
	}
	for p := 8; p < len(b); {
		if p+12 > len(b) {
			t.Fatalf("got a truncated chunk at %d, want whole chunks", p)
		}
		n := int(binary.BigEndian.Uint32(b[p:]))
		chunks = append(chunks, struct {
			typ  string
			data []byte
		}{string(b[p+4 : p+8]), b[p+8 : p+8+n]})
		p += 12 + n
	}
	return chunks
}

// insertPNGChunk puts a chunk right after IHDR.
func insertPNGChunk(b []byte, chunk []byte) []byte {
	const ihdrEnd = 8 + 12 + 13
	out := append([]byte{}, b[:ihdrEnd]...)
	out = append(out, chunk...)
	return append(out, b[ihdrEnd:]...)
}

// jpegMarkers lists the markers of a JPEG up to the start of scan, with APPn identifiers.
func jpegMarkers(t testing.TB, b []byte) []string {
	t.Helper()
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		t.Fatalf("got no JPEG SOI, want one")
	}
	var markers []string
	for p := 2; p+4 <= len(b); {
		if b[p] != 0xFF {
			t.Fatalf("got byte %#x at %d, want a marker", b[p], p)
		}
		m := b[p+1]
		n := int(binary.BigEndian.Uint16(b[p+2:]))
		name := string(rune(m))
		switch {
		case m >= 0xE0 && m <= 0xEF:
			id, _, _ := bytes.Cut(b[p+4:min(p+2+n, p+18)], []byte{0})
			name = fmt.Sprintf("APP%d:%s", m-0xE0, id)
		case m == 0xFE:
			name = "COM"
		case m == 0xDA:
			return append(markers, "SOS")
		default:
			name = "other"
		}
		markers = append(markers, name)
		p += 2 + n
	}
	return markers
}

// Colours of the orientation test pictures: a red marker in the displayed top-left corner of a
// green field.
var (
	red   = color.NRGBA{R: 230, G: 20, B: 20, A: 255}
	green = color.NRGBA{R: 20, G: 160, B: 40, A: 255}
)

// markedPicture is a w×h picture, green with a red block in its top-left quarter-ish.
func markedPicture(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := green
			if x < w/3 && y < h/2 {
				c = red
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

// storedFor returns the pixels a camera stores for the displayed picture d under an EXIF
// orientation: displaying the result with that orientation gives d back.
func storedFor(d *image.NRGBA, orientation int) *image.NRGBA {
	dw, dh := d.Bounds().Dx(), d.Bounds().Dy()
	sw, sh := dw, dh
	if orientation >= 5 {
		sw, sh = dh, dw
	}
	s := image.NewNRGBA(image.Rect(0, 0, sw, sh))
	for sy := range sh {
		for sx := range sw {
			var dx, dy int
			switch orientation {
			case 2: // displayed mirrored left to right
				dx, dy = dw-1-sx, sy
			case 3: // displayed turned 180°
				dx, dy = dw-1-sx, dh-1-sy
			case 4: // displayed mirrored top to bottom
				dx, dy = sx, dh-1-sy
			case 5: // displayed transposed (mirrored about the main diagonal)
				dx, dy = sy, sx
			case 6: // displayed turned 90° clockwise
				dx, dy = dw-1-sy, sx
			case 7: // displayed transversed (mirrored about the other diagonal)
				dx, dy = dw-1-sy, dh-1-sx
			case 8: // displayed turned 90° anticlockwise
				dx, dy = sy, dh-1-sx
			default:
				dx, dy = sx, sy
			}
			s.SetNRGBA(sx, sy, d.NRGBAAt(dx, dy))
		}
	}
	return s
}

// near reports whether two 8-bit colours are within tol on every channel.
func near(a, b color.NRGBA, tol int) bool {
	d := func(x, y uint8) bool { return int(x)-int(y) <= tol && int(y)-int(x) <= tol }
	return d(a.R, b.R) && d(a.G, b.G) && d(a.B, b.B) && d(a.A, b.A)
}

func nrgbaAt(img image.Image, x, y int) color.NRGBA {
	return color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
}

// smoothNoise fills a w×h YCbCr picture with a diagonal gradient plus low-frequency noise,
// which compresses like a photograph rather than like a flat test card.
func smoothNoise(w, h int) *image.YCbCr {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	const cell = 16
	gw, gh := w/cell+2, h/cell+2
	grid := make([]float64, gw*gh)
	seed := uint32(2463534242)
	for i := range grid {
		seed ^= seed << 13
		seed ^= seed >> 17
		seed ^= seed << 5
		grid[i] = float64(seed%64) - 32
	}
	for y := range h {
		gy, fy := y/cell, float64(y%cell)/cell
		for x := range w {
			gx, fx := x/cell, float64(x%cell)/cell
			a, b := grid[gy*gw+gx], grid[gy*gw+gx+1]
			c, d := grid[(gy+1)*gw+gx], grid[(gy+1)*gw+gx+1]
			n := a*(1-fx)*(1-fy) + b*fx*(1-fy) + c*(1-fx)*fy + d*fx*fy
			v := 40 + 170*float64(x+y)/float64(w+h) + n
			img.Y[y*img.YStride+x] = uint8(max(0, min(255, v)))
		}
	}
	for y := range (h + 1) / 2 {
		for x := range (w + 1) / 2 {
			img.Cb[y*img.CStride+x] = uint8(64 + 128*x/((w+1)/2))
			img.Cr[y*img.CStride+x] = uint8(64 + 128*y/((h+1)/2))
		}
	}
	return img
}

// Grain amplitudes that give the anchors' file sizes: JPEG Q90 of 12 MP at about 3.9 MB, and
// a 2 MP PNG at about 5.7 MB (that much grain leaves PNG's filters little to find).
const (
	jpegGrain = testimage.JPEGGrain
	pngGrain  = testimage.PNGGrain
)

func photo(w, h int, grain int32) *image.YCbCr { return testimage.Photo(w, h, grain) }

// photoRGB is photo with heavier grain, opaque, for PNG sources.
func photoRGB(w, h int) *image.RGBA { return testimage.PhotoRGB(w, h, pngGrain) }

// decodeWebP decodes a WebP with libvips (the standard library has no WebP decoder), by way of
// a PNG, failing unless it is a WebP.
func decodeWebP(t testing.TB, b []byte) image.Image {
	t.Helper()
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WEBP" {
		t.Fatalf("got no RIFF/WEBP header, want a WebP")
	}
	ref, err := vips.NewImageFromBuffer(b)
	if err != nil {
		t.Fatalf("decode webp: %v", err)
	}
	defer ref.Close()
	if ref.Format() != vips.ImageTypeWEBP {
		t.Fatalf("got a %v, want a WebP", ref.Format())
	}
	p, _, err := ref.ExportPng(vips.NewPngExportParams())
	if err != nil {
		t.Fatalf("webp to png: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(p))
	if err != nil {
		t.Fatalf("decode webp's png: %v", err)
	}
	return img
}

// webpChunk is one chunk of a WebP's RIFF container.
type webpChunk struct {
	fourCC string
	data   []byte
}

// webpChunks splits a WebP into its chunks, failing on a malformed container: a RIFF size
// that is not the file's, or a chunk running past the end.
func webpChunks(t testing.TB, b []byte) []webpChunk {
	t.Helper()
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WEBP" {
		t.Fatalf("got no RIFF/WEBP header, want a WebP")
	}
	if n := int(binary.LittleEndian.Uint32(b[4:])); n != len(b)-8 {
		t.Fatalf("got RIFF size %d, want %d (the file's)", n, len(b)-8)
	}
	var chunks []webpChunk
	for p := 12; p < len(b); {
		if p+8 > len(b) {
			t.Fatalf("got a truncated chunk header at %d, want whole chunks", p)
		}
		n := int(binary.LittleEndian.Uint32(b[p+4:]))
		if p+8+n > len(b) {
			t.Fatalf("got chunk %q of %d bytes at %d, past the end", b[p:p+4], n, p)
		}
		chunks = append(chunks, webpChunk{string(b[p : p+4]), b[p+8 : p+8+n]})
		p += 8 + n + n%2 // chunks are padded to an even size
	}
	return chunks
}

// luma is the BT.601 luma of img, as tierpix's encoders compute it (tp_luma in encode.c).
func luma(img image.Image) (y []uint8, w, h int) {
	b := img.Bounds()
	w, h = b.Dx(), b.Dy()
	y = make([]uint8, w*h)
	for j := range h {
		for i := range w {
			c := nrgbaAt(img, b.Min.X+i, b.Min.Y+j)
			y[j*w+i] = uint8((19595*int(c.R) + 38470*int(c.G) + 7471*int(c.B) + 32768) >> 16)
		}
	}
	return y, w, h
}

// ssim is the mean SSIM of two w×h luma planes over 8×8 windows 4 pixels apart, the measure
// the quality search uses (tp_ssim), written out plainly.
func ssim(a, b []uint8, w, h int) float64 {
	const c1, c2 = (0.01 * 255) * (0.01 * 255), (0.03 * 255) * (0.03 * 255)
	var total float64
	n := 0
	for y := 0; y+8 <= h; y += 4 {
		for x := 0; x+8 <= w; x += 4 {
			var sa, sb, saa, sbb, sab float64
			for j := range 8 {
				for i := range 8 {
					pa, pb := float64(a[(y+j)*w+x+i]), float64(b[(y+j)*w+x+i])
					sa += pa
					sb += pb
					saa += pa * pa
					sbb += pb * pb
					sab += pa * pb
				}
			}
			ma, mb := sa/64, sb/64
			va, vb, cov := saa/64-ma*ma, sbb/64-mb*mb, sab/64-ma*mb
			total += (2*ma*mb + c1) * (2*cov + c2) / ((ma*ma + mb*mb + c1) * (va + vb + c2))
			n++
		}
	}
	return total / float64(n)
}

// chartPicture is a w×h synthetic picture like a chart or a screenshot: a white field with a
// grey grid, black axes, flat coloured bars and a dark line across them.
func chartPicture(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	set := func(x, y int, c color.NRGBA) {
		if x >= 0 && x < w && y >= 0 && y < h {
			img.SetNRGBA(x, y, c)
		}
	}
	white := color.NRGBA{R: 255, G: 255, B: 255, A: 255}
	grid := color.NRGBA{R: 220, G: 220, B: 220, A: 255}
	black := color.NRGBA{A: 255}
	bars := []color.NRGBA{{R: 31, G: 119, B: 180, A: 255}, {R: 255, G: 127, B: 14, A: 255}, {R: 44, G: 160, B: 44, A: 255}, {R: 214, G: 39, B: 40, A: 255}}
	for y := range h {
		for x := range w {
			c := white
			if x%40 == 0 || y%40 == 0 {
				c = grid
			}
			set(x, y, c)
		}
	}
	left, bottom := w/10, h-h/10
	bw := (w - left) / (2*len(bars) + 1)
	for i, c := range bars {
		top := bottom - (i+2)*(bottom-h/10)/(len(bars)+2)
		for y := top; y < bottom; y++ {
			for x := left + (2*i+1)*bw; x < left+(2*i+2)*bw; x++ {
				set(x, y, c)
			}
		}
	}
	for x := left; x < w; x++ {
		set(x, bottom, black)
		set(x, bottom+1, black)
	}
	for y := h / 20; y <= bottom; y++ {
		set(left, y, black)
		set(left-1, y, black)
	}
	for x := left; x < w; x++ { // a line rising across the bars, 3 px thick
		y := bottom - (x-left)*(bottom-h/10)/(w-left)
		for d := -1; d <= 1; d++ {
			set(x, y+d, color.NRGBA{R: 60, G: 60, B: 60, A: 255})
		}
	}
	return img
}
