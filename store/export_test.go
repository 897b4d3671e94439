package store

import (
	"github.com/jmoiron/sqlx"

	"github.com/tierpix/tierpix"
)

// Test-only access to internals, for tests in package store_test (which cannot be in package
// store: they use storetest, which imports store).

// DB returns the store's database handle, so tests can inspect what is stored.
func DB(s *Store) *sqlx.DB { return s.db }

// ListImagesQuery is the statement ListImages runs, so tests can check its plan.
const ListImagesQuery = listImagesQuery

// ListAllImagesQuery and ListOwnerImagesQuery are the statements of ListAllImages without and
// with an owner, so tests can check their plans.
const (
	ListAllImagesQuery   = listAllImagesQuery
	ListOwnerImagesQuery = listOwnerImagesQuery
)

// Migrations returns how many migrations the store's dialect has, all of which Open applies.
func Migrations(t interface{ Fatalf(string, ...any) }, s *Store) int {
	ms, err := loadMigrations(s.dialect)
	if err != nil {
		t.Fatalf("load migrations: %v", err)
	}
	return len(ms)
}

// UserPageQuery is the statement ListUsers runs for a page of q read forwards (or backwards
// when reverse is set) from the cursor's key, so tests can check its plan.
func UserPageQuery(q tierpix.UserQuery, key *tierpix.UserKey, reverse bool) (string, []any) {
	return newUserList(&q).page(q.Desc != reverse, key, q.Limit+1)
}
