package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
	"golang.org/x/sys/unix"

	"github.com/tierpix/tierpix"
)

// DefaultTimeout bounds every statement and transaction of the store, waiting for a pooled
// connection or a new one included, when Config.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// unavailableRetryAfter is the Retry-After of an answer refused because the database was
// unreachable or too slow.
const unavailableRetryAfter = 2 * time.Second

// DefaultMinFreeBytes is the free space below which uploads are refused (507), when
// Config.MinFreeBytes is zero.
const DefaultMinFreeBytes = 512 << 20

// bounded returns ctx with the store's deadline, unless ctx has a sooner one or is unbounded.
func (s *Store) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= s.timeout {
		return ctx, func() {}
	}
	if ctx.Value(unboundedKey{}) != nil {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.timeout)
}

type unboundedKey struct{}

// unbounded marks ctx as exempt from the store's timeout (migrations).
func unbounded(ctx context.Context) context.Context {
	return context.WithValue(ctx, unboundedKey{}, true)
}

// trouble translates the errors of a database that is unreachable, too slow, locked or out
// of space into the client errors they stand for (503 with Retry-After, 507), keeping the
// cause for the log; every other error passes unchanged. Every statement of the store goes
// through it once (get, sel, exec, tx, ChangeEpoch, Ping).
func trouble(err error) error {
	if err == nil {
		return nil
	}
	var e *tierpix.Error
	if errors.As(err, &e) {
		return err
	}
	switch {
	case isFull(err):
		return fmt.Errorf("%w (%w)", tierpix.Errorf(tierpix.ESTORAGE, "The server's disk is full."), err)
	case isUnavailable(err):
		return fmt.Errorf("%w (%w)", tierpix.Unavailable(unavailableRetryAfter, "The database is unavailable; try again shortly."), err)
	}
	return err
}

// isUnavailable reports whether err says the database could not be reached or did not answer
// in time, rather than that a statement was wrong: worth a retry later.
func isUnavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || pgconn.Timeout(err) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// 08: connection exceptions; 53: insufficient resources (too many connections);
		// 57P01-57P03: the server is shutting down or starting; 57014: statement timeout.
		c := pe.Code
		return len(c) == 5 && (c[:2] == "08" || c[:2] == "53" || c == "57P01" || c == "57P02" || c == "57P03" || c == "57014")
	}
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrBusy, sqlite3.ErrLocked, sqlite3.ErrIoErr, sqlite3.ErrCantOpen, sqlite3.ErrInterrupt:
			return true
		}
	}
	return false
}

// isFull reports whether err says the disk (or the quota) is full.
func isFull(err error) bool {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	var se sqlite3.Error
	if errors.As(err, &se) && se.Code == sqlite3.ErrFull {
		return true
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "53100" // disk_full
}

// errDiskFull is the error of an upload refused because the data dir is (nearly) full.
func errDiskFull() error {
	return &tierpix.Error{Code: tierpix.ESTORAGE, Message: "The server is short of disk space; the upload was not stored. Try again later.", RetryAfter: time.Minute}
}

// FreeBytes returns the space available to the process in the data dir.
func (s *Store) FreeBytes() (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(s.dataDir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", s.dataDir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// ballastSize is the size of the ballast file the store keeps in the data dir (.ballast):
// space it gives back when a delete fails because something else filled the disk to the last
// byte, so that the delete, which frees space, can go through.
const ballastSize = 4 << 20

// ensureBallast creates the ballast file when it is missing and the disk has room for it
// beyond the reserve. Best effort: without it, only deletes on a disk full to the last byte
// fail (507).
func (s *Store) ensureBallast() {
	if s.ballastHeld.Load() {
		return
	}
	free, err := s.FreeBytes()
	if err != nil || free < s.minFree+2*ballastSize {
		return
	}
	path := filepath.Join(s.dataDir, ".ballast")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	if unix.Fallocate(int(f.Fd()), 0, 0, ballastSize) == nil {
		s.ballastHeld.Store(true)
	}
}

// releaseBallast removes the ballast file, and reports whether there was one to give back.
func (s *Store) releaseBallast() bool {
	if !s.ballastHeld.Swap(false) {
		return false
	}
	return os.Remove(filepath.Join(s.dataDir, ".ballast")) == nil
}

// CheckSpace refuses (ESTORAGE, 507) to take n more bytes in the data dir when that would
// leave less than the reserve, Config.MinFreeBytes: the reserve keeps room for the database,
// so that deletes, which free space, keep working when uploads no longer can.
func (s *Store) CheckSpace(n int64) error {
	free, err := s.FreeBytes()
	if err != nil {
		return err
	}
	if free-n < s.minFree {
		return errDiskFull()
	}
	s.ensureBallast()
	return nil
}

// LowOnSpace reports whether the data dir has less free space than the reserve: the render
// cache stops writing then, so that it cannot eat the room uploads and the database need.
func (s *Store) LowOnSpace() bool {
	return s.CheckSpace(0) != nil
}

// FileError translates an error writing a file into the data dir: ENOSPC and EDQUOT become
// ESTORAGE (507), anything else is wrapped with op. The API's spooling of an upload uses it
// too, so that a full disk is a 507 wherever it is met.
func FileError(err error, op string) error {
	if isFull(err) {
		return fmt.Errorf("%w (%s: %w)", errDiskFull(), op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
