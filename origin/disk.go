package origin

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/imaging"
	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"
)

// closeWait bounds how long Close waits for the janitor. The janitor checks for Close between
// files, so only a file system call that hangs (a dead network mount) makes it wait this long.
const closeWait = 5 * time.Second

// errStopped ends a walk of the disk cache because Close was called.
var errStopped = errors.New("origin closed")

// diskFile is a rendered file found by a walk of the disk cache.
type diskFile struct {
	path  string
	size  int64
	mtime int64 // Unix nanoseconds
}

// overBudget reports whether the disk cache holds more than its budget, by the counter, or
// the data dir is short of space.
func (o *Origin) overBudget() bool {
	return o.spaceShort.Load() || (o.cfg.DiskCacheBytes >= 0 && o.diskBytes.Load() > o.cfg.DiskCacheBytes)
}

// maybeEvict starts a janitor when the disk cache is over budget and none runs. Writers call it
// after every install, so the check is two atomic loads on the fast path.
func (o *Origin) maybeEvict() {
	if !o.overBudget() || !o.janitorBusy.CompareAndSwap(false, true) {
		return
	}
	o.bgMu.Lock()
	defer o.bgMu.Unlock()
	if o.closed {
		o.janitorBusy.Store(false)
		return
	}
	o.bg.Add(1)
	go o.janitor(true)
}

// janitor runs passes over the disk cache while it holds janitorBusy. The first pass of an
// Origin only counts (evict false), so that a start over a cache within budget never holds a
// list of millions of files; a count over budget is followed by an evicting pass. Writes during
// a pass cannot start a janitor of their own, so a pass after which the cache grew back over
// budget is followed by another; a pass that could not bring the cache under budget with
// nothing written meanwhile (files that cannot be removed) is not, so the janitor never spins.
func (o *Origin) janitor(evict bool) {
	defer o.bg.Done()
	for {
		grew := o.diskPass(evict)
		o.janitorBusy.Store(false)
		if !o.overBudget() || (evict && !grew) || o.stopping() || !o.janitorBusy.CompareAndSwap(false, true) {
			return
		}
		evict = true
	}
}

// diskPass walks the disk cache and, when evict is set and the cache is over budget, deletes the
// least recently used files (by modification time: installs set it, disk hits touch it) until
// it is at most 90% of the budget, so that the next pass is some way off. The counter is then
// reset from the walk: it takes the walked total, less what was deleted, plus whatever writes
// and purges added or subtracted during the pass. A change the walk saw is then counted twice,
// but only until the next pass, so the counter cannot drift. grew reports whether others added
// to the counter during the pass.
//
// The pass never holds o.mu while walking or deleting files, only for a moment per emptied
// image directory, which an install might be about to fill.
func (o *Origin) diskPass(evict bool) (grew bool) {
	before := o.diskBytes.Load()
	total, files, err := o.walkDisk(evict)
	if errors.Is(err, errStopped) {
		return false
	}
	if err != nil {
		o.logger.Warn("walk disk cache", "err", err)
		return false
	}

	var freed int64
	budget := o.cfg.DiskCacheBytes
	if evict && o.spaceShort.Swap(false) {
		// Short of space: the cache gives back its older half, whatever its budget.
		budget = min(budget, total/2)
		if budget < 0 {
			budget = total / 2
		}
	}
	if evict && budget >= 0 && total > budget {
		if hook := o.cfg.Hooks.BeforeEvict; hook != nil {
			hook()
		}
		slices.SortFunc(files, func(a, b diskFile) int {
			return cmp.Or(cmp.Compare(a.mtime, b.mtime), strings.Compare(a.path, b.path))
		})
		target := budget - budget/10
		left := total
		emptied := make(map[string]bool)
		for _, f := range files {
			if left <= target || o.stopping() {
				break
			}
			err := os.Remove(f.path)
			switch {
			case err == nil:
				freed += f.size
				o.evictions.Add(1)
				emptied[filepath.Dir(f.path)] = true
			case errors.Is(err, fs.ErrNotExist):
				// Gone since the walk: purged (Purge subtracted it from the counter itself)
				// or evicted by another node sharing the directory (the next pass sees it).
			default:
				o.logger.Warn("evict from disk cache", "path", f.path, "err", err)
				continue
			}
			left -= f.size
		}
		for dir := range emptied {
			o.removeEmptyDirs(dir)
		}
	}
	after := o.diskBytes.Add(total - freed - before)
	return after-(total-freed) > before
}

