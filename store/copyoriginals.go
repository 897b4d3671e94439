package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/tierpix/tierpix"
)

// ErrOriginalsNotInBucket is CopyOriginalsFrom's refusal when the store keeps its originals
// in a directory: there is no bucket to copy into.
var ErrOriginalsNotInBucket = errors.New("the originals are not kept in a bucket")

// ErrCopyMismatch is the failure of an original whose object, read back after the upload,
// does not have the file's length and SHA-256.
var ErrCopyMismatch = errors.New("the bucket does not hold what was sent")

// DefaultCopyWorkers is CopyOptions.Workers' default.
const DefaultCopyWorkers = 4

// copyAttempts is how many times an original is tried while the bucket is unavailable (with
// bucketRetryAfter between tries) before the copy stops.
const copyAttempts = 3

// CopyOptions tunes CopyOriginalsFrom.
type CopyOptions struct {
	// Workers is how many originals are copied at once; zero means DefaultCopyWorkers.
	Workers int
	// Progress, when set, is called after each original is dealt with, one call at a time
	// on the caller's goroutine, with the counts so far, the original's id and, when it
	// failed, why.
	Progress func(r CopyResult, id string, err error)
}

// CopyResult counts what CopyOriginalsFrom found and did.
type CopyResult struct {
	// Files and Bytes are what the walk before the copy counted in the directory.
	Files, Bytes int64
	// Done counts the originals dealt with: Copied (uploaded, then found right by a HEAD),
	// Skipped (the bucket held them already, same length and SHA-256), Gone (deleted from
	// the directory meanwhile, as a running server does) and Failed.
	Done, Copied, Skipped, Gone, Failed int64
	// BytesDone is the length of the originals dealt with, BytesCopied of those uploaded.
	BytesDone, BytesCopied int64
	Elapsed                time.Duration
}

// Rate is the upload rate so far, in MiB/s.
func (r CopyResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.BytesCopied) / (1 << 20) / r.Elapsed.Seconds()
}

// ETA estimates the time left from the pace so far over the bytes dealt with (a resumed run
// skips what is there faster than it uploads, so it errs short at first); ok is false before
// any byte is dealt with.
func (r CopyResult) ETA() (eta time.Duration, ok bool) {
	left := r.Bytes - r.BytesDone
	switch {
	case left <= 0:
		return 0, true
	case r.BytesDone <= 0 || r.Elapsed <= 0:
		return 0, false
	}
	return time.Duration(float64(r.Elapsed) * float64(left) / float64(r.BytesDone)).Round(time.Second), true
}

// CopyOriginalsFrom copies the originals in dir, laid out as a directory of originals is
// ({id[0:2]}/{id}), into the bucket the store keeps its originals in, so that a deployment
// can move from a disk to a bucket. It leaves dir as it is.
//
// It is resumable: an original whose object already has the file's length and SHA-256 is
// skipped, after one HEAD; one that differs is uploaded again. Each upload is the one uploads
// make (the MD5 for the server to check, the SHA-256 in the metadata), then a HEAD checks the
// object's length and SHA-256, and a difference is a failure of that original (ErrCopyMismatch).
// Workers copy at once, each request within the bucket's deadlines.
//
// It walks dir twice, a shard at a time: once to count, once to copy. The error is non-nil
// when any original failed (the others are copied), when the bucket stayed unavailable (the
// copy stops), or when ctx ended; the counts say how far it got, and running it again
// finishes the job.
func (s *Store) CopyOriginalsFrom(ctx context.Context, dir string, opts CopyOptions) (CopyResult, error) {
	start := time.Now()
	var res CopyResult
	if s.bucket == nil {
		return res, ErrOriginalsNotInBucket
	}
	if info, err := os.Stat(dir); err != nil {
		return res, fmt.Errorf("originals directory: %w", err)
	} else if !info.IsDir() {
		return res, fmt.Errorf("originals directory %s: not a directory", dir)
	}
	err := walkOriginals(ctx, dir, func(_ string, f fs.DirEntry) error {
		if info, err := f.Info(); err == nil {
			res.Files++
			res.Bytes += info.Size()
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("count originals in %s: %w", dir, err)
	}

	workers := opts.Workers
	if workers <= 0 {
		workers = DefaultCopyWorkers
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ids := make(chan string)
	var walkErr error // set before ids is closed
	go func() {
		defer close(ids)
		walkErr = walkOriginals(runCtx, dir, func(id string, _ fs.DirEntry) error {
			select {
			case ids <- id:
				return nil
			case <-runCtx.Done():
				return runCtx.Err()
			}
		})
	}()
	results := make(chan copyOutcome)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for id := range ids {
				results <- s.copyOriginal(runCtx, id, filepath.Join(dir, id[:2], id))
			}
		})
	}
	go func() {
		wg.Wait()
		close(results)
	}()

	var stopErr error
	for r := range results {
		if r.err != nil && runCtx.Err() != nil {
			continue // cut short by the end of the run: not done, the next run does it
		}
		if code := tierpix.ErrorCode(r.err); code == tierpix.EUNAVAILABLE || code == tierpix.ESTORAGE {
			// Every original would fail the same way: stop rather than fail them all.
			if stopErr == nil {
				stopErr = fmt.Errorf("copy stopped, the bucket is unreachable, refusing or full (what is copied stays; run again once it works): %w", r.err)
			}
			cancel()
			continue
		}
		res.Done++
		res.BytesDone += r.size
		switch {
		case r.err != nil:
			res.Failed++
		case r.gone:
			res.Gone++
		case r.skipped:
			res.Skipped++
		default:
			res.Copied++
			res.BytesCopied += r.size
		}
		if opts.Progress != nil {
			res.Elapsed = time.Since(start)
			opts.Progress(res, r.id, r.err)
		}
	}
	res.Elapsed = time.Since(start)
	switch {
	case stopErr != nil:
		return res, stopErr
	case ctx.Err() != nil:
		return res, fmt.Errorf("copy interrupted; run again to finish: %w", ctx.Err())
	case walkErr != nil:
		return res, fmt.Errorf("list originals in %s: %w", dir, walkErr)
	case res.Failed > 0:
		return res, fmt.Errorf("%d of %d originals failed to copy; run again to retry them", res.Failed, res.Done)
	}
	return res, nil
}

