package store

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tierpix/tierpix"
)

// imageIDBytes is the entropy of an image id: 120 bits, so ids can neither be guessed nor
// enumerated, and encode to 24 base32 characters without padding.
const imageIDBytes = 15

var imageIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newImageID returns a fresh random image id: lowercase base32, safe in URLs and file names.
func newImageID() string {
	b := make([]byte, imageIDBytes)
	rand.Read(b) // crypto/rand.Read never fails (Go 1.24+): it crashes the program instead
	return imageIDEncoding.EncodeToString(b)
}

// imageColumns selects an image aliased as i.
const imageColumns = `i.seq AS seq, i.id AS id, i.owner_id AS owner_id, i.name AS name,
	i.format AS format, i.width AS width, i.height AS height, i.size_bytes AS size_bytes,
	i.created_at AS created_at`

// imageRow is an image as stored.
type imageRow struct {
	Seq       int64  `db:"seq"`
	ID        string `db:"id"`
	OwnerID   int64  `db:"owner_id"`
	Name      string `db:"name"`
	Format    string `db:"format"`
	Width     int    `db:"width"`
	Height    int    `db:"height"`
	SizeBytes int64  `db:"size_bytes"`
	CreatedAt int64  `db:"created_at"`
}

func (r imageRow) image() tierpix.Image {
	return tierpix.Image{
		ID:        r.ID,
		Seq:       r.Seq,
		OwnerID:   r.OwnerID,
		Name:      r.Name,
		Format:    r.Format,
		Width:     r.Width,
		Height:    r.Height,
		SizeBytes: r.SizeBytes,
		CreatedAt: fromMicros(r.CreatedAt),
	}
}

func imageNotFound() error { return tierpix.Errorf(tierpix.ENOTFOUND, "The image was not found.") }

// ErrOriginalKept is wrapped by the errors of DeleteImage and DeleteUser when the rows are gone
// but an original could not be removed from disk: the deletion happened, and Sweep removes
// the file later.
var ErrOriginalKept = errors.New("deleted, but the original is still stored (the sweep removes it)")

// TempDir is where uploads are spooled: on the same filesystem as the originals, so that a
// rename moves them into place atomically.
func (s *Store) TempDir() string { return s.tmpDir }

