// Package origin serves signed image links: verify, authorize against the owner's current
// tier, then answer from memory, from disk, or from one render per variant at a time.
//
// A request goes through these steps, in this order:
//
//  1. The path is verified by the signing.Signer (malformed 404, bad signature 403, expired 410).
//  2. The image and its owner's current tier are looked up through a short-lived metadata cache
//     (MetadataTTL, default 2 s), so a tier change applies within seconds while the database is
//     not hit per request. Not-found answers are cached too, so a deleted image's links cost
//     nothing.
//  3. The variant is authorized against that tier (403 otherwise). Only now is If-None-Match
//     honoured, so a revoked link never gets a 304.
//  4. Originals are streamed from disk. Thumbnails come from a ristretto memory cache, then a
//     disk cache under CacheDir, then a render; concurrent requests for the same variant share
//     one render, and renders run on a bounded pool with a bounded queue (503 when it is full).
//
// Thumbnails are cached by effective height, min(requested, original height), because a
// smaller original is served at its own size: h400 and h800 of a 300 px image are one render.
//
// The disk cache is bounded by DiskCacheBytes (default 10 GiB). An atomic counter tracks the
// bytes of rendered files: a background walk at New adds up what is already there, installs
// add, Purge subtracts. When it passes the budget, one janitor goroutine at a time walks
// CacheDir and deletes the least recently used files until the cache is at most 90% of the
// budget. "Used" is the file's modification time: installs set it and disk hits touch it, on
// the origin's clock (memory hits, the common case, do not reach the disk and need not: a
// variant hot in memory is rendered again at worst once if its file goes). Every file can be
// recreated from the original, so a file evicted under a reader is simply rendered again, and
// each pass resets the counter from its own walk, so it never drifts far from the truth. Nodes
// sharing CacheDir each hold the whole directory to their budget. A negative DiskCacheBytes
// leaves the cache unbounded, for operators who prune it themselves (find -atime); nothing is
// evicted then, and Stats.DiskBytes does not see files removed from outside.
//
// Purge(id) forgets an image everywhere. Work in flight for an image holds a pin; Purge marks
// the pins of the image, and a pinned operation stores nothing once its pin is marked, so a
// render that finishes after a delete leaves no cached copy behind.
package origin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/fasthttp/router"
	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/imaging"
	"github.com/tierpix/tierpix/signing"
)

// Store is what the origin needs from persistence.
type Store interface {
	FindImageForServing(ctx context.Context, id string) (tierpix.Image, tierpix.Tier, error)
	OriginalPath(id string) string
}

// Defaults for the zero values of Config.
const (
	DefaultMemoryCacheBytes = 256 << 20
	DefaultMetadataTTL      = 2 * time.Second
	DefaultRenderQueue      = 64
	DefaultMaxAge           = time.Hour
	DefaultDiskCacheBytes   = 10 << 30
)

// Config tunes the caches and the render pool. Zero values take the defaults.
type Config struct {
	CacheDir         string        // disk cache of rendered variants; required
	MemoryCacheBytes int64         // ristretto budget; default 256 MiB
	DiskCacheBytes   int64         // rendered files under CacheDir, temp files not included; default 10 GiB; negative: unbounded
	MetadataTTL      time.Duration // how long image and tier lookups are cached; default 2s (tier changes apply within 5s)
	RenderWorkers    int           // renders at once; default runtime.NumCPU()
	RenderQueue      int           // renders waiting for a worker before 503; default 64
	MaxAge           time.Duration // Cache-Control max-age of permanent links; default 1h
	Now              func() time.Time
}

