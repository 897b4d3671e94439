package imaging

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"

	"github.com/tierpix/tierpix"
)

// pngWithHeader returns the start of a PNG: its signature and an IHDR chunk.
func pngWithHeader(w, h int, depth, colour, interlace byte) []byte {
	b := append([]byte{}, PNGMagic...)
	b = binary.BigEndian.AppendUint32(b, 13)
	b = append(b, "IHDR"...)
	b = binary.BigEndian.AppendUint32(b, uint32(w))
	b = binary.BigEndian.AppendUint32(b, uint32(h))
	b = append(b, depth, colour, 0, 0, interlace)
	return append(b, 0, 0, 0, 0) // CRC, not checked here
}

func TestDecodeCost(t *testing.T) {
	var baseline bytes.Buffer
	if err := jpeg.Encode(&baseline, image.NewYCbCr(image.Rect(0, 0, 7000, 16), image.YCbCrSubsampleRatio420), nil); err != nil {
		t.Fatal(err)
	}
	// The same JPEG with its frame marked progressive (SOF2) instead of baseline (SOF0).
	progressive := bytes.Replace(baseline.Bytes(), []byte{0xFF, 0xC0}, []byte{0xFF, 0xC2}, 1)
	tests := []struct {
		name     string
		data     []byte
		min, max int64 // bytes
	}{
		{"interlaced 16-bit RGBA PNG 7000x7000: the whole frame and more", pngWithHeader(7000, 7000, 16, 6, 1), 500 << 20, 600 << 20},
		{"plain 8-bit RGB PNG 7000x7000: a strip", pngWithHeader(7000, 7000, 8, 2, 0), decodeBase, decodeBase + 16<<20},
		{"baseline JPEG 7000 wide: a strip", baseline.Bytes(), decodeBase, decodeBase + 16<<20},
		{"progressive JPEG 7000x16: coefficients of every pixel", progressive, decodeBase + 7000*16*3*3 - 1, decodeBase + 7000*16*3*3 + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "img")
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := DecodeCost(path)
			if err != nil {
				t.Fatal(err)
			}
			if got < tt.min || got > tt.max {
				t.Fatalf("got %d MiB, want %d to %d MiB", got>>20, tt.min>>20, tt.max>>20)
			}
		})
	}
	for _, bad := range [][]byte{PNGMagic, append(append([]byte{}, jpegMagic...), 0xFF, 0xD9), []byte("GIF89a..")} {
		path := filepath.Join(t.TempDir(), "bad")
		os.WriteFile(path, bad, 0o600)
		if _, err := DecodeCost(path); tierpix.ErrorCode(err) != tierpix.EUNPROCESSABLE && tierpix.ErrorCode(err) != tierpix.EUNSUPPORTED {
			t.Errorf("%q: got %v, want a 415 or 422", bad, err)
		}
	}
}
