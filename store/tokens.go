package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/tierpix/tierpix"
)

// TokenPrefix starts every API token, so that a leaked token is recognisable (secret
// scanners, logs) and a Bearer value that is not one of ours is refused without a query.
const TokenPrefix = "tpx_"

// tokenBytes is the entropy of a token: 256 bits, far beyond guessing, so a plain SHA-256
// (not a slow password hash) is enough to keep the stored form useless to a thief.
const tokenBytes = 32

// randomToken returns tokenBytes random bytes in unpadded base64url: the secret of an API
// token, a session's token and its CSRF token.
func randomToken() string {
	b := make([]byte, tokenBytes)
	rand.Read(b) // crypto/rand.Read never fails (Go 1.24+): it crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashToken returns the stored form of a plaintext token: hex SHA-256.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// tokenHintChars is how many characters of the secret a token's hint shows: enough to tell a
// user's few tokens apart, and only 24 of its 256 bits, which leaves 232 to guess.
const tokenHintChars = 4

// CreateToken mints an API token for a user: 256 random bits, prefixed "tpx_". Only its
// SHA-256 and its hint are stored; the plaintext is returned once, with the stored token
// (ENOTFOUND if the user does not exist).
func (s *Store) CreateToken(ctx context.Context, userID int64) (Token, string, error) {
	secret := randomToken()
	token := TokenPrefix + secret

	now, us := s.nowMicros()
	k := Token{UserID: userID, Hint: TokenPrefix + secret[:tokenHintChars], CreatedAt: now}
	err := s.get(ctx, s.q(ctx), &k.ID, `INSERT INTO tokens (user_id, token_hash, hint, created_at) VALUES (?, ?, ?, ?)
		RETURNING id`,
		userID, hashToken(token), k.Hint, us)
	if err != nil {
		err = dbError(err, "create token", "The token")
		if tierpix.ErrorCode(err) == tierpix.EINVALID {
			// The only reference is the user.
			return Token{}, "", tierpix.Errorf(tierpix.ENOTFOUND, "The user was not found.")
		}
		return Token{}, "", err
	}
	return k, token, nil
}

// FindIdentityByToken returns the user and current tier a plaintext token belongs to
// (ENOTFOUND for unknown tokens), in one query.
func (s *Store) FindIdentityByToken(ctx context.Context, token string) (tierpix.Identity, error) {
	if !strings.HasPrefix(token, TokenPrefix) {
		return tierpix.Identity{}, tierpix.Errorf(tierpix.ENOTFOUND, "The token was not found.")
	}
	var r identityRow
	err := s.get(ctx, s.q(ctx), &r, `SELECT `+userColumns+`, `+tierColumns+`
		FROM tokens k
		JOIN users u ON u.id = k.user_id
		JOIN tiers t ON t.name = u.tier
		WHERE k.token_hash = ?`, hashToken(token))
	if err != nil {
		return tierpix.Identity{}, dbError(err, "find token", "The token")
	}
	return r.identity()
}

// Token is an API token as listed: never its secret.
type Token = tierpix.Token

// tokenRow is a token as stored, without its hash.
type tokenRow struct {
	ID        int64  `db:"id"`
	UserID    int64  `db:"user_id"`
	Hint      string `db:"hint"`
	CreatedAt int64  `db:"created_at"`
}

// ListTokens returns a user's tokens, newest first (none, not ENOTFOUND, for an unknown user).
func (s *Store) ListTokens(ctx context.Context, userID int64) ([]Token, error) {
	var rows []tokenRow
	err := s.sel(ctx, s.q(ctx), &rows, `SELECT id, user_id, hint, created_at FROM tokens
		WHERE user_id = ?
		ORDER BY id DESC`, userID)
	if err != nil {
		return nil, dbError(err, "list tokens", "The token")
	}
	tokens := make([]Token, len(rows))
	for i, r := range rows {
		tokens[i] = Token{ID: r.ID, UserID: r.UserID, Hint: r.Hint, CreatedAt: fromMicros(r.CreatedAt)}
	}
	return tokens, nil
}

// DeleteToken revokes one token of a user (ENOTFOUND if the user has no token with that id,
// including another user's token: an admin page for one user cannot revoke another's).
// The token stops authenticating at once: FindIdentityByToken reads the table every time.
func (s *Store) DeleteToken(ctx context.Context, userID, tokenID int64) error {
	res, err := s.exec(ctx, s.q(ctx), `DELETE FROM tokens WHERE id = ? AND user_id = ?`, tokenID, userID)
	if err != nil {
		return dbError(err, "delete token", "The token")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("delete token: %w", err)
	}
	if n == 0 {
		return tierpix.Errorf(tierpix.ENOTFOUND, "The token was not found.")
	}
	return nil
}
