package origin

import (
	"bytes"
	"net/http"
	"os"
	"testing"

	"github.com/tierpix/tierpix/signing"
)

// TestDiskHitFromMapping checks that with a memory cache too small for a thumbnail, disk hits
// above mapMin are served from the file's mapping: the right bytes, every time, the mapping
// made once and held by each response only until it is written, and a purge unmapping it
// once the last reader is done.
func TestDiskHitFromMapping(t *testing.T) {
	e := newEnv(t, fullTier, Config{MemoryCacheBytes: 1})
	img := e.addPhoto(t, 1200, 900)
	u := e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(400)})
	first := get(t, u) // renders, and writes the disk cache
	if first.status != http.StatusOK {
		t.Fatalf("first request: got %d, want 200", first.status)
	}
	if len(first.body) <= mapMin {
		t.Fatalf("the thumbnail has %d bytes; the test needs more than mapMin (%d)", len(first.body), mapMin)
	}
	for i := range 5 {
		res := get(t, u)
		if res.status != http.StatusOK || !bytes.Equal(res.body, first.body) {
			t.Fatalf("disk hit %d: got %d with %d bytes, want 200 with the rendered %d bytes", i, res.status, len(res.body), len(first.body))
		}
	}
	f := e.origin.files.get(img.ID, 400)
	if f == nil {
		t.Fatal("the file is not in the open-file cache after disk hits")
	}
	if f.data == nil {
		t.Error("disk hits above mapMin with the memory cache off did not map the file")
	}
	// The cache's reference and this test's: every response gave its own back.
	if got := f.refs.Load(); got != 2 {
		t.Errorf("file references after the responses: got %d, want 2", got)
	}
	if got := e.origin.Stats().DiskHits; got != 5 {
		t.Errorf("disk hits: got %d, want 5", got)
	}
	e.origin.Purge(img.ID)
	if got := f.refs.Load(); got != 1 {
		t.Errorf("file references after the purge: got %d, want 1 (this test's)", got)
	}
	f.release() // the last: unmaps and closes
	if got := f.refs.Load(); got != 0 {
		t.Errorf("file references after the last release: got %d, want 0", got)
	}
}

// TestDamagedFileIsNotMapped checks that a cache file above mapMin whose end is missing (a
// crash before its data reached the disk) is neither mapped nor served, but rendered anew.
func TestDamagedFileIsNotMapped(t *testing.T) {
	e := newEnv(t, fullTier, Config{MemoryCacheBytes: 1})
	img := e.addPhoto(t, 1200, 900)
	u := e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(400)})
	first := get(t, u)
	if first.status != http.StatusOK || len(first.body) <= mapMin {
		t.Fatalf("first request: got %d with %d bytes, want 200 with more than %d", first.status, len(first.body), mapMin)
	}
	disk, _ := e.origin.diskPath(img.ID, 400)
	damaged := bytes.Clone(first.body)
	clear(damaged[len(damaged)-16:]) // zeros where the data never landed
	if err := os.WriteFile(disk, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	e.origin.files.forget(img.ID, 400) // as a restart would: nothing open
	before := e.origin.Stats().Renders
	res := get(t, u)
	if res.status != http.StatusOK || !bytes.Equal(res.body[:2], []byte{0xFF, 0xD8}) || !bytes.HasSuffix(res.body, []byte{0xFF, 0xD9}) {
		t.Fatalf("got %d with %d bytes, want 200 with a whole JPEG", res.status, len(res.body))
	}
	if got := e.origin.Stats().Renders; got != before+1 {
		t.Errorf("renders: got %d, want %d (the damaged file rendered anew)", got, before+1)
	}
}
