package origin

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/imaging"
	"github.com/tierpix/tierpix/signing"
)

// diskEnv is a store holding identical images, and the size of one h100 thumbnail of them:
// identical originals render to identical bytes, so a disk budget can be set in thumbnails.
// Its own origin is unbounded and unused; tests start the origins they need with startOrigin.
type diskEnv struct {
	*env
	imgs  []tierpix.Image
	thumb int64
}

func newDiskEnv(t *testing.T, n int) *diskEnv {
	t.Helper()
	e := newEnv(t, fullTier, Config{DiskCacheBytes: -1})
	d := &diskEnv{env: e}
	for range n {
		img, _ := e.addImage(t, tierpix.FormatJPEG, 300, 200)
		d.imgs = append(d.imgs, img)
	}
	r, err := imaging.Thumbnail(e.st.OriginalPath(d.imgs[0].ID), 100, imaging.Encoding{})
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	d.thumb = int64(len(r.Body))
	return d
}

// getThumb requests the h100 thumbnail of img from the origin at base, checks it has the size of
// every other, and waits for the janitor to settle, so that each step of a test starts from a
// known disk cache.
func (d *diskEnv) getThumb(t *testing.T, o *Origin, base string, img tierpix.Image) {
	t.Helper()
	res := get(t, base+d.signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(100)}))
	if res.status != http.StatusOK || int64(len(res.body)) != d.thumb {
		t.Fatalf("h100 of %s: got %d with %d bytes, want 200 with %d", img.ID, res.status, len(res.body), d.thumb)
	}
	settle(t, o)
}

// file returns the path of img's h100 thumbnail relative to the cache dir.
func (d *diskEnv) file(img tierpix.Image) string {
	return filepath.Join(img.ID[:2], img.ID, "h100-v"+renderVersion)
}

// files returns the relative paths of the h100 thumbnails of imgs, sorted.
func (d *diskEnv) files(imgs ...tierpix.Image) []string {
	var paths []string
	for _, img := range imgs {
		paths = append(paths, d.file(img))
	}
	slices.Sort(paths)
	return paths
}

// settle waits until no janitor runs and o counts its disk cache within budget. Requests start
// any janitor they need before they answer, so after the last answer this is a stable state.
func settle(t *testing.T, o *Origin) {
	t.Helper()
	waitFor(t, "the disk cache janitor to settle", func() bool {
		return !o.janitorBusy.Load() && !o.overBudget()
	})
}

// tickingClock moves an hour on at every reading, so that every disk cache write and touch
// gets a modification time of its own, in the order they happened, and every disk hit finds
// its file older than touchAfter.
func tickingClock() func() time.Time {
	var n atomic.Int64
	return func() time.Time { return testNow.Add(time.Duration(n.Add(1)) * time.Hour) }
}

// cacheFiles walks dir as an operator would (du, find -type f) and returns the relative paths
// of the regular files outside .tmp, sorted, and their total size.
func cacheFiles(t *testing.T, dir string) ([]string, int64) {
	t.Helper()
	var paths []string
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".tmp" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		paths = append(paths, rel)
		total += info.Size()
		return nil
	})
	if err != nil {
		t.Fatalf("walk cache dir: %v", err)
	}
	slices.Sort(paths)
	return paths, total
}

// wantCache checks the files in the cache dir and that o's counter agrees with their size.
func wantCache(t *testing.T, o *Origin, dir string, want []string) {
	t.Helper()
	got, total := cacheFiles(t, dir)
	if !slices.Equal(got, want) {
		t.Errorf("cache files: got %v, want %v", got, want)
	}
	if got := o.Stats().DiskBytes; got != total {
		t.Errorf("DiskBytes: got %d, want %d (the size of the files on disk)", got, total)
	}
}

