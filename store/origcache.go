package store

import (
	"container/list"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tierpix/tierpix"
)

// DefaultOriginalsCacheBytes is the size of the node's cache of originals fetched from a bucket
// when Config.OriginalsCacheBytes is zero.
const DefaultOriginalsCacheBytes = 4 << 30

// originalCache is the node's read-through cache of originals that live in a bucket: files
// named by image id in one directory, least recently used evicted past maxBytes. A file being
// read (pinned) is never evicted. Concurrent misses for one original share one fetch, and
// at most fetchSlots fetches run at once. A fetch is written to a temp file and renamed into
// place only once it has the original's full length, so a crash leaves no partial original
// under an id (temp files are removed when the cache opens).
type originalCache struct {
	dir      string
	maxBytes int64
	slots    chan struct{}

	mu      sync.Mutex
	entries map[string]*cached
	lru     list.List // of *cached, most recently used first
	used    int64
	flights map[string]*fetchFlight

	hits, misses, fetches, evictions atomic.Uint64
}

type cached struct {
	id        string
	size      int64
	pins      int
	elem      *list.Element
	forgotten bool // its image was deleted while pinned: the last release removes it
}

// fetchFlight is one fetch in progress; err is set before done is closed.
type fetchFlight struct {
	done chan struct{}
	err  error
}

// fetchSlots bounds the fetches from the bucket running at once on a node.
const fetchSlots = 16

// fetchPrefix names the temp files of fetches in progress.
const fetchPrefix = ".fetch-"

// openOriginalCache opens the cache in dir, creating it, removing the temp files of fetches a
// crash interrupted, and taking in the originals already there, oldest first.
func openOriginalCache(dir string, maxBytes int64) (*originalCache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create originals cache: %w", err)
	}
	c := &originalCache{
		dir:      dir,
		maxBytes: maxBytes,
		slots:    make(chan struct{}, fetchSlots),
		entries:  map[string]*cached{},
		flights:  map[string]*fetchFlight{},
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read originals cache: %w", err)
	}
	type found struct {
		id   string
		size int64
		mod  time.Time
	}
	var files []found
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if strings.HasPrefix(e.Name(), fetchPrefix) {
			os.Remove(p)
			continue
		}
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || !tierpix.ValidImageID(e.Name()) {
			continue
		}
		files = append(files, found{e.Name(), info.Size(), info.ModTime()})
	}
	slices.SortFunc(files, func(a, b found) int { return a.mod.Compare(b.mod) })
	for _, f := range files {
		c.add(f.id, f.size, 0)
	}
	c.removeAll(c.evict())
	return c, nil
}

// path is where the cached original of id lives.
func (c *originalCache) path(id string) string { return filepath.Join(c.dir, id) }

// add records a file now in place as most recently used, with pins pins. Callers hold mu (or
// own c alone).
func (c *originalCache) add(id string, size int64, pins int) *cached {
	e := &cached{id: id, size: size, pins: pins}
	e.elem = c.lru.PushFront(e)
	c.entries[id] = e
	c.used += size
	return e
}

// evict takes unpinned entries off the cold end until the cache fits, and returns their
// paths for removal outside the lock. Callers hold mu.
func (c *originalCache) evict() []string {
	var gone []string
	for el := c.lru.Back(); el != nil && c.used > c.maxBytes; {
		e := el.Value.(*cached)
		prev := el.Prev()
		if e.pins == 0 {
			c.drop(e)
			gone = append(gone, c.path(e.id))
			c.evictions.Add(1)
		}
		el = prev
	}
	return gone
}

// drop forgets an entry. Callers hold mu.
func (c *originalCache) drop(e *cached) {
	c.lru.Remove(e.elem)
	delete(c.entries, e.id)
	c.used -= e.size
}

func (c *originalCache) removeAll(paths []string) {
	for _, p := range paths {
		os.Remove(p)
	}
}

// get returns the cached original of id, size bytes, fetching it with fetch on a miss, pinned
// until release is called. A cached file of another length (cut short by a crash, or of an
// image deleted and never re-fetched) is fetched again. ctx bounds the caller's wait; the
// fetch runs on its own deadline (fetchCtx), so a caller that gives up does not fail the
// others waiting for the same original.
func (c *originalCache) get(ctx context.Context, id string, size int64, fetchCtx func() (context.Context, context.CancelFunc), fetch func(ctx context.Context, f *os.File) error) (string, func(), error) {
	for {
		c.mu.Lock()
		if e, ok := c.entries[id]; ok {
			if e.size == size {
				e.pins++
				c.lru.MoveToFront(e.elem)
				c.mu.Unlock()
				// A stat is nothing next to the render that follows, and a file removed from
				// outside (a cleaned cache directory) is fetched again rather than failing it.
				if _, err := os.Stat(c.path(id)); err == nil {
					c.hits.Add(1)
					return c.path(id), c.releaser(e), nil
				}
				c.mu.Lock()
				e.pins--
				if c.entries[id] == e {
					c.drop(e)
				}
				c.mu.Unlock()
				continue
			}
			if e.pins == 0 {
				c.drop(e)
				os.Remove(c.path(id))
			}
		}
		fl, ok := c.flights[id]
		if !ok {
			fl = &fetchFlight{done: make(chan struct{})}
			c.flights[id] = fl
			c.mu.Unlock()
			c.misses.Add(1)
			go c.run(id, size, fl, fetchCtx, fetch)
		} else {
			c.mu.Unlock()
		}
		select {
		case <-fl.done:
			if fl.err != nil {
				return "", nil, fl.err
			}
			// Loop to pin the entry the fetch added (or to fetch again if it was evicted
			// already, which takes a cache smaller than the originals wanted at once).
		case <-ctx.Done():
			return "", nil, tierpix.Unavailable(bucketRetryAfter, "Fetching the original from storage took too long; try again shortly.")
		}
	}
}

