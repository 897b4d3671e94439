package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/tierpix/tierpix"
)

// tierColumns selects a tier aliased as t, under names that do not clash with the users and
// images columns it is joined with.
const tierColumns = `t.name AS tier_name, t.thumbnail_heights AS tier_thumbnail_heights,
	t.original_link AS tier_original_link, t.expiring_links AS tier_expiring_links,
	t.builtin AS tier_builtin, t.created_at AS tier_created_at, t.updated_at AS tier_updated_at`

// tierRow is a tier as stored: heights as JSON text, times as Unix microseconds.
type tierRow struct {
	Name             string `db:"tier_name"`
	ThumbnailHeights string `db:"tier_thumbnail_heights"`
	OriginalLink     bool   `db:"tier_original_link"`
	ExpiringLinks    bool   `db:"tier_expiring_links"`
	Builtin          bool   `db:"tier_builtin"`
	CreatedAt        int64  `db:"tier_created_at"`
	UpdatedAt        int64  `db:"tier_updated_at"`
}

func (r tierRow) tier() (tierpix.Tier, error) {
	t := tierpix.Tier{
		Name:          r.Name,
		OriginalLink:  r.OriginalLink,
		ExpiringLinks: r.ExpiringLinks,
		Builtin:       r.Builtin,
		CreatedAt:     fromMicros(r.CreatedAt),
		UpdatedAt:     fromMicros(r.UpdatedAt),
	}
	if err := json.Unmarshal([]byte(r.ThumbnailHeights), &t.ThumbnailHeights); err != nil {
		return tierpix.Tier{}, fmt.Errorf("decode thumbnail heights of tier %s: %w", r.Name, err)
	}
	t.Normalize()
	return t, nil
}

func encodeHeights(hs []int) string {
	if hs == nil {
		hs = []int{}
	}
	b, _ := json.Marshal(hs) // a []int always marshals
	return string(b)
}

func tierSubject(name string) string { return fmt.Sprintf("The tier %q", name) }

// ListTiers returns every tier ordered by name.
func (s *Store) ListTiers(ctx context.Context) ([]tierpix.Tier, error) {
	var rows []tierRow
	err := s.sel(ctx, s.q(ctx), &rows, `SELECT `+tierColumns+` FROM tiers t ORDER BY lower(t.name), t.name`)
	if err != nil {
		return nil, dbError(err, "list tiers", "The tier")
	}
	tiers := make([]tierpix.Tier, 0, len(rows))
	for _, r := range rows {
		t, err := r.tier()
		if err != nil {
			return nil, err
		}
		tiers = append(tiers, t)
	}
	return tiers, nil
}

// FindTier returns a tier by name, case-insensitively (ENOTFOUND).
func (s *Store) FindTier(ctx context.Context, name string) (tierpix.Tier, error) {
	var r tierRow
	err := s.get(ctx, s.q(ctx), &r, `SELECT `+tierColumns+` FROM tiers t WHERE lower(t.name) = lower(?)`, name)
	if err != nil {
		return tierpix.Tier{}, dbError(err, "find tier", tierSubject(name))
	}
	return r.tier()
}

