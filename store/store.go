// Package store persists users, tokens, tiers, images and web sessions in SQLite (the
// embedded default) or PostgreSQL through sqlx, and keeps the uploaded originals on disk.
//
// There is one concrete type, *Store, with one file per table (tiers.go, users.go, tokens.go,
// images.go, changes.go; sessions.go holds the web UI's sessions and its sign-in failure
// counts). SQL is
// written out in full with '?' placeholders and rebound for PostgreSQL, so both dialects run
// the same statements wherever they can. Every statement goes through the helpers in this
// file, which count statements (Queries) and translate driver errors into *tierpix.Error once:
// a missing row is ENOTFOUND, a duplicate key ECONFLICT, a dangling reference EINVALID.
//
// Times are stored as BIGINT Unix microseconds UTC in both dialects: exact, portable, and
// ordered the same way everywhere. Schema changes are embedded, numbered migrations per
// dialect, recorded in schema_migrations and applied in a transaction each; on PostgreSQL an
// advisory lock keeps several nodes starting at once from racing.
//
// The change epoch (ChangeEpoch) lets caches of FindImageForServing's answers, on any node,
// keep them until something changes: every method that can change such an answer moves it
// in the transaction that makes the change, as its last statement (DeleteImage, DeleteUser,
// ModifyUser when the tier changes, UpdateTier, ModifyTier). A method that adds
// one must do the same.
//
// Originals live at DataDir/originals/{id[0:2]}/{id} (uploads are spooled in DataDir/tmp on
// the same filesystem, so that a rename moves them into place atomically), or as objects in an
// S3 bucket read through a bounded cache on the node's disk (originals.go, bucket.go,
// origcache.go). Either way an upload's original is in place before its row is inserted, and
// a deleted row's original is removed after the commit; what a crash or an outage leaves
// behind, Sweep removes.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/jmoiron/sqlx"
	"github.com/mattn/go-sqlite3"

	"github.com/tierpix/tierpix"
)

// Dialect names returned by Dialect.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// Config says where the data lives.
type Config struct {
	// DatabaseURL: empty for SQLite at DataDir/tierpix.db; postgres:// or postgresql:// for
	// PostgreSQL (extra query parameters such as search_path pass through to pgx).
	DatabaseURL string
	// DataDir holds the SQLite database (when used), tmp/ (uploads being spooled), and
	// originals/ or, with originals in a bucket, originals-cache/.
	DataDir string
	// Originals is where uploaded originals live: empty for DataDir/originals, a directory
	// (uploads are then spooled in its .tmp, on the same filesystem), or s3://BUCKET[/PREFIX]
	// for objects PREFIX/{id} in an S3 bucket reached as S3 says, read through a cache on
	// this node's disk.
	Originals string
	// S3 says how to reach the bucket when Originals is an s3:// URL.
	S3 S3Config
	// OriginalsCacheBytes bounds the cache of originals fetched from the bucket (least
	// recently used go first); zero means DefaultOriginalsCacheBytes.
	OriginalsCacheBytes int64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Timeout bounds every statement and transaction, the wait for a connection included;
	// zero means DefaultTimeout. Past it the store answers EUNAVAILABLE (503).
	Timeout time.Duration
	// MinFreeBytes is the free space uploads must leave in the data dir (see CheckSpace);
	// zero means DefaultMinFreeBytes, negative no reserve.
	MinFreeBytes int64
	// Hooks are points where the caller may hold the store's work; nil functions are
	// skipped. Tests use them to make races deterministic.
	Hooks Hooks
}

// Hooks are the points of Config.Hooks.
type Hooks struct {
	// BeforeTempLock runs in CreateTemp between creating a temp file and locking it: the
	// moment a sweep could take the file for a dead upload's.
	BeforeTempLock func(path string)
	// AfterCopyPut runs in CopyOriginalsFrom between an original's upload and the check of
	// what the bucket holds: the moment another writer could replace the object.
	AfterCopyPut func(id string)
}

