package store

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/jmoiron/sqlx"

	"github.com/tierpix/tierpix"
)

// userColumns selects a user aliased as u.
const userColumns = `u.id AS id, u.username AS username, u.password_hash AS password_hash,
	u.tier AS tier, u.is_admin AS is_admin, u.created_at AS created_at, u.updated_at AS updated_at`

// userRow is a user as stored.
type userRow struct {
	ID           int64  `db:"id"`
	Username     string `db:"username"`
	PasswordHash string `db:"password_hash"`
	Tier         string `db:"tier"`
	IsAdmin      bool   `db:"is_admin"`
	CreatedAt    int64  `db:"created_at"`
	UpdatedAt    int64  `db:"updated_at"`
}

func (r userRow) user() tierpix.User {
	return tierpix.User{
		ID:           r.ID,
		Username:     r.Username,
		PasswordHash: r.PasswordHash,
		TierName:     r.Tier,
		IsAdmin:      r.IsAdmin,
		CreatedAt:    fromMicros(r.CreatedAt),
		UpdatedAt:    fromMicros(r.UpdatedAt),
	}
}

// identityRow is a user joined with their tier: what authentication needs, in one row.
type identityRow struct {
	userRow
	tierRow
}

func (r identityRow) identity() (tierpix.Identity, error) {
	t, err := r.tier()
	if err != nil {
		return tierpix.Identity{}, err
	}
	return tierpix.Identity{User: r.user(), Tier: t}, nil
}

func userSubject(username string) string { return fmt.Sprintf("The user %q", username) }

// unknownTier is the error for a user put on a tier that does not exist.
func unknownTier(name string) error {
	if name == "" {
		return tierpix.Invalid("tier", "A tier is required.")
	}
	return tierpix.Invalid("tier", fmt.Sprintf("No tier named %s.", name))
}

// ListUsers returns up to limit users with usernames after `after`, ordered by username
// (byte order in both dialects).
func (s *Store) ListUsers(ctx context.Context, after string, limit int) ([]tierpix.User, error) {
	if limit < 1 {
		return nil, tierpix.Invalid("limit", "must be at least 1")
	}
	var rows []userRow
	err := s.sel(ctx, s.db, &rows, `SELECT `+userColumns+` FROM users u
		WHERE u.username > ?
		ORDER BY u.username
		LIMIT ?`, after, limit)
	if err != nil {
		return nil, dbError(err, "list users", "The user")
	}
	users := make([]tierpix.User, len(rows))
	for i, r := range rows {
		users[i] = r.user()
	}
	return users, nil
}

// FindUser returns a user and their current tier by username (ENOTFOUND), in one query.
func (s *Store) FindUser(ctx context.Context, username string) (tierpix.Identity, error) {
	var r identityRow
	err := s.get(ctx, s.db, &r, `SELECT `+userColumns+`, `+tierColumns+`
		FROM users u JOIN tiers t ON t.name = u.tier
		WHERE u.username = ?`, username)
	if err != nil {
		return tierpix.Identity{}, dbError(err, "find user", userSubject(username))
	}
	return r.identity()
}

// FindUserByID returns a user and their current tier by id (ENOTFOUND), in one query.
func (s *Store) FindUserByID(ctx context.Context, id int64) (tierpix.Identity, error) {
	var r identityRow
	err := s.get(ctx, s.db, &r, `SELECT `+userColumns+`, `+tierColumns+`
		FROM users u JOIN tiers t ON t.name = u.tier
		WHERE u.id = ?`, id)
	if err != nil {
		return tierpix.Identity{}, dbError(err, "find user by id", "The user")
	}
	return r.identity()
}

