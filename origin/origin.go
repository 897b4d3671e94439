// Package origin serves signed image links (/i/...): it verifies the signature and expiry,
// authorizes the variant against the owner's current tier (tierpix.Tier.Grants), and answers
// from a memory cache (ristretto), a disk cache under CacheDir, or one render per variant at
// a time on a bounded pool (503 with Retry-After past its queue).
//
// Its contract: a memory hit allocates nothing and queries nothing; image metadata is cached
// for as long as the store's change epoch stands (a change made through this process's store
// is seen at once through Changed, one made on another node within MetadataPoll); a refusal
// decided on cached metadata is re-checked against the store before it is sent; Purge forgets
// an image everywhere, work in flight included. Every file it writes can be rendered again.
// docs/ARCHITECTURE.md ("Requests", "Data on disk") gives the design and its reasons.
package origin

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/fasthttp/router"
	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/imaging"
	"github.com/tierpix/tierpix/signing"
	"github.com/valyala/fasthttp"
)

// Store is what the origin needs from persistence.
type Store interface {
	FindImageForServing(ctx context.Context, id string) (tierpix.Image, tierpix.Tier, error)
	// ChangeEpoch returns a number that moves, in the same transaction, with every change to
	// what FindImageForServing answers for an image that exists.
	ChangeEpoch(ctx context.Context) (int64, error)
	// Original returns a file on this node's disk holding img's original (fetched into a
	// local cache first when originals live in a bucket) and a release to call once it has
	// been read.
	Original(ctx context.Context, img tierpix.Image) (path string, release func(), err error)
	// OpenOriginal returns img's original for streaming, with its length.
	OpenOriginal(ctx context.Context, img tierpix.Image) (io.ReadCloser, int64, error)
	// StatOriginal returns the length of img's original.
	StatOriginal(ctx context.Context, img tierpix.Image) (int64, error)
	// LowOnSpace reports whether the data dir is below its free-space reserve: the disk
	// cache writes nothing then, so that it cannot take the room uploads and the database
	// need.
	LowOnSpace() bool
}

// Defaults for the zero values of Config.
const (
	DefaultMemoryCacheBytes = 256 << 20
	DefaultMetadataTTL      = 2 * time.Second
	DefaultMetadataPoll     = time.Second
	DefaultRenderQueue      = 64
	DefaultMaxAge           = time.Hour
	DefaultDiskCacheBytes   = 10 << 30
)

