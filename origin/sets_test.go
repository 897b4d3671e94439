package origin

import (
	"fmt"
	"hash/maphash"
	"testing"
	"time"

	"github.com/tierpix/tierpix/signing"
)

// TestFileCacheSetKeepsCollidingFiles checks that files whose variants hash to the same set
// are all kept, four of them, and that a further one replaces the file that expires first.
func TestFileCacheSetKeepsCollidingFiles(t *testing.T) {
	const ways = 4 // at least: a hot set of files must not thrash
	var c fileCache
	c.seed = maphash.MakeSeed()
	c.init()
	target := &c.set("x", 0)[0]
	var files []*openFile
	now := time.Now()
	for i := 0; len(files) < ways+1; i++ {
		id := fmt.Sprintf("img%d", i)
		if &c.set(id, 200)[0] != target {
			continue
		}
		// fd -1: release closes nothing real; refs 2 as openCacheFile sets them.
		f := &openFile{id: id, v: 200, fd: -1, expires: now.Add(time.Duration(len(files)+1) * time.Minute)}
		f.refs.Store(2)
		files = append(files, f)
	}
	for _, f := range files[:ways] {
		c.put(f)
	}
	for _, f := range files[:ways] {
		got := c.get(f.id, f.v)
		if got != f {
			t.Fatalf("get(%s) = %v, want the file put (%d colliding files must all be kept)", f.id, got, ways)
		}
		got.release()
	}
	c.put(files[ways])
	if got := c.get(files[0].id, 200); got != nil {
		t.Errorf("the file that expires first is still kept after a fifth put")
	}
	for _, f := range files[1:] {
		got := c.get(f.id, f.v)
		if got != f {
			t.Errorf("get(%s) = %v after the fifth put, want it kept", f.id, got)
			continue
		}
		got.release()
	}
	if r := files[0].refs.Load(); r != 1 {
		t.Errorf("the replaced file has %d references, want 1 (the caller's; the cache's released)", r)
	}
}

// TestLinkCacheSetKeepsCollidingPaths checks that paths whose hashes pick the same set are
// all remembered, four of them.
func TestLinkCacheSetKeepsCollidingPaths(t *testing.T) {
	const ways = 4 // at least: hot links must not evict each other
	var c linkCache
	c.init()
	first := []byte("/i/sig/0/h200")
	want := &c.set(maphash.Bytes(c.seed, first))[0]
	var paths [][]byte
	for i := 0; len(paths) < ways; i++ {
		p := []byte(fmt.Sprintf("/i/sig/%d/h200", i))
		if &c.set(maphash.Bytes(c.seed, p))[0] == want {
			paths = append(paths, p)
		}
	}
	for i, p := range paths {
		c.put(p, signing.Link{ImageID: fmt.Sprint(i)})
	}
	for i, p := range paths {
		s := c.get(p)
		if s == nil || s.link.ImageID != fmt.Sprint(i) {
			t.Errorf("get(%s) = %v, want the link put (%d colliding paths must all be kept)", p, s, ways)
		}
	}
}