// withDefaults returns cfg with its zero values replaced by the defaults.
func (cfg Config) withDefaults() Config {
	if cfg.MemoryCacheBytes == 0 {
		cfg.MemoryCacheBytes = DefaultMemoryCacheBytes
	}
	if cfg.DiskCacheBytes == 0 {
		cfg.DiskCacheBytes = DefaultDiskCacheBytes
	}
	if cfg.MetadataTTL == 0 {
		cfg.MetadataTTL = DefaultMetadataTTL
	}
	if cfg.RenderWorkers == 0 {
		cfg.RenderWorkers = runtime.NumCPU()
	}
	if cfg.RenderQueue == 0 {
		cfg.RenderQueue = DefaultRenderQueue
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg
}

// Validate reports every setting at fault in one EINVALID error. Zero values are valid: they
// stand for the defaults.
func (cfg Config) Validate() error {
	fields := map[string]string{}
	if cfg.CacheDir == "" {
		fields["cache_dir"] = "is required"
	}
	if cfg.MemoryCacheBytes < 0 {
		fields["memory_cache_bytes"] = "must not be negative"
	}
	if cfg.MetadataTTL < 0 {
		fields["metadata_ttl"] = "must not be negative"
	} else if cfg.MetadataTTL > 5*time.Second {
		fields["metadata_ttl"] = "must be at most 5s, so that tier changes apply within 5 seconds"
	}
	if cfg.RenderWorkers < 0 {
		fields["render_workers"] = "must not be negative"
	}
	if cfg.RenderQueue < 0 {
		fields["render_queue"] = "must not be negative"
	}
	if cfg.MaxAge < 0 {
		fields["max_age"] = "must not be negative"
	}
	if len(fields) > 0 {
		return &tierpix.Error{Code: tierpix.EINVALID, Message: "The origin configuration is not valid.", Fields: fields}
	}
	return nil
}

// Stats counts what the origin did since New. The counters only grow; DiskBytes is a gauge.
type Stats struct {
	Renders    uint64 // thumbnails rendered by libvips
	MemoryHits uint64 // thumbnails answered from the memory cache
	DiskHits   uint64 // thumbnails read from the disk cache (and promoted into memory)
	Shared     uint64 // requests that waited on another request's lookup or render of the same variant
	Rejected   uint64 // renders refused with 503 because the render queue was full
	Evictions  uint64 // files the janitor deleted from the disk cache to keep it within budget
	DiskBytes  int64  // bytes of rendered files in the disk cache, as counted (exact after a quiet janitor pass)
}

// Origin is the image-serving half of the server.
type Origin struct {
	cfg    Config
	store  Store
	signer *signing.Signer
	logger *slog.Logger

	tmpDir   string // CacheDir/.tmp: temp files of disk cache writes
	diskRoot string // CacheDir with symbolic links resolved: the janitor walks it and stays in it

	// mu orders the stores of cached data against Purge: a store checks its pin and writes
	// under mu, Purge marks pins and deletes under mu.
	mu   sync.Mutex
	pins map[string]*pin

	metaMu sync.RWMutex
	meta   map[string]metaEntry
	metas  flight[metaEntry]

	mem *ristretto.Cache[string, *entry]
	// idxMu guards idx, the memory cache's variants by image id, which Purge needs because
	// ristretto cannot delete by prefix. ristretto's OnExit prunes it as entries leave.
	idxMu sync.Mutex
	idx   map[string]map[int]*entry

	variants flight[*entry]
	workers  chan struct{} // one slot per render running
	pending  atomic.Int64  // renders running or waiting for a slot

	// diskBytes counts the bytes of rendered files under CacheDir; see diskPass for how it is
	// kept near the truth without a lock.
	diskBytes   atomic.Int64
	janitorBusy atomic.Bool // a janitor goroutine runs; at most one does

	// bgMu orders starting background work against Close, so that bg is never added to once
	// Close waits on it.
	bgMu      sync.Mutex
	closed    bool
	done      chan struct{} // closed by Close: background work stops
	bg        sync.WaitGroup
	closeOnce sync.Once

	renders, memoryHits, diskHits, shared, rejected, evictions atomic.Uint64

	// beforeRender, when set (by tests only), runs in a worker slot just before a render, so
	// tests can hold renders to fill the queue or gather waiters deterministically.
	beforeRender atomic.Pointer[func(key string)]
	// beforeEvict, when set (by tests only), runs in the janitor after its walk, just before
	// it deletes files, so tests can catch it mid-pass.
	beforeEvict atomic.Pointer[func()]
}

// pin marks work in flight for an image; Purge sets purged so the work stores nothing.
type pin struct {
	refs   int
	purged bool
}

// metaEntry is a cached lookup: the image and its owner's tier, or notFound.
type metaEntry struct {
	img      tierpix.Image
	tier     tierpix.Tier
	notFound bool
	expires  time.Time // on the monotonic clock, not Config.Now: it is not about link expiry
	// lastModified is img.CreatedAt as an HTTP date, formatted once per lookup rather than on
	// every hit; empty when unknown.
	lastModified string
}

// entry is a rendered thumbnail as cached in memory.
type entry struct {
	id     string
	height int // effective height
	body   []byte
}

// maxMetaEntries bounds the metadata cache; entries live for seconds, so reaching it means a
// scan of many distinct ids, and the cache is swept (then dropped) rather than grown.
const maxMetaEntries = 100_000

// New returns an Origin. It creates CacheDir and starts libvips (idempotently).
func New(cfg Config, st Store, signer *signing.Signer, logger *slog.Logger) (*Origin, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if st == nil || signer == nil {
		return nil, errors.New("origin: a store and a signer are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	if err := imaging.Start(imaging.Config{}, logger); err != nil {
		return nil, fmt.Errorf("start imaging: %w", err)
	}
	o := &Origin{
		cfg:     cfg,
		store:   st,
		signer:  signer,
		logger:  logger,
		tmpDir:  filepath.Join(cfg.CacheDir, ".tmp"),
		pins:    make(map[string]*pin),
		meta:    make(map[string]metaEntry),
		idx:     make(map[string]map[int]*entry),
		workers: make(chan struct{}, cfg.RenderWorkers),
		done:    make(chan struct{}),
	}
	if err := os.MkdirAll(o.tmpDir, 0o755); err != nil {
		return nil, fmt.Errorf("create cache dir: %w", err)
	}
	// The janitor's walk follows no symbolic link, so it starts from the real directory: a
	// CacheDir that is itself a link is still walked.
	root, err := filepath.EvalSymlinks(cfg.CacheDir)
	if err != nil {
		return nil, fmt.Errorf("resolve cache dir: %w", err)
	}
	o.diskRoot = root
	o.sweepTemp(time.Hour)

	// About ten counters per item that fits, assuming thumbnails of some 16 KiB.
	counters := max(cfg.MemoryCacheBytes/(16<<10)*10, 1000)
	mem, err := ristretto.NewCache(&ristretto.Config[string, *entry]{
		NumCounters:        counters,
		MaxCost:            cfg.MemoryCacheBytes,
		BufferItems:        64,
		IgnoreInternalCost: true, // cost is body bytes, as budgeted
		OnExit:             o.unindex,
	})
	if err != nil {
		return nil, fmt.Errorf("create memory cache: %w", err)
	}
	o.mem = mem

	// Count what earlier runs left in the disk cache (and trim it if it is over budget) in the
	// background: a large cache holds millions of files, and neither New nor requests wait.
	o.janitorBusy.Store(true)
	o.bg.Add(1)
	go o.janitor(false)
	return o, nil
}

// Register adds the origin's routes (GET and HEAD /i/...) to r.
func (o *Origin) Register(r *router.Router) {
	r.GET("/i/{path:*}", o.handleImage)  // GET /i/{signed path}
	r.HEAD("/i/{path:*}", o.handleImage) // HEAD /i/{signed path}
}

// Purge forgets everything cached about image id: metadata, memory and disk variants. The API
// calls it when an image or its owner is deleted.
func (o *Origin) Purge(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if p, ok := o.pins[id]; ok {
		p.purged = true
	}

	o.metaMu.Lock()
	delete(o.meta, id)
	o.metaMu.Unlock()

	// Collect first: Del runs OnExit inline, which takes idxMu.
	o.idxMu.Lock()
	var keys []string
	for h := range o.idx[id] {
		keys = append(keys, variantKey(id, h))
	}
	delete(o.idx, id)
	o.idxMu.Unlock()
	for _, k := range keys {
		o.mem.Del(k)
	}

	if dir, ok := o.imageDir(id); ok {
		size := dirSize(dir)
		if err := os.RemoveAll(dir); err != nil {
			// Some files may be gone and some not; the next janitor pass recounts.
			o.logger.Warn("purge disk cache", "image", id, "err", err)
		} else {
			o.diskBytes.Add(-size)
		}
	}
}

// Close stops the janitor, waiting for it a bounded time, and releases the caches. The Origin
// must not serve after Close; a second Close does nothing.
func (o *Origin) Close() {
	o.closeOnce.Do(func() {
		o.bgMu.Lock()
		o.closed = true
		close(o.done)
		o.bgMu.Unlock()
		stopped := make(chan struct{})
		go func() {
			o.bg.Wait()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-time.After(closeWait):
			// It deletes nothing more once it sees Close, and only inside CacheDir anyway.
			o.logger.Warn("disk cache janitor did not stop in time", "waited", closeWait)
		}
		o.mem.Close()
	})
}

// Stats returns the counters so far.
func (o *Origin) Stats() Stats {
	return Stats{
		Renders:    o.renders.Load(),
		MemoryHits: o.memoryHits.Load(),
		DiskHits:   o.diskHits.Load(),
		Shared:     o.shared.Load(),
		Rejected:   o.rejected.Load(),
		Evictions:  o.evictions.Load(),
		DiskBytes:  o.diskBytes.Load(),
	}
}

// pin registers work in flight for id; the caller must unpin it.
func (o *Origin) pin(id string) *pin {
	o.mu.Lock()
	defer o.mu.Unlock()
	p, ok := o.pins[id]
	if !ok {
		p = &pin{}
		o.pins[id] = p
	}
	p.refs++
	return p
}

func (o *Origin) unpin(id string, p *pin) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p.refs--
	if p.refs == 0 && o.pins[id] == p {
		delete(o.pins, id)
	}
}

// lookup returns the image and its owner's current tier, from the metadata cache when fresh.
// Concurrent misses for one id share one query.
func (o *Origin) lookup(id string) (metaEntry, error) {
	o.metaMu.RLock()
	m, ok := o.meta[id]
	o.metaMu.RUnlock()
	if ok && time.Now().Before(m.expires) {
		return m, nil
	}
	m, err, shared := o.metas.do(id, func() (metaEntry, error) {
		p := o.pin(id)
		defer o.unpin(id, p)
		// The query is shared by every waiter, so no single request's context governs it.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		img, tier, err := o.store.FindImageForServing(ctx, id)
		if err != nil && tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
			return metaEntry{}, fmt.Errorf("find image %s: %w", id, err) // not cached: may be transient
		}
		m := metaEntry{img: img, tier: tier, notFound: err != nil, expires: time.Now().Add(o.cfg.MetadataTTL)}
		if !img.CreatedAt.IsZero() {
			m.lastModified = img.CreatedAt.UTC().Format(http.TimeFormat)
		}
		o.mu.Lock()
		if !p.purged {
			o.putMeta(id, m)
		}
		o.mu.Unlock()
		return m, nil
	})
	if shared {
		o.shared.Add(1)
	}
	return m, err
}