func TestDiskCacheEvictsLeastRecentlyUsed(t *testing.T) {
	d := newDiskEnv(t, 20)
	dir := t.TempDir()
	// Five and a half thumbnails: the sixth starts the janitor, which keeps four (at most 90%).
	budget := d.thumb * 11 / 2
	// A memory cache too small for any thumbnail sends every repeat request to the disk.
	o, base := startOrigin(t, Config{CacheDir: dir, DiskCacheBytes: budget, MemoryCacheBytes: 1, Now: tickingClock()}, d.st, d.signer)
	settle(t, o)

	// A temp file that looks older than anything (and would be the first to go if the janitor
	// looked at it), and links to files outside the cache dir: none of them may be counted or
	// deleted.
	stale := filepath.Join(dir, ".tmp", "variant-stale")
	if err := os.WriteFile(stale, make([]byte, 10*d.thumb), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(stale, testNow.Add(-24*time.Hour), testNow.Add(-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	outFile := filepath.Join(outside, "keep")
	if err := os.WriteFile(outFile, make([]byte, d.thumb), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "zz"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"file-link": outFile, "dir-link": outside} {
		if err := os.Symlink(target, filepath.Join(dir, "zz", name)); err != nil {
			t.Fatal(err)
		}
	}

	for _, img := range d.imgs {
		d.getThumb(t, o, base, img)
	}
	// Every even render from the sixth on went over budget and evicted the two oldest.
	wantCache(t, o, dir, d.files(d.imgs[16:]...))
	if got, want := requestStats(o), (Stats{Renders: 20, Evictions: 16}); got != want {
		t.Errorf("stats: got %+v, want %+v", got, want)
	}
	for _, img := range d.imgs[:16] {
		if _, err := os.Stat(filepath.Join(dir, img.ID[:2], img.ID)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("image dir of evicted %s: got %v, want not exist", img.ID, err)
		}
	}

	// Use the oldest survivor, then render two more: the janitor spares it and evicts the two
	// that were rendered after it but not used since.
	d.getThumb(t, o, base, d.imgs[16])
	d.getThumb(t, o, base, d.imgs[0])
	d.getThumb(t, o, base, d.imgs[1])
	wantCache(t, o, dir, d.files(d.imgs[16], d.imgs[19], d.imgs[0], d.imgs[1]))
	if got, want := requestStats(o), (Stats{Renders: 22, DiskHits: 1, Evictions: 18}); got != want {
		t.Errorf("stats: got %+v, want %+v", got, want)
	}
	if _, total := cacheFiles(t, dir); total > budget {
		t.Errorf("disk cache: got %d bytes, want at most the budget %d", total, budget)
	}

	if info, err := os.Stat(stale); err != nil || info.Size() != 10*d.thumb {
		t.Errorf("temp file: got %v (err %v), want it untouched", info, err)
	}
	if _, err := os.Stat(outFile); err != nil {
		t.Errorf("file outside the cache dir: got %v, want it kept", err)
	}
	for _, name := range []string{"file-link", "dir-link"} {
		if _, err := os.Lstat(filepath.Join(dir, "zz", name)); err != nil {
			t.Errorf("link %s: got %v, want it kept", name, err)
		}
	}
}

func TestDiskCacheTrimmedAtStart(t *testing.T) {
	d := newDiskEnv(t, 20)
	dir := t.TempDir()
	o1, base1 := startOrigin(t, Config{CacheDir: dir, DiskCacheBytes: -1, Now: tickingClock()}, d.st, d.signer)
	for _, img := range d.imgs {
		d.getThumb(t, o1, base1, img)
	}

	// A restart over the same directory with a budget of five and a half thumbnails.
	o2, _ := startOrigin(t, Config{CacheDir: dir, DiskCacheBytes: d.thumb * 11 / 2}, d.st, d.signer)
	settle(t, o2)
	wantCache(t, o2, dir, d.files(d.imgs[16:]...))
	if got, want := requestStats(o2), (Stats{Evictions: 16}); got != want {
		t.Errorf("stats: got %+v, want %+v", got, want)
	}
}

func TestDiskCacheUnbounded(t *testing.T) {
	d := newDiskEnv(t, 20)
	dir := t.TempDir()
	o, base := startOrigin(t, Config{CacheDir: dir, DiskCacheBytes: -1, MemoryCacheBytes: 1, Now: tickingClock()}, d.st, d.signer)
	settle(t, o)
	for _, img := range d.imgs {
		d.getThumb(t, o, base, img)
	}
	wantCache(t, o, dir, d.files(d.imgs...))
	if got, want := requestStats(o), (Stats{Renders: 20}); got != want {
		t.Errorf("stats: got %+v, want %+v", got, want)
	}
	if o.janitorBusy.Load() {
		t.Errorf("janitor: got running, want never started")
	}
}

func TestDiskCachePurgeCounts(t *testing.T) {
	d := newDiskEnv(t, 2)
	dir := t.TempDir()
	o, base := startOrigin(t, Config{CacheDir: dir, Now: tickingClock()}, d.st, d.signer)
	settle(t, o)
	for _, h := range []int{100, 200} {
		if res := get(t, base+d.signer.Path(signing.Link{ImageID: d.imgs[0].ID, Variant: signing.Thumbnail(h)})); res.status != http.StatusOK {
			t.Fatalf("h%d: got %d, want 200", h, res.status)
		}
	}
	d.getThumb(t, o, base, d.imgs[1])
	got, total := cacheFiles(t, dir)
	if len(got) != 3 || o.Stats().DiskBytes != total {
		t.Fatalf("before purge: got files %v and DiskBytes %d, want 3 files of %d bytes", got, o.Stats().DiskBytes, total)
	}

	o.Purge(d.imgs[0].ID)
	wantCache(t, o, dir, d.files(d.imgs[1]))
	if got := o.Stats().DiskBytes; got != d.thumb {
		t.Errorf("DiskBytes after purge: got %d, want %d", got, d.thumb)
	}
}

func TestCloseStopsJanitor(t *testing.T) {
	d := newDiskEnv(t, 6)
	dir := t.TempDir()
	entered := make(chan struct{}, 1)
	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	hook := func() {
		entered <- struct{}{}
		<-gate
	}
	o, base := startOrigin(t, Config{CacheDir: dir, DiskCacheBytes: d.thumb * 11 / 2, Now: tickingClock(), Hooks: Hooks{BeforeEvict: hook}}, d.st, d.signer)
	settle(t, o)

	for _, img := range d.imgs {
		res := get(t, base+d.signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(100)}))
		if res.status != http.StatusOK {
			t.Fatalf("h100: got %d, want 200", res.status)
		}
	}
	<-entered // the sixth went over budget; the janitor is about to delete

	closed := make(chan struct{})
	go func() {
		o.Close()
		close(closed)
	}()
	waitFor(t, "Close to signal the janitor", o.stopping)
	release()
	waitFor(t, "Close to return", func() bool {
		select {
		case <-closed:
			return true
		default:
			return false
		}
	})
	if o.janitorBusy.Load() {
		t.Errorf("janitor: got running after Close, want stopped")
	}
	if got, _ := cacheFiles(t, dir); len(got) != 6 {
		t.Errorf("cache files: got %d, want all 6 (the janitor stops before deleting)", len(got))
	}
	if got := o.Stats().Evictions; got != 0 {
		t.Errorf("evictions: got %d, want 0", got)
	}
}

// TestDiskHitsUnderLoad serves disk hits (the memory cache holds nothing) of two variants of
// different sizes from many connections at once, and checks every body: such hits are read
// into pooled buffers, which must not go back to the pool before their answer is written.
func TestDiskHitsUnderLoad(t *testing.T) {
	e := newEnv(t, fullTier, Config{MemoryCacheBytes: 1})
	var urls []string
	var want [][]byte
	for _, size := range [][2]int{{600, 400}, {900, 300}} {
		img, _ := e.addImage(t, tierpix.FormatJPEG, size[0], size[1])
		u := e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200)})
		res := get(t, u) // renders, and writes the disk cache
		if res.status != http.StatusOK {
			t.Fatalf("first request: got %d, want 200", res.status)
		}
		urls, want = append(urls, u), append(want, res.body)
	}
	if bytes.Equal(want[0], want[1]) {
		t.Fatal("the two variants have the same bytes; the test needs different ones")
	}

	const workers, each = 8, 40
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				k := (w + i) % 2
				res, err := fetch(http.MethodGet, urls[k])
				if err != nil {
					errs <- err
					return
				}
				if res.status != http.StatusOK || !bytes.Equal(res.body, want[k]) {
					errs <- fmt.Errorf("variant %d: got %d with %d bytes, want 200 with its %d bytes", k, res.status, len(res.body), len(want[k]))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got, want := e.origin.Stats().DiskHits, uint64(workers*each); got != want {
		t.Errorf("disk hits: got %d, want %d", got, want)
	}
}