// Validate reports a configuration the store cannot open.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("store: the data directory is required")
	}
	if c.DatabaseURL != "" && !isPostgresURL(c.DatabaseURL) {
		return errors.New("store: the database URL must be empty (SQLite) or start with postgres:// or postgresql://")
	}
	if _, _, isBucket, err := ParseOriginals(c.Originals); err != nil {
		return fmt.Errorf("store: %w", err)
	} else if !isBucket && c.Originals != "" && (strings.Contains(c.Originals, "://") || !filepath.IsAbs(c.Originals)) {
		return fmt.Errorf("store: originals %q: want an absolute directory or s3://BUCKET/PREFIX", c.Originals)
	}
	if c.OriginalsCacheBytes < 0 {
		return errors.New("store: the originals cache size must not be negative")
	}
	return nil
}

func isPostgresURL(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

// Store is the one persistence type, over *sqlx.DB.
type Store struct {
	db          *sqlx.DB
	dialect     string
	now         func() time.Time
	dataDir     string
	orig        originals
	dirOrig     *dirOriginals    // orig, when the originals live in a directory
	bucket      *bucketOriginals // orig, when they live in a bucket
	tmpDir      string
	timeout     time.Duration
	minFree     int64
	ballastHeld atomic.Bool // the ballast file is in place (see ensureBallast)

	// queries counts statements run since Open; see Queries.
	queries atomic.Uint64

	// moved holds the transactions that moved the change epoch until they end; onChange is
	// called after each of them commits (see OnChange).
	moved    sync.Map // *sqlx.Tx -> struct{}
	onChange atomic.Pointer[[]func()]
	hooks    Hooks
}

//go:embed migrations
var migrationsFS embed.FS

// pgMigrationLock is the pg_advisory_lock key held while migrating ("tierpix" in ASCII), so
// that nodes starting together apply each migration once.
const pgMigrationLock = 0x7469657270697800

// Open connects, applies pending migrations (seeding the builtin tiers Basic, Premium and
// Enterprise) and creates the data directories.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{
		now:     cfg.Now,
		dataDir: cfg.DataDir,
		timeout: cfg.Timeout,
		minFree: cfg.MinFreeBytes,
		hooks:   cfg.Hooks,
		tmpDir:  filepath.Join(cfg.DataDir, "tmp"),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	switch {
	case s.minFree == 0:
		s.minFree = DefaultMinFreeBytes
	case s.minFree < 0:
		s.minFree = 0
	}
	dirs := []string{cfg.DataDir, s.tmpDir}
	if _, _, isBucket, _ := ParseOriginals(cfg.Originals); !isBucket {
		s.dirOrig = &dirOriginals{dir: filepath.Join(cfg.DataDir, "originals")}
		if cfg.Originals != "" {
			s.dirOrig.dir, s.tmpDir = cfg.Originals, filepath.Join(cfg.Originals, ".tmp")
		}
		s.orig = s.dirOrig
		dirs = append(dirs, s.dirOrig.dir, s.tmpDir)
	}
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
	}
	if s.orig == nil {
		size := cfg.OriginalsCacheBytes
		if size == 0 {
			size = DefaultOriginalsCacheBytes
		}
		cache, err := openOriginalCache(filepath.Join(cfg.DataDir, "originals-cache"), size)
		if err != nil {
			return nil, err
		}
		if s.bucket, err = openBucket(ctx, cfg.Originals, cfg.S3, cache); err != nil {
			return nil, err
		}
		s.orig = s.bucket
	}

	var err error
	if cfg.DatabaseURL == "" {
		s.dialect = DialectSQLite
		s.db, err = openSQLite(filepath.Join(cfg.DataDir, "tierpix.db"), s.timeout)
	} else {
		s.dialect = DialectPostgres
		s.db, err = openPostgres(cfg.DatabaseURL)
	}
	if err != nil {
		return nil, err
	}
	if err := s.connect(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("connect to %s: %w", s.dialect, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, ".ballast")); err == nil {
		s.ballastHeld.Store(true)
	}
	s.ensureBallast()
	return s, nil
}