// putMeta caches m; the caller holds o.mu.
func (o *Origin) putMeta(id string, m metaEntry) {
	o.metaMu.Lock()
	defer o.metaMu.Unlock()
	if len(o.meta) >= maxMetaEntries {
		now := time.Now()
		for k, v := range o.meta {
			if !now.Before(v.expires) {
				delete(o.meta, k)
			}
		}
		if len(o.meta) >= maxMetaEntries {
			clear(o.meta)
		}
	}
	o.meta[id] = m
}

// thumbnail returns the thumbnail of image id at effective height eff: from memory, from
// disk, or rendered. Concurrent callers for one variant share one disk read or render.
func (o *Origin) thumbnail(img tierpix.Image, eff int) (*entry, error) {
	key := variantKey(img.ID, eff)
	if e, ok := o.mem.Get(key); ok && e != nil {
		o.memoryHits.Add(1)
		return e, nil
	}
	e, err, shared := o.variants.do(key, func() (*entry, error) {
		p := o.pin(img.ID)
		defer o.unpin(img.ID, p)
		// A flight that ended between our Get and do may have just filled the cache.
		if e, ok := o.mem.Get(key); ok && e != nil {
			o.memoryHits.Add(1)
			return e, nil
		}
		path, ok := o.diskPath(img.ID, eff)
		if !ok {
			return nil, tierpix.Errorf(tierpix.ENOTFOUND, "No such image.")
		}
		body, err := os.ReadFile(path)
		// Files appear only by rename after fsync, so an empty one is damage from outside
		// (a full disk, a manual edit): render it anew rather than serve nothing.
		if err == nil && len(body) > 0 {
			o.diskHits.Add(1)
			o.touch(path)
			e := &entry{id: img.ID, height: eff, body: body}
			o.keep(p, e, "")
			return e, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			o.logger.Warn("read disk cache", "path", path, "err", err)
		}
		e, err := o.render(img.ID, eff, key)
		if err != nil {
			return nil, err
		}
		tmp, err := o.writeTemp(e.body)
		if err != nil {
			// The thumbnail is good; only the disk copy is lost, so serve it anyway.
			o.logger.Warn("write disk cache", "image", img.ID, "height", eff, "err", err)
		}
		o.keep(p, e, tmp)
		return e, nil
	})
	if shared {
		o.shared.Add(1)
	}
	return e, err
}