// copyOutcome is what became of one original.
type copyOutcome struct {
	id            string
	size          int64
	skipped, gone bool
	err           error
}

// copyOriginal copies one original, trying again while the bucket is unavailable.
func (s *Store) copyOriginal(ctx context.Context, id, path string) copyOutcome {
	for attempt := 1; ; attempt++ {
		r := s.copyOriginalOnce(ctx, id, path)
		if tierpix.ErrorCode(r.err) != tierpix.EUNAVAILABLE || attempt == copyAttempts {
			return r
		}
		select {
		case <-ctx.Done():
			return r
		case <-time.After(bucketRetryAfter):
		}
	}
}

func (s *Store) copyOriginalOnce(ctx context.Context, id, path string) copyOutcome {
	b := s.bucket
	r := copyOutcome{id: id}
	size, sum, err := hashFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		r.gone = true
		return r
	}
	if err != nil {
		r.err = err
		return r
	}
	r.size = size
	if got, gotSum, ok, err := b.head(ctx, id); err != nil {
		r.err = err
		return r
	} else if ok && got == size && gotSum == sum {
		r.skipped = true
		return r
	}
	if err := b.put(ctx, id, path, size, sum); err != nil {
		if _, serr := os.Stat(path); errors.Is(serr, fs.ErrNotExist) {
			r.gone = true // deleted after it was read: its row is gone too
			return r
		}
		r.err = err
		return r
	}
	if hook := s.hooks.AfterCopyPut; hook != nil {
		hook(id)
	}
	got, gotSum, ok, err := b.head(ctx, id)
	switch {
	case err != nil:
		r.err = err
	case !ok:
		r.err = fmt.Errorf("%w: no object %s after its upload", ErrCopyMismatch, b.key(id))
	case got != size || gotSum != sum:
		r.err = fmt.Errorf("%w: object %s has %d bytes and sha256 %q, want %d bytes and sha256 %s", ErrCopyMismatch, b.key(id), got, gotSum, size, sum)
	}
	return r
}

// head returns the length of the object of id and the SHA-256 in its metadata (empty when it
// has none); ok is false when there is no object.
func (b *bucketOriginals) head(ctx context.Context, id string) (size int64, sum string, ok bool, err error) {
	if err := b.failFast(); err != nil {
		return 0, "", false, err
	}
	ctx, cancel := b.deadline(ctx, 0)
	defer cancel()
	began := time.Now()
	info, err := b.client.StatObject(ctx, b.bucket, b.key(id), minio.StatObjectOptions{})
	if minio.ToErrorResponse(err).Code == "NoSuchKey" {
		b.reached(began)
		return 0, "", false, nil
	}
	if err := b.fail("check original", id, began, err); err != nil {
		return 0, "", false, err
	}
	return info.Size, info.Metadata.Get("X-Amz-Meta-Sha256"), true, nil
}
