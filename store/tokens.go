package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"

	"github.com/tierpix/tierpix"
)

// TokenPrefix starts every API token, so that a leaked token is recognisable (secret
// scanners, logs) and a Bearer value that is not one of ours is refused without a query.
const TokenPrefix = "tpx_"

// tokenBytes is the entropy of a token: 256 bits, far beyond guessing, so a plain SHA-256
// (not a slow password hash) is enough to keep the stored form useless to a thief.
const tokenBytes = 32

// hashToken returns the stored form of a plaintext token: hex SHA-256.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// CreateToken mints an API token for a user: at least 128 random bits, prefixed "tpx_". Only
// its SHA-256 is stored; the plaintext is returned once (ENOTFOUND if the user does not exist).
func (s *Store) CreateToken(ctx context.Context, userID int64) (string, error) {
	b := make([]byte, tokenBytes)
	rand.Read(b) // crypto/rand.Read never fails (Go 1.24+): it crashes the program instead
	token := TokenPrefix + base64.RawURLEncoding.EncodeToString(b)

	_, us := s.nowMicros()
	_, err := s.exec(ctx, s.db, `INSERT INTO tokens (user_id, token_hash, created_at) VALUES (?, ?, ?)`,
		userID, hashToken(token), us)
	if err != nil {
		err = dbError(err, "create token", "The token")
		if tierpix.ErrorCode(err) == tierpix.EINVALID {
			// The only reference is the user.
			return "", tierpix.Errorf(tierpix.ENOTFOUND, "The user was not found.")
		}
		return "", err
	}
	return token, nil
}

// FindIdentityByToken returns the user and current tier a plaintext token belongs to
// (ENOTFOUND for unknown tokens), in one query.
func (s *Store) FindIdentityByToken(ctx context.Context, token string) (tierpix.Identity, error) {
	if !strings.HasPrefix(token, TokenPrefix) {
		return tierpix.Identity{}, tierpix.Errorf(tierpix.ENOTFOUND, "The token was not found.")
	}
	var r identityRow
	err := s.get(ctx, s.db, &r, `SELECT `+userColumns+`, `+tierColumns+`
		FROM tokens k
		JOIN users u ON u.id = k.user_id
		JOIN tiers t ON t.name = u.tier
		WHERE k.token_hash = ?`, hashToken(token))
	if err != nil {
		return tierpix.Identity{}, dbError(err, "find token", "The token")
	}
	return r.identity()
}

// Token is an API token as the admin sees it: never the secret, only a hint to tell tokens
// apart (the first characters after the prefix) and when it was minted and last used.
type Token struct {
	ID         int64
	UserID     int64
	Hint       string // "tpx_AbCd…": TokenPrefix and the first 4 characters of the secret
	CreatedAt  time.Time
	LastUsedAt time.Time // zero if never used; refreshed at most once a minute
}

// MintToken is CreateToken returning the stored token too, for callers that show its id.
// (STUB: to be replaced by CreateToken's new signature.)

// ListTokens returns a user's tokens, newest first.
func (s *Store) ListTokens(ctx context.Context, userID int64) ([]Token, error) {
	panic("not implemented")
}

// DeleteToken revokes one token of a user (ENOTFOUND if the user has no token with that id).
func (s *Store) DeleteToken(ctx context.Context, userID, tokenID int64) error {
	panic("not implemented")
}