// CreateTemp creates a temp file for an upload in TempDir and holds an exclusive flock on it
// for as long as it stays open, so that Sweep can tell the temp file of a live upload (on this
// or another node sharing the directory) from one a crash left behind. Keep it open until
// CreateImage has returned; closing it releases the lock.
//
// The file exists for a moment before it is locked, and a sweep may remove it then, as it
// removes every unlocked temp file. Sweep removes only while it holds the lock itself, so once
// CreateTemp holds the lock and still finds the file at its path, the file is safe; otherwise
// it starts again with a new one.
func (s *Store) CreateTemp() (*os.File, error) {
	for attempt := 0; ; attempt++ {
		f, err := os.CreateTemp(s.tmpDir, "upload-*")
		if err != nil {
			return nil, FileError(err, "create upload temp file")
		}
		if hook := s.hooks.BeforeTempLock; hook != nil {
			hook(f.Name())
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil && stillAt(f) {
			return f, nil
		}
		f.Close()
		if err != nil && !errors.Is(err, syscall.EWOULDBLOCK) {
			os.Remove(f.Name())
			return nil, fmt.Errorf("lock upload temp file: %w", err)
		}
		// A sweep took the file for a dead upload's and removes it, or has: start again.
		if attempt == 3 {
			return nil, errors.New("create upload temp file: removed by a sweep on every attempt")
		}
	}
}

// stillAt reports whether f is still the file at its path: not removed, not replaced.
func stillAt(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	pi, err := os.Stat(f.Name())
	return err == nil && os.SameFile(fi, pi)
}

// removeUnlocked removes a temp file unless some process holds the lock CreateTemp took, that
// is, unless its upload is still alive. It removes while holding the lock itself, so that a
// writer that locks the file a moment later finds it gone (see CreateTemp) instead of writing
// to a file no longer in the directory. A file that cannot be opened is treated as locked:
// when in doubt, a sweep leaves it for the age cutoff.
func removeUnlocked(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, nil
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false, nil
	}
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// OriginalPath returns where the original of image id lives on this node's disk:
// originals/{id[0:2]}/{id}, or with originals in a bucket, its place in the node's cache,
// where it may not be. An id that is not a valid image id maps to a path that never exists, so
// a hostile id cannot name another file.
func (s *Store) OriginalPath(id string) string {
	if s.dirOrig != nil {
		return s.dirOrig.path(id)
	}
	if !tierpix.ValidImageID(id) {
		return filepath.Join(s.bucket.cache.dir, "invalid-id")
	}
	return s.bucket.cache.path(id)
}

// Originals names where the originals live, for logs: a directory, or the bucket and its
// endpoint.
func (s *Store) Originals() string { return s.orig.String() }

// Staged is an original put in place under a fresh id by StageOriginal, that no row refers
// to yet.
type Staged struct {
	ID   string
	Size int64
}

// StageOriginal puts the validated upload at tmpPath in place as a new original, durable when
// it returns: renamed into originals/ (tmpPath should be in TempDir), or uploaded to the
// bucket (then kept in the node's cache). It runs outside any transaction, since an upload
// to a bucket takes as long as its bytes do. Until InsertImage's row commits, the original is
// an orphan that Sweep would remove an hour on, and DiscardStaged removes at once. On an
// error the file is left at tmpPath for the caller to remove; on success it is gone.
func (s *Store) StageOriginal(ctx context.Context, tmpPath string) (Staged, error) {
	size, err := fileSize(tmpPath)
	if err != nil {
		return Staged{}, err
	}
	id := newImageID()
	if err := s.orig.stage(ctx, id, tmpPath, size); err != nil {
		return Staged{}, err
	}
	return Staged{ID: id, Size: size}, nil
}

// DiscardStaged removes a staged original whose row never came. Best effort: what stays is
// swept later.
func (s *Store) DiscardStaged(ctx context.Context, st Staged) {
	s.orig.remove(context.WithoutCancel(ctx), []string{st.ID})
}

// InsertImage records the staged original as img: it sets img.ID (random, non-sequential),
// Seq, CreatedAt and SizeBytes. The caller discards the staged original if this fails or the
// transaction it runs in rolls back.
func (s *Store) InsertImage(ctx context.Context, img *tierpix.Image, st Staged) error {
	if err := validImage(img); err != nil {
		return err
	}
	now, us := s.nowMicros()
	var seq int64
	err := s.get(ctx, s.q(ctx), &seq, `INSERT INTO images (id, owner_id, name, format, width, height, size_bytes, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING seq`,
		st.ID, img.OwnerID, img.Name, img.Format, img.Width, img.Height, st.Size, us)
	if err != nil {
		err = dbError(err, "create image", "The image")
		if tierpix.ErrorCode(err) == tierpix.EINVALID {
			// The only reference is the owner, deleted while the upload was in flight.
			return tierpix.Errorf(tierpix.EINVALID, "The owner of the image does not exist.")
		}
		return err
	}
	img.ID, img.Seq, img.CreatedAt, img.SizeBytes = st.ID, seq, now, st.Size
	return nil
}

func validImage(img *tierpix.Image) error {
	if img.Format != tierpix.FormatJPEG && img.Format != tierpix.FormatPNG {
		return tierpix.Invalid("format", "must be jpeg or png")
	}
	if img.Width < 1 || img.Height < 1 {
		return tierpix.Invalid("size", "width and height must be positive")
	}
	return nil
}

// CreateImage stages the validated upload at tmpPath and records it (StageOriginal, then
// InsertImage); if the row cannot be inserted, or the transaction ctx carries rolls back, the
// original is removed. If CreateImage fails before the original is in place, the file is
// left at tmpPath for the caller to remove.
func (s *Store) CreateImage(ctx context.Context, img *tierpix.Image, tmpPath string) error {
	if err := validImage(img); err != nil {
		return err
	}
	st, err := s.StageOriginal(ctx, tmpPath)
	if err != nil {
		return err
	}
	if err := s.InsertImage(ctx, img, st); err != nil {
		s.DiscardStaged(ctx, st)
		return err
	}
	onRollback(ctx, func() { s.DiscardStaged(ctx, st) })
	return nil
}

// Original returns a file on this node's disk holding img's original, fetched into the
// node's cache first when the originals live in a bucket (one fetch however many callers
// want it at once), and release, to call once the file has been read. ENOTFOUND when the
// original is gone (the image was deleted after img was looked up); EUNAVAILABLE when the
// bucket could not deliver it in time.
func (s *Store) Original(ctx context.Context, img tierpix.Image) (path string, release func(), err error) {
	return s.orig.local(ctx, img.ID, img.SizeBytes)
}

// OpenOriginal returns img's original for streaming, with its length: the file, the node's
// cached copy, or the object as the bucket sends it, never read whole into memory.
func (s *Store) OpenOriginal(ctx context.Context, img tierpix.Image) (io.ReadCloser, int64, error) {
	return s.orig.open(ctx, img.ID, img.SizeBytes)
}

// StatOriginal returns the length of img's original (ENOTFOUND when it is gone).
func (s *Store) StatOriginal(ctx context.Context, img tierpix.Image) (int64, error) {
	return s.orig.stat(ctx, img.ID, img.SizeBytes)
}

// PingOriginals checks that the bucket of the originals answers (EUNAVAILABLE when it does
// not); with originals in a directory there is nothing to reach.
func (s *Store) PingOriginals(ctx context.Context) error {
	if s.bucket == nil {
		return nil
	}
	return s.bucket.ping(ctx)
}

// OriginalsInBucket reports whether the originals live in a bucket rather than a directory.
func (s *Store) OriginalsInBucket() bool { return s.bucket != nil }

// OriginalsCacheStats returns the counters of the node's cache of originals from a bucket;
// ok is false when the originals live in a directory.
func (s *Store) OriginalsCacheStats() (stats OriginalsCacheStats, ok bool) {
	if s.bucket == nil {
		return OriginalsCacheStats{}, false
	}
	st := s.bucket.cache.stats()
	st.BucketFailures = s.bucket.failures.Load()
	return st, true
}

// fileSize returns the size of the regular file at name.
func fileSize(name string) (int64, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return 0, fmt.Errorf("stat upload: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("upload %s is not a regular file", name)
	}
	return fi.Size(), nil
}

// syncFile flushes a file's contents to stable storage and returns its size.
func syncFile(name string) (int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, fmt.Errorf("open upload: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat upload: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("upload %s is not a regular file", name)
	}
	if err := f.Sync(); err != nil {
		return 0, FileError(err, "sync upload")
	}
	if err := f.Close(); err != nil {
		return 0, FileError(err, "close upload")
	}
	return fi.Size(), nil
}

// syncDir flushes a directory's entries, making renames and creations in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// FindImage returns an image by id (ENOTFOUND).
func (s *Store) FindImage(ctx context.Context, id string) (tierpix.Image, error) {
	if !tierpix.ValidImageID(id) {
		return tierpix.Image{}, imageNotFound()
	}
	var r imageRow
	if err := s.get(ctx, s.q(ctx), &r, `SELECT `+imageColumns+` FROM images i WHERE i.id = ?`, id); err != nil {
		return tierpix.Image{}, dbError(err, "find image", "The image")
	}
	return r.image(), nil
}

// FindImageForServing returns an image and its owner's current tier in one query (ENOTFOUND).
func (s *Store) FindImageForServing(ctx context.Context, id string) (tierpix.Image, tierpix.Tier, error) {
	if !tierpix.ValidImageID(id) {
		return tierpix.Image{}, tierpix.Tier{}, imageNotFound()
	}
	var r struct {
		imageRow
		tierRow
	}
	err := s.get(ctx, s.q(ctx), &r, `SELECT `+imageColumns+`, `+tierColumns+`
		FROM images i
		JOIN users u ON u.id = i.owner_id
		JOIN tiers t ON t.name = u.tier
		WHERE i.id = ?`, id)
	if err != nil {
		return tierpix.Image{}, tierpix.Tier{}, dbError(err, "find image for serving", "The image")
	}
	t, err := r.tier()
	if err != nil {
		return tierpix.Image{}, tierpix.Tier{}, err
	}
	return r.image(), t, nil
}

// listImagesQuery is a page of one owner's images, newest first: a range scan of the
// images_owner_seq index (a test checks the plan on both dialects).
const listImagesQuery = `SELECT ` + imageColumns + ` FROM images i
	WHERE i.owner_id = ? AND i.seq < ?
	ORDER BY i.seq DESC
	LIMIT ?`

// ListImages returns up to limit of the owner's images, newest first, with Seq below
// beforeSeq (0: from the newest). One query, served by an (owner_id, seq) index.
func (s *Store) ListImages(ctx context.Context, ownerID int64, beforeSeq int64, limit int) ([]tierpix.Image, error) {
	if limit < 1 {
		return nil, tierpix.Invalid("limit", "must be at least 1")
	}
	if beforeSeq <= 0 {
		beforeSeq = math.MaxInt64
	}
	var rows []imageRow
	err := s.sel(ctx, s.q(ctx), &rows, listImagesQuery, ownerID, beforeSeq, limit)
	if err != nil {
		return nil, dbError(err, "list images", "The image")
	}
	images := make([]tierpix.Image, len(rows))
	for i, r := range rows {
		images[i] = r.image()
	}
	return images, nil
}

// listImagesOldestQuery is listImagesQuery oldest first: the same index, scanned the other way.
const listImagesOldestQuery = `SELECT ` + imageColumns + ` FROM images i
	WHERE i.owner_id = ? AND i.seq > ?
	ORDER BY i.seq
	LIMIT ?`

// ListImagesOldest returns up to limit of the owner's images, oldest first, with Seq above
// afterSeq: read backwards, the page before a page of ListImages.
func (s *Store) ListImagesOldest(ctx context.Context, ownerID int64, afterSeq int64, limit int) ([]tierpix.Image, error) {
	if limit < 1 {
		return nil, tierpix.Invalid("limit", "must be at least 1")
	}
	var rows []imageRow
	if err := s.sel(ctx, s.q(ctx), &rows, listImagesOldestQuery, ownerID, max(afterSeq, 0), limit); err != nil {
		return nil, dbError(err, "list images, oldest first", "The image")
	}
	images := make([]tierpix.Image, len(rows))
	for i, r := range rows {
		images[i] = r.image()
	}
	return images, nil
}

// DeleteImage deletes the owner's image row, then its original file (ENOTFOUND if the image
// does not exist or is not the owner's). A file already gone is not an error; a file that
// cannot be removed is reported with ErrOriginalKept, though the row is gone, and Sweep removes
// it later. The change epoch moves in the delete's transaction (see ChangeEpoch), so other
// nodes stop serving the image.
//
// A delete that fails for want of space (something else filled the disk to the last byte)
// is tried once more after the store gives back its ballast file: deleting is how space is
// freed, so it must not be the thing a full disk stops.
func (s *Store) DeleteImage(ctx context.Context, ownerID int64, id string) error {
	if !tierpix.ValidImageID(id) {
		return imageNotFound()
	}
	if st := txFrom(ctx); st != nil {
		st.freesSpace = true // InTx makes the second try
	}
	err := s.deleteImageRow(ctx, ownerID, id)
	if tierpix.ErrorCode(err) == tierpix.ESTORAGE && txFrom(ctx) == nil && s.releaseBallast() {
		err = s.deleteImageRow(ctx, ownerID, id)
	}
	if err != nil {
		return err
	}
	return afterCommit(ctx, func() error { return s.removeOriginals(ctx, []string{id}) })
}

// removeOriginals removes the originals of deleted rows, within removeTime; those that stay
// are reported with ErrOriginalKept, for the sweep.
func (s *Store) removeOriginals(ctx context.Context, ids []string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeTime)
	defer cancel()
	return s.orig.remove(ctx, ids)
}

