// Package store persists users, tokens, tiers and images in SQLite (the embedded default) or
// PostgreSQL through sqlx, and keeps the uploaded originals on disk.
//
// SKELETON: the exported API below is fixed; the bodies are to be written. One file per table
// (tiers.go, users.go, tokens.go, images.go), SQL written out in full, embedded migrations per
// dialect, sql.ErrNoRows and unique violations translated into *tierpix.Error once.
package store

import (
	"context"
	"time"

	"github.com/tierpix/tierpix"
)

// Config says where the data lives.
type Config struct {
	// DatabaseURL: empty for SQLite at DataDir/tierpix.db; postgres:// or postgresql:// for
	// PostgreSQL (extra query parameters such as search_path pass through to pgx).
	DatabaseURL string
	// DataDir holds the SQLite database (when used), originals/ and tmp/.
	DataDir string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Store is the one persistence type, over *sqlx.DB.
type Store struct{}

// Open connects, applies pending migrations (seeding the builtin tiers Basic, Premium and
// Enterprise) and creates the data directories.
func Open(ctx context.Context, cfg Config) (*Store, error) { panic("unimplemented") }

// Close closes the database.
func (s *Store) Close() error { panic("unimplemented") }

// Dialect returns "sqlite" or "postgres".
func (s *Store) Dialect() string { panic("unimplemented") }

// Ping checks the database connection.
func (s *Store) Ping(ctx context.Context) error { panic("unimplemented") }

// --- tiers.go ---

// ListTiers returns every tier ordered by name.
func (s *Store) ListTiers(ctx context.Context) ([]tierpix.Tier, error) { panic("unimplemented") }

// FindTier returns a tier by name, case-insensitively (ENOTFOUND).
func (s *Store) FindTier(ctx context.Context, name string) (tierpix.Tier, error) {
	panic("unimplemented")
}

// CreateTier validates, normalizes and inserts t, setting its timestamps (ECONFLICT if a tier
// of that name exists, case-insensitively).
func (s *Store) CreateTier(ctx context.Context, t *tierpix.Tier) error { panic("unimplemented") }

// UpdateTier replaces the heights and flags of the tier named t.Name (ENOTFOUND). t is updated
// with the stored name's spelling, Builtin and timestamps.
func (s *Store) UpdateTier(ctx context.Context, t *tierpix.Tier) error { panic("unimplemented") }

// DeleteTier deletes a tier (ENOTFOUND; ECONFLICT while any user is on it).
func (s *Store) DeleteTier(ctx context.Context, name string) error { panic("unimplemented") }

// --- users.go ---

// ListUsers returns up to limit users with usernames after `after`, ordered by username.
func (s *Store) ListUsers(ctx context.Context, after string, limit int) ([]tierpix.User, error) {
	panic("unimplemented")
}

// FindUser returns a user and their current tier by username (ENOTFOUND), in one query.
func (s *Store) FindUser(ctx context.Context, username string) (tierpix.Identity, error) {
	panic("unimplemented")
}

// FindUserByID returns a user and their current tier by id (ENOTFOUND), in one query.
func (s *Store) FindUserByID(ctx context.Context, id int64) (tierpix.Identity, error) {
	panic("unimplemented")
}

// CreateUser inserts u (ECONFLICT if the username exists; EINVALID with field "tier" if the
// tier does not exist), setting ID, the stored tier name's spelling and timestamps. The caller
// hashes the password.
func (s *Store) CreateUser(ctx context.Context, u *tierpix.User) error { panic("unimplemented") }

// UpdateUser saves u's password hash, tier and admin flag by u.ID (ENOTFOUND; EINVALID with
// field "tier" if the tier does not exist).
func (s *Store) UpdateUser(ctx context.Context, u *tierpix.User) error { panic("unimplemented") }

// DeleteUser deletes a user with their tokens and images, then removes their originals from
// disk. It returns the ids of the deleted images so caches can drop them (ENOTFOUND).
func (s *Store) DeleteUser(ctx context.Context, username string) ([]string, error) {
	panic("unimplemented")
}

// CountAdmins returns how many users are admins.
func (s *Store) CountAdmins(ctx context.Context) (int, error) { panic("unimplemented") }

// --- tokens.go ---

// CreateToken mints an API token for a user: at least 128 random bits, prefixed "tpx_". Only
// its SHA-256 is stored; the plaintext is returned once.
func (s *Store) CreateToken(ctx context.Context, userID int64) (string, error) {
	panic("unimplemented")
}

// FindIdentityByToken returns the user and current tier a plaintext token belongs to
// (ENOTFOUND for unknown tokens), in one query.
func (s *Store) FindIdentityByToken(ctx context.Context, token string) (tierpix.Identity, error) {
	panic("unimplemented")
}

// --- images.go ---

// TempDir is where uploads are spooled: on the same filesystem as the originals, so that a
// rename moves them into place atomically.
func (s *Store) TempDir() string { panic("unimplemented") }

// OriginalPath returns where the original of image id lives.
func (s *Store) OriginalPath(id string) string { panic("unimplemented") }

// CreateImage moves the validated upload at tmpPath into place and records it: fsync the file,
// rename it into originals/, fsync the directory, then insert the row; if the insert fails the
// file is removed. It sets img.ID (random, non-sequential), Seq and CreatedAt.
func (s *Store) CreateImage(ctx context.Context, img *tierpix.Image, tmpPath string) error {
	panic("unimplemented")
}

// FindImage returns an image by id (ENOTFOUND).
func (s *Store) FindImage(ctx context.Context, id string) (tierpix.Image, error) {
	panic("unimplemented")
}

// FindImageForServing returns an image and its owner's current tier in one query (ENOTFOUND).
func (s *Store) FindImageForServing(ctx context.Context, id string) (tierpix.Image, tierpix.Tier, error) {
	panic("unimplemented")
}

// ListImages returns up to limit of the owner's images, newest first, with Seq below
// beforeSeq (0: from the newest). One query, served by an (owner_id, seq) index.
func (s *Store) ListImages(ctx context.Context, ownerID int64, beforeSeq int64, limit int) ([]tierpix.Image, error) {
	panic("unimplemented")
}

// DeleteImage deletes the owner's image row, then its original file (ENOTFOUND if the image
// does not exist or is not the owner's).
func (s *Store) DeleteImage(ctx context.Context, ownerID int64, id string) error {
	panic("unimplemented")
}

// SweepResult counts what Sweep removed.
type SweepResult struct {
	TempFiles int
	Orphans   int
}

// Sweep removes temp files older than olderThan and originals with no row whose files are
// older than olderThan (so an upload in flight on another node sharing the directory is
// left alone).
func (s *Store) Sweep(ctx context.Context, olderThan time.Duration) (SweepResult, error) {
	panic("unimplemented")
}