// walkDisk returns the total size of the rendered files under CacheDir and, when collect is
// set, the files themselves (about 100 bytes of memory each, for the length of a pass). It
// skips the temp dir, and everything but regular files: it follows no symbolic link, so
// nothing outside CacheDir is counted or ever deleted. Files and directories that vanish
// during the walk (purged, evicted by another node) are skipped.
func (o *Origin) walkDisk(collect bool) (total int64, files []diskFile, err error) {
	root := o.diskRoot
	tmp := filepath.Join(root, ".tmp")
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if o.stopping() {
			return errStopped
		}
		if err != nil {
			if path == root {
				return err
			}
			if !errors.Is(err, fs.ErrNotExist) {
				o.logger.Warn("walk disk cache", "path", path, "err", err)
			}
			return nil
		}
		if d.IsDir() {
			if path == tmp {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // gone since the directory was read
		}
		total += info.Size()
		if collect {
			files = append(files, diskFile{path: path, size: info.Size(), mtime: info.ModTime().UnixNano()})
		}
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("walk %s: %w", root, err)
	}
	return total, files, nil
}

// removeEmptyDirs removes dir and then its parent, each only if empty, never the cache root
// itself. It holds o.mu so that an install, which creates the directories and renames its file
// in under o.mu, never finds its directory removed between the two.
func (o *Origin) removeEmptyDirs(dir string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for range 2 {
		if dir == o.diskRoot || !strings.HasPrefix(dir, o.diskRoot+string(filepath.Separator)) {
			return
		}
		if os.Remove(dir) != nil {
			return // not empty (or gone): either way, nothing more to do
		}
		dir = filepath.Dir(dir)
	}
}

// touchAfter is how old a disk cache file's modification time must be before a disk hit
// touches it: the janitor's idea of recent use is exact to this much, and a file read
// thousands of times a second costs one system call a minute for it, not one per read.
const touchAfter = time.Minute

// touch marks a disk cache file as just used, so that the janitor evicts it last.
func (o *Origin) touch(path string) {
	now := o.cfg.Now()
	if err := os.Chtimes(path, now, now); err != nil && !errors.Is(err, fs.ErrNotExist) {
		o.logger.Warn("touch disk cache file", "path", path, "err", err)
	}
}

// fromDisk returns the body of img's variant v from the disk cache, or
// nil when it is not there or not whole (see validBody). It takes no pin and no lock on the
// way. The file is read with one pread through a descriptor kept open by o.files, or opened
// (see openCacheFile) and kept open; it is touched at most once a minute.
//
// When the memory cache can hold the body, it is read into a buffer of its own and promoted,
// unless a Purge ran while the file was read. When it cannot (a memory budget smaller than
// the file) and ctx is given, it is read into a pooled buffer that goes back to the pool
// once fasthttp has written the response, so that serving from disk allocates nothing.
func (o *Origin) fromDisk(img tierpix.Image, v int, ctx *fasthttp.RequestCtx) []byte {
	gen := o.purges.Load()
	f := o.files.get(img.ID, v)
	if f == nil {
		var err error
		if f, err = o.openCacheFile(img.ID, v); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				o.logger.Warn("read disk cache", "image", img.ID, "variant", v, "err", err)
			}
			return nil
		}
	}
	defer f.release()
	body, pooled, err := o.readCacheFile(f, ctx)
	if err != nil {
		o.files.drop(f)
		o.logger.Warn("read disk cache", "image", img.ID, "variant", v, "err", err)
		return nil
	}
	if !validBody(variantFormat(&img, v), body) {
		o.files.drop(f)
		return nil // rendered anew, and replaced
	}
	o.diskHits.Add(1)
	if now := o.cfg.Now(); now.UnixNano()-f.mtime.Load() > int64(touchAfter) {
		f.mtime.Store(now.UnixNano())
		if path, ok := o.diskPath(img.ID, v); ok {
			o.touch(path)
		}
	}
	if !pooled && int64(len(body)) <= o.cfg.MemoryCacheBytes {
		o.promote(newEntry(&img, v, body), gen)
	}
	return body
}

// promote sets an entry read from disk in the memory cache, unless a Purge ran since gen.
func (o *Origin) promote(e *entry, gen uint64) {
	o.mu.Lock()
	if o.purges.Load() != gen {
		o.mu.Unlock()
		return
	}
	o.remember(e)
	o.mu.Unlock()
	// As after a render: the next request for the variant is a memory hit.
	o.mem.Wait()
}

