package api

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/valyala/fasthttp"
	"golang.org/x/crypto/bcrypt"
)

// credCacheSize bounds the credential cache. Each entry is about 150 bytes, so the cache stays
// under a few MiB however many clients use Basic authentication.
const credCacheSize = 10_000

// maxTokenLength is far above any token the store mints; longer values are refused without a
// database round trip.
const maxTokenLength = 256

func errUnauthorized(msg string) error { return tierpix.Errorf(tierpix.EUNAUTHORIZED, "%s", msg) }

// authenticate returns the caller of a request from its Authorization header, or else from
// the web UI's session cookie (bySession true). Either way it costs one query, and the tier
// comes with the user, so a tier change applies to the very next request.
func (a *API) authenticate(ctx *fasthttp.RequestCtx) (id tierpix.Identity, bySession bool, err error) {
	h := bytes.TrimSpace(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
	if len(h) == 0 {
		if a.web != nil {
			id, ok, err := a.web.Identify(ctx)
			if err != nil {
				return tierpix.Identity{}, false, fmt.Errorf("identify session: %w", err)
			}
			if ok {
				return id, true, nil
			}
		}
		return tierpix.Identity{}, false, errUnauthorized("Authentication is required: send a Bearer token or HTTP Basic credentials, or sign in at /login.")
	}
	scheme, cred, _ := bytes.Cut(h, []byte(" "))
	cred = bytes.TrimSpace(cred)
	switch strings.ToLower(string(scheme)) {
	case "bearer":
		id, err = a.authenticateToken(ctx, string(cred))
		return id, false, err
	case "basic":
		id, err = a.authenticateBasic(ctx, cred)
		return id, false, err
	}
	return tierpix.Identity{}, false, errUnauthorized("The authorization scheme is not supported: use Bearer or Basic.")
}

func (a *API) authenticateToken(ctx *fasthttp.RequestCtx, token string) (tierpix.Identity, error) {
	if token == "" || len(token) > maxTokenLength {
		return tierpix.Identity{}, errUnauthorized("The token is not valid.")
	}
	id, err := a.st.FindIdentityByToken(dbContext(ctx), token)
	if tierpix.ErrorCode(err) == tierpix.ENOTFOUND {
		return tierpix.Identity{}, errUnauthorized("The token is not valid.")
	} else if err != nil {
		return tierpix.Identity{}, fmt.Errorf("find identity by token: %w", err)
	}
	return id, nil
}

// authenticateBasic checks a username and password. A password verified recently is accepted
// from the credential cache without bcrypt, but only while the user's stored hash is still the
// one it was verified against: the user is read on every request, so a password change, a
// deleted user or a new tier take effect at once on every node.
func (a *API) authenticateBasic(ctx *fasthttp.RequestCtx, cred []byte) (tierpix.Identity, error) {
	const badCredentials = "The username or password is not valid."
	raw, err := base64.StdEncoding.DecodeString(string(cred))
	if err != nil {
		return tierpix.Identity{}, errUnauthorized("The Basic credentials are not valid base64.")
	}
	username, password, ok := strings.Cut(string(raw), ":")
	if !ok {
		return tierpix.Identity{}, errUnauthorized("The Basic credentials must be username:password.")
	}

	var id tierpix.Identity
	if tierpix.ValidateUsername(username) != nil {
		err = tierpix.Errorf(tierpix.ENOTFOUND, "no such user")
	} else {
		id, err = a.st.FindUser(dbContext(ctx), username)
	}
	if tierpix.ErrorCode(err) == tierpix.ENOTFOUND {
		// Pay for a hash anyway, so that an unknown username answers as slowly as a wrong
		// password and usernames cannot be told apart by timing.
		_ = bcrypt.CompareHashAndPassword(a.dummyHash, []byte(password))
		return tierpix.Identity{}, errUnauthorized(badCredentials)
	} else if err != nil {
		return tierpix.Identity{}, fmt.Errorf("find user %q: %w", username, err)
	}

	key := a.creds.key(username, password)
	if a.creds.verified(key, id.User.PasswordHash) {
		return id, nil
	}
	if err := bcrypt.CompareHashAndPassword([]byte(id.User.PasswordHash), []byte(password)); err != nil {
		if !errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) && !errors.Is(err, bcrypt.ErrPasswordTooLong) {
			a.logger.Warn("compare password hash", "username", id.User.Username, "err", err)
		}
		return tierpix.Identity{}, errUnauthorized(badCredentials)
	}
	a.creds.remember(key, id.User.Username, id.User.PasswordHash)
	return id, nil
}

// credKey identifies a username and password without holding either: a SHA-256 over a
// per-process random salt, so a memory dump does not yield a table of fast password hashes
// that outlives the process.
type credKey [sha256.Size]byte

type credEntry struct {
	hash     string // the stored bcrypt hash the password was verified against
	username string // as stored, to forget a user's entries when they change
	expires  time.Time
}

// credCache remembers Basic credentials that passed bcrypt, so that a client sending Basic
// on every request pays for one bcrypt per TTL instead of one per request.
type credCache struct {
	salt [32]byte
	ttl  time.Duration
	max  int
	now  func() time.Time

	mu      sync.Mutex
	entries map[credKey]credEntry
}

func newCredCache(ttl time.Duration, max int, now func() time.Time) (*credCache, error) {
	c := &credCache{ttl: ttl, max: max, now: now, entries: make(map[credKey]credEntry)}
	if _, err := rand.Read(c.salt[:]); err != nil {
		return nil, fmt.Errorf("api: make credential cache salt: %w", err)
	}
	return c, nil
}

func (c *credCache) key(username, password string) credKey {
	h := sha256.New()
	h.Write(c.salt[:])
	h.Write([]byte(username))
	h.Write([]byte{0})
	h.Write([]byte(password))
	var k credKey
	h.Sum(k[:0])
	return k
}

// verified reports whether the credentials of k were verified against exactly hash and that
// is recent enough to trust.
func (c *credCache) verified(k credKey, hash string) bool {
	c.mu.Lock()
	e, ok := c.entries[k]
	c.mu.Unlock()
	if !ok || !c.now().Before(e.expires) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(e.hash), []byte(hash)) == 1
}

func (c *credCache) remember(k credKey, username, hash string) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		c.evictLocked(now)
	}
	c.entries[k] = credEntry{hash: hash, username: username, expires: now.Add(c.ttl)}
}

// evictLocked makes room: expired entries first, then an arbitrary tenth of the rest (map
// order is random), so a flood of distinct credentials costs one sweep per thousand inserts
// rather than one per insert.
func (c *credCache) evictLocked(now time.Time) {
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	for k := range c.entries {
		if len(c.entries) < c.max-c.max/10 {
			break
		}
		delete(c.entries, k)
	}
}

// forget drops every entry of a user. The hash check makes stale entries harmless already;
// forgetting them on this node is about not keeping a dead password's trace for a full TTL.
func (c *credCache) forget(username string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if strings.EqualFold(e.username, username) {
			delete(c.entries, k)
		}
	}
}

// len returns the number of entries, for tests.
func (c *credCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