// connect opens the first connection. A new SQLite file is switched to WAL by the first
// connection, which needs the file to itself: processes (or stores) opening the same new file
// at once see SQLITE_BUSY there, which the busy timeout does not cover, about once in thirty
// concurrent first opens. They try again for up to connectRetry; WAL, once set, stays.
func (s *Store) connect(ctx context.Context) error {
	deadline := time.Now().Add(connectRetry)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := s.db.PingContext(ctx)
		var se sqlite3.Error
		if err == nil || !errors.As(err, &se) || se.Code != sqlite3.ErrBusy || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// connectRetry bounds how long connect retries a busy SQLite file.
const connectRetry = 10 * time.Second

// openSQLite opens the database file with WAL (readers never wait for the writer), a busy
// timeout (writers queue instead of failing), foreign keys enforced, synchronous=NORMAL (safe
// with WAL) and BEGIN IMMEDIATE transactions, so that a transaction that will write takes the
// write lock up front instead of failing to upgrade a read lock later.
//
// SQLite's busy wait does not heed the context, so its timeout is the store's own.
func openSQLite(file string, busy time.Duration) (*sqlx.DB, error) {
	if strings.ContainsAny(file, "?#") {
		return nil, fmt.Errorf("open sqlite: the database path %q must not contain '?' or '#'", file)
	}
	dsn := file + fmt.Sprintf("?_journal_mode=WAL&_busy_timeout=%d&_foreign_keys=on&_synchronous=NORMAL&_txlock=immediate", busy.Milliseconds())
	db, err := sqlx.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	// SQLite has one writer at a time; a few connections let reads proceed alongside it
	// without piling up writers that would only wait on the busy timeout.
	n := max(4, runtime.NumCPU())
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	return db, nil
}

// openPostgres opens a pgx pool. Extra URL parameters (search_path, application_name, ...)
// are passed through by pgx as runtime parameters.
func openPostgres(url string) (*sqlx.DB, error) {
	db, err := sqlx.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	// Enough connections for concurrent requests of one node while leaving room for other
	// nodes under PostgreSQL's default max_connections of 100.
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(10)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(time.Hour)
	return db, nil
}

// Close closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	return nil
}

// Dialect returns "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

// Ping checks the database connection.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s: %w", s.dialect, trouble(err))
	}
	return nil
}

// Queries returns how many statements the store has run since Open, migrations included, but
// not the reads of ChangeEpoch, which origins run in the background whatever the traffic.
// Tests use it to prove that a request costs a constant number of queries.
func (s *Store) Queries() uint64 { return s.queries.Load() }