// render runs one thumbnail render on the bounded pool, or refuses with EUNAVAILABLE when
// RenderWorkers are busy and RenderQueue renders already wait.
func (o *Origin) render(id string, eff int, key string) (*entry, error) {
	if n := o.pending.Add(1); n > int64(o.cfg.RenderWorkers+o.cfg.RenderQueue) {
		o.pending.Add(-1)
		o.rejected.Add(1)
		return nil, tierpix.Errorf(tierpix.EUNAVAILABLE, "The server is busy rendering images; retry shortly.")
	}
	defer o.pending.Add(-1)
	o.workers <- struct{}{}
	defer func() { <-o.workers }()

	if hook := o.beforeRender.Load(); hook != nil {
		(*hook)(key)
	}
	o.renders.Add(1)
	src := o.store.OriginalPath(id)
	r, err := imaging.Thumbnail(src, eff)
	if err != nil {
		// The original goes away when the image is deleted after our metadata lookup.
		if _, statErr := os.Stat(src); errors.Is(statErr, fs.ErrNotExist) {
			return nil, tierpix.Errorf(tierpix.ENOTFOUND, "No such image.")
		}
		return nil, fmt.Errorf("render %s h%d: %w", id, eff, err)
	}
	return &entry{id: id, height: eff, body: r.Body}, nil
}

