package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/tierpix/tierpix"
	"golang.org/x/crypto/bcrypt"
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

// likeEscaper escapes LIKE's wildcards and its escape character (the '\' of newUserList's search).
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// userSortColumns are the columns of each order; each but the username's has an index on
// (column, username) (migration 0006), which serves its pages in both directions and the
// cursor's row-value comparison, so no page sorts and none reads rows it does not return.
var userSortColumns = map[tierpix.UserSort]string{
	tierpix.SortUsername:  "u.username",
	tierpix.SortTier:      "u.tier",
	tierpix.SortIsAdmin:   "u.is_admin",
	tierpix.SortCreatedAt: "u.created_at",
}

// userList is one ListUsers call's statements, built from fixed fragments: the filters as
// SQL and their arguments, and the order.
type userList struct {
	sort    tierpix.UserSort
	col     string
	filters []string
	args    []any
}

func newUserList(q *tierpix.UserQuery) *userList {
	l := &userList{sort: q.SortBy()}
	l.col = userSortColumns[l.sort]
	// A search matches case-insensitively. lower() folds only ASCII in SQLite, and usernames
	// are ASCII (see tierpix.ValidateUsername), so both dialects match the same users. No
	// index serves a substring match; the order's index still lets a page stop early.
	if q.Search != "" {
		l.filters = append(l.filters, `lower(u.username) LIKE lower(?) ESCAPE '\'`)
		l.args = append(l.args, "%"+likeEscaper.Replace(q.Search)+"%")
	}
	// The tier's stored spelling is looked up by its name in any case, so that the equality
	// on u.tier can use the (tier, username) index.
	if q.Tier != "" {
		l.filters = append(l.filters, `u.tier = (SELECT t.name FROM tiers t WHERE lower(t.name) = lower(?))`)
		l.args = append(l.args, q.Tier)
	}
	if q.Admin != nil {
		l.filters = append(l.filters, `u.is_admin = ?`)
		l.args = append(l.args, *q.Admin)
	}
	return l
}

// keyArgs returns the arguments of a comparison with k.
func (l *userList) keyArgs(k tierpix.UserKey) []any {
	switch l.sort {
	case tierpix.SortTier:
		return []any{k.Tier, k.Username}
	case tierpix.SortIsAdmin:
		return []any{k.IsAdmin, k.Username}
	case tierpix.SortCreatedAt:
		return []any{k.CreatedAt.UnixMicro(), k.Username}
	}
	return []any{k.Username}
}

// keyCond compares a row's key with a key given as arguments, op being <, <=, > or >=: a
// row-value comparison, which both dialects run as a range of the order's index.
func (l *userList) keyCond(op string) string {
	if l.sort == tierpix.SortUsername {
		return `u.username ` + op + ` ?`
	}
	return `(` + l.col + `, u.username) ` + op + ` (?, ?)`
}

// where joins the filters and extra conditions.
func (l *userList) where(extra ...string) string {
	conds := append(slices.Clone(l.filters), extra...)
	if len(conds) == 0 {
		return ""
	}
	return ` WHERE ` + strings.Join(conds, ` AND `)
}

// orderBy is the ORDER BY of the key, ascending or descending.
func (l *userList) orderBy(desc bool) string {
	dir := ` ASC`
	if desc {
		dir = ` DESC`
	}
	if l.sort == tierpix.SortUsername {
		return ` ORDER BY u.username` + dir
	}
	return ` ORDER BY ` + l.col + dir + `, u.username` + dir
}

// page returns the statement and arguments of up to limit rows in ascending or descending
// key order, after the key k when it is not nil.
func (l *userList) page(desc bool, k *tierpix.UserKey, limit int) (string, []any) {
	op := `>`
	if desc {
		op = `<`
	}
	args := slices.Clone(l.args)
	var extra []string
	if k != nil {
		extra = append(extra, l.keyCond(op))
		args = append(args, l.keyArgs(*k)...)
	}
	return `SELECT ` + userColumns + ` FROM users u` + l.where(extra...) + l.orderBy(desc) + ` LIMIT ?`, append(args, limit)
}