// Config tunes the caches and the render pool. Zero values take the defaults.
type Config struct {
	CacheDir         string        // disk cache of rendered variants; required
	MemoryCacheBytes int64         // ristretto budget; default 256 MiB
	DiskCacheBytes   int64         // rendered files under CacheDir, temp files not included; default 10 GiB; negative: unbounded
	MetadataTTL      time.Duration // how long metadata may be used when the change epoch cannot be read, and how long a not-found answer is kept; default 2s, at most 5s (tier changes apply within 5s)
	MetadataPoll     time.Duration // how often the change epoch is read; default 1s (or MetadataTTL/2 if shorter); less than MetadataTTL
	RenderWorkers    int           // renders at once; default runtime.NumCPU()
	RenderQueue      int           // renders waiting for a worker before 503; default 64
	MaxAge           time.Duration // Cache-Control max-age of permanent links; default 1h
	// NoNegotiation turns WebP by Accept off, for operators whose CDN cannot vary on Accept:
	// a thumbnail link then answers the original's format, without Vary. Explicit links
	// (h200.webp) answer WebP either way.
	NoNegotiation bool
	// Quality is how JPEG and WebP thumbnails choose their quality; the zero value is per
	// image at imaging.DefaultSSIMFloor.
	Quality imaging.Quality
	// DecodeBudget admits renders by the memory their decode takes, shared with the API's
	// upload validation; nil admits every render.
	DecodeBudget *imaging.Budget
	// Hooks are points where the caller may hold the origin's work; nil functions are
	// skipped. Tests use them to make races deterministic.
	Hooks Hooks
	Now   func() time.Time
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
	if cfg.MetadataPoll == 0 {
		cfg.MetadataPoll = max(min(DefaultMetadataPoll, cfg.MetadataTTL/2), time.Millisecond)
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
	if cfg.MetadataPoll < 0 {
		fields["metadata_poll"] = "must not be negative"
	} else if ttl := cmp.Or(cfg.MetadataTTL, DefaultMetadataTTL); cfg.MetadataPoll >= ttl && ttl > 0 {
		// Each read vouches for MetadataTTL: read less often, and the cache falls back to the
		// TTL between reads.
		fields["metadata_poll"] = "must be shorter than the metadata TTL"
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
	if err := cfg.Quality.Validate(); err != nil {
		fields["quality"] = err.Error()
	}
	if len(fields) > 0 {
		return &tierpix.Error{Code: tierpix.EINVALID, Message: "The origin configuration is not valid.", Fields: fields}
	}
	return nil
}

// Hooks are the points of Config.Hooks.
type Hooks struct {
	BeforeRender func(key string) // in a worker slot, just before a render
	BeforeEvict  func()           // in the disk cache's janitor, after its walk, before it deletes
}

// Stats counts what the origin did since New. The counters only grow; DiskBytes is a gauge.
type Stats struct {
	Renders              uint64 // thumbnails rendered by libvips
	MemoryHits           uint64 // thumbnails answered from the memory cache
	DiskHits             uint64 // thumbnails read from the disk cache (and promoted into memory when it can hold them)
	Shared               uint64 // requests that waited on another request's render of the same variant
	Rejected             uint64 // renders refused with 503 because the render queue was full
	Evictions            uint64 // files the janitor deleted from the disk cache to keep it within budget
	DiskBytes            int64  // bytes of rendered files in the disk cache, as counted (exact after a quiet janitor pass)
	Intermediates        uint64 // intermediates made (in the background, after a first render from the original)
	IntermediateQueue    int    // intermediates waiting to be made
	IntermediatesDropped uint64 // intermediates not made: the queue was full, or the renders never let up
	FromIntermediate     uint64 // renders (counted in Renders too) made from an intermediate instead of the original
	MetadataLookups      uint64 // image and tier lookups that reached the store: metadata cache misses
	EpochReads           uint64 // reads of the change epoch that succeeded
	EpochFailures        uint64 // reads of the change epoch that failed (metadata then lives MetadataTTL)
}

// Origin is the image-serving half of the server.
type Origin struct {
	cfg    Config
	store  Store
	signer *signing.Signer
	logger *slog.Logger

	tmpDir   string // CacheDir/.tmp: temp files of disk cache writes
	diskRoot string // CacheDir with symbolic links resolved: the janitor walks it and stays in it

	links        linkCache // verified link paths; see serve.go
	files        fileCache // open disk cache files; see disk.go
	cacheControl []byte    // Cache-Control of permanent links, which is the same for all
	realClock    bool      // Config.Now was left to time.Now; see clock

	// mu orders the stores of cached data against Purge: a store checks its pin and writes
	// under mu, Purge marks pins and deletes under mu.
	mu   sync.Mutex
	pins map[string]*pin
	// purges counts Purge calls, so that a disk hit, which takes no pin, can tell whether one
	// ran while it read (it then leaves the memory cache alone).
	purges atomic.Uint64

	metaMu sync.RWMutex
	meta   map[string]*metaEntry
	metas  flight[*metaEntry]
	// epoch is the change epoch as last read; every metaEntry points at it. See watchEpoch.
	epoch atomic.Pointer[epochRead]
	// localChanges counts Changed calls; each publishes an epoch read of minus its count,
	// which no entry (and no read of the store, whose epochs are not negative) holds.
	localChanges atomic.Int64
	// reread asks watchEpoch to read the epoch now (Changed), without waiting for the tick.
	reread chan struct{}

	mem     *ristretto.Cache[uint64, *entry]
	memSeed maphash.Seed // hashes variants into memory cache keys; see memKey
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
	// storeDownUntil (UnixNano) is set when a lookup finds the store unreachable; until then
	// lookups answer from entries usable during an outage without a query (see lookup).
	storeDownUntil atomic.Int64
	staleServed    atomic.Uint64 // lookups answered from an old entry for want of the store
	// spaceShort asks the next janitor pass to evict the older half of the cache: a write
	// failed for space, or the data dir is below its reserve (see shortOfSpace).
	spaceShort    atomic.Bool
	spaceWarned   atomic.Int64 // UnixNano of the last warning about space
	skippedWrites atomic.Uint64

	// bgMu orders starting background work against Close, so that bg is never added to once
	// Close waits on it.
	bgMu      sync.Mutex
	closed    bool
	done      chan struct{} // closed by Close: background work stops
	bg        sync.WaitGroup
	closeOnce sync.Once

	renders, memoryHits, diskHits, shared, rejected, evictions atomic.Uint64
	memoryMisses, diskMisses                                   atomic.Uint64     // see stats.go
	renderTimes                                                durationHistogram // see stats.go
	intermediates, fromIntermediate, interDropped              atomic.Uint64

	// Intermediates are made by one goroutine after the render that asked for them has
	// answered (see queueIntermediate); interQueued holds the ids queued or being made.
	interJobs                          chan interJob
	interMu                            sync.Mutex
	interQueued                        map[string]bool
	lookups, epochReads, epochFailures atomic.Uint64
}

// pin marks work in flight for an image; Purge sets purged so the work stores nothing.
type pin struct {
	refs   int
	purged bool
}

// metaEntry is a cached lookup: the image and its owner's tier, or notFound. It is never
// changed once published, but for stale.
type metaEntry struct {
	img      tierpix.Image
	tier     tierpix.Tier
	notFound bool
	// epoch is the change epoch loaded before the lookup's query, and epochs the origin's
	// current one: the entry is fresh while they agree (see fresh).
	epoch  int64
	epochs *atomic.Pointer[epochRead]
	// Times on the monotonic clock, not Config.Now (they are not about link expiry), counted
	// from the start of the lookup: expires after MetadataTTL, retires after maxMetaAge.
	expires time.Time
	retires time.Time
	// looked is when the lookup began: while the store is unreachable, the entry may still
	// answer until looked + Config.MaxAge (see usableDuringOutage).
	looked time.Time
	// refusalChecked marks an entry fetched to re-check a refusal (see handleImage); it is set
	// before the entry is shared with other requests.
	refusalChecked bool
	// stale is set by Purge (and by tests): whoever holds the entry must look the image up
	// again. Remembered links hold entries outside the map, so deleting it is not enough.
	stale atomic.Bool
	// lastModified is img.CreatedAt as an HTTP date and originalETag the original's ETag,
	// made once per lookup rather than on every hit; lastModified is nil when unknown.
	lastModified []byte
	originalETag []byte
}

// fresh reports whether m may answer at now (time.Now, for its monotonic reading): it is not
// stale, the change epoch has not moved since its lookup, and either it is younger than
// MetadataTTL or it found the image, is younger than maxMetaAge and the epoch was read
// successfully less than MetadataTTL ago (see the package doc). It is on the path of every
// request: two atomic loads and a few comparisons, no allocation.
func (m *metaEntry) fresh(now time.Time) bool {
	if m.stale.Load() {
		return false
	}
	cur := m.epochs.Load()
	if cur.epoch != m.epoch {
		return false
	}
	if now.Before(m.expires) {
		return true
	}
	return !m.notFound && now.Before(m.retires) && now.Before(cur.trustedUntil)
}

// usableDuringOutage reports whether m may answer at now although it is not fresh, because
// the store cannot be reached to look it up again: it was not purged or replaced, and its
// lookup is less than maxAge old, the staleness downstream caches are allowed anyway.
func (m *metaEntry) usableDuringOutage(now time.Time, maxAge time.Duration) bool {
	return !m.stale.Load() && now.Sub(m.looked) < maxAge
}

// recheckEvery is how long an entry fetched to re-check a refusal answers refusals without
// another query.
const recheckEvery = 100 * time.Millisecond

// confirmedRefusal reports whether m was itself fetched to re-check a refusal, recently
// enough to stand for the store's state.
func (m *metaEntry) confirmedRefusal(now time.Time) bool {
	return m.refusalChecked && now.Sub(m.looked) < recheckEvery
}

// epochRead is a read of the change epoch. Each successful read replaces the origin's.
type epochRead struct {
	epoch int64
	// trustedUntil is the start of the read plus MetadataTTL, on the monotonic clock: until
	// then, an entry on this epoch may be older than MetadataTTL. The read saw every change
	// committed before it started, so a change is seen, or entries fall back to MetadataTTL,
	// at most MetadataTTL after it was made.
	trustedUntil time.Time
}

// metaLookupTimeout bounds one metadata lookup. A point query on the primary key answers in
// milliseconds; one that takes a second means the database is in trouble, and a request
// with a cached variant should not wait longer than that to be served on its old metadata.
const metaLookupTimeout = time.Second

// storeDownFor is how long after a lookup failed for the store's unavailability entries that
// are no longer fresh answer without trying the store again.
const storeDownFor = 2 * time.Second

// maxMetaAge bounds the life of a metadata entry whatever the change epoch says: a safety net
// for changes that do not move it (made by hand in SQL, or by code that forgot to).
const maxMetaAge = 10 * time.Minute

// epochReadTimeout bounds one read of the change epoch. A read still waiting after
// MetadataTTL has already put the cache in degraded mode; this only keeps the next from
// waiting forever behind it.
const epochReadTimeout = 5 * time.Second

// epochWarnEvery is the least time between two warnings that the change epoch cannot be read.
const epochWarnEvery = time.Minute

// watchEpoch reads the change epoch now and then every MetadataPoll until Close, publishing
// each successful read for fresh. It is the origin's only periodic query.
func (o *Origin) watchEpoch(ctx context.Context) {
	defer o.bg.Done()
	t := time.NewTicker(o.cfg.MetadataPoll)
	defer t.Stop()
	var failing int        // reads failed since the last success
	var warned time.Time   // when the last warning was logged
	var warnedSinceOK bool // a warning was logged since the last success
	for {
		start, prev := time.Now(), o.epoch.Load()
		rctx, cancel := context.WithTimeout(ctx, epochReadTimeout)
		epoch, err := o.store.ChangeEpoch(rctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return // Close
		case err != nil:
			o.epochFailures.Add(1)
			failing++
			if warned.IsZero() || time.Since(warned) >= epochWarnEvery {
				o.logger.Warn("read change epoch: metadata is kept for the metadata TTL only until it can be read",
					"err", err, "failures", failing, "metadata_ttl", o.cfg.MetadataTTL)
				warned, warnedSinceOK = time.Now(), true
			}
		default:
			o.epochReads.Add(1)
			// Not over a Changed made during the read: the read may predate that change, and
			// Changed has asked for another.
			o.epoch.CompareAndSwap(prev, &epochRead{epoch: epoch, trustedUntil: start.Add(o.cfg.MetadataTTL)})
			if warnedSinceOK {
				o.logger.Info("change epoch read again", "failures", failing)
			}
			failing, warnedSinceOK = 0, false
		}
		select {
		case <-o.done:
			return
		case <-t.C:
		case <-o.reread:
		}
	}
}

// Changed makes the origin distrust its cached metadata at once: every image's next lookup
// queries the store, and the change epoch is read again now. Wire it to the store's OnChange,
// so that a change made through this node (a tier gained, an image deleted) is served by
// this node's origin from the next request on; other nodes see it at their next epoch read.
func (o *Origin) Changed() {
	o.epoch.Store(&epochRead{epoch: -o.localChanges.Add(1)})
	select {
	case o.reread <- struct{}{}:
	default:
	}
}

// entry is a rendered thumbnail as cached in memory, with what its answers need.
type entry struct {
	id          string
	variant     int // effective height and format, packed (see webpVariant)
	body        []byte
	etag        []byte
	contentType []byte
}

// newEntry returns the entry of image img's variant v.
func newEntry(img *tierpix.Image, v int, body []byte) *entry {
	return &entry{id: img.ID, variant: v, body: body, etag: variantETag(img.ID, v), contentType: contentTypeOf(variantFormat(img, v))}
}

// webpVariant marks the WebP rendering of a thumbnail in the int its caches key it by (the
// memory cache, the open files, the disk cache's file names): a variant is the effective
// height, or the effective height with this bit for WebP. Heights stay far below it.
const webpVariant = 1 << 20

// variantHeight is the effective height of variant v.
func variantHeight(v int) int { return v &^ webpVariant }

// variantFormat is the format variant v of img is served in.
func variantFormat(img *tierpix.Image, v int) string {
	if v&webpVariant != 0 {
		return tierpix.FormatWebP
	}
	return img.Format
}

// maxMetaEntries bounds the metadata cache (some 500 bytes an entry). Entries live up to
// maxMetaAge, so more distinct ids than this in that time fill it; it is then swept of entries
// that are no longer fresh, and if that is not enough, half of it is dropped at random rather
// than grown (see putMeta).
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
	realClock := cfg.Now == nil
	cfg = cfg.withDefaults()
	if !imaging.Started() {
		return nil, errors.New("origin: libvips is not started; call imaging.Start first")
	}
	o := &Origin{
		cfg:          cfg,
		realClock:    realClock,
		store:        st,
		signer:       signer,
		logger:       logger,
		tmpDir:       filepath.Join(cfg.CacheDir, ".tmp"),
		cacheControl: []byte("public, max-age=" + strconv.FormatInt(int64(cfg.MaxAge/time.Second), 10)),
		pins:         make(map[string]*pin),
		meta:         make(map[string]*metaEntry),
		memSeed:      maphash.MakeSeed(),
		idx:          make(map[string]map[int]*entry),
		workers:      make(chan struct{}, cfg.RenderWorkers),
		done:         make(chan struct{}),
		reread:       make(chan struct{}, 1),
		interJobs:    make(chan interJob, interQueueLen),
		interQueued:  make(map[string]bool),
	}
	// No read yet: trusted until the zero time, so entries live MetadataTTL until the first.
	o.epoch.Store(&epochRead{})
	o.links.init()
	o.files.init()
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
	mem, err := ristretto.NewCache(&ristretto.Config[uint64, *entry]{
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

	// The epoch's reads stop when Close closes done: the one in flight at once, by its context.
	ctx, cancel := context.WithCancel(context.Background())
	o.bg.Add(2)
	go func() {
		defer o.bg.Done()
		<-o.done
		cancel()
	}()
	go o.watchEpoch(ctx)
	o.bg.Add(1)
	go o.intermediateMaker()
	return o, nil
}

// imageRoute is the route template of signed links.
const imageRoute = "/i/{path:*}"

// Register adds the origin's routes (GET and HEAD /i/...) to r.
func (o *Origin) Register(r *router.Router) {
	r.GET(imageRoute, o.handleImage)  // GET /i/{signed path}
	r.HEAD(imageRoute, o.handleImage) // HEAD /i/{signed path}
}

// Boxed once, so that Front sets them without allocating.
var (
	matchedRouteKey   any = router.MatchedRoutePathParam
	matchedRouteValue any = imageRoute
)

// Front returns a handler that answers the routes Register adds itself, and passes every
// other request on to next (the router they are registered on). Image links are nearly all
// of a server's requests, and the router's lookup and its copies of the path cost them
// about a microsecond and five allocations each; Front compares a prefix and a method.
// It records the matched route as a router with SaveMatchedRoutePath would, so that request
// metrics keep their label. The routes stay registered, so the router still lists them (for
// 405 and OPTIONS answers) and serves them where Front is not used.
func (o *Origin) Front(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if bytes.HasPrefix(ctx.Request.URI().PathOriginal(), imagePrefix) {
			if ctx.IsGet() || ctx.IsHead() {
				ctx.SetUserValue(matchedRouteKey, matchedRouteValue)
				o.handleImage(ctx)
				return
			}
			// Other methods get the router's 405, sandboxed like every answer under /i/.
			ctx.Response.Header.SetCanonical(headerCSP, valueCSP)
		}
		next(ctx)
	}
}

// imagePrefix is what the paths of imageRoute start with, as the router matches them: the
// path as received, before normalisation.
var imagePrefix = []byte("/i/")

// Purge forgets everything cached about image id: metadata, memory and disk variants, and
// intermediates. The API calls it when an image or its owner is deleted.
func (o *Origin) Purge(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.purges.Add(1)
	if p, ok := o.pins[id]; ok {
		p.purged = true
	}

	o.metaMu.Lock()
	if m, ok := o.meta[id]; ok {
		m.stale.Store(true)
		delete(o.meta, id)
	}
	o.metaMu.Unlock()

	// Collect first: Del runs OnExit inline, which takes idxMu.
	o.idxMu.Lock()
	var heights []int
	for h := range o.idx[id] {
		heights = append(heights, h)
	}
	delete(o.idx, id)
	o.idxMu.Unlock()
	for _, h := range heights {
		o.mem.Del(o.memKey(id, h))
	}

	o.files.forgetImage(id)
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
		o.files.forgetImage("")
		o.mem.Close()
	})
}

