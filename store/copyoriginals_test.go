package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
)

// localOriginals makes a directory of originals as a store on disk keeps them, one image of
// each size, with strays beside them that are not originals; it returns the directory and
// the bodies by id.
func localOriginals(t *testing.T, sizes ...int) (string, map[string][]byte) {
	t.Helper()
	dataDir := t.TempDir()
	s := storetest.SQLite(t, func(c *store.Config) { c.DataDir = dataDir })
	alice := createUser(t, s, "alice", "Basic")
	bodies := map[string][]byte{}
	for _, n := range sizes {
		body := randomBytes(n)
		bodies[createImageBytes(t, s, alice.ID, body).ID] = body
	}
	dir := filepath.Join(dataDir, "originals")
	mustOK(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not an original"), 0o644))
	mustOK(t, os.MkdirAll(filepath.Join(dir, "zz"), 0o755))
	mustOK(t, os.WriteFile(filepath.Join(dir, "zz", "aaaaaaaaaaaaaaaaaaaaaaaa"), []byte("in the wrong shard"), 0o644))
	mustOK(t, os.WriteFile(filepath.Join(dir, "zz", "not-an-id"), []byte("not an id"), 0o644))
	return dir, bodies
}

// copyStore opens a store whose originals are in b, on a data dir of its own.
func copyStore(t *testing.T, b *storetest.Bucket, opts ...storetest.Option) *store.Store {
	t.Helper()
	return storetest.SQLite(t, append([]storetest.Option{b.Option()}, opts...)...)
}

// wantInBucket checks that the bucket holds exactly the bodies, each under its id with its
// SHA-256 in the metadata, read back through the store.
func wantInBucket(t *testing.T, s *store.Store, b *storetest.Bucket, bodies map[string][]byte) {
	t.Helper()
	if got, want := b.IDs(t), slices.Sorted(maps.Keys(bodies)); !slices.Equal(got, want) {
		t.Fatalf("got objects %v, want %v", got, want)
	}
	for id, body := range bodies {
		info, _ := b.Stat(t, id)
		sum := sha256.Sum256(body)
		if info.Size != int64(len(body)) || info.UserMetadata["Sha256"] != hex.EncodeToString(sum[:]) {
			t.Fatalf("got %s with %d bytes and metadata %v, want %d bytes with their sha256", id, info.Size, info.UserMetadata, len(body))
		}
		r, _, err := s.OpenOriginal(t.Context(), tierpix.Image{ID: id, SizeBytes: int64(len(body))})
		mustOK(t, err)
		got, err := io.ReadAll(r)
		r.Close()
		mustOK(t, err)
		if !bytes.Equal(got, body) {
			t.Fatalf("got %d bytes for %s that differ from the original's %d", len(got), id, len(body))
		}
	}
}

// TestCopyOriginalsFrom copies a directory of originals, a multipart-sized one included, and
// only them; a second run finds everything there and uploads nothing.
func TestCopyOriginalsFrom(t *testing.T) {
	dir, bodies := localOriginals(t, 1, 70_000, 17<<20, 3000, 5000)
	var total int64
	for _, body := range bodies {
		total += int64(len(body))
	}
	srv := storetest.StartS3(t)
	b := storetest.NewStoreBucket(t, srv)
	s := copyStore(t, b)

	var calls []store.CopyResult
	res, err := s.CopyOriginalsFrom(t.Context(), dir, store.CopyOptions{Progress: func(r store.CopyResult, id string, err error) {
		if err != nil {
			t.Errorf("got %s failed: %v", id, err)
		}
		calls = append(calls, r)
	}})
	mustOK(t, err)
	n := int64(len(bodies))
	want := store.CopyResult{Files: n, Bytes: total, Done: n, Copied: n, BytesDone: total, BytesCopied: total, Elapsed: res.Elapsed}
	if res != want {
		t.Fatalf("got %+v, want %+v", res, want)
	}
	for i, c := range calls {
		if c.Done != int64(i+1) {
			t.Fatalf("got progress call %d with Done %d, want %d", i, c.Done, i+1)
		}
	}
	if len(calls) != len(bodies) {
		t.Fatalf("got %d progress calls, want %d", len(calls), len(bodies))
	}
	if eta, ok := res.ETA(); !ok || eta != 0 {
		t.Fatalf("got ETA %v (%v) at the end, want 0", eta, ok)
	}
	if res.Rate() <= 0 {
		t.Fatalf("got rate %v after copying %d bytes, want more than 0", res.Rate(), total)
	}
	wantInBucket(t, s, b, bodies)
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatalf("got the directory changed: %v", err)
	}
	for id := range bodies {
		if _, err := os.Stat(filepath.Join(dir, id[:2], id)); err != nil {
			t.Fatalf("got a local original touched: %v", err)
		}
	}

	res, err = s.CopyOriginalsFrom(t.Context(), dir, store.CopyOptions{})
	mustOK(t, err)
	want = store.CopyResult{Files: n, Bytes: total, Done: n, Skipped: n, BytesDone: total, Elapsed: res.Elapsed}
	if res != want {
		t.Fatalf("second run: got %+v, want %+v", res, want)
	}
}