// counts returns the statement and arguments that count the matching rows and, when k is not
// nil, the matching rows that come before k in the list (before it or at it if inclusive),
// each up to UserCountCap+1: a count stops there, so a page of a large table never reads it
// all. The rows before k are counted walking back from k in key order, so that the count is
// a range of the order's index that stops at the cap: without the order, PostgreSQL, which
// estimates a row-value range by its first column only, may take "tier <= 'Basic'" for most
// of the table and count it by a sequential scan that finds the few rows before k only at
// its end.
func (l *userList) counts(desc bool, k *tierpix.UserKey, inclusive bool) (string, []any) {
	capped := func(where, order string) string {
		return `(SELECT COUNT(*) FROM (SELECT 1 FROM users u` + where + order + ` LIMIT ?) c)`
	}
	query := `SELECT ` + capped(l.where(), ``) + ` AS total`
	args := append(slices.Clone(l.args), tierpix.UserCountCap+1)
	if k == nil {
		return query + `, 0 AS start`, args
	}
	op := `<`
	if desc {
		op = `>`
	}
	if inclusive {
		op += `=`
	}
	query += `, ` + capped(l.where(l.keyCond(op)), l.orderBy(!desc)) + ` AS start`
	args = append(args, l.args...)
	args = append(args, l.keyArgs(*k)...)
	return query, append(args, tierpix.UserCountCap+1)
}

// ListUsers returns a page of the users q asks for (EINVALID for a query that is not valid,
// see tierpix.UserQuery.Validate), in two statements whatever the page: the rows, read from
// the order's index after or before the cursor's key (no OFFSET: a page deep in the list
// costs what the first does), then the counts. Usernames and tier names are ordered
// byte-wise in both dialects. The counts are read after the rows, outside a transaction, so
// a change in between may put them off by what it changed.
func (s *Store) ListUsers(ctx context.Context, q tierpix.UserQuery) (tierpix.UserPage, error) {
	if err := q.Validate(); err != nil {
		return tierpix.UserPage{}, err
	}
	c, err := q.ParseCursor()
	if err != nil {
		return tierpix.UserPage{}, err
	}
	l := newUserList(&q)
	var key *tierpix.UserKey
	if q.Cursor != "" {
		key = &c.Key
	}
	// The page before a key is read backwards from it, then turned around.
	var rows []userRow
	query, args := l.page(q.Desc != c.Before, key, q.Limit+1)
	if err := s.sel(ctx, s.q(ctx), &rows, query, args...); err != nil {
		return tierpix.UserPage{}, dbError(err, "list users", "The user")
	}
	more := len(rows) > q.Limit
	if more {
		rows = rows[:q.Limit]
	}
	if c.Before {
		slices.Reverse(rows)
	}
	p := tierpix.UserPage{Users: make([]tierpix.User, len(rows))}
	for i, r := range rows {
		p.Users[i] = r.user()
	}
	switch {
	case key == nil:
		p.First, p.Last = true, !more
	case c.Before:
		p.First, p.Last = !more, false
	default:
		p.First, p.Last = false, !more
	}

	// Start counts the rows before the page: those up to the cursor's key for a page after
	// it, those before the page's first row for a page before one.
	var startKey *tierpix.UserKey
	inclusive := false
	switch {
	case p.First:
	case !c.Before:
		startKey, inclusive = key, true
	case len(p.Users) > 0:
		k := l.sort.KeyOf(&p.Users[0])
		startKey = &k
	}
	var n struct {
		Total int `db:"total"`
		Start int `db:"start"`
	}
	query, args = l.counts(q.Desc, startKey, inclusive)
	if err := s.get(ctx, s.q(ctx), &n, query, args...); err != nil {
		return tierpix.UserPage{}, dbError(err, "count users", "The user")
	}
	p.Total, p.TotalCapped = min(n.Total, tierpix.UserCountCap), n.Total > tierpix.UserCountCap
	p.Start, p.StartCapped = min(n.Start, tierpix.UserCountCap), n.Start > tierpix.UserCountCap

	if len(p.Users) > 0 {
		if !p.First {
			p.Prev = tierpix.UserCursor{Key: l.sort.KeyOf(&p.Users[0]), Before: true}.String()
		}
		if !p.Last {
			p.Next = tierpix.UserCursor{Key: l.sort.KeyOf(&p.Users[len(p.Users)-1])}.String()
		}
	}
	return p, nil
}