// Stats returns the counters so far.
func (o *Origin) Stats() Stats {
	return Stats{
		Renders:              o.renders.Load(),
		MemoryHits:           o.memoryHits.Load(),
		DiskHits:             o.diskHits.Load(),
		Shared:               o.shared.Load(),
		Rejected:             o.rejected.Load(),
		Evictions:            o.evictions.Load(),
		DiskBytes:            o.diskBytes.Load(),
		Intermediates:        o.intermediates.Load(),
		IntermediateQueue:    len(o.interJobs),
		IntermediatesDropped: o.interDropped.Load(),
		FromIntermediate:     o.fromIntermediate.Load(),
		MetadataLookups:      o.lookups.Load(),
		EpochReads:           o.epochReads.Load(),
		EpochFailures:        o.epochFailures.Load(),
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
// Concurrent misses for one id share one query. The entry records the change epoch loaded
// before the query: had a change been committed after that read, the next read replaces the
// epoch and the entry is looked up again.
//
// While the store is unreachable (a lookup failed with EUNAVAILABLE less than storeDownFor
// ago), an entry that is no longer fresh still answers for up to Config.MaxAge after its
// lookup, without a query: a variant already in memory or on disk keeps being served
// through a database outage, as nginx would serve it from its cache anyway.
func (o *Origin) lookup(id string) (*metaEntry, error) {
	o.metaMu.RLock()
	old, ok := o.meta[id]
	o.metaMu.RUnlock()
	now := time.Now()
	if ok && old.fresh(now) {
		return old, nil
	}
	if ok && now.UnixNano() < o.storeDownUntil.Load() && old.usableDuringOutage(now, o.cfg.MaxAge) {
		return old, nil
	}
	if !ok {
		old = nil
	}
	return o.fetch(id, old, false)
}

// fetch looks image id up in the store and caches the answer. Concurrent fetches of one id
// share one query. old, when not nil, is the entry it replaces, which answers instead when
// the store is unavailable (see lookup). recheck marks the entry as fetched to re-check a
// refusal (see confirmedRefusal).
func (o *Origin) fetch(id string, old *metaEntry, recheck bool) (*metaEntry, error) {
	m, err, shared := o.metas.do(id, func() (*metaEntry, error) {
		p := o.pin(id)
		defer o.unpin(id, p)
		// The query is shared by every waiter, so no single request's context governs it.
		ctx, cancel := context.WithTimeout(context.Background(), metaLookupTimeout)
		defer cancel()
		epoch, start := o.epoch.Load().epoch, time.Now()
		o.lookups.Add(1)
		img, tier, err := o.store.FindImageForServing(ctx, id)
		if err != nil && tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
			if tierpix.ErrorCode(err) == tierpix.EUNAVAILABLE {
				o.storeDownUntil.Store(time.Now().Add(storeDownFor).UnixNano())
				if old != nil && old.usableDuringOutage(time.Now(), o.cfg.MaxAge) {
					o.staleServed.Add(1)
					return old, nil
				}
			}
			return nil, fmt.Errorf("find image %s: %w", id, err) // not cached: may be transient
		}
		m := &metaEntry{
			img:      img,
			tier:     tier,
			notFound: err != nil,
			epoch:    epoch,
			epochs:   &o.epoch,
			expires:  start.Add(o.cfg.MetadataTTL),
			retires:  start.Add(maxMetaAge),
			looked:   start,

			refusalChecked: recheck,
		}
		if !img.CreatedAt.IsZero() {
			m.lastModified = img.CreatedAt.UTC().AppendFormat(nil, http.TimeFormat)
		}
		m.originalETag = []byte(`"` + id + `-o"`)
		o.mu.Lock()
		if p.purged {
			// Answer this request, but let no remembered link keep the entry.
			m.stale.Store(true)
		} else {
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
//
// Every entry that leaves the map is marked stale, the one m replaces included: remembered
// links may hold it, and a Purge of its id, which marks only the entry in the map, must not
// miss it. (An entry that is not fresh may be fresh again: one past MetadataTTL while the
// epoch could not be read, once it can.)
func (o *Origin) putMeta(id string, m *metaEntry) {
	o.metaMu.Lock()
	defer o.metaMu.Unlock()
	if len(o.meta) >= maxMetaEntries {
		now := time.Now()
		for k, v := range o.meta {
			if !v.fresh(now) {
				v.stale.Store(true)
				delete(o.meta, k)
			}
		}
		// Still full: drop half, in the map's random order, so that more hot ids than fit
		// still mostly hit rather than being dropped all at once, time after time.
		for k, v := range o.meta {
			if len(o.meta) < maxMetaEntries/2 {
				break
			}
			v.stale.Store(true)
			delete(o.meta, k)
		}
	}
	if old, ok := o.meta[id]; ok {
		old.stale.Store(true)
	}
	o.meta[id] = m
}

// memKey is the memory cache key of a variant: a hash of the id and the variant, so that
// neither a hit nor a miss builds a string. Entries carry their id and variant, and memGet
// checks them, so two variants whose keys collide only miss each other.
func (o *Origin) memKey(id string, v int) uint64 {
	return maphash.String(o.memSeed, id) ^ uint64(v)*0x9e3779b97f4a7c15
}

// memGet returns the variant from the memory cache, or nil.
func (o *Origin) memGet(id string, v int) *entry {
	e, ok := o.mem.Get(o.memKey(id, v))
	if !ok || e == nil || e.variant != v || e.id != id {
		return nil
	}
	return e
}

// thumbnail returns img's variant v: from memory, from disk, or rendered (see rendered).
// serveThumbnail does the same with the answer in mind.
func (o *Origin) thumbnail(img tierpix.Image, tier tierpix.Tier, v int) (*entry, error) {
	if e := o.memGet(img.ID, v); e != nil {
		o.memoryHits.Add(1)
		return e, nil
	}
	o.memoryMisses.Add(1)
	if body := o.fromDisk(img, v, nil); body != nil {
		return newEntry(&img, v, body), nil
	}
	return o.rendered(img, tier, v)
}

// rendered returns img's variant v once neither cache had it: rendered from the image's
// intermediate when there is one, else from the original, after which an intermediate for
// tier's other heights is queued (see queueIntermediate). Concurrent callers for one variant
// share one render.
func (o *Origin) rendered(img tierpix.Image, tier tierpix.Tier, v int) (*entry, error) {
	key := variantKey(img.ID, v)
	e, err, shared := o.variants.do(key, func() (*entry, error) {
		p := o.pin(img.ID)
		defer o.unpin(img.ID, p)
		// A render that ended between our look and do may have just filled the caches.
		if e := o.memGet(img.ID, v); e != nil {
			o.memoryHits.Add(1)
			return e, nil
		}
		if body := o.fromDisk(img, v, nil); body != nil {
			return newEntry(&img, v, body), nil
		}
		o.diskMisses.Add(1)
		e, fromOriginal, err := o.render(img, v, key)
		if err != nil {
			return nil, err
		}
		// The thumbnail is good whatever becomes of its disk copy, so it is served anyway.
		o.keep(p, e, o.writeCache(e.body))
		if fromOriginal {
			if ih := intermediateHeight(img, tier, variantHeight(v)); ih > 0 {
				o.queueIntermediate(img, ih)
			}
		}
		return e, nil
	})
	if shared {
		o.shared.Add(1)
	}
	return e, err
}

// render runs one thumbnail render on the bounded pool, or refuses with EUNAVAILABLE when
// RenderWorkers are busy and RenderQueue renders already wait. It renders from the image's
// intermediate when one is tall enough, from the original otherwise (fromOriginal).
func (o *Origin) render(img tierpix.Image, v int, key string) (e *entry, fromOriginal bool, err error) {
	if n := o.pending.Add(1); n > int64(o.cfg.RenderWorkers+o.cfg.RenderQueue) {
		o.pending.Add(-1)
		o.rejected.Add(1)
		return nil, false, tierpix.Errorf(tierpix.EUNAVAILABLE, "The server is busy rendering images; retry shortly.")
	}
	defer o.pending.Add(-1)
	eff := variantHeight(v)
	enc := imaging.Encoding{Format: variantFormat(&img, v), Quality: o.cfg.Quality}

	// The original is fetched (when it lives in a bucket and is not in the node's cache)
	// before a worker is taken, so that renders of cached originals go on meanwhile.
	ipath, ih, fromInter := o.findIntermediate(img.ID, eff)
	var src string
	if !fromInter {
		path, release, err := o.original(img)
		if err != nil {
			return nil, false, err
		}
		defer release()
		src = path
	}

	o.workers <- struct{}{}
	defer func() { <-o.workers }()

	if hook := o.cfg.Hooks.BeforeRender; hook != nil {
		hook(key)
	}
	o.renders.Add(1)
	defer o.renderTimes.since(time.Now())

	if fromInter {
		release, err := o.admit(ipath, int64(img.Width)*int64(img.Height))
		if tierpix.ErrorCode(err) == tierpix.EUNAVAILABLE {
			return nil, false, err
		}
		var r imaging.Rendered
		if err == nil {
			r, err = imaging.ThumbnailFromIntermediate(ipath, img.Format, img.Width, img.Height, ih, eff, enc)
			release()
		}
		if err == nil {
			o.fromIntermediate.Add(1)
			o.touch(ipath)
			return newEntry(&img, v, r.Body), false, nil
		}
		// Damaged (a crash before the data reached the disk, an edit from outside): forget
		// it and render from the original; a new one is queued after.
		o.logger.Warn("render from intermediate", "path", ipath, "err", err)
		o.removeFile(ipath)
		path, release, err := o.original(img)
		if err != nil {
			return nil, false, err
		}
		defer release()
		src = path
	}

	var r imaging.Rendered
	release, err := o.admit(src, int64(img.Width)*int64(img.Height))
	if err == nil {
		r, err = imaging.Thumbnail(src, eff, enc)
		release()
	}
	if code := tierpix.ErrorCode(err); code == tierpix.EUNAVAILABLE || code == tierpix.EUNPROCESSABLE {
		return nil, false, err
	}
	if err != nil {
		// The original goes away when the image is deleted after our metadata lookup.
		if _, statErr := os.Stat(src); errors.Is(statErr, os.ErrNotExist) {
			return nil, false, tierpix.Errorf(tierpix.ENOTFOUND, "No such image.")
		}
		return nil, false, fmt.Errorf("render %s %s: %w", img.ID, key, err)
	}
	return newEntry(&img, v, r.Body), true, nil
}

// originalWait bounds how long a render waits for its original to reach the node (from a
// bucket); the fetch itself has the store's deadline.
const originalWait = 30 * time.Second

// original returns a local file holding img's original and its release: ENOTFOUND when the
// image was deleted after its lookup, EUNAVAILABLE when storage could not deliver it in time.
func (o *Origin) original(img tierpix.Image) (string, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), originalWait)
	defer cancel()
	path, release, err := o.store.Original(ctx, img)
	if err != nil {
		if c := tierpix.ErrorCode(err); c == tierpix.ENOTFOUND || c == tierpix.EUNAVAILABLE || c == tierpix.ESTORAGE {
			return "", nil, err
		}
		return "", nil, fmt.Errorf("original of %s: %w", img.ID, err)
	}
	return path, release, nil
}

// admit takes the decode budget a render from the file at path needs (the whole render, an
// intermediate it makes included), estimated from the file's header.
// A file whose header it cannot read (one not checked by this version's validation) costs
// a full 16-bit RGBA decode of the image's pixels.
func (o *Origin) admit(path string, pixels int64) (release func(), err error) {
	cost, err := imaging.DecodeCost(path)
	var e *tierpix.Error
	if errors.As(err, &e) {
		cost, err = imaging.FullDecodeCost(pixels), nil
	}
	if err != nil {
		return nil, err
	}
	return o.cfg.DecodeBudget.Acquire(context.Background(), cost)
}

// intermediateHeight is the height of the intermediate to make after a render of img at eff
// from the original, or 0 for none: the tier's largest height, if the tier has another
// height than eff (one that differs once capped at the original's height) and the
// intermediate would be smaller than the original. It is made after the render has answered
// (queueIntermediate), so the first render costs a plain thumbnail's CPU whatever the tier;
// further sizes are then rendered from it at a fraction of that.
func intermediateHeight(img tierpix.Image, tier tierpix.Tier, eff int) int {
	hs := tier.ThumbnailHeights
	if len(hs) == 0 {
		return 0
	}
	top := min(hs[len(hs)-1], img.Height)
	if top < eff || top >= img.Height {
		return 0
	}
	for _, h := range hs {
		if min(h, img.Height) != eff {
			return top
		}
	}
	return 0
}

// findIntermediate returns the path and height of the image's smallest intermediate of this
// render version that is at least eff high. A render is about to cost milliseconds, so a
// read of the image's directory is cheap next to it, and it sees intermediates other nodes
// sharing the directory made.
func (o *Origin) findIntermediate(id string, eff int) (string, int, bool) {
	dir, ok := o.imageDir(id)
	if !ok {
		return "", 0, false
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", 0, false
	}
	best, name := 0, ""
	suffix := "-v" + renderVersion
	for _, d := range ents {
		n := d.Name()
		if !strings.HasPrefix(n, "i") || !strings.HasSuffix(n, suffix) || !d.Type().IsRegular() {
			continue
		}
		h, err := strconv.Atoi(n[1 : len(n)-len(suffix)])
		if err != nil || h < eff || (best > 0 && h >= best) {
			continue
		}
		best, name = h, n
	}
	if name == "" {
		return "", 0, false
	}
	return filepath.Join(dir, name), best, true
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
		path, _ := o.diskPath(e.id, e.variant)
		o.files.forget(e.id, e.variant)
		if err := o.install(tmp, path, int64(len(e.body))); err != nil {
			o.logger.Warn("write disk cache", "image", e.id, "variant", e.variant, "err", err)
			os.Remove(tmp)
		}
	}
	o.remember(e)
	o.mu.Unlock()
	// Sets are applied asynchronously; waiting makes the next request for this variant a
	// memory hit. It costs one channel round trip per render or promotion, never per hit.
	o.mem.Wait()
	o.maybeEvict()
}

// keepIntermediate moves the temp file of image id's intermediate of height h (size bytes)
// into the disk cache, unless the image was purged meanwhile.
func (o *Origin) keepIntermediate(p *pin, id string, h int, size int64, tmp string) {
	o.mu.Lock()
	defer o.maybeEvict()
	defer o.mu.Unlock()
	dir, ok := o.imageDir(id)
	if p.purged || !ok {
		os.Remove(tmp)
		return
	}
	if err := o.install(tmp, filepath.Join(dir, intermediateName(h)), size); err != nil {
		o.logger.Warn("write intermediate", "image", id, "height", h, "err", err)
		os.Remove(tmp)
		return
	}
	o.intermediates.Add(1)
}

// remember indexes e and sets it in the memory cache; the caller holds o.mu.
func (o *Origin) remember(e *entry) {
	o.idxMu.Lock()
	hs := o.idx[e.id]
	if hs == nil {
		hs = make(map[int]*entry)
		o.idx[e.id] = hs
	}
	hs[e.variant] = e
	o.idxMu.Unlock()
	o.mem.Set(o.memKey(e.id, e.variant), e, int64(len(e.body)))
}

// unindex is ristretto's OnExit: it forgets e in the index unless a newer entry replaced it.
func (o *Origin) unindex(e *entry) {
	if e == nil {
		return
	}
	o.idxMu.Lock()
	defer o.idxMu.Unlock()
	hs := o.idx[e.id]
	if hs[e.variant] == e {
		delete(hs, e.variant)
		if len(hs) == 0 {
			delete(o.idx, e.id)
		}
	}
}

// writeTemp writes body to a temp file in the cache's temp dir. Temp files live apart from
// the image dirs so that Purge's RemoveAll never races with a writer, and on the same
// filesystem so that the rename into place is atomic.
//
// The file is not synced: everything in the cache can be rendered again, and a file whose
// data a crash lost reads as empty, short or zeros, which disk hits check for (validBody) and
// intermediates fail to decode on. An fsync would make every render wait for the disk.
// writeCache writes body to a temp file of the disk cache and returns its path, or "" when
// it is not written: the data dir is below its reserve, or the write failed. A write that
// failed for space, or a reserve reached, makes the janitor evict (see spaceShort). Failures
// are logged once per spaceLogEvery.
func (o *Origin) writeCache(body []byte) string {
	if o.store.LowOnSpace() {
		o.shortOfSpace(nil)
		return ""
	}
	tmp, err := o.writeTemp(body)
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			o.shortOfSpace(err)
		} else {
			o.logger.Warn("write disk cache", "err", err)
		}
		return ""
	}
	return tmp
}

