package signin

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"time"
)

// memoKey identifies a username, password and client address without holding the password: a
// SHA-256 over a per-process random salt, so a memory dump does not yield a table of fast
// password hashes that outlives the process.
type memoKey [sha256.Size]byte

type memoEntry struct {
	hash     string // the stored bcrypt hash the password was verified against
	username string // as stored, to forget a user's entries when they change
	expires  time.Time
}

// memo remembers passwords that passed bcrypt, per client address, so that a client sending
// Basic credentials on every request pays for one bcrypt per TTL instead of one per request.
// The address is part of the key so that a hit is never a shortcut for a guesser elsewhere.
type memo struct {
	salt [32]byte
	ttl  time.Duration
	max  int
	now  func() time.Time

	mu      sync.Mutex
	entries map[memoKey]memoEntry
}

func newMemo(ttl time.Duration, max int, now func() time.Time) (*memo, error) {
	m := &memo{ttl: ttl, max: max, now: now, entries: make(map[memoKey]memoEntry)}
	if _, err := rand.Read(m.salt[:]); err != nil {
		return nil, fmt.Errorf("signin: make memo salt: %w", err)
	}
	return m, nil
}

func (m *memo) key(username, password, addr string) memoKey {
	h := sha256.New()
	h.Write(m.salt[:])
	h.Write([]byte(username))
	h.Write([]byte{0})
	h.Write([]byte(addr))
	h.Write([]byte{0})
	h.Write([]byte(password))
	var k memoKey
	h.Sum(k[:0])
	return k
}

// lookup returns the hash k's password was verified against, if that is recent enough to
// trust.
func (m *memo) lookup(k memoKey) (hash string, ok bool) {
	m.mu.Lock()
	e, ok := m.entries[k]
	m.mu.Unlock()
	if !ok || !m.now().Before(e.expires) {
		return "", false
	}
	return e.hash, true
}

func (m *memo) remember(k memoKey, username, hash string) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.entries[k]; !ok && len(m.entries) >= m.max {
		m.evictLocked(now)
	}
	m.entries[k] = memoEntry{hash: hash, username: username, expires: now.Add(m.ttl)}
}

// evictLocked makes room: expired entries first, then an arbitrary tenth of the rest (map
// order is random), so a flood of distinct credentials costs one sweep per thousand inserts
// rather than one per insert.
func (m *memo) evictLocked(now time.Time) {
	for k, e := range m.entries {
		if !now.Before(e.expires) {
			delete(m.entries, k)
		}
	}
	for k := range m.entries {
		if len(m.entries) < m.max-m.max/10 {
			break
		}
		delete(m.entries, k)
	}
}

// forget drops every entry of a user.
func (m *memo) forget(username string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, e := range m.entries {
		if strings.EqualFold(e.username, username) {
			delete(m.entries, k)
		}
	}
}

// len returns the number of entries.
func (m *memo) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}