// TestDiskHitTouchesOnlyOldFiles checks that a disk hit leaves a file written less than
// touchAfter ago alone (no system call per hit) and touches an older one.
func TestDiskHitTouchesOnlyOldFiles(t *testing.T) {
	clock := testNow
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	e := newEnv(t, fullTier, Config{MemoryCacheBytes: 1, Now: now})
	img, _ := e.addImage(t, tierpix.FormatJPEG, 600, 400)
	u := e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200)})
	path, _ := e.origin.diskPath(img.ID, 200)
	mtime := func() time.Time {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return info.ModTime()
	}
	steps := []struct {
		name      string
		advance   time.Duration
		wantMTime func(written time.Time) time.Time
	}{
		{name: "render writes", advance: 0, wantMTime: func(time.Time) time.Time { return testNow }},
		{name: "fresh file left alone", advance: touchAfter / 2, wantMTime: func(w time.Time) time.Time { return w }},
		{name: "old file touched", advance: touchAfter, wantMTime: func(time.Time) time.Time { return testNow.Add(touchAfter/2 + touchAfter) }},
	}
	written := testNow
	for _, s := range steps {
		mu.Lock()
		clock = clock.Add(s.advance)
		mu.Unlock()
		if res := get(t, u); res.status != http.StatusOK {
			t.Fatalf("%s: got %d, want 200", s.name, res.status)
		}
		if got, want := mtime(), s.wantMTime(written); !got.Equal(want) {
			t.Errorf("%s: modification time got %v, want %v", s.name, got, want)
		}
	}
}

// TestOpenFilesClosedOnPurge checks that disk hits keep their file open (one descriptor,
// however many hits) and that Purge closes it.
func TestOpenFilesClosedOnPurge(t *testing.T) {
	e := newEnv(t, fullTier, Config{MemoryCacheBytes: 1})
	img, _ := e.addImage(t, tierpix.FormatJPEG, 600, 400)
	u := e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200)})
	path, _ := e.origin.diskPath(img.ID, 200)
	for range 4 {
		if res := get(t, u); res.status != http.StatusOK {
			t.Fatalf("status: got %d, want 200", res.status)
		}
	}
	if got := openCount(t, path); got != 1 {
		t.Errorf("descriptors of the cache file after 3 disk hits: got %d, want 1", got)
	}
	e.origin.Purge(img.ID)
	if got := openCount(t, path) + openCount(t, path+" (deleted)"); got != 0 {
		t.Errorf("descriptors of the cache file after purge: got %d, want 0", got)
	}
}