// keep stores e in memory and moves the temp file tmp (if any) into the disk cache, unless
// the image was purged while the work was in flight, in which case tmp is removed.
func (o *Origin) keep(p *pin, e *entry, tmp string) {
	o.mu.Lock()
	if p.purged {
		o.mu.Unlock()
		if tmp != "" {
			os.Remove(tmp)
		}
		return
	}
	if tmp != "" {
		if err := o.install(tmp, e.id, e.height, int64(len(e.body))); err != nil {
			o.logger.Warn("write disk cache", "image", e.id, "height", e.height, "err", err)
			os.Remove(tmp)
		}
	}
	o.idxMu.Lock()
	hs := o.idx[e.id]
	if hs == nil {
		hs = make(map[int]*entry)
		o.idx[e.id] = hs
	}
	hs[e.height] = e
	o.idxMu.Unlock()
	o.mem.Set(variantKey(e.id, e.height), e, int64(len(e.body)))
	o.mu.Unlock()
	// Sets are applied asynchronously; waiting makes the next request for this variant a
	// memory hit. It costs one channel round trip per render or disk read, never per hit.
	o.mem.Wait()
	o.maybeEvict()
}

// unindex is ristretto's OnExit: it forgets e in the index unless a newer entry replaced it.
func (o *Origin) unindex(e *entry) {
	if e == nil {
		return
	}
	o.idxMu.Lock()
	defer o.idxMu.Unlock()
	hs := o.idx[e.id]
	if hs[e.height] == e {
		delete(hs, e.height)
		if len(hs) == 0 {
			delete(o.idx, e.id)
		}
	}
}