// migration is one numbered file of a dialect's migrations.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the dialect's migrations, named NNNN_description.sql, in order.
func loadMigrations(dialect string) ([]migration, error) {
	dir := path.Join("migrations", dialect)
	entries, err := fs.ReadDir(migrationsFS, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || version <= 0 {
			return nil, fmt.Errorf("migration %s: the name must start with a positive number and '_'", e.Name())
		}
		body, err := fs.ReadFile(migrationsFS, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: version, name: e.Name(), sql: string(body)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	return ms, nil
}

// migrate applies pending migrations on one connection. On PostgreSQL it holds an advisory
// lock for the duration; on SQLite each migration's BEGIN IMMEDIATE serializes migrators, and
// the applied check inside the transaction makes a second migrator skip what the first did.
func (s *Store) migrate(ctx context.Context) (err error) {
	// A migration may rebuild a large table, and nodes wait for one another's on the lock:
	// neither is a request to bound.
	ctx = unbounded(ctx)
	ms, err := loadMigrations(s.dialect)
	if err != nil {
		return err
	}
	conn, err := s.db.Connx(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()

	if s.dialect == DialectPostgres {
		if _, err := s.exec(ctx, conn, `SELECT pg_advisory_lock(?)`, int64(pgMigrationLock)); err != nil {
			return fmt.Errorf("migrate: take lock: %w", err)
		}
		defer func() {
			// A fresh context: the unlock must happen even when ctx is done, or the lock
			// would stay with the pooled connection.
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if _, uerr := s.exec(uctx, conn, `SELECT pg_advisory_unlock(?)`, int64(pgMigrationLock)); uerr != nil {
				err = errors.Join(err, fmt.Errorf("migrate: release lock: %w", uerr))
			}
		}()
	}

	if _, err := s.exec(ctx, conn, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT   NOT NULL,
		applied_at BIGINT NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}

	for _, m := range ms {
		if err := s.applyMigration(ctx, conn, m); err != nil {
			return fmt.Errorf("migrate: %s: %w", m.name, err)
		}
	}
	return nil
}

// applyMigration runs one migration and records it, in one transaction, unless it is
// already recorded.
func (s *Store) applyMigration(ctx context.Context, conn *sqlx.Conn, m migration) error {
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()

	var applied int
	if err := s.get(ctx, tx, &applied, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.version); err != nil {
		return err
	}
	if applied > 0 {
		return nil
	}
	// Without arguments both drivers run the whole file, several statements at once.
	if _, err := s.exec(ctx, tx, m.sql); err != nil {
		return err
	}
	if _, err := s.exec(ctx, tx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, s.now().UnixMicro()); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// queryer is what the statement helpers run on: the pool, a transaction or a connection.
type queryer interface {
	GetContext(ctx context.Context, dest any, query string, args ...any) error
	SelectContext(ctx context.Context, dest any, query string, args ...any) error
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// get runs a query for one row into dest. Every statement of the store but ChangeEpoch's
// goes through get, sel or exec, which count it and rebind '?' placeholders for the dialect.
func (s *Store) get(ctx context.Context, q queryer, dest any, query string, args ...any) error {
	s.queries.Add(1)
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	return trouble(q.GetContext(ctx, dest, s.db.Rebind(query), args...))
}

// sel runs a query for any number of rows into the slice dest.
func (s *Store) sel(ctx context.Context, q queryer, dest any, query string, args ...any) error {
	s.queries.Add(1)
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	return trouble(q.SelectContext(ctx, dest, s.db.Rebind(query), args...))
}

// exec runs a statement that returns no rows.
func (s *Store) exec(ctx context.Context, q queryer, query string, args ...any) (sql.Result, error) {
	s.queries.Add(1)
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	res, err := q.ExecContext(ctx, s.db.Rebind(query), args...)
	return res, trouble(err)
}

// txState is the transaction a context carries (see InTx): the store calls made with that
// context run in it, and what must wait for its end waits here.
type txState struct {
	tx          *sqlx.Tx
	afterCommit []func() error // file removals, once the rows that pointed at the files are gone
	onRollback  []func()       // removals of files put in place for rows that never came
	freesSpace  bool           // a delete ran: worth a second try without the ballast
}

type txKey struct{}

func txFrom(ctx context.Context) *txState {
	st, _ := ctx.Value(txKey{}).(*txState)
	return st
}

// q is what a statement runs on: the transaction ctx carries, or the pool.
func (s *Store) q(ctx context.Context) queryer {
	if st := txFrom(ctx); st != nil {
		return st.tx
	}
	return s.db
}

// afterCommit runs fn once the transaction ctx carries commits, or at once outside one.
func afterCommit(ctx context.Context, fn func() error) error {
	if st := txFrom(ctx); st != nil {
		st.afterCommit = append(st.afterCommit, fn)
		return nil
	}
	return fn()
}

// onRollback runs fn if the transaction ctx carries ends without a commit.
func onRollback(ctx context.Context, fn func()) {
	if st := txFrom(ctx); st != nil {
		st.onRollback = append(st.onRollback, fn)
	}
}

// InTx runs fn in one transaction that every store call fn makes with the context it is
// given joins, committing if fn returns nil: the services change something and record the
// change in the audit log together or not at all. Files follow the transaction: an original
// put in place is removed if it rolls back, and originals of deleted rows are removed only
// after the commit (an error wrapping ErrOriginalKept then reports one that stayed). A
// transaction that deleted something and failed for want of space is tried once more after
// the store gives back its ballast file: deleting is how space is freed.
//
// fn should be quick and must not wait for anything but the store; on PostgreSQL the
// transaction holds its locks until it ends. Calls made with the outer context, not fn's,
// run outside the transaction.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	if txFrom(ctx) != nil {
		return fn(ctx)
	}
	err := s.runTx(ctx, fn)
	if tierpix.ErrorCode(err) == tierpix.ESTORAGE && errors.Is(err, errFreesSpace) && s.releaseBallast() {
		err = s.runTx(ctx, fn)
	}
	return err
}

// errFreesSpace marks the failure of a transaction that deleted something.
var errFreesSpace = errors.New("the transaction frees space")

// runTx is one attempt of InTx.
func (s *Store) runTx(ctx context.Context, fn func(ctx context.Context) error) error {
	st := &txState{}
	err := s.tx(context.WithValue(ctx, txKey{}, st), func(tx *sqlx.Tx) error {
		st.tx = tx
		return fn(context.WithValue(ctx, txKey{}, st))
	})
	if err != nil {
		for _, undo := range st.onRollback {
			undo()
		}
		if st.freesSpace {
			err = fmt.Errorf("%w (%w)", err, errFreesSpace)
		}
		return err
	}
	var errs []error
	for _, fn := range st.afterCommit {
		errs = append(errs, fn())
	}
	return errors.Join(errs...)
}

// tx runs fn in a transaction, committing if fn returns nil, or within the transaction ctx
// carries (see InTx), whose end commits. On SQLite the transaction starts with BEGIN
// IMMEDIATE (see openSQLite), so read-then-write transactions do not deadlock.
//
// The transaction as a whole is bounded by the store's timeout (a transaction holds a
// connection, and on PostgreSQL locks, for as long as it lives).
func (s *Store) tx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	if st := txFrom(ctx); st != nil && st.tx != nil {
		return fn(st.tx)
	}
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", trouble(err))
	}
	defer tx.Rollback()
	defer s.moved.Delete(tx)
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", trouble(err))
	}
	if _, ok := s.moved.Load(tx); ok {
		if fns := s.onChange.Load(); fns != nil {
			for _, fn := range *fns {
				fn()
			}
		}
	}
	return nil
}