// FindUser returns a user and their current tier by username (ENOTFOUND), in one query.
func (s *Store) FindUser(ctx context.Context, username string) (tierpix.Identity, error) {
	var r identityRow
	err := s.get(ctx, s.q(ctx), &r, `SELECT `+userColumns+`, `+tierColumns+`
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
	err := s.get(ctx, s.q(ctx), &r, `SELECT `+userColumns+`, `+tierColumns+`
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
	err := s.get(ctx, s.q(ctx), &r, `INSERT INTO users (username, password_hash, tier, is_admin, created_at, updated_at)
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

// ModifyUser changes the user named username with fn and saves the result (ENOTFOUND; EINVALID
// with field "tier" if fn names a tier that does not exist; ECONFLICT if it would demote the last
// admin; any error of fn). fn gets the user as stored, and may change the password hash, the
// tier and the admin flag. The read, fn and the write are one transaction that holds the users
// lock (see lockUsers), so two changes to one user at once, say a new password and a new
// tier, cannot undo each other. fn should be quick: hash passwords before. A new password hash
// ends all the user's web sessions in the same transaction. A new tier moves the change
// epoch (see ChangeEpoch) in it too. It is the store's one way to change a user.
//
// On PostgreSQL the read also locks the user's row (NO KEY: sessions, tokens and images may
// go on referencing it), so that the row read is the row written even for a writer that
// does not take the users lock.
func (s *Store) ModifyUser(ctx context.Context, username string, fn func(u *tierpix.User) error) (tierpix.User, error) {
	now, us := s.nowMicros()
	query := `SELECT ` + userColumns + ` FROM users u WHERE u.username = ?`
	if s.dialect == DialectPostgres {
		query += ` FOR NO KEY UPDATE`
	}
	var u tierpix.User
	err := s.tx(ctx, func(tx *sqlx.Tx) error {
		if err := s.lockUsers(ctx, tx); err != nil {
			return err
		}
		var cur userRow
		if err := s.get(ctx, tx, &cur, query, username); err != nil {
			return dbError(err, "modify user", userSubject(username))
		}
		u = cur.user()
		if err := fn(&u); err != nil {
			return err
		}
		u.ID = cur.ID
		if cur.IsAdmin && !u.IsAdmin {
			if err := s.keepAnAdmin(ctx, tx, func(a adminRow) bool { return a.ID == cur.ID }, "demote"); err != nil {
				return err
			}
		}
		var r updatedUserRow
		if err := s.saveUser(ctx, tx, &u, us, &r); err != nil {
			return err
		}
		if u.PasswordHash != cur.PasswordHash {
			if _, err := s.exec(ctx, tx, `DELETE FROM sessions WHERE user_id = ?`, u.ID); err != nil {
				return dbError(err, "modify user: end sessions", "The session")
			}
		}
		if r.Tier != cur.Tier {
			if err := s.bumpEpoch(ctx, tx); err != nil {
				return err
			}
		}
		u.TierName, u.Username = r.Tier, r.Username
		u.CreatedAt, u.UpdatedAt = fromMicros(r.CreatedAt), now
		return nil
	})
	if err != nil {
		return tierpix.User{}, err
	}
	return u, nil
}

// saveUser runs updateUserQuery on tx, with the last-admin guard already passed, into r
// (ENOTFOUND; EINVALID with field "tier" if the tier does not exist).
func (s *Store) saveUser(ctx context.Context, tx *sqlx.Tx, u *tierpix.User, us int64, r *updatedUserRow) error {
	err := s.get(ctx, tx, r, updateUserQuery, u.PasswordHash, u.IsAdmin, us, u.ID, u.TierName)
	err = dbError(err, "update user", "The user")
	if tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
		return err
	}
	var tiers int
	if err := s.get(ctx, tx, &tiers, `SELECT COUNT(*) FROM tiers WHERE lower(name) = lower(?)`, u.TierName); err != nil {
		return dbError(err, "update user: find tier", tierSubject(u.TierName))
	}
	if tiers == 0 {
		return unknownTier(u.TierName)
	}
	return err
}

// updateUserQuery is saveUser's statement: the tier is resolved by its name,
// case-insensitively, in the same statement.
const updateUserQuery = `UPDATE users
	SET password_hash = ?, tier = t.name, is_admin = ?, updated_at = ?
	FROM tiers t
	WHERE users.id = ? AND lower(t.name) = lower(?)
	RETURNING users.tier AS tier, users.username AS username, users.created_at AS created_at`

type updatedUserRow struct {
	Tier      string `db:"tier"`
	Username  string `db:"username"`
	CreatedAt int64  `db:"created_at"`
}

// pgUsersLock is the pg_advisory_xact_lock key of lockUsers, next to pgMigrationLock.
const pgUsersLock = pgMigrationLock + 1

// lockUsers serializes the transactions that read users and then write them on what they read:
// those that may take an admin away (keepAnAdmin counts the admins, then demotes or deletes)
// and ModifyUser. It must be the transaction's first statement, so that it is the first lock
// each of them waits for and they cannot deadlock. On PostgreSQL it is a transaction-scoped
// advisory lock; the statements after it see what the previous holder committed. On SQLite
// every transaction begins IMMEDIATE (see openSQLite), which serializes writers already.
func (s *Store) lockUsers(ctx context.Context, tx *sqlx.Tx) error {
	if s.dialect != DialectPostgres {
		return nil
	}
	if _, err := s.exec(ctx, tx, `SELECT pg_advisory_xact_lock(?)`, int64(pgUsersLock)); err != nil {
		return dbError(err, "lock users", "The user")
	}
	return nil
}

// adminRow is an admin as keepAnAdmin sees it.
type adminRow struct {
	ID       int64  `db:"id"`
	Username string `db:"username"`
}

// keepAnAdmin refuses (ECONFLICT) to go on when the admin that isTarget picks out is the only
// one left. It must run inside the transaction that then demotes or deletes that user, after
// lockUsers, so that no other transaction can take away the other admin in between: of two
// admins demoting each other at once, the second is refused.
func (s *Store) keepAnAdmin(ctx context.Context, tx *sqlx.Tx, isTarget func(adminRow) bool, action string) error {
	var admins []adminRow
	if err := s.sel(ctx, tx, &admins, `SELECT id, username FROM users WHERE is_admin = ? ORDER BY id`, true); err != nil {
		return dbError(err, "find admins", "The user")
	}
	if len(admins) == 1 && isTarget(admins[0]) {
		return tierpix.Errorf(tierpix.ECONFLICT, "You cannot %s the last admin.", action)
	}
	return nil
}

// DeleteUser deletes a user with their tokens, sessions and images, then removes their originals from
// disk. It returns the ids of the deleted images so caches can drop them (ENOTFOUND; ECONFLICT
// for the last admin, see keepAnAdmin).
//
// The images are deleted explicitly with RETURNING, in the same transaction as the user, so
// the ids returned are exactly the rows removed. Files are removed after the commit; a file
// that cannot be removed is reported in the error (wrapping ErrOriginalKept) alongside the ids
// (the rows are gone either way) and is left for Sweep, which removes originals that have no
// row. The change epoch moves in the transaction (see ChangeEpoch), images or none: an image
// uploaded while the user is deleted may go by the foreign key's cascade, unlisted.
func (s *Store) DeleteUser(ctx context.Context, username string) ([]string, error) {
	var ids []string
	if st := txFrom(ctx); st != nil {
		st.freesSpace = true
	}
	err := s.tx(ctx, func(tx *sqlx.Tx) error {
		ids = nil
		if err := s.lockUsers(ctx, tx); err != nil {
			return err
		}
		if err := s.keepAnAdmin(ctx, tx, func(a adminRow) bool { return a.Username == username }, "delete"); err != nil {
			return err
		}
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
		return s.bumpEpoch(ctx, tx)
	})
	if err != nil {
		return nil, err
	}
	if ids == nil {
		ids = []string{}
	}
	return ids, afterCommit(ctx, func() error { return s.removeOriginals(ctx, ids) })
}

// CountAdmins returns how many users are admins.
func (s *Store) CountAdmins(ctx context.Context) (int, error) {
	var n int
	if err := s.get(ctx, s.q(ctx), &n, `SELECT COUNT(*) FROM users WHERE is_admin = ?`, true); err != nil {
		return 0, dbError(err, "count admins", "The user")
	}
	return n, nil
}

// HashPassword checks a password against the length rules and returns its bcrypt hash, as the
// store keeps it. A cost of 0 means bcrypt.DefaultCost. The API, the web UI and the CLI all use
// it, so a password obeys the same rules wherever it is set.
func HashPassword(password string, cost int) (string, error) {
	if err := tierpix.ValidatePassword(password); err != nil {
		return "", err
	}
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// UserCounts says how many images, API tokens and web sessions a user has: what deleting
// them takes along, for the confirmation. One statement.
func (s *Store) UserCounts(ctx context.Context, userID int64) (images, tokens, sessions int, err error) {
	var r struct {
		Images   int `db:"images"`
		Tokens   int `db:"tokens"`
		Sessions int `db:"sessions"`
	}
	err = s.get(ctx, s.q(ctx), &r, `SELECT
		(SELECT COUNT(*) FROM images WHERE owner_id = ?) AS images,
		(SELECT COUNT(*) FROM tokens WHERE user_id = ?) AS tokens,
		(SELECT COUNT(*) FROM sessions WHERE user_id = ?) AS sessions`, userID, userID, userID)
	if err != nil {
		return 0, 0, 0, dbError(err, "count what a user owns", "The user")
	}
	return r.Images, r.Tokens, r.Sessions, nil
}