// spaceLogEvery is the least time between two warnings that the disk cache skipped a write.
const spaceLogEvery = time.Minute

// shortOfSpace notes that the data dir is short of space: the write is skipped, a janitor
// evicts the older half of the cache, and a warning is logged at most once per spaceLogEvery.
func (o *Origin) shortOfSpace(err error) {
	o.skippedWrites.Add(1)
	o.spaceShort.Store(true)
	o.maybeEvict()
	now := time.Now().UnixNano()
	last := o.spaceWarned.Load()
	if now-last >= int64(spaceLogEvery) && o.spaceWarned.CompareAndSwap(last, now) {
		o.logger.Warn("the data dir is short of space: the disk cache writes nothing and evicts",
			"err", err, "skipped_writes", o.skippedWrites.Load())
	}
}

func (o *Origin) writeTemp(body []byte) (string, error) {
	f, err := os.CreateTemp(o.tmpDir, "variant-*")
	if err != nil {
		return "", fmt.Errorf("create temp: %w", err)
	}
	_, err = f.Write(body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write temp: %w", err)
	}
	return f.Name(), nil
}

// install renames tmp, of size bytes, to path in the disk cache and counts it (less the file
// it replaces, if any); the caller holds o.mu.
func (o *Origin) install(tmp, path string, size int64) error {
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

// removeFile deletes a file of the disk cache and counts it out.
func (o *Origin) removeFile(path string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	info, err := os.Lstat(path)
	if err != nil || !info.Mode().IsRegular() {
		return
	}
	if os.Remove(path) == nil {
		o.diskBytes.Add(-info.Size())
	}
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
	if !tierpix.ValidImageID(id) {
		return "", false
	}
	return filepath.Join(o.cfg.CacheDir, id[:2], id), true
}

// diskPath returns the file of variant v in the disk cache: imageDir/h{eff}-v{renderVersion},
// or imageDir/h{eff}.webp-v{renderVersion} for the WebP rendering. Files of other render
// versions are never read, so never touched: Purge removes them with the image dir, and the
// janitor evicts them first otherwise.
func (o *Origin) diskPath(id string, v int) (string, bool) {
	dir, ok := o.imageDir(id)
	if !ok {
		return "", false
	}
	name := "h" + strconv.Itoa(variantHeight(v))
	if v&webpVariant != 0 {
		name += ".webp"
	}
	return filepath.Join(dir, name+"-v"+renderVersion), true
}

// intermediateName is the file name of an intermediate h high in its image dir.
func intermediateName(h int) string {
	return "i" + strconv.Itoa(h) + "-v" + renderVersion
}

// variantKey names a variant in flights and in render hooks: id/h200, or id/h200.webp.
func variantKey(id string, v int) string {
	k := id + "/h" + strconv.Itoa(variantHeight(v))
	if v&webpVariant != 0 {
		k += ".webp"
	}
	return k
}