// CreateTier validates, normalizes and inserts t, setting its timestamps (ECONFLICT if a tier
// of that name exists, case-insensitively). Tiers created here are never builtin.
func (s *Store) CreateTier(ctx context.Context, t *tierpix.Tier) error {
	t.Normalize()
	if err := t.Validate(); err != nil {
		return err
	}
	now, us := s.nowMicros()
	_, err := s.exec(ctx, s.q(ctx), `INSERT INTO tiers
		(name, thumbnail_heights, original_link, expiring_links, builtin, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		t.Name, encodeHeights(t.ThumbnailHeights), t.OriginalLink, t.ExpiringLinks, false, us, us)
	if err != nil {
		return dbError(err, "create tier", tierSubject(t.Name))
	}
	t.Builtin = false
	t.CreatedAt, t.UpdatedAt = now, now
	return nil
}

// ModifyTier changes the tier named name (case-insensitively) with fn and saves the result
// (ENOTFOUND; EINVALID if the result is not a valid tier; any error of fn). fn gets the tier as
// stored and may change its heights and flags. The read, fn and the write are one transaction
// with the tier's row locked, so two changes to one tier at once cannot undo each other. The
// change epoch moves with the write (see ChangeEpoch).
func (s *Store) ModifyTier(ctx context.Context, name string, fn func(t *tierpix.Tier) error) (tierpix.Tier, error) {
	query := `SELECT ` + tierColumns + ` FROM tiers t WHERE lower(t.name) = lower(?)`
	if s.dialect == DialectPostgres {
		// NO KEY: the name stays, so users may go on referencing the tier meanwhile. SQLite
		// needs no lock: its transactions begin IMMEDIATE (see openSQLite).
		query += ` FOR NO KEY UPDATE`
	}
	var t tierpix.Tier
	err := s.tx(ctx, func(tx *sqlx.Tx) error {
		var r tierRow
		if err := s.get(ctx, tx, &r, query, name); err != nil {
			return dbError(err, "modify tier", tierSubject(name))
		}
		cur, err := r.tier()
		if err != nil {
			return err
		}
		t = cur
		if err := fn(&t); err != nil {
			return err
		}
		t.Name = cur.Name
		return s.updateTier(ctx, tx, &t)
	})
	if err != nil {
		return tierpix.Tier{}, err
	}
	return t, nil
}

// updateTier writes t in tx and moves the change epoch: every image of every user on the tier
// is served by the new definition.
func (s *Store) updateTier(ctx context.Context, tx *sqlx.Tx, t *tierpix.Tier) error {
	t.Normalize()
	if err := t.Validate(); err != nil {
		return err
	}
	_, us := s.nowMicros()
	var r tierRow
	err := s.get(ctx, tx, &r, `UPDATE tiers
		SET thumbnail_heights = ?, original_link = ?, expiring_links = ?, updated_at = ?
		WHERE lower(name) = lower(?)
		RETURNING name AS tier_name, thumbnail_heights AS tier_thumbnail_heights,
			original_link AS tier_original_link, expiring_links AS tier_expiring_links,
			builtin AS tier_builtin, created_at AS tier_created_at, updated_at AS tier_updated_at`,
		encodeHeights(t.ThumbnailHeights), t.OriginalLink, t.ExpiringLinks, us, t.Name)
	if err != nil {
		return dbError(err, "update tier", tierSubject(t.Name))
	}
	stored, err := r.tier()
	if err != nil {
		return err
	}
	if err := s.bumpEpoch(ctx, tx); err != nil {
		return err
	}
	*t = stored
	return nil
}

// DeleteTier deletes a tier (ENOTFOUND; ECONFLICT while any user is on it). The foreign key
// from users refuses the delete; only then are the users counted for the message, so the
// common case is one statement and a user added concurrently cannot slip past the check.
//
// It leaves the change epoch alone (see ChangeEpoch): the foreign key lets only a tier that
// no user is on go, so no image was served by it.
func (s *Store) DeleteTier(ctx context.Context, name string) error {
	res, err := s.exec(ctx, s.q(ctx), `DELETE FROM tiers WHERE lower(name) = lower(?)`, name)
	if err == nil {
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("delete tier: %w", err)
		}
		if n == 0 {
			return tierpix.Errorf(tierpix.ENOTFOUND, "%s was not found.", tierSubject(name))
		}
		return nil
	}
	if !isForeignKeyViolation(err) {
		return dbError(err, "delete tier", tierSubject(name))
	}
	if txFrom(ctx) != nil {
		// On PostgreSQL the violation ended the transaction: nothing more can be asked in it.
		return tierpix.Errorf(tierpix.ECONFLICT, "The tier %s is in use.", name)
	}
	var usage struct {
		Name  string `db:"name"`
		Users int    `db:"users"`
	}
	err = s.get(ctx, s.q(ctx), &usage, `SELECT t.name AS name, COUNT(u.id) AS users
		FROM tiers t JOIN users u ON u.tier = t.name
		WHERE lower(t.name) = lower(?)
		GROUP BY t.name`, name)
	if errors.Is(err, sql.ErrNoRows) {
		// The users moved away between the two statements; the tier was in use a moment ago.
		return tierpix.Errorf(tierpix.ECONFLICT, "The tier %s is in use.", name)
	}
	if err != nil {
		return dbError(err, "count users of tier", tierSubject(name))
	}
	noun := "users"
	if usage.Users == 1 {
		noun = "user"
	}
	return tierpix.Errorf(tierpix.ECONFLICT, "The tier %s has %d %s.", usage.Name, usage.Users, noun)
}

// CountTierUsers says how many users are on the tier named name (case-insensitively).
func (s *Store) CountTierUsers(ctx context.Context, name string) (int, error) {
	var n int
	if err := s.get(ctx, s.q(ctx), &n, `SELECT COUNT(*) FROM users WHERE tier = (SELECT name FROM tiers WHERE lower(name) = lower(?))`, name); err != nil {
		return 0, dbError(err, "count users of tier", tierSubject(name))
	}
	return n, nil
}