// removeTime bounds the removal of a delete's originals; the sweep removes what remains.
const removeTime = 30 * time.Second

// deleteImageRow deletes the row of an image and moves the change epoch.
func (s *Store) deleteImageRow(ctx context.Context, ownerID int64, id string) error {
	return s.tx(ctx, func(tx *sqlx.Tx) error {
		res, err := s.exec(ctx, tx, `DELETE FROM images WHERE id = ? AND owner_id = ?`, id, ownerID)
		if err != nil {
			return dbError(err, "delete image", "The image")
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("delete image: %w", err)
		}
		if n == 0 {
			return imageNotFound()
		}
		return s.bumpEpoch(ctx, tx)
	})
}

// SweepResult counts what Sweep removed.
type SweepResult struct {
	TempFiles int
	Orphans   int
}

// sweepBatch is how many ids Sweep checks per query.
const sweepBatch = 500

// Sweep removes temp files whose upload is gone (no longer locked, see CreateTemp) or that
// are older than olderThan, and originals with no row last modified more than olderThan ago:
// those of uploads whose row never came, and those a delete could not remove (the bucket
// was down). The window between staging and the INSERT is short, but an orphan is only
// space, so the age rule errs on the side of keeping. Originals are listed a directory or a
// page of the bucket at a time and checked a batch of ids per query; files that vanish
// meanwhile are not errors, and only names like image ids are considered.
func (s *Store) Sweep(ctx context.Context, olderThan time.Duration) (SweepResult, error) {
	var res SweepResult
	cutoff := s.now().Add(-olderThan)

	tmp, err := os.ReadDir(s.tmpDir)
	if err != nil {
		return res, fmt.Errorf("sweep: read temp directory: %w", err)
	}
	for _, e := range tmp {
		if !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(s.tmpDir, e.Name())
		// A temp file made by CreateTemp is locked while its upload is alive, on whichever
		// node: an unlocked one belongs to a process that is gone, whatever its age.
		if !olderThanCutoff(e, cutoff) {
			removed, err := removeUnlocked(path)
			if err != nil {
				return res, fmt.Errorf("sweep: %w", err)
			}
			if removed {
				res.TempFiles++
			}
			continue
		}
		if err := os.Remove(path); err == nil {
			res.TempFiles++
		} else if !errors.Is(err, fs.ErrNotExist) {
			return res, fmt.Errorf("sweep: %w", err)
		}
	}

	res.Orphans, err = s.orig.sweep(ctx, cutoff, func(ids []string) ([]string, error) { return s.orphans(ctx, ids) })
	return res, err
}

