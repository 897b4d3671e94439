// Package storetest opens real stores for tests: a fresh SQLite file, or a fresh schema in
// the PostgreSQL named by TEST_DATABASE_URL, each cleaned up when the test ends. Each runs a
// test against both, so every package that touches the store is tested on both dialects.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/store"
)

// EnvDatabaseURL names the variable holding the PostgreSQL URL that tests create schemas in.
const EnvDatabaseURL = "TEST_DATABASE_URL"

// Option changes the configuration of a store under test.
type Option func(*store.Config)

// WithNow gives the store a clock, such as a Clock's Now, so that tests of expiry can move
// time instead of sleeping.
func WithNow(now func() time.Time) Option {
	return func(c *store.Config) { c.Now = now }
}

// WithHooks gives the store hooks (see store.Hooks).
func WithHooks(h store.Hooks) Option {
	return func(c *store.Config) { c.Hooks = h }
}

// Clock is a clock that moves only when told. It is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// ClockStart is where NewClock starts: a fixed instant with no sub-microsecond part, so that
// the times a store keeps (in microseconds) equal the clock's.
var ClockStart = time.Date(2030, time.January, 2, 3, 4, 5, 0, time.UTC)

// NewClock returns a Clock at ClockStart.
func NewClock() *Clock { return &Clock{now: ClockStart} }

// NewClockAt returns a Clock at start: time.Now() for a test whose files or objects get the
// real time from elsewhere (an S3 server's LastModified) and whose store's clock must then move
// past it.
func NewClockAt(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock by d (backwards if d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// SQLite opens a store on a fresh SQLite file in a temporary data directory, closed when the
// test ends.
func SQLite(t testing.TB, opts ...Option) *store.Store {
	t.Helper()
	return open(t, store.Config{DataDir: t.TempDir()}, opts)
}

// Postgres opens a store in a fresh schema of the database at TEST_DATABASE_URL, dropped with
// everything in it when the test ends. Without TEST_DATABASE_URL the test is skipped, except
// in CI (CI=true), where it fails: the PostgreSQL suite must never be skipped silently there.
func Postgres(t testing.TB, opts ...Option) *store.Store {
	t.Helper()
	dbURL := PostgresURL(t)
	schema := createSchema(t, dbURL)
	u, err := WithSearchPath(dbURL, schema)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	return open(t, store.Config{DatabaseURL: u, DataDir: t.TempDir()}, opts)
}

// PostgresURL returns TEST_DATABASE_URL, skipping the test (failing it in CI) when unset.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvDatabaseURL)
	if u != "" {
		return u
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("storetest: %s is not set; CI must run the PostgreSQL tests", EnvDatabaseURL)
	}
	t.Skipf("storetest: %s is not set; run `make test` to run the PostgreSQL tests against a throwaway cluster, or set it to a postgres:// URL", EnvDatabaseURL)
	return ""
}

// NewSchema creates a fresh, randomly named schema in the database at dbURL, dropped with
// everything in it when the test ends, and returns the URL of a connection that uses it.
// Tests that open the store themselves (several nodes on one database, a binary under test)
// use it with PostgresURL.
func NewSchema(t testing.TB, dbURL string) string {
	t.Helper()
	schema := createSchema(t, dbURL)
	u, err := WithSearchPath(dbURL, schema)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	return u
}

// createSchema creates tpx_test_<random> over a plain connection and registers its drop.
func createSchema(t testing.TB, dbURL string) string {
	t.Helper()
	b := make([]byte, 8)
	rand.Read(b)
	schema := "tpx_test_" + hex.EncodeToString(b)

	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatalf("storetest: open %s: %v", EnvDatabaseURL, err)
	}
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		db.Close()
		t.Fatalf("storetest: create schema %s: %v", schema, err)
	}
	// Registered before the store's Close, so it runs after it (cleanups run last first).
	t.Cleanup(func() {
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("storetest: drop schema %s: %v", schema, err)
		}
	})
	return schema
}

// WithSearchPath returns dbURL with search_path set to schema, which pgx passes to the server
// as a runtime parameter. It accepts URLs (postgres://...) and key=value connection strings.
func WithSearchPath(dbURL, schema string) (string, error) {
	if !strings.HasPrefix(dbURL, "postgres://") && !strings.HasPrefix(dbURL, "postgresql://") {
		return dbURL + " search_path=" + schema, nil
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func open(t testing.TB, cfg store.Config, opts []Option) *store.Store {
	t.Helper()
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("storetest: open store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("storetest: close store: %v", err)
		}
	})
	return s
}

// Each runs fn as the subtests "sqlite" and "postgres", each with a fresh store.
func Each(t *testing.T, fn func(t *testing.T, s *store.Store), opts ...Option) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t, opts...)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t, opts...)) })
}

// EachClock is Each with a fresh Clock for each store, which fn moves to test expiry.
func EachClock(t *testing.T, fn func(t *testing.T, s *store.Store, c *Clock)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		c := NewClock()
		fn(t, SQLite(t, WithNow(c.Now)), c)
	})
	t.Run("postgres", func(t *testing.T) {
		c := NewClock()
		fn(t, Postgres(t, WithNow(c.Now)), c)
	})
}

// EachPair runs fn as the subtests "sqlite" and "postgres", each with two stores open on one
// fresh database and one data directory, as two nodes sharing them would have: what one
// changes, the other reads.
func EachPair(t *testing.T, fn func(t *testing.T, a, b *store.Store), opts ...Option) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		cfg := store.Config{DataDir: t.TempDir()}
		fn(t, open(t, cfg, opts), open(t, cfg, opts))
	})
	t.Run("postgres", func(t *testing.T) {
		cfg := store.Config{DatabaseURL: NewSchema(t, PostgresURL(t)), DataDir: t.TempDir()}
		fn(t, open(t, cfg, opts), open(t, cfg, opts))
	})
}

// UpdateTier sets the heights and flags of the tier named t.Name to t's through ModifyTier,
// the store's one way to change a tier, and sets t to what was stored.
func UpdateTier(ctx context.Context, s *store.Store, t *tierpix.Tier) error {
	got, err := s.ModifyTier(ctx, t.Name, func(cur *tierpix.Tier) error {
		cur.ThumbnailHeights, cur.OriginalLink, cur.ExpiringLinks = t.ThumbnailHeights, t.OriginalLink, t.ExpiringLinks
		return nil
	})
	if err == nil {
		*t = got
	}
	return err
}
