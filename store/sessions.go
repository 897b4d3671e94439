package store

import (
	"context"
	"time"

	"github.com/tierpix/tierpix"
)

// Session is a signed-in browser: the web UI's server-side session. Its token lives only in
// the browser's cookie; the store keeps its SHA-256, like API tokens.
type Session struct {
	ID         int64
	UserID     int64
	CSRFToken  string    // random, per session; forms carry it and it is compared in constant time
	CreatedAt  time.Time // absolute expiry counts from here
	LastSeenAt time.Time // idle expiry counts from here; refreshed at most once a minute
	ExpiresAt  time.Time // absolute expiry, fixed at creation
	UserAgent  string    // as sent at sign-in, cut to 256 bytes, for the admin's session list
	Address    string    // client address at sign-in
}

// CreateSession starts a session for a user that ends at the latest at now+maxAge. It returns
// the plaintext token, for the cookie, once.
func (s *Store) CreateSession(ctx context.Context, userID int64, maxAge time.Duration, userAgent, address string) (string, Session, error) {
	panic("not implemented")
}

// FindSession returns a live session by its plaintext token, with its user and their current
// tier, in one query. ENOTFOUND for an unknown token, a session past its absolute expiry, or
// one idle since before idleSince.
func (s *Store) FindSession(ctx context.Context, token string, idleSince time.Time) (Session, tierpix.Identity, error) {
	panic("not implemented")
}

// TouchSession records activity on a session now (idle expiry restarts).
func (s *Store) TouchSession(ctx context.Context, id int64) error {
	panic("not implemented")
}

// DeleteSession ends one session by its plaintext token; an unknown token is not an error.
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	panic("not implemented")
}

// DeleteUserSessions ends every session of a user (password change, "sign out everywhere"),
// and returns how many there were.
func (s *Store) DeleteUserSessions(ctx context.Context, userID int64) (int, error) {
	panic("not implemented")
}

// ListUserSessions returns a user's live sessions, newest first.
func (s *Store) ListUserSessions(ctx context.Context, userID int64, idleSince time.Time) ([]Session, error) {
	panic("not implemented")
}

// DeleteExpiredSessions removes sessions past their absolute expiry or idle since before
// idleSince, and returns how many went.
func (s *Store) DeleteExpiredSessions(ctx context.Context, idleSince time.Time) (int, error) {
	panic("not implemented")
}

// RecordLoginFailure counts one failed sign-in against each key (such as "user:alice" and
// "addr:192.0.2.1") in a fixed window: a key whose window started before now-window starts a
// new one at 1. It returns the count of each key after this failure, in the order given.
func (s *Store) RecordLoginFailure(ctx context.Context, keys []string, window time.Duration) ([]int, error) {
	panic("not implemented")
}

// LoginFailures returns the failures counted against each key in its current window (0 for a
// key with none, or whose window started before now-window), in the order given.
func (s *Store) LoginFailures(ctx context.Context, keys []string, window time.Duration) ([]int, error) {
	panic("not implemented")
}

// ClearLoginFailures forgets the failures of a key (after a successful sign-in of an account).
func (s *Store) ClearLoginFailures(ctx context.Context, key string) error {
	panic("not implemented")
}
