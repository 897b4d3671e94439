package store

import (
	"context"

	"github.com/jmoiron/sqlx"
)

// ChangeEpoch returns the change epoch: a number that moves with every committed change to
// what FindImageForServing answers for an image that exists (see the changes table in
// migration 0003). An answer read while the epoch stood at some value stays right for as
// long as the epoch still stands there, so a cache of those answers (the origin's metadata
// cache) needs only this one read, whatever the number of images it holds. Compare epochs for
// equality only: the number means nothing else.
//
// Creating an image, a user or a tier does not move it: nothing answered before can depend on
// a row that did not exist, save a not-found answer, which a cache must keep only briefly.
//
// It is one statement on the primary key, and it is not counted by Queries: caches run it in
// the background at a fixed rate, and Queries is for proving what a request costs.
func (s *Store) ChangeEpoch(ctx context.Context) (int64, error) {
	var epoch int64
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	if err := s.db.QueryRowContext(ctx, `SELECT epoch FROM changes WHERE id = 1`).Scan(&epoch); err != nil {
		return 0, dbError(trouble(err), "read change epoch", "The change epoch")
	}
	return epoch, nil
}

// bumpEpoch moves the change epoch in tx, the transaction that makes a change ChangeEpoch
// stands for, so that the change and the new epoch are seen together or not at all: a reader
// that sees the new epoch sees the change, and one that sees the old data sees the old epoch.
//
// It must be the last statement before the commit that may wait for a lock (the audit
// entry that InTx's caller records after it waits for none). On PostgreSQL it locks the one row of the
// changes table until the commit, so every transaction that changes something queues there;
// taken last, the lock is held by a transaction that waits for nothing else, which keeps that
// queue short and free of deadlocks (a transaction holding it never waits for a lock that
// another one, waiting for it, holds).
func (s *Store) bumpEpoch(ctx context.Context, tx *sqlx.Tx) error {
	if _, err := s.exec(ctx, tx, `UPDATE changes SET epoch = epoch + 1 WHERE id = 1`); err != nil {
		return dbError(err, "move change epoch", "The change epoch")
	}
	s.moved.Store(tx, struct{}{})
	return nil
}

// OnChange registers fn to be called after every commit, through this Store, of a change that
// moves the change epoch, in the goroutine that committed it: this process's caches (the
// origin's metadata) see their own node's changes at once instead of at their next read of
// the epoch. fn must be quick and must not call the Store. Register before serving.
func (s *Store) OnChange(fn func()) {
	var fns []func()
	if cur := s.onChange.Load(); cur != nil {
		fns = append(fns, *cur...)
	}
	fns = append(fns, fn)
	s.onChange.Store(&fns)
}
