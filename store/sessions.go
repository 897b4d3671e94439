package store

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"

	"github.com/tierpix/tierpix"
)

// Session is a signed-in browser: the web UI's server-side session.
type Session = tierpix.Session

// sessionTokenLength is the length of every session token (tokenBytes in unpadded base64url),
// so that a cookie of any other length is refused without a query.
var sessionTokenLength = base64.RawURLEncoding.EncodedLen(tokenBytes)

// maxSessionText is how many bytes of the user agent and address a session keeps: they are
// shown in lists, and a client must not be able to store kilobytes with every sign-in.
const maxSessionText = 256

// sessionColumns selects a session aliased as se, under names that do not clash with the
// users and tiers columns it is joined with.
const sessionColumns = `se.id AS session_id, se.user_id AS session_user_id,
	se.csrf_token AS session_csrf_token, se.created_at AS session_created_at,
	se.last_seen_at AS session_last_seen_at, se.expires_at AS session_expires_at,
	se.user_agent AS session_user_agent, se.address AS session_address, se.flash AS session_flash`

// sessionRow is a session as stored, without its token's hash.
type sessionRow struct {
	ID         int64  `db:"session_id"`
	UserID     int64  `db:"session_user_id"`
	CSRFToken  string `db:"session_csrf_token"`
	CreatedAt  int64  `db:"session_created_at"`
	LastSeenAt int64  `db:"session_last_seen_at"`
	ExpiresAt  int64  `db:"session_expires_at"`
	UserAgent  string `db:"session_user_agent"`
	Address    string `db:"session_address"`
	Flash      string `db:"session_flash"`
}

func (r sessionRow) session() Session {
	return Session{
		ID:         r.ID,
		UserID:     r.UserID,
		CSRFToken:  r.CSRFToken,
		CreatedAt:  fromMicros(r.CreatedAt),
		LastSeenAt: fromMicros(r.LastSeenAt),
		ExpiresAt:  fromMicros(r.ExpiresAt),
		UserAgent:  r.UserAgent,
		Address:    r.Address,
		Flash:      r.Flash,
	}
}

func sessionNotFound() error {
	return tierpix.Errorf(tierpix.ENOTFOUND, "The session was not found.")
}

// clip makes s storable as TEXT in both dialects and at most n bytes long: invalid UTF-8
// becomes U+FFFD and NUL bytes are dropped (PostgreSQL refuses both, and a header may carry
// them), and the cut falls between two characters.
func clip(s string, n int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// CreateSession starts a session for a user that ends at the latest at now+maxAge (EINVALID
// unless maxAge is positive; ENOTFOUND if the user does not exist). It returns the plaintext
// token, for the cookie, once: 256 random bits, stored only as their SHA-256. The CSRF token
// is another 256 random bits.
func (s *Store) CreateSession(ctx context.Context, userID int64, maxAge time.Duration, userAgent, address string) (string, Session, error) {
	if maxAge < time.Microsecond {
		return "", Session{}, tierpix.Invalid("maxAge", "must be positive")
	}
	token := randomToken()
	now, us := s.nowMicros()
	expires := us + maxAge.Microseconds()
	sess := Session{
		UserID:     userID,
		CSRFToken:  randomToken(),
		CreatedAt:  now,
		LastSeenAt: now,
		ExpiresAt:  fromMicros(expires),
		UserAgent:  clip(userAgent, maxSessionText),
		Address:    clip(address, maxSessionText),
	}
	err := s.get(ctx, s.q(ctx), &sess.ID, `INSERT INTO sessions
		(user_id, token_hash, csrf_token, created_at, last_seen_at, expires_at, user_agent, address)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING id`,
		userID, hashToken(token), sess.CSRFToken, us, us, expires, sess.UserAgent, sess.Address)
	if err != nil {
		err = dbError(err, "create session", "The session")
		if tierpix.ErrorCode(err) == tierpix.EINVALID {
			// The only reference is the user.
			return "", Session{}, tierpix.Errorf(tierpix.ENOTFOUND, "The user was not found.")
		}
		return "", Session{}, err
	}
	return token, sess, nil
}

// FindSession returns a live session by its plaintext token, with its user and their current
// tier, in one query. ENOTFOUND for an unknown token, a session at or past its absolute expiry
// (by the store's clock), or one idle since before idleSince (the caller's idle policy:
// now minus the idle timeout). It does not record activity; see TouchSession.
func (s *Store) FindSession(ctx context.Context, token string, idleSince time.Time) (Session, tierpix.Identity, error) {
	if len(token) != sessionTokenLength {
		return Session{}, tierpix.Identity{}, sessionNotFound()
	}
	_, us := s.nowMicros()
	var r struct {
		sessionRow
		identityRow
	}
	err := s.get(ctx, s.q(ctx), &r, `SELECT `+sessionColumns+`, `+userColumns+`, `+tierColumns+`
		FROM sessions se
		JOIN users u ON u.id = se.user_id
		JOIN tiers t ON t.name = u.tier
		WHERE se.token_hash = ? AND se.expires_at > ? AND se.last_seen_at >= ?`,
		hashToken(token), us, idleSince.UnixMicro())
	if err != nil {
		return Session{}, tierpix.Identity{}, dbError(err, "find session", "The session")
	}
	id, err := r.identity()
	if err != nil {
		return Session{}, tierpix.Identity{}, err
	}
	return r.session(), id, nil
}

// TouchSession records activity on a session now, so that its idle expiry starts again. A
// session that is gone (signed out meanwhile in another tab) is not an error: the next
// request finds it gone. Callers refresh at most once a minute or so, to keep a write off
// most requests.
func (s *Store) TouchSession(ctx context.Context, id int64) error {
	_, us := s.nowMicros()
	if _, err := s.exec(ctx, s.q(ctx), `UPDATE sessions SET last_seen_at = ? WHERE id = ?`, us, id); err != nil {
		return dbError(err, "touch session", "The session")
	}
	return nil
}

// DeleteSession ends one session by its plaintext token (signing out); an unknown token is not
// an error.
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	if len(token) != sessionTokenLength {
		return nil
	}
	if _, err := s.exec(ctx, s.q(ctx), `DELETE FROM sessions WHERE token_hash = ?`, hashToken(token)); err != nil {
		return dbError(err, "delete session", "The session")
	}
	return nil
}