// writeTemp writes body to a synced temp file in the cache's temp dir. Temp files live apart
// from the image dirs so that Purge's RemoveAll never races with a writer, and on the same
// filesystem so that the rename into place is atomic.
func (o *Origin) writeTemp(body []byte) (string, error) {
	f, err := os.CreateTemp(o.tmpDir, "variant-*")
	if err != nil {
		return "", fmt.Errorf("create temp: %w", err)
	}
	_, err = f.Write(body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write temp: %w", err)
	}
	return f.Name(), nil
}

// install renames tmp, of size bytes, into the disk cache and counts it (less the file it
// replaces, if any); the caller holds o.mu.
func (o *Origin) install(tmp, id string, eff int, size int64) error {
	path, ok := o.diskPath(id, eff)
	if !ok {
		return fmt.Errorf("image id %q is not usable as a path", id)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create image dir: %w", err)
	}
	var replaced int64
	if info, err := os.Lstat(path); err == nil && info.Mode().IsRegular() {
		replaced = info.Size()
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename into place: %w", err)
	}
	o.diskBytes.Add(size - replaced)
	// Eviction goes by modification time, which disk hits set with the origin's clock; a new
	// file takes the same clock's time, so that the two compare. Failing leaves the write
	// time, which is nearly as good.
	now := o.cfg.Now()
	if err := os.Chtimes(path, now, now); err != nil {
		o.logger.Warn("set disk cache file time", "path", path, "err", err)
	}
	return nil
}

// sweepTemp removes temp files older than age, left behind by a crash. Younger ones may belong
// to another Origin sharing the directory.
func (o *Origin) sweepTemp(age time.Duration) {
	ents, err := os.ReadDir(o.tmpDir)
	if err != nil {
		o.logger.Warn("sweep disk cache temp files", "err", err)
		return
	}
	for _, d := range ents {
		info, err := d.Info()
		if err == nil && time.Since(info.ModTime()) > age {
			os.Remove(filepath.Join(o.tmpDir, d.Name()))
		}
	}
}

// imageDir returns CacheDir/{id[0:2]}/{id}, or false for an id that is unsafe as a path
// element. Ids come from verified links, so this is defence in depth.
func (o *Origin) imageDir(id string) (string, bool) {
	if !validID(id) {
		return "", false
	}
	return filepath.Join(o.cfg.CacheDir, id[:2], id), true
}

// diskPath returns the file of a variant in the disk cache: imageDir/h{eff}-v{renderVersion}.
// Files of other render versions are never read, so never touched: Purge removes them with
// the image dir, and the janitor evicts them first otherwise.
func (o *Origin) diskPath(id string, eff int) (string, bool) {
	dir, ok := o.imageDir(id)
	if !ok {
		return "", false
	}
	return filepath.Join(dir, "h"+strconv.Itoa(eff)+"-v"+renderVersion), true
}

// validID accepts 2 to 128 letters, digits, '-' and '_': enough for any random id encoding,
// never a path separator or a dot.
func validID(id string) bool {
	if len(id) < 2 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func variantKey(id string, eff int) string {
	return id + "/h" + strconv.Itoa(eff)
}
