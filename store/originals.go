package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/tierpix/tierpix"
)

// originals is where the uploaded originals live: a directory on the node's disk (dirOriginals,
// the default) or an S3 bucket (bucketOriginals). The store's image methods are written once
// over it; rows and the transaction stay the store's.
type originals interface {
	// stage puts the validated upload at tmp in place as the original of id, size bytes,
	// durable when it returns nil; no row refers to it yet. On an error tmp is left to the
	// caller; on success it is gone (moved or uploaded and adopted by a cache).
	stage(ctx context.Context, id, tmp string, size int64) error
	// remove deletes the originals of ids; one already gone is not an error.
	remove(ctx context.Context, ids []string) error
	// local returns a file on this node's disk holding the original of id (size bytes) and a
	// release to call once it has been read: the file stays until then.
	local(ctx context.Context, id string, size int64) (path string, release func(), err error)
	// open returns the original of id for streaming, with its length.
	open(ctx context.Context, id string, size int64) (io.ReadCloser, int64, error)
	// stat returns the length of the original of id (ENOTFOUND when it is gone).
	stat(ctx context.Context, id string, size int64) (int64, error)
	// sweep hands orphans the ids of originals last modified before cutoff, a batch at a
	// time, and removes those it returns: the ones without a row.
	sweep(ctx context.Context, cutoff time.Time, orphans func([]string) ([]string, error)) (int, error)
	// String names the place for logs and errors, without secrets.
	String() string
}

// errNoOriginal is the error of an original that is not where its row says: the image was
// deleted after the caller looked it up.
func errNoOriginal() error { return tierpix.Errorf(tierpix.ENOTFOUND, "No such image.") }

// dirOriginals keeps originals at dir/{id[0:2]}/{id}, so that no directory grows past a few
// thousand entries per million images. Uploads are spooled on the same filesystem, so a rename
// puts one in place atomically.
type dirOriginals struct {
	dir string
}

func (d *dirOriginals) String() string { return d.dir }

// path returns where the original of id lives. An id that is not a valid image id maps to a
// path that never exists inside dir, so a hostile id cannot name another file.
func (d *dirOriginals) path(id string) string {
	if !tierpix.ValidImageID(id) {
		return filepath.Join(d.dir, "invalid-id")
	}
	return filepath.Join(d.dir, id[:2], id)
}

// stage fsyncs the file, renames it into its shard and fsyncs the directory, so that the
// rename is durable before the row that points at the file is committed. The file's mtime
// becomes the time it was moved, so that a sweep, which spares recent files, cannot take it
// for an orphan in the moment between the rename and the INSERT.
func (d *dirOriginals) stage(_ context.Context, id, tmp string, _ int64) error {
	now := time.Now()
	if err := os.Chtimes(tmp, now, now); err != nil {
		return fmt.Errorf("touch upload: %w", err)
	}
	if _, err := syncFile(tmp); err != nil {
		return err
	}
	final := d.path(id)
	shard := filepath.Dir(final)
	shardCreated := false
	if err := os.Mkdir(shard, 0o755); err == nil {
		shardCreated = true
	} else if !errors.Is(err, fs.ErrExist) {
		return FileError(err, "create shard directory")
	}
	if err := os.Rename(tmp, final); err != nil {
		return FileError(err, "move upload into place")
	}
	err := syncDir(shard)
	if err == nil && shardCreated {
		err = syncDir(d.dir)
	}
	if err != nil {
		os.Remove(final)
		return err
	}
	return nil
}

func (d *dirOriginals) remove(_ context.Context, ids []string) error {
	var errs []error
	for _, id := range ids {
		if err := os.Remove(d.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("%w: remove original %s: %w", ErrOriginalKept, id, err))
		}
	}
	return errors.Join(errs...)
}

func (d *dirOriginals) local(_ context.Context, id string, _ int64) (string, func(), error) {
	p := d.path(id)
	if _, err := os.Stat(p); err != nil {
		return "", nil, d.missing(id, err)
	}
	return p, func() {}, nil
}

func (d *dirOriginals) open(_ context.Context, id string, _ int64) (io.ReadCloser, int64, error) {
	f, err := os.Open(d.path(id))
	if err != nil {
		return nil, 0, d.missing(id, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("stat original %s: %w", id, err)
	}
	return f, info.Size(), nil
}

func (d *dirOriginals) stat(_ context.Context, id string, _ int64) (int64, error) {
	info, err := os.Stat(d.path(id))
	if err != nil {
		return 0, d.missing(id, err)
	}
	return info.Size(), nil
}

// missing maps a failure to reach a file: gone means deleted since the caller's lookup.
func (d *dirOriginals) missing(id string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return errNoOriginal()
	}
	return fmt.Errorf("open original %s: %w", id, err)
}

// sweep walks the shards (see walkOriginals) and removes the orphans a batch at a time.
func (d *dirOriginals) sweep(ctx context.Context, cutoff time.Time, orphans func([]string) ([]string, error)) (int, error) {
	removed := 0
	flush := func(batch []string) error {
		gone, err := orphans(batch)
		if err != nil {
			return err
		}
		for _, id := range gone {
			if err := os.Remove(d.path(id)); err == nil {
				removed++
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("sweep: %w", err)
			}
		}
		return nil
	}
	var batch []string
	err := walkOriginals(ctx, d.dir, func(id string, f fs.DirEntry) error {
		if !olderThanCutoff(f, cutoff) {
			return nil
		}
		batch = append(batch, id)
		if len(batch) == sweepBatch {
			if err := flush(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("sweep: %w", err)
	}
	if len(batch) > 0 {
		if err := flush(batch); err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// walkOriginals calls fn for each original in a directory laid out as dirOriginals keeps it:
// a regular file named like an image id, in the shard its name begins with. Anything else (the
// temp directory, stray files) is passed over. It reads one shard at a time, so it never holds
// more than a shard's listing, and stops at the first error of fn or when ctx ends; a shard
// that vanishes meanwhile is not an error.
func walkOriginals(ctx context.Context, dir string, fn func(id string, f fs.DirEntry) error) error {
	shards, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read originals directory: %w", err)
	}
	for _, shard := range shards {
		if !shard.IsDir() || len(shard.Name()) != 2 {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, shard.Name()))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("read shard directory: %w", err)
		}
		for _, f := range files {
			if f.Type().IsRegular() && tierpix.ValidImageID(f.Name()) && f.Name()[:2] == shard.Name() {
				if err := fn(f.Name(), f); err != nil {
					return err
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}