// SetSessionFlash keeps flash with the session for its next page (see migration 0007),
// replacing any flash not yet shown.
func (s *Store) SetSessionFlash(ctx context.Context, id int64, flash string) error {
	if _, err := s.exec(ctx, s.q(ctx), `UPDATE sessions SET flash = ? WHERE id = ?`, flash, id); err != nil {
		return dbError(err, "set session flash", "The session")
	}
	return nil
}

// ClearSessionFlash clears the session's flash once shown, unless another has replaced it
// since (shown is the flash as read).
func (s *Store) ClearSessionFlash(ctx context.Context, id int64, shown string) error {
	if _, err := s.exec(ctx, s.q(ctx), `UPDATE sessions SET flash = '' WHERE id = ? AND flash = ?`, id, shown); err != nil {
		return dbError(err, "clear session flash", "The session")
	}
	return nil
}

// DeleteUserSessions ends every session of a user ("sign out everywhere"), and returns how
// many there were, expired ones included. A password change through ModifyUser
// does this itself.
func (s *Store) DeleteUserSessions(ctx context.Context, userID int64) (int, error) {
	res, err := s.exec(ctx, s.q(ctx), `DELETE FROM sessions WHERE user_id = ?`, userID)
	if err != nil {
		return 0, dbError(err, "delete sessions of user", "The session")
	}
	return rowsAffected(res, "delete sessions of user")
}

// ListUserSessions returns a user's live sessions (as FindSession would find them), newest
// first.
func (s *Store) ListUserSessions(ctx context.Context, userID int64, idleSince time.Time) ([]Session, error) {
	_, us := s.nowMicros()
	var rows []sessionRow
	err := s.sel(ctx, s.q(ctx), &rows, `SELECT `+sessionColumns+` FROM sessions se
		WHERE se.user_id = ? AND se.expires_at > ? AND se.last_seen_at >= ?
		ORDER BY se.id DESC`, userID, us, idleSince.UnixMicro())
	if err != nil {
		return nil, dbError(err, "list sessions", "The session")
	}
	sessions := make([]Session, len(rows))
	for i, r := range rows {
		sessions[i] = r.session()
	}
	return sessions, nil
}

// DeleteExpiredSessions removes the sessions FindSession no longer finds: at or past their
// absolute expiry, or idle since before idleSince. It returns how many went. Expired sessions
// are harmless, so this is housekeeping, run now and then.
func (s *Store) DeleteExpiredSessions(ctx context.Context, idleSince time.Time) (int, error) {
	_, us := s.nowMicros()
	res, err := s.exec(ctx, s.q(ctx), `DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at < ?`,
		us, idleSince.UnixMicro())
	if err != nil {
		return 0, dbError(err, "delete expired sessions", "The session")
	}
	return rowsAffected(res, "delete expired sessions")
}

// recordLoginFailureQuery counts one failure against a key: a new key, or one whose window
// started before the cutoff (the third and fourth parameters), starts a window at 1 now. Both
// dialects take this upsert as written; SET reads the row as it was before the statement.
const recordLoginFailureQuery = `INSERT INTO login_failures (key, count, window_start) VALUES (?, 1, ?)
	ON CONFLICT (key) DO UPDATE SET
		count = CASE WHEN login_failures.window_start < ? THEN 1
			ELSE login_failures.count + 1 END,
		window_start = CASE WHEN login_failures.window_start < ? THEN excluded.window_start
			ELSE login_failures.window_start END
	RETURNING count`

