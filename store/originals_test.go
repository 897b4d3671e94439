package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
)

// createImageBytes stores body as a new image of owner.
func createImageBytes(t *testing.T, s *store.Store, ownerID int64, body []byte) tierpix.Image {
	t.Helper()
	f, err := os.CreateTemp(s.TempDir(), "upload-*")
	mustOK(t, err)
	_, err = f.Write(body)
	mustOK(t, err)
	mustOK(t, f.Close())
	img := tierpix.Image{OwnerID: ownerID, Name: "x.png", Format: tierpix.FormatPNG, Width: 30, Height: 20}
	mustOK(t, s.CreateImage(t.Context(), &img, f.Name()))
	if exists(t, f.Name()) {
		t.Fatalf("got the temp file %s still there after CreateImage, want it consumed", f.Name())
	}
	return img
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// readOriginal reads img's original the three ways the origin does: as a local file, as a
// stream, and its length.
func readOriginal(t *testing.T, s *store.Store, img tierpix.Image) (local, streamed []byte, size int64) {
	t.Helper()
	ctx := t.Context()
	path, release, err := s.Original(ctx, img)
	mustOK(t, err)
	local, err = os.ReadFile(path)
	release()
	mustOK(t, err)
	r, n, err := s.OpenOriginal(ctx, img)
	mustOK(t, err)
	streamed, err = io.ReadAll(r)
	mustOK(t, err)
	mustOK(t, r.Close())
	if int64(len(streamed)) != n {
		t.Fatalf("OpenOriginal: got length %d and %d bytes", n, len(streamed))
	}
	size, err = s.StatOriginal(ctx, img)
	mustOK(t, err)
	return local, streamed, size
}

// TestOriginalsRoundTrip stores, reads and deletes originals through each backend, a large one
// (a multipart upload to a bucket) included, and checks where they live.
func TestOriginalsRoundTrip(t *testing.T) {
	storetest.EachOriginals(t, func(t *testing.T, s *store.Store, b *storetest.Bucket) {
		ctx := t.Context()
		alice := createUser(t, s, "alice", "Basic")
		for _, n := range []int{1, 70_000, 17 << 20} {
			t.Run(fmt.Sprint(n), func(t *testing.T) {
				body := randomBytes(n)
				img := createImageBytes(t, s, alice.ID, body)
				if img.SizeBytes != int64(n) {
					t.Fatalf("got SizeBytes %d, want %d", img.SizeBytes, n)
				}
				local, streamed, size := readOriginal(t, s, img)
				if !bytes.Equal(local, body) || !bytes.Equal(streamed, body) || size != int64(n) {
					t.Fatalf("got %d local bytes, %d streamed, length %d; want the %d stored", len(local), len(streamed), size, n)
				}
				if b != nil {
					info, ok := b.Stat(t, img.ID)
					sum := sha256.Sum256(body)
					if !ok || info.Size != int64(n) || info.UserMetadata["Sha256"] != hex.EncodeToString(sum[:]) {
						t.Fatalf("got object %v (present %v, metadata %v), want %d bytes with their sha256", b.Key(img.ID), ok, info.UserMetadata, n)
					}
					// A multipart upload's ETag ends in -<parts>.
					if multipart := strings.Contains(info.ETag, "-"); multipart != (n > 16<<20) {
						t.Fatalf("got ETag %q for %d bytes: multipart %v, want %v", info.ETag, n, multipart, n > 16<<20)
					}
				} else if !exists(t, s.OriginalPath(img.ID)) {
					t.Fatalf("got no file at %s", s.OriginalPath(img.ID))
				}

				mustOK(t, s.DeleteImage(ctx, alice.ID, img.ID))
				_, _, err := s.Original(ctx, img)
				wantCode(t, err, tierpix.ENOTFOUND)
				_, _, err = s.OpenOriginal(ctx, img)
				wantCode(t, err, tierpix.ENOTFOUND)
				_, err = s.StatOriginal(ctx, img)
				wantCode(t, err, tierpix.ENOTFOUND)
				if b != nil {
					if _, ok := b.Stat(t, img.ID); ok {
						t.Fatalf("got %s still in the bucket after the delete", b.Key(img.ID))
					}
				}
				if exists(t, s.OriginalPath(img.ID)) {
					t.Fatalf("got %s still on disk after the delete", s.OriginalPath(img.ID))
				}
			})
		}
	})
}

// TestOriginalsFollowTheTransaction: an image whose row fails, or whose transaction rolls
// back, leaves no original anywhere; a user's delete removes all of theirs.
func TestOriginalsFollowTheTransaction(t *testing.T) {
	storetest.EachOriginals(t, func(t *testing.T, s *store.Store, b *storetest.Bucket) {
		ctx := t.Context()
		alice := createUser(t, s, "alice", "Basic")
		stored := func() int {
			if b != nil {
				return len(b.IDs(t))
			}
			return len(originalFiles(t, s))
		}

		img := tierpix.Image{OwnerID: 999999, Name: "x.png", Format: tierpix.FormatPNG, Width: 1, Height: 1}
		wantCode(t, s.CreateImage(ctx, &img, writeTemp(t, s, "no owner")), tierpix.EINVALID)
		if n := stored(); n != 0 {
			t.Fatalf("got %d originals after a failed insert, want 0", n)
		}

		errRollback := errors.New("roll back")
		err := s.InTx(ctx, func(ctx context.Context) error {
			img := tierpix.Image{OwnerID: alice.ID, Name: "y.png", Format: tierpix.FormatPNG, Width: 1, Height: 1}
			mustOK(t, s.CreateImage(ctx, &img, writeTemp(t, s, "rolled back")))
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Fatalf("got %v, want the rollback's error", err)
		}
		if n := stored(); n != 0 {
			t.Fatalf("got %d originals after a rollback, want 0", n)
		}

		for i := range 3 {
			createImageBytes(t, s, alice.ID, []byte(fmt.Sprint("image ", i)))
		}
		if n := stored(); n != 3 {
			t.Fatalf("got %d originals, want 3", n)
		}
		_, err = s.DeleteUser(ctx, "alice")
		mustOK(t, err)
		if n := stored(); n != 0 {
			t.Fatalf("got %d originals after the user's delete, want 0", n)
		}
	})
}

// TestOriginalsSweep: originals without rows go once older than the cutoff, a page or a
// directory at a time; those with rows, and younger ones, stay.
func TestOriginalsSweep(t *testing.T) {
	clock := storetest.NewClockAt(time.Now())
	storetest.EachOriginals(t, func(t *testing.T, s *store.Store, b *storetest.Bucket) {
		ctx := t.Context()
		alice := createUser(t, s, "alice", "Basic")
		kept := createImageBytes(t, s, alice.ID, []byte("kept"))
		// More orphans than a batch of the sweep (and than one page of a bucket's listing).
		const n = 1100
		var orphans []string
		for i := range n {
			id := fmt.Sprintf("%024d", i)
			id = strings.Map(func(r rune) rune { return r - '0' + 'a' }, id)
			orphans = append(orphans, id)
			if b != nil {
				b.Put(t, id, []byte("orphan"))
			} else {
				p := s.OriginalPath(id)
				mustOK(t, os.MkdirAll(filepath.Dir(p), 0o755))
				mustOK(t, os.WriteFile(p, []byte("orphan"), 0o644))
			}
		}
		res, err := s.Sweep(ctx, time.Hour)
		mustOK(t, err)
		if res.Orphans != 0 {
			t.Fatalf("got %d young orphans swept, want 0", res.Orphans)
		}
		clock.Advance(2 * time.Hour)
		defer clock.Advance(-2 * time.Hour)
		before := s.Queries()
		res, err = s.Sweep(ctx, time.Hour)
		mustOK(t, err)
		if res.Orphans != n {
			t.Fatalf("got %d orphans swept, want %d", res.Orphans, n)
		}
		if q := s.Queries() - before; q > 4 {
			t.Errorf("got %d queries for %d originals, want at most 4", q, n+1)
		}
		_, _, size := readOriginal(t, s, kept)
		if size != kept.SizeBytes {
			t.Fatalf("got the original with a row changed or gone (length %d)", size)
		}
		if b != nil {
			if ids := b.IDs(t); !slices.Equal(ids, []string{kept.ID}) {
				t.Fatalf("got %d objects left, want only %s", len(ids), kept.ID)
			}
		}
	}, storetest.WithNow(clock.Now))
}

// openSecond opens another node's store on b (a fresh data dir, so an empty cache of
// originals), on SQLite: the bucket's objects need no rows to be read.
func openSecond(t *testing.T, b *storetest.Bucket, cacheBytes int64) *store.Store {
	t.Helper()
	return storetest.SQLite(t, b.Option(), func(c *store.Config) { c.OriginalsCacheBytes = cacheBytes })
}

// TestOriginalCache: renders on a node that did not take the upload fetch each original once,
// however many want it at once; the cache stays within its size, never evicting a file
// being read; a cached file of the wrong length (a crash) is fetched again.
func TestOriginalCache(t *testing.T) {
	srv := storetest.StartS3(t)
	b := storetest.NewStoreBucket(t, srv)
	s := storetest.SQLite(t, b.Option())
	alice := createUser(t, s, "alice", "Basic")
	const size = 100_000
	var imgs []tierpix.Image
	var bodies [][]byte
	for range 5 {
		body := randomBytes(size)
		imgs = append(imgs, createImageBytes(t, s, alice.ID, body))
		bodies = append(bodies, body)
	}

	t.Run("one fetch for many", func(t *testing.T) {
		node := openSecond(t, b, 1<<30)
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for range 50 {
			wg.Go(func() {
				path, release, err := node.Original(t.Context(), imgs[0])
				if err != nil {
					errs <- err
					return
				}
				defer release()
				got, err := os.ReadFile(path)
				if err == nil && !bytes.Equal(got, bodies[0]) {
					err = fmt.Errorf("got %d bytes that differ from the original", len(got))
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		st, _ := node.OriginalsCacheStats()
		if st.Fetches != 1 {
			t.Fatalf("got %d fetches for 50 concurrent readers, want 1 (%+v)", st.Fetches, st)
		}
	})

	t.Run("bounded and pinned", func(t *testing.T) {
		node := openSecond(t, b, 2*size+size/2)
		path0, release0, err := node.Original(t.Context(), imgs[0])
		mustOK(t, err)
		for _, img := range imgs[1:] {
			_, release, err := node.Original(t.Context(), img)
			mustOK(t, err)
			release()
		}
		st, _ := node.OriginalsCacheStats()
		if !exists(t, path0) {
			t.Fatalf("got the pinned original evicted")
		}
		if st.Files > 3 || st.Evictions < 2 {
			t.Fatalf("got %+v, want at most 2 files beyond the pinned one and evictions", st)
		}
		release0()
		st, _ = node.OriginalsCacheStats()
		if st.Bytes > 2*size+size/2 {
			t.Fatalf("got %d bytes cached after the release, want at most %d", st.Bytes, 2*size+size/2)
		}
	})

	t.Run("removed from outside fetched again", func(t *testing.T) {
		node := openSecond(t, b, 1<<30)
		path, release, err := node.Original(t.Context(), imgs[2])
		mustOK(t, err)
		release()
		mustOK(t, os.Remove(path))
		local, _, _ := readOriginal(t, node, imgs[2])
		if !bytes.Equal(local, bodies[2]) {
			t.Fatalf("got %d bytes, want the original's %d", len(local), size)
		}
		if st, _ := node.OriginalsCacheStats(); st.Fetches != 2 {
			t.Fatalf("got %d fetches, want 2 (%+v)", st.Fetches, st)
		}
	})

	t.Run("deleted while read", func(t *testing.T) {
		// A render (or the making of an intermediate) holds the original while its image is
		// deleted: the copy goes at the release, not at some later eviction.
		path, release, err := s.Original(t.Context(), imgs[3])
		mustOK(t, err)
		mustOK(t, s.DeleteImage(t.Context(), alice.ID, imgs[3].ID))
		if !exists(t, path) {
			t.Fatalf("got the original removed under its reader")
		}
		release()
		if exists(t, path) {
			t.Fatalf("got the deleted image's original kept in the cache after its last release")
		}
	})

	t.Run("wrong length fetched again", func(t *testing.T) {
		node := openSecond(t, b, 1<<30)
		path, release, err := node.Original(t.Context(), imgs[1])
		mustOK(t, err)
		release()
		mustOK(t, os.WriteFile(path, []byte("cut short"), 0o644))
		cfgDir := filepath.Dir(path)
		mustOK(t, os.WriteFile(filepath.Join(cfgDir, ".fetch-123"), []byte("a fetch a crash cut"), 0o644))
		// The node restarts: a store on the same data dir.
		again := storetest.SQLite(t, b.Option(), func(c *store.Config) { c.DataDir = filepath.Dir(cfgDir) })
		local, _, _ := readOriginal(t, again, imgs[1])
		if !bytes.Equal(local, bodies[1]) {
			t.Fatalf("got %d bytes, want the original's %d", len(local), size)
		}
		if exists(t, filepath.Join(cfgDir, ".fetch-123")) {
			t.Fatalf("got a crashed fetch's temp file kept")
		}
	})
}

// TestBucketDown: with the S3 server killed, what needs the bucket answers 503 with a
// Retry-After within seconds, what is cached keeps working, an upload leaves no row, and a
// delete removes the row and leaves the object for the sweep once the server is back.
func TestBucketDown(t *testing.T) {
	clock := storetest.NewClockAt(time.Now())
	srv := storetest.StartS3(t)
	b := storetest.NewStoreBucket(t, srv)
	s := storetest.SQLite(t, b.Option(), storetest.WithNow(clock.Now))
	ctx := t.Context()
	alice := createUser(t, s, "alice", "Basic")
	cached := createImageBytes(t, s, alice.ID, []byte("cached on this node"))
	elsewhere := createImageBytes(t, s, alice.ID, []byte("uploaded through another node"))
	node := openSecond(t, b, 1<<30) // its cache holds nothing

	srv.Stop()
	start := time.Now()
	_, _, err := node.Original(ctx, elsewhere)
	wantCode(t, err, tierpix.EUNAVAILABLE)
	if ra := tierpix.ErrorRetryAfter(err); ra <= 0 {
		t.Fatalf("got no Retry-After in %v", err)
	}
	_, _, err = node.OpenOriginal(ctx, elsewhere)
	wantCode(t, err, tierpix.EUNAVAILABLE)
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("got the refusals after %v, want them within 10s", d)
	}
	local, _, _ := readOriginal(t, s, cached)
	if string(local) != "cached on this node" {
		t.Fatalf("got %q from the cache during the outage", local)
	}

	img := tierpix.Image{OwnerID: alice.ID, Name: "z.png", Format: tierpix.FormatPNG, Width: 1, Height: 1}
	tmp := writeTemp(t, s, "during the outage")
	wantCode(t, s.CreateImage(ctx, &img, tmp), tierpix.EUNAVAILABLE)
	if imgs, err := s.ListImages(ctx, alice.ID, 0, 10); err != nil || len(imgs) != 2 {
		t.Fatalf("got %d images (%v) after a failed upload, want 2", len(imgs), err)
	}

	err = s.DeleteImage(ctx, alice.ID, elsewhere.ID)
	if !errors.Is(err, store.ErrOriginalKept) {
		t.Fatalf("got %v deleting during the outage, want the row gone and ErrOriginalKept", err)
	}
	_, err = s.FindImage(ctx, elsewhere.ID)
	wantCode(t, err, tierpix.ENOTFOUND)

	srv.Start(t)
	mustOK(t, s.PingOriginals(ctx)) // a ping that answers ends the second the bucket is taken for down
	if _, ok := b.Stat(t, elsewhere.ID); !ok {
		t.Fatalf("got the deleted image's object gone, want it left for the sweep")
	}
	clock.Advance(2 * time.Hour)
	res, err := s.Sweep(ctx, time.Hour)
	mustOK(t, err)
	if res.Orphans != 1 {
		t.Fatalf("got %d orphans swept, want the deleted image's 1", res.Orphans)
	}
	if ids := b.IDs(t); !slices.Equal(ids, []string{cached.ID}) {
		t.Fatalf("got objects %v, want only %s", ids, cached.ID)
	}
}

// TestOpenBucketRefusals: a bucket that is missing, refuses the credentials or cannot be
// reached stops the store from opening, with a message that says which.
func TestOpenBucketRefusals(t *testing.T) {
	srv := storetest.StartS3(t)
	bucket := srv.NewBucket(t)
	tests := []struct {
		name string
		cfg  func(c *store.Config)
		want string
	}{
		{"missing bucket", func(c *store.Config) { c.Originals = "s3://tpx-nosuchbucket/originals" }, "does not exist"},
		{"wrong secret", func(c *store.Config) { c.S3.SecretKey = "wrong" }, "access refused"},
		{"unreachable", func(c *store.Config) { c.S3.Endpoint = "http://127.0.0.1:1" }, "unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := store.Config{DataDir: t.TempDir(), Originals: "s3://" + bucket + "/originals", S3: srv.Config()}
			tt.cfg(&cfg)
			start := time.Now()
			st, err := store.Open(t.Context(), cfg)
			if err == nil {
				st.Close()
				t.Fatalf("got the store open, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %q, want it to say %q", err, tt.want)
			}
			if d := time.Since(start); d > 15*time.Second {
				t.Fatalf("got the refusal after %v", d)
			}
		})
	}
}