// run is one fetch: into a temp file, checked for its full length, then renamed into place.
func (c *originalCache) run(id string, size int64, fl *fetchFlight, fetchCtx func() (context.Context, context.CancelFunc), fetch func(ctx context.Context, f *os.File) error) {
	ctx, cancel := fetchCtx()
	defer cancel()
	err := c.fetchInto(ctx, id, size, fetch)
	c.mu.Lock()
	delete(c.flights, id)
	var gone []string
	if err == nil {
		if old, ok := c.entries[id]; ok {
			c.drop(old) // a stale length, pinned when get looked; its file is replaced
		}
		c.add(id, size, 0)
		gone = c.evictUnless(id)
	}
	fl.err = err
	close(fl.done)
	c.mu.Unlock()
	c.removeAll(gone)
}

// evictUnless evicts as evict does but spares id, just fetched for a caller not yet pinned
// to it. Callers hold mu.
func (c *originalCache) evictUnless(id string) []string {
	e := c.entries[id]
	e.pins++
	gone := c.evict()
	e.pins--
	return gone
}

func (c *originalCache) fetchInto(ctx context.Context, id string, size int64, fetch func(ctx context.Context, f *os.File) error) error {
	select {
	case c.slots <- struct{}{}:
		defer func() { <-c.slots }()
	case <-ctx.Done():
		return tierpix.Unavailable(bucketRetryAfter, "Too many originals are being fetched from storage; try again shortly.")
	}
	c.fetches.Add(1)
	f, err := os.CreateTemp(c.dir, fetchPrefix+"*")
	if err != nil {
		return FileError(err, "create temp file for an original")
	}
	tmp := f.Name()
	defer func() {
		if tmp != "" {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := fetch(ctx, f); err != nil {
		return err
	}
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat fetched original %s: %w", id, err)
	}
	if info.Size() != size {
		return tierpix.Unavailable(bucketRetryAfter, "The original came from storage cut short (%d of %d bytes); try again shortly.", info.Size(), size)
	}
	if err := f.Close(); err != nil {
		return FileError(err, "write fetched original")
	}
	if err := os.Rename(tmp, c.path(id)); err != nil {
		return FileError(err, "move fetched original into the cache")
	}
	tmp = ""
	return nil
}

// releaser returns the release of one pin on e: the last one evicts what no longer fits.
func (c *originalCache) releaser(e *cached) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			e.pins--
			var gone []string
			if c.entries[e.id] == e { // not replaced while pinned
				if e.forgotten && e.pins == 0 {
					c.drop(e)
					gone = append(gone, c.path(e.id))
				}
				gone = append(gone, c.evict()...)
			}
			c.mu.Unlock()
			c.removeAll(gone)
		})
	}
}

// adopt takes the file at src (an upload just stored in the bucket, on the cache's
// filesystem) in as the cached original of id, so the first renders need no fetch. Best
// effort: src is removed when it cannot be adopted.
func (c *originalCache) adopt(id, src string, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[id]; ok || size > c.maxBytes {
		os.Remove(src)
		return
	}
	if err := os.Rename(src, c.path(id)); err != nil {
		os.Remove(src)
		return
	}
	c.add(id, size, 0)
	gone := c.evictUnless(id)
	go c.removeAll(gone)
}

// forget removes the cached originals of ids (deleted images); one a reader holds (a render,
// the making of an intermediate) goes at its last release.
func (c *originalCache) forget(ids []string) {
	c.mu.Lock()
	var gone []string
	for _, id := range ids {
		e, ok := c.entries[id]
		switch {
		case !ok:
		case e.pins == 0:
			c.drop(e)
			gone = append(gone, c.path(id))
		default:
			e.forgotten = true
		}
	}
	c.mu.Unlock()
	c.removeAll(gone)
}

// open opens the cached original of id when it is there with the given length; the open
// descriptor keeps the data readable should the file be evicted meanwhile.
func (c *originalCache) open(id string, size int64) (*os.File, bool) {
	c.mu.Lock()
	e, ok := c.entries[id]
	if ok && e.size == size {
		c.lru.MoveToFront(e.elem)
	}
	c.mu.Unlock()
	if !ok || e.size != size {
		return nil, false
	}
	f, err := os.Open(c.path(id))
	if err != nil {
		return nil, false
	}
	c.hits.Add(1)
	return f, true
}

// OriginalsCacheStats counts the work of the node's cache of originals from a bucket.
type OriginalsCacheStats struct {
	Hits, Misses, Fetches, Evictions uint64
	BucketFailures                   uint64 // requests to the bucket that failed
	Bytes, Files                     int64
}

func (c *originalCache) stats() OriginalsCacheStats {
	c.mu.Lock()
	bytes, files := c.used, int64(len(c.entries))
	c.mu.Unlock()
	return OriginalsCacheStats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), Fetches: c.fetches.Load(), Evictions: c.evictions.Load(),
		Bytes: bytes, Files: files,
	}
}
