package imaging_test

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/tierpix/tierpix/imaging"
)

var photoOnce sync.Once

// photo12MP returns a 4000×3000 JPEG of smooth noise over a gradient. It is made on first use
// and cached in the system temp directory across runs (the generator is deterministic; the
// name carries a version to bump when it changes), so benchmarks do not pay for it.
func photo12MP(b *testing.B) string {
	b.Helper()
	path := filepath.Join(os.TempDir(), "tierpix-imaging-bench-12mp-v1.jpg")
	photoOnce.Do(func() {
		if _, err := os.Stat(path); err == nil {
			return
		}
		tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
		encodeJPEGFile(b, tmp, smoothNoise(4000, 3000))
		if err := os.Rename(tmp, path); err != nil {
			b.Fatalf("rename: %v", err)
		}
	})
	return path
}

func BenchmarkThumbnail12MP(b *testing.B) {
	path := photo12MP(b)
	b.ReportAllocs()
	for b.Loop() {
		r, err := imaging.Thumbnail(path, 200)
		if err != nil {
			b.Fatal(err)
		}
		if r.Height != 200 {
			b.Fatalf("got height %d, want 200", r.Height)
		}
	}
}

func BenchmarkValidate12MP(b *testing.B) {
	path := photo12MP(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := imaging.Validate(path, 50_000_000); err != nil {
			b.Fatal(err)
		}
	}
}