// olderThanCutoff reports whether a directory entry was last modified before cutoff. An entry
// that vanished is not old: there is nothing left to remove.
func olderThanCutoff(e fs.DirEntry, cutoff time.Time) bool {
	info, err := e.Info()
	return err == nil && info.ModTime().Before(cutoff)
}

// orphans returns those of ids that have no row, with one query. Removing them leaves the
// change epoch alone: an image without a row was never served.
func (s *Store) orphans(ctx context.Context, ids []string) ([]string, error) {
	query, args, err := sqlx.In(`SELECT id FROM images WHERE id IN (?)`, ids)
	if err != nil {
		return nil, fmt.Errorf("sweep: build query: %w", err)
	}
	var known []string
	if err := s.sel(ctx, s.q(ctx), &known, query, args...); err != nil {
		return nil, dbError(err, "sweep: find images", "The image")
	}
	exists := make(map[string]bool, len(known))
	for _, id := range known {
		exists[id] = true
	}
	var gone []string
	for _, id := range ids {
		if !exists[id] {
			gone = append(gone, id)
		}
	}
	return gone, nil
}

// OwnedImage is an image with its owner's username.
type OwnedImage = tierpix.OwnedImage

// listAllImagesQuery is a page of every user's images, newest first: a backward range scan of
// the primary key, each joined with its owner by the users' primary key (a test checks the
// plan on both dialects).
const listAllImagesQuery = `SELECT ` + imageColumns + `, u.username AS owner
	FROM images i JOIN users u ON u.id = i.owner_id
	WHERE i.seq < ?
	ORDER BY i.seq DESC
	LIMIT ?`

