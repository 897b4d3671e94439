package origin

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
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

// overBudget reports whether the disk cache holds more than its budget, by the counter.
func (o *Origin) overBudget() bool {
	return o.cfg.DiskCacheBytes >= 0 && o.diskBytes.Load() > o.cfg.DiskCacheBytes
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
	if evict && budget >= 0 && total > budget {
		if hook := o.beforeEvict.Load(); hook != nil {
			(*hook)()
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

// touch marks a disk cache file as just used, so that the janitor evicts it last. Disk hits are
// rare next to memory hits, so a system call each is cheap.
func (o *Origin) touch(path string) {
	now := o.cfg.Now()
	if err := os.Chtimes(path, now, now); err != nil && !errors.Is(err, fs.ErrNotExist) {
		o.logger.Warn("touch disk cache file", "path", path, "err", err)
	}
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