// CreateUser inserts u (ECONFLICT if the username exists; EINVALID with field "tier" if the
// tier does not exist), setting ID, the stored tier name's spelling and timestamps. The caller
// hashes the password.
//
// The tier is resolved inside the INSERT (INSERT ... SELECT from tiers), so a missing tier
// shows as no row inserted, in one statement. The casts give PostgreSQL the parameter types
// it cannot infer from a SELECT list.
func (s *Store) CreateUser(ctx context.Context, u *tierpix.User) error {
	if err := tierpix.ValidateUsername(u.Username); err != nil {
		return err
	}
	now, us := s.nowMicros()
	var r struct {
		ID   int64  `db:"id"`
		Tier string `db:"tier"`
	}
	err := s.get(ctx, s.db, &r, `INSERT INTO users (username, password_hash, tier, is_admin, created_at, updated_at)
		SELECT ?, ?, t.name, CAST(? AS BOOLEAN), CAST(? AS BIGINT), CAST(? AS BIGINT)
		FROM tiers t WHERE lower(t.name) = lower(?)
		RETURNING id, tier`,
		u.Username, u.PasswordHash, u.IsAdmin, us, us, u.TierName)
	if err != nil {
		err = dbError(err, "create user", userSubject(u.Username))
		if tierpix.ErrorCode(err) == tierpix.ENOTFOUND {
			return unknownTier(u.TierName)
		}
		return err
	}
	u.ID, u.TierName = r.ID, r.Tier
	u.CreatedAt, u.UpdatedAt = now, now
	return nil
}

// UpdateUser saves u's password hash, tier and admin flag by u.ID (ENOTFOUND; EINVALID with
// field "tier" if the tier does not exist). u gets the stored tier name's spelling and
// timestamps.
//
// The tier is resolved by UPDATE ... FROM tiers, so the common case is one statement; only
// when nothing was updated does a second query tell a missing tier from a missing user.
func (s *Store) UpdateUser(ctx context.Context, u *tierpix.User) error {
	now, us := s.nowMicros()
	var r struct {
		Tier      string `db:"tier"`
		Username  string `db:"username"`
		CreatedAt int64  `db:"created_at"`
	}
	err := s.get(ctx, s.db, &r, `UPDATE users
		SET password_hash = ?, tier = t.name, is_admin = ?, updated_at = ?
		FROM tiers t
		WHERE users.id = ? AND lower(t.name) = lower(?)
		RETURNING users.tier AS tier, users.username AS username, users.created_at AS created_at`,
		u.PasswordHash, u.IsAdmin, us, u.ID, u.TierName)
	if err == nil {
		u.TierName, u.Username = r.Tier, r.Username
		u.CreatedAt, u.UpdatedAt = fromMicros(r.CreatedAt), now
		return nil
	}
	err = dbError(err, "update user", "The user")
	if tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
		return err
	}
	var tiers int
	if err := s.get(ctx, s.db, &tiers, `SELECT COUNT(*) FROM tiers WHERE lower(name) = lower(?)`, u.TierName); err != nil {
		return dbError(err, "update user: find tier", tierSubject(u.TierName))
	}
	if tiers == 0 {
		return unknownTier(u.TierName)
	}
	return err
}

// DeleteUser deletes a user with their tokens and images, then removes their originals from
// disk. It returns the ids of the deleted images so caches can drop them (ENOTFOUND).
//
// The images are deleted explicitly with RETURNING, in the same transaction as the user, so
// the ids returned are exactly the rows removed. Files are removed after the commit; a file
// that cannot be removed is reported in the error alongside the ids (the rows are gone
// either way) and is left for Sweep, which removes originals that have no row.
func (s *Store) DeleteUser(ctx context.Context, username string) ([]string, error) {
	var ids []string
	err := s.tx(ctx, func(tx *sqlx.Tx) error {
		ids = nil
		if err := s.sel(ctx, tx, &ids, `DELETE FROM images
			WHERE owner_id IN (SELECT id FROM users WHERE username = ?)
			RETURNING id`, username); err != nil {
			return dbError(err, "delete images of user", userSubject(username))
		}
		res, err := s.exec(ctx, tx, `DELETE FROM users WHERE username = ?`, username)
		if err != nil {
			return dbError(err, "delete user", userSubject(username))
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("delete user: %w", err)
		}
		if n == 0 {
			return tierpix.Errorf(tierpix.ENOTFOUND, "%s was not found.", userSubject(username))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, id := range ids {
		if err := os.Remove(s.OriginalPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove original %s: %w", id, err))
		}
	}
	if ids == nil {
		ids = []string{}
	}
	return ids, errors.Join(errs...)
}

// CountAdmins returns how many users are admins.
func (s *Store) CountAdmins(ctx context.Context) (int, error) {
	var n int
	if err := s.get(ctx, s.db, &n, `SELECT COUNT(*) FROM users WHERE is_admin = ?`, true); err != nil {
		return 0, dbError(err, "count admins", "The user")
	}
	return n, nil
}