// listOwnerImagesQuery is listImagesQuery with the owner's username: a range scan of
// images_owner_seq.
const listOwnerImagesQuery = `SELECT ` + imageColumns + `, u.username AS owner
	FROM images i JOIN users u ON u.id = i.owner_id
	WHERE i.owner_id = ? AND i.seq < ?
	ORDER BY i.seq DESC
	LIMIT ?`

// listAllImagesOldestQuery and listOwnerImagesOldestQuery are the two above oldest first:
// the same indexes, scanned the other way.
const (
	listAllImagesOldestQuery = `SELECT ` + imageColumns + `, u.username AS owner
	FROM images i JOIN users u ON u.id = i.owner_id
	WHERE i.seq > ?
	ORDER BY i.seq
	LIMIT ?`
	listOwnerImagesOldestQuery = `SELECT ` + imageColumns + `, u.username AS owner
	FROM images i JOIN users u ON u.id = i.owner_id
	WHERE i.owner_id = ? AND i.seq > ?
	ORDER BY i.seq
	LIMIT ?`
)

// ListAllImages returns up to limit images of every user (or of ownerID alone when it is not
// 0), newest first, with seq below beforeSeq (0: from the newest), each with its owner's
// username. One query; it uses the primary key, or images_owner_seq with an owner.
func (s *Store) ListAllImages(ctx context.Context, ownerID int64, beforeSeq int64, limit int) ([]OwnedImage, error) {
	return s.listAllImages(ctx, ownerID, beforeSeq, false, limit)
}