// RecordLoginFailure counts one failed sign-in against each key (such as "user:alice" and
// "addr:192.0.2.1") in a fixed window: a key whose window started before now-window starts a
// new one at 1. It returns the count of each key after this failure, in the order given; a key
// given twice counts once. All keys are counted in one transaction, in sorted order, so that
// two failures at once cannot deadlock on PostgreSQL's row locks.
func (s *Store) RecordLoginFailure(ctx context.Context, keys []string, window time.Duration) ([]int, error) {
	if window <= 0 {
		return nil, tierpix.Invalid("window", "must be positive")
	}
	_, us := s.nowMicros()
	cutoff := us - window.Microseconds()
	sorted := slices.Compact(slices.Sorted(slices.Values(keys)))
	counts := make(map[string]int, len(sorted))
	if len(sorted) > 0 {
		err := s.tx(ctx, func(tx *sqlx.Tx) error {
			for _, k := range sorted {
				var n int
				if err := s.get(ctx, tx, &n, recordLoginFailureQuery, k, us, cutoff, cutoff); err != nil {
					return dbError(err, "record login failure", "The login failure")
				}
				counts[k] = n
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	out := make([]int, len(keys))
	for i, k := range keys {
		out[i] = counts[k]
	}
	return out, nil
}

// LoginFailures returns the failures counted against each key in its current window (0 for a
// key with none, or whose window started before now-window), in the order given. One query.
func (s *Store) LoginFailures(ctx context.Context, keys []string, window time.Duration) ([]int, error) {
	if window <= 0 {
		return nil, tierpix.Invalid("window", "must be positive")
	}
	out := make([]int, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	_, us := s.nowMicros()
	query, args, err := sqlx.In(`SELECT key, count FROM login_failures WHERE key IN (?) AND window_start >= ?`,
		keys, us-window.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("login failures: build query: %w", err)
	}
	var rows []struct {
		Key   string `db:"key"`
		Count int    `db:"count"`
	}
	if err := s.sel(ctx, s.q(ctx), &rows, query, args...); err != nil {
		return nil, dbError(err, "login failures", "The login failure")
	}
	counts := make(map[string]int, len(rows))
	for _, r := range rows {
		counts[r.Key] = r.Count
	}
	for i, k := range keys {
		out[i] = counts[k]
	}
	return out, nil
}

// ClearLoginFailures forgets the failures of a key (after a successful sign-in of an account).
// A key with none is not an error.
func (s *Store) ClearLoginFailures(ctx context.Context, key string) error {
	if _, err := s.exec(ctx, s.q(ctx), `DELETE FROM login_failures WHERE key = ?`, key); err != nil {
		return dbError(err, "clear login failures", "The login failure")
	}
	return nil
}

// DeleteStaleLoginFailures removes the counts whose window started before now-window, which
// no longer throttle anything, and returns how many went. Without it every address that ever
// failed to sign in keeps a row. Pass the throttle's window (or more): a shorter one would
// forget failures that still count.
func (s *Store) DeleteStaleLoginFailures(ctx context.Context, window time.Duration) (int, error) {
	if window <= 0 {
		return 0, tierpix.Invalid("window", "must be positive")
	}
	_, us := s.nowMicros()
	res, err := s.exec(ctx, s.q(ctx), `DELETE FROM login_failures WHERE window_start < ?`, us-window.Microseconds())
	if err != nil {
		return 0, dbError(err, "delete stale login failures", "The login failure")
	}
	return rowsAffected(res, "delete stale login failures")
}

// RecordSignInAddress notes that a user signed in from address now. Recording it again moves
// its time. The address is cut like a session's.
func (s *Store) RecordSignInAddress(ctx context.Context, userID int64, address string) error {
	_, us := s.nowMicros()
	_, err := s.exec(ctx, s.q(ctx), `INSERT INTO signin_addresses (user_id, address, last_seen_at) VALUES (?, ?, ?)
		ON CONFLICT (user_id, address) DO UPDATE SET last_seen_at = excluded.last_seen_at`,
		userID, clip(address, maxSessionText), us)
	if err != nil {
		err = dbError(err, "record sign-in address", "The sign-in address")
		if tierpix.ErrorCode(err) == tierpix.EINVALID {
			// The only reference is the user.
			return tierpix.Errorf(tierpix.ENOTFOUND, "The user was not found.")
		}
		return err
	}
	return nil
}

// SignedInFrom reports whether a user signed in from address at or after since.
func (s *Store) SignedInFrom(ctx context.Context, userID int64, address string, since time.Time) (bool, error) {
	var n int
	err := s.get(ctx, s.q(ctx), &n, `SELECT COUNT(*) FROM signin_addresses
		WHERE user_id = ? AND address = ? AND last_seen_at >= ?`,
		userID, clip(address, maxSessionText), since.UnixMicro())
	if err != nil {
		return false, dbError(err, "find sign-in address", "The sign-in address")
	}
	return n > 0, nil
}

// DeleteStaleSignInAddresses forgets the sign-in addresses last used before before, and
// returns how many went: housekeeping, run now and then, with the age the throttle trusts.
func (s *Store) DeleteStaleSignInAddresses(ctx context.Context, before time.Time) (int, error) {
	res, err := s.exec(ctx, s.q(ctx), `DELETE FROM signin_addresses WHERE last_seen_at < ?`, before.UnixMicro())
	if err != nil {
		return 0, dbError(err, "delete stale sign-in addresses", "The sign-in address")
	}
	return rowsAffected(res, "delete stale sign-in addresses")
}