// rowsAffected returns how many rows a statement changed, for the deletes that report a count.
func rowsAffected(res sql.Result, op string) (int, error) {
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	return int(n), nil
}

// dbError translates a database error once for every statement of the store: no row is
// ENOTFOUND, a unique violation ECONFLICT and a foreign-key violation EINVALID, each with a
// client-safe message about subject (a sentence's subject such as `The tier "Gold"`). Errors
// that already are *tierpix.Error pass through; anything else is internal and is wrapped with
// op, a lowercase description of what failed.
func dbError(err error, op, subject string) error {
	if err == nil {
		return nil
	}
	var e *tierpix.Error
	switch {
	case errors.As(err, &e):
		return err
	case errors.Is(err, sql.ErrNoRows):
		return tierpix.Errorf(tierpix.ENOTFOUND, "%s was not found.", subject)
	case isUniqueViolation(err):
		return tierpix.Errorf(tierpix.ECONFLICT, "%s already exists.", subject)
	case isForeignKeyViolation(err):
		return tierpix.Errorf(tierpix.EINVALID, "%s refers to a record that does not exist.", subject)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func isForeignKeyViolation(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintForeignKey
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503"
}

// fromMicros converts a stored time back, in UTC.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// nowMicros returns the store clock's time truncated to what the database keeps, so that
// the value set on a struct equals the value later read back.
func (s *Store) nowMicros() (time.Time, int64) {
	us := s.now().UnixMicro()
	return fromMicros(us), us
}