// ListAllImagesOldest is ListAllImages oldest first: seq above afterSeq (0: from the oldest).
func (s *Store) ListAllImagesOldest(ctx context.Context, ownerID int64, afterSeq int64, limit int) ([]OwnedImage, error) {
	return s.listAllImages(ctx, ownerID, afterSeq, true, limit)
}

func (s *Store) listAllImages(ctx context.Context, ownerID int64, cursor int64, oldest bool, limit int) ([]OwnedImage, error) {
	if limit < 1 {
		return nil, tierpix.Invalid("limit", "must be at least 1")
	}
	allQuery, ownerQuery := listAllImagesQuery, listOwnerImagesQuery
	if oldest {
		allQuery, ownerQuery = listAllImagesOldestQuery, listOwnerImagesOldestQuery
		cursor = max(cursor, 0)
	} else if cursor <= 0 {
		cursor = math.MaxInt64
	}
	var rows []struct {
		imageRow
		Owner string `db:"owner"`
	}
	var err error
	if ownerID == 0 {
		err = s.sel(ctx, s.q(ctx), &rows, allQuery, cursor, limit)
	} else {
		err = s.sel(ctx, s.q(ctx), &rows, ownerQuery, ownerID, cursor, limit)
	}
	if err != nil {
		return nil, dbError(err, "list all images", "The image")
	}
	images := make([]OwnedImage, len(rows))
	for i, r := range rows {
		images[i] = OwnedImage{Image: r.image(), Owner: r.Owner}
	}
	return images, nil
}