// bodyBuffer is a pooled response body. fasthttp closes the user values of a request once
// its response is written, which puts the buffer back.
type bodyBuffer struct{ b []byte }

var bodyBuffers = sync.Pool{New: func() any { return new(bodyBuffer) }}

func (b *bodyBuffer) Close() error {
	bodyBuffers.Put(b)
	return nil
}

// bodyBufferKey is the user value key of a request's pooled body, boxed once.
var bodyBufferKey any = "origin.bodyBuffer"

// openCacheFile opens a variant's file in the disk cache and keeps it in o.files; the caller
// releases the returned file. It makes three system calls (openat, fstat and, in time,
// close); os.Open would add five on Linux (four fcntl and an epoll_ctl: it tries each file on
// the network poller, which refuses regular files), which used to be most of a disk hit's
// cost.
func (o *Origin) openCacheFile(id string, v int) (*openFile, error) {
	path, ok := o.diskPath(id, v)
	if !ok {
		return nil, fs.ErrNotExist
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f := &openFile{id: id, v: v, fd: fd, size: st.Size, expires: time.Now().Add(openFileTTL)}
	f.mtime.Store(time.Unix(st.Mtim.Unix()).UnixNano())
	f.refs.Store(2) // the cache's and the caller's
	o.files.put(f)
	return f, nil
}

// readCacheFile reads the whole of f. The body goes into a pooled buffer owned by ctx (pooled
// true) when ctx is given and the memory cache could not keep the body anyway; into a new
// one otherwise.
func (o *Origin) readCacheFile(f *openFile, ctx *fasthttp.RequestCtx) (body []byte, pooled bool, err error) {
	if ctx != nil && f.size > o.cfg.MemoryCacheBytes {
		buf := bodyBuffers.Get().(*bodyBuffer)
		if int64(cap(buf.b)) < f.size {
			buf.b = make([]byte, f.size)
		}
		body, pooled = buf.b[:f.size], true
		ctx.SetUserValue(bodyBufferKey, buf)
	} else {
		body = make([]byte, f.size)
	}
	for n := 0; n < len(body); {
		m, err := unix.Pread(f.fd, body[n:], int64(n))
		if err != nil {
			return nil, false, fmt.Errorf("read: %w", err)
		}
		if m == 0 {
			return nil, false, fmt.Errorf("read: %w", io.ErrUnexpectedEOF)
		}
		n += m
	}
	return body, pooled, nil
}

// openFileTTL is how long a disk cache file stays open in o.files before it is opened again
// by path: what a file replaced or removed meanwhile (by another node, the janitor, an
// operator) may still be served from, which is at worst a valid older copy of the same
// variant and render version. Purge and this node's own writes close theirs at once.
const openFileTTL = 10 * time.Second

// openFile is a disk cache file kept open. refs counts the cache's reference and one per
// reader; the descriptor is closed when it drops to 0, and never used again, since refs is
// never raised from 0: so a reader can never read a descriptor that was closed (and maybe
// reused for another file) under it.
type openFile struct {
	id      string
	v       int // the variant: its height and format bit, as memKey and diskPath take it
	fd      int
	size    int64
	mtime   atomic.Int64 // Unix nanoseconds, as last read or set by a touch
	expires time.Time    // monotonic: opened anew after
	refs    atomic.Int32
}

func (f *openFile) acquire() bool {
	for {
		r := f.refs.Load()
		if r <= 0 {
			return false
		}
		if f.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

func (f *openFile) release() {
	if f.refs.Add(-1) == 0 {
		unix.Close(f.fd)
	}
}

// fileCache keeps disk cache files open, as nginx's open_file_cache does, so that a disk hit
// is one pread instead of four system calls. It is set-associative: a variant's hash picks a
// set of fileWays slots, and a file opened when its set is full replaces the one that
// expires first. Its size follows the process's file limit (see maxOpenFiles).
// (Direct-mapped, 300 hot files in 2 048 slots left one in seven sharing a slot and reopened
// on every other request: 6% of a disk hit's CPU went to open, fstat and close.)
type fileCache struct {
	seed  maphash.Seed
	slots []atomic.Pointer[openFile]
}

// fileWays is how many slots a variant's file may take.
const fileWays = 4

// maxOpenFiles bounds the open-file cache: about twice the hot files it serves without
// reopening them, and at most a quarter of the process's file limit, so that connections
// never run short. (With a limit of 20 000 and an eighth, 2 000 hot files shared 2 048 slots
// and a disk hit cost 45 µs of CPU against 27-32 µs for 300 files.)
const maxOpenFiles = 1 << 14

func (c *fileCache) init() {
	n := maxOpenFiles
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil {
		for n > 16 && uint64(n) > lim.Cur/4 {
			n /= 2
		}
	}
	c.seed = maphash.MakeSeed()
	c.slots = make([]atomic.Pointer[openFile], n)
}

// set returns the slots a variant's file may take.
func (c *fileCache) set(id string, v int) []atomic.Pointer[openFile] {
	h := maphash.String(c.seed, id) ^ uint64(v)*0x9e3779b97f4a7c15
	i := int(h&uint64(len(c.slots)/fileWays-1)) * fileWays
	return c.slots[i : i+fileWays : i+fileWays]
}

// get returns the open file of a variant, acquired, or nil.
func (c *fileCache) get(id string, v int) *openFile {
	set := c.set(id, v)
	for i := range set {
		f := set[i].Load()
		if f == nil || f.v != v || f.id != id {
			continue
		}
		if time.Now().Before(f.expires) && f.acquire() {
			return f
		}
		return nil
	}
	return nil
}

// put keeps f in its set, in the slot of an older file of the same variant, else a free one,
// else the one that expires first, closing whatever file was there once its readers are done.
func (c *fileCache) put(f *openFile) {
	set := c.set(f.id, f.v)
	victim := -1
	var first time.Time
	for i := range set {
		g := set[i].Load()
		if g == nil || (g.id == f.id && g.v == f.v) {
			victim = i
			break
		}
		if victim < 0 || g.expires.Before(first) {
			victim, first = i, g.expires
		}
	}
	if old := set[victim].Swap(f); old != nil {
		old.release()
	}
}

// drop closes f in the cache, if it is still there.
func (c *fileCache) drop(f *openFile) {
	set := c.set(f.id, f.v)
	for i := range set {
		if set[i].CompareAndSwap(f, nil) {
			f.release()
			return
		}
	}
}

// forget closes the cached files of a variant, as its file is about to be replaced.
func (c *fileCache) forget(id string, v int) {
	set := c.set(id, v)
	for i := range set {
		if f := set[i].Load(); f != nil && f.id == id && f.v == v && set[i].CompareAndSwap(f, nil) {
			f.release()
		}
	}
}

// forgetImage closes the cached files of image id, or every file when id is "". It walks
// every slot, which takes microseconds, and runs on Purge and Close only.
func (c *fileCache) forgetImage(id string) {
	for i := range c.slots {
		if f := c.slots[i].Load(); f != nil && (id == "" || f.id == id) && c.slots[i].CompareAndSwap(f, nil) {
			f.release()
		}
	}
}

var (
	jpegSOI    = []byte{0xFF, 0xD8}
	jpegEOI    = []byte{0xFF, 0xD9}
	pngTrailer = []byte("IEND\xaeB`\x82") // the IEND chunk's type and CRC, which end every PNG
)

// validBody reports whether body is a whole file of format as the cache writes them: a JPEG
// from SOI to EOI, a PNG from its signature to its IEND chunk, a WebP whose RIFF header
// gives its length. Cache files are not synced,
// so a crash can leave one empty, cut short or zero-filled (its data never written), and
// such a file must be rendered again rather than served.
func validBody(format string, body []byte) bool {
	switch format {
	case tierpix.FormatJPEG:
		return len(body) > len(jpegSOI)+len(jpegEOI) && bytes.HasPrefix(body, jpegSOI) && bytes.HasSuffix(body, jpegEOI)
	case tierpix.FormatPNG:
		return bytes.HasPrefix(body, imaging.PNGMagic) && bytes.HasSuffix(body, pngTrailer)
	case tierpix.FormatWebP:
		return len(body) > 12 && string(body[:4]) == "RIFF" && string(body[8:12]) == "WEBP" &&
			int(binary.LittleEndian.Uint32(body[4:8])) == len(body)-8
	}
	return len(body) > 0
}

// dirSize returns the total size of the regular files directly in dir (an image dir holds
// nothing else), 0 if it does not exist.
func dirSize(dir string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, d := range ents {
		if !d.Type().IsRegular() {
			continue
		}
		if info, err := d.Info(); err == nil {
			n += info.Size()
		}
	}
	return n
}

// stopping reports whether Close was called.
func (o *Origin) stopping() bool {
	select {
	case <-o.done:
		return true
	default:
		return false
	}
}