// TestCopyOriginalsResume: a run interrupted after a few originals, then objects that differ
// from their files in length, in body, or in the SHA-256 they claim; the next run copies the
// rest and those again, and skips what is right.
func TestCopyOriginalsResume(t *testing.T) {
	const n = 12
	sizes := make([]int, n)
	for i := range sizes {
		sizes[i] = 1000 + i
	}
	dir, bodies := localOriginals(t, sizes...)
	srv := storetest.StartS3(t)
	b := storetest.NewStoreBucket(t, srv)
	s := copyStore(t, b)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	first, err := s.CopyOriginalsFrom(ctx, dir, store.CopyOptions{Workers: 2, Progress: func(r store.CopyResult, _ string, _ error) {
		if r.Done == 3 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v from the interrupted run, want context.Canceled", err)
	}
	// An upload cut by the cancel may have landed all the same, uncounted.
	copied := b.IDs(t)
	if first.Copied < 3 || first.Copied >= n || int64(len(copied)) < first.Copied || len(copied) >= n || first.Failed != 0 {
		t.Fatalf("got %+v and %d objects after the interruption, want 3 or a few more copied, as many objects, none failed", first, len(copied))
	}

	// An object of another length; one of the same length and another body, without
	// metadata; one of the same length and another body that claims the file's SHA-256 of
	// someone else's file.
	longer := append(slices.Clone(bodies[copied[0]]), 'x')
	b.Put(t, copied[0], longer)
	b.Put(t, copied[1], randomBytes(len(bodies[copied[1]])))
	other := sha256.Sum256([]byte("another file"))
	_, err = srv.Client(t).PutObject(t.Context(), b.Name, b.Key(copied[2]), bytes.NewReader(randomBytes(len(bodies[copied[2]]))),
		int64(len(bodies[copied[2]])), minio.PutObjectOptions{UserMetadata: map[string]string{"sha256": hex.EncodeToString(other[:])}})
	mustOK(t, err)

	res, err := s.CopyOriginalsFrom(t.Context(), dir, store.CopyOptions{Workers: 3})
	mustOK(t, err)
	if k := int64(len(copied)); res.Done != n || res.Copied != n-k+3 || res.Skipped != k-3 || res.Failed != 0 {
		t.Fatalf("got %+v after %d copied first, want the %d others and the 3 that differ copied, the rest skipped", res, k, n-k)
	}
	wantInBucket(t, s, b, bodies)
}

// TestCopyOriginalsMismatch: an object replaced between its upload and its check is a failure
// of that original, reported and counted, and the run's error says so; the others are copied,
// and the next run copies it again.
func TestCopyOriginalsMismatch(t *testing.T) {
	dir, bodies := localOriginals(t, 100, 200, 300, 400)
	srv := storetest.StartS3(t)
	b := storetest.NewStoreBucket(t, srv)
	victim := slices.Sorted(maps.Keys(bodies))[1]
	client := srv.Client(t)
	var tampered atomic.Bool
	s := copyStore(t, b, storetest.WithHooks(store.Hooks{AfterCopyPut: func(id string) {
		// Another writer puts other bytes of the same length under the key.
		if id == victim && !tampered.Swap(true) {
			body := bytes.Repeat([]byte{'x'}, len(bodies[id]))
			if _, err := client.PutObject(t.Context(), b.Name, b.Key(id), bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
				t.Errorf("replace %s: %v", id, err)
			}
		}
	}}))

	var failed []string
	res, err := s.CopyOriginalsFrom(t.Context(), dir, store.CopyOptions{Progress: func(_ store.CopyResult, id string, err error) {
		if err != nil {
			if !errors.Is(err, store.ErrCopyMismatch) {
				t.Errorf("got %s failed with %v, want ErrCopyMismatch", id, err)
			}
			failed = append(failed, id)
		}
	}})
	if err == nil || !strings.Contains(err.Error(), "1 of 4 originals failed") {
		t.Fatalf("got %v, want an error counting 1 failed original of 4", err)
	}
	if !slices.Equal(failed, []string{victim}) || res.Failed != 1 || res.Copied != 3 || res.Done != 4 {
		t.Fatalf("got %v reported failed and %+v, want only %s failed and 3 copied", failed, res, victim)
	}

	res, err = s.CopyOriginalsFrom(t.Context(), dir, store.CopyOptions{})
	mustOK(t, err)
	if res.Copied != 1 || res.Skipped != 3 {
		t.Fatalf("got %+v on the second run, want the failed one copied and 3 skipped", res)
	}
	wantInBucket(t, s, b, bodies)
}

// TestCopyOriginalsRefusals: no bucket to copy into, or no directory to copy from, is an
// error before anything is done; a bucket that goes away stops the copy within seconds rather
// than failing every original, and what it copied stays for the next run.
func TestCopyOriginalsRefusals(t *testing.T) {
	dir, bodies := localOriginals(t, 10, 20, 30)
	_, err := storetest.SQLite(t).CopyOriginalsFrom(t.Context(), dir, store.CopyOptions{})
	if !errors.Is(err, store.ErrOriginalsNotInBucket) {
		t.Fatalf("got %v copying into a store on disk, want ErrOriginalsNotInBucket", err)
	}

	srv := storetest.StartS3(t)
	b := storetest.NewStoreBucket(t, srv)
	s := copyStore(t, b)
	_, err = s.CopyOriginalsFrom(t.Context(), filepath.Join(dir, "nope"), store.CopyOptions{})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v copying from a missing directory, want fs.ErrNotExist", err)
	}

	srv.Stop()
	start := time.Now()
	res, err := s.CopyOriginalsFrom(t.Context(), dir, store.CopyOptions{})
	if tierpix.ErrorCode(err) != tierpix.EUNAVAILABLE || res.Failed != 0 || res.Done != 0 {
		t.Fatalf("got %v and %+v with the bucket down, want EUNAVAILABLE and nothing counted", err, res)
	}
	t.Logf("stopped after %v with the bucket down", time.Since(start))
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("got the copy stopped after %v, want it within 30s", d)
	}
	srv.Start(t)
	res, err = s.CopyOriginalsFrom(t.Context(), dir, store.CopyOptions{})
	mustOK(t, err)
	if res.Copied != 3 {
		t.Fatalf("got %+v once the bucket is back, want 3 copied", res)
	}
	wantInBucket(t, s, b, bodies)
}
