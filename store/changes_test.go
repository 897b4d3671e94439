package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
)

func changeEpoch(t *testing.T, s *store.Store) int64 {
	t.Helper()
	e, err := s.ChangeEpoch(t.Context())
	if err != nil {
		t.Fatalf("ChangeEpoch: got error %v, want nil", err)
	}
	return e
}

// TestChangeEpoch runs every kind of call against the store and checks which move the change
// epoch: exactly those that commit a change to what FindImageForServing answers for an image
// that exists. Reads, creations and refused or failed changes leave it where it was.
func TestChangeEpoch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		root := tierpix.User{Username: "root", PasswordHash: "h", TierName: "Basic", IsAdmin: true}
		mustOK(t, s.CreateUser(ctx, &root))
		alice := createUser(t, s, "alice", "Basic")
		bob := createUser(t, s, "bob", "Basic")
		mustOK(t, s.CreateTier(ctx, &tierpix.Tier{Name: "Gold", ThumbnailHeights: []int{100}}))
		img := createImage(t, s, alice.ID, "a.png")
		img2 := createImage(t, s, alice.ID, "b.png")
		doomed := createUser(t, s, "doomed", "Gold")
		createImage(t, s, doomed.ID, "d.png")
		createUser(t, s, "empty", "Basic")
		errRefused := errors.New("refused by fn")

		tests := []struct {
			name string
			run  func() error
			code string // the error code the call must fail with; "" for success
			move bool
		}{
			// Reads.
			{name: "FindImageForServing", run: func() error { _, _, err := s.FindImageForServing(ctx, img.ID); return err }},
			{name: "FindImage", run: func() error { _, err := s.FindImage(ctx, img.ID); return err }},
			{name: "FindUser", run: func() error { _, err := s.FindUser(ctx, "alice"); return err }},
			{name: "ListTiers", run: func() error { _, err := s.ListTiers(ctx); return err }},
			{name: "ListImages", run: func() error { _, err := s.ListImages(ctx, alice.ID, 0, 20); return err }},
			{name: "ChangeEpoch", run: func() error { _, err := s.ChangeEpoch(ctx); return err }},

			// Creations: no answer given before can depend on them (see ChangeEpoch).
			{name: "CreateTier", run: func() error {
				return s.CreateTier(ctx, &tierpix.Tier{Name: "Silver", ThumbnailHeights: []int{150}})
			}},
			{name: "CreateUser", run: func() error {
				return s.CreateUser(ctx, &tierpix.User{Username: "carol", PasswordHash: "h", TierName: "Basic"})
			}},
			{name: "CreateImage", run: func() error {
				i := tierpix.Image{OwnerID: bob.ID, Name: "c.png", Format: tierpix.FormatPNG, Width: 3, Height: 2}
				return s.CreateImage(ctx, &i, writeTemp(t, s, "c"))
			}},
			{name: "CreateToken", run: func() error { _, _, err := s.CreateToken(ctx, alice.ID); return err }},
			{name: "CreateSession", run: func() error {
				_, _, err := s.CreateSession(ctx, alice.ID, time.Hour, "test", "127.0.0.1")
				return err
			}},

			// Refused or failed changes.
			{name: "DeleteImage of another owner", code: tierpix.ENOTFOUND, run: func() error { return s.DeleteImage(ctx, bob.ID, img.ID) }},
			{name: "DeleteImage unknown", code: tierpix.ENOTFOUND, run: func() error {
				return s.DeleteImage(ctx, alice.ID, "aaaaaaaaaaaaaaaaaaaaaaaa")
			}},
			{name: "DeleteUser unknown", code: tierpix.ENOTFOUND, run: func() error { _, err := s.DeleteUser(ctx, "ghost"); return err }},
			{name: "DeleteUser last admin", code: tierpix.ECONFLICT, run: func() error { _, err := s.DeleteUser(ctx, "root"); return err }},
			{name: "UpdateUser to unknown tier", code: tierpix.EINVALID, run: func() error {
				u := alice
				u.TierName = "Platinum"
				return updateUser(ctx, s, &u)
			}},
			{name: "UpdateUser demoting the last admin", code: tierpix.ECONFLICT, run: func() error {
				u := root
				u.IsAdmin = false
				u.TierName = "Gold"
				return updateUser(ctx, s, &u)
			}},
			{name: "UpdateUser unknown", code: tierpix.ENOTFOUND, run: func() error {
				return updateUser(ctx, s, &tierpix.User{ID: 999999, PasswordHash: "h", TierName: "Gold"})
			}},
			{name: "ModifyUser refused by fn", code: tierpix.EINTERNAL, run: func() error {
				_, err := s.ModifyUser(ctx, "alice", func(u *tierpix.User) error {
					u.TierName = "Gold"
					return errRefused
				})
				return err
			}},
			{name: "ModifyUser to unknown tier", code: tierpix.EINVALID, run: func() error {
				_, err := s.ModifyUser(ctx, "alice", func(u *tierpix.User) error { u.TierName = "Platinum"; return nil })
				return err
			}},
			{name: "ModifyUser demoting the last admin", code: tierpix.ECONFLICT, run: func() error {
				_, err := s.ModifyUser(ctx, "root", func(u *tierpix.User) error { u.IsAdmin = false; u.TierName = "Gold"; return nil })
				return err
			}},
			{name: "UpdateTier invalid", code: tierpix.EINVALID, run: func() error {
				return storetest.UpdateTier(ctx, s, &tierpix.Tier{Name: "Gold", ThumbnailHeights: []int{tierpix.MaxThumbnailHeight + 1}})
			}},
			{name: "UpdateTier unknown", code: tierpix.ENOTFOUND, run: func() error {
				return storetest.UpdateTier(ctx, s, &tierpix.Tier{Name: "Platinum", ThumbnailHeights: []int{100}})
			}},
			{name: "ModifyTier refused by fn", code: tierpix.EINTERNAL, run: func() error {
				_, err := s.ModifyTier(ctx, "Gold", func(t *tierpix.Tier) error {
					t.ThumbnailHeights = []int{300}
					return errRefused
				})
				return err
			}},
			{name: "DeleteTier in use", code: tierpix.ECONFLICT, run: func() error { return s.DeleteTier(ctx, "Gold") }},

			// Changes that leave every answer as it was.
			{name: "ModifyUser keeping the tier", run: func() error {
				_, err := s.ModifyUser(ctx, "alice", func(u *tierpix.User) error {
					u.PasswordHash = "another hash"
					u.TierName = "BASIC" // the same tier, spelt otherwise
					return nil
				})
				return err
			}},
			{name: "DeleteTier unused", run: func() error { return s.DeleteTier(ctx, "silver") }},
			{name: "Sweep removing an orphan", run: func() error {
				p := s.OriginalPath("zzzzzzzzzzzzzzzzzzzzzzzz")
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(p, []byte("orphan"), 0o644); err != nil {
					return err
				}
				old := time.Now().Add(-2 * time.Hour)
				if err := os.Chtimes(p, old, old); err != nil {
					return err
				}
				res, err := s.Sweep(ctx, time.Hour)
				if err == nil && res.Orphans != 1 {
					return fmt.Errorf("swept %+v, want 1 orphan", res)
				}
				return err
			}},

			// Changes.
			{name: "DeleteImage", move: true, run: func() error { return s.DeleteImage(ctx, alice.ID, img.ID) }},
			{name: "UpdateUser to another tier", move: true, run: func() error {
				alice.TierName = "Premium"
				return updateUser(ctx, s, &alice)
			}},
			{name: "ModifyUser to another tier", move: true, run: func() error {
				_, err := s.ModifyUser(ctx, "alice", func(u *tierpix.User) error { u.TierName = "gold"; return nil })
				return err
			}},
			{name: "UpdateTier", move: true, run: func() error {
				return storetest.UpdateTier(ctx, s, &tierpix.Tier{Name: "gold", ThumbnailHeights: []int{100, 200}})
			}},
			{name: "ModifyTier", move: true, run: func() error {
				_, err := s.ModifyTier(ctx, "Gold", func(t *tierpix.Tier) error { t.OriginalLink = true; return nil })
				return err
			}},
			{name: "DeleteUser with images", move: true, run: func() error { _, err := s.DeleteUser(ctx, "doomed"); return err }},
			{name: "DeleteUser without images", move: true, run: func() error { _, err := s.DeleteUser(ctx, "empty"); return err }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := changeEpoch(t, s)
				err := tt.run()
				if tt.code == "" {
					mustOK(t, err)
				} else {
					wantCode(t, err, tt.code)
				}
				after := changeEpoch(t, s)
				if moved := after != before; moved != tt.move {
					t.Errorf("got epoch %d -> %d (moved %v), want moved %v", before, after, moved, tt.move)
				}
			})
		}

		// What the moves stood for is what FindImageForServing now answers.
		_, tier, err := s.FindImageForServing(ctx, img2.ID)
		mustOK(t, err)
		if tier.Name != "Gold" || !tier.OriginalLink || len(tier.ThumbnailHeights) != 2 {
			t.Errorf("got tier %+v, want Gold [100 200] with the original", tier)
		}
		_, _, err = s.FindImageForServing(ctx, img.ID)
		wantCode(t, err, tierpix.ENOTFOUND)
	})
}

// TestChangeEpochConcurrent makes changes from several goroutines at once, tier edits, user
// moves and deletes interleaved: none may deadlock or fail, and the epoch must move exactly
// once per change, none lost.
func TestChangeEpochConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		const workers, rounds = 4, 8
		var users []tierpix.User
		var images [][]tierpix.Image
		for w := range workers {
			tier := fmt.Sprintf("T%d", w)
			mustOK(t, s.CreateTier(ctx, &tierpix.Tier{Name: tier, ThumbnailHeights: []int{100}}))
			u := createUser(t, s, fmt.Sprintf("u%d", w), tier)
			users = append(users, u)
			var imgs []tierpix.Image
			for i := range rounds {
				imgs = append(imgs, createImage(t, s, u.ID, fmt.Sprintf("%d.png", i)))
			}
			images = append(images, imgs)
		}
		before := changeEpoch(t, s)

		var wg sync.WaitGroup
		errs := make(chan error, workers*rounds*3)
		for w := range workers {
			wg.Go(func() {
				other := fmt.Sprintf("T%d", (w+1)%workers)
				for i := range rounds {
					// The next worker's tier, which that worker edits meanwhile.
					if err := storetest.UpdateTier(ctx, s, &tierpix.Tier{Name: other, ThumbnailHeights: []int{100, 100 + i}}); err != nil {
						errs <- fmt.Errorf("UpdateTier: %w", err)
					}
					tier := fmt.Sprintf("T%d", (w+i)%workers)
					if _, err := s.ModifyUser(ctx, users[w].Username, func(u *tierpix.User) error {
						if u.TierName == tier {
							tier = fmt.Sprintf("T%d", (w+i+1)%workers)
						}
						u.TierName = tier
						return nil
					}); err != nil {
						errs <- fmt.Errorf("ModifyUser: %w", err)
					}
					if err := s.DeleteImage(ctx, users[w].ID, images[w][i].ID); err != nil {
						errs <- fmt.Errorf("DeleteImage: %w", err)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if got, want := changeEpoch(t, s)-before, int64(workers*rounds*3); got != want {
			t.Errorf("got the epoch moved %d times, want %d", got, want)
		}
	})
}

// TestChangesMigration applies migration 0003 to a database that has only 0001 and 0002 (made
// by removing what 0003 added), with data in it: the data stays and the epoch works.
func TestChangesMigration(t *testing.T) {
	tests := []struct {
		name   string
		config func(t *testing.T) store.Config
	}{
		{name: "sqlite", config: func(t *testing.T) store.Config { return store.Config{DataDir: t.TempDir()} }},
		{name: "postgres", config: func(t *testing.T) store.Config {
			return store.Config{DatabaseURL: storetest.NewSchema(t, storetest.PostgresURL(t)), DataDir: t.TempDir()}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.config(t)
			open := func() *store.Store {
				t.Helper()
				s, err := store.Open(context.Background(), cfg)
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
			s := open()
			alice := createUser(t, s, "alice", "Premium")
			img := createImage(t, s, alice.ID, "a.png")
			db := store.DB(s)
			_, err := db.ExecContext(t.Context(), `DROP TABLE changes`)
			mustOK(t, err)
			_, err = db.ExecContext(t.Context(), db.Rebind(`DELETE FROM schema_migrations WHERE version = ?`), 3)
			mustOK(t, err)
			if _, err := s.ChangeEpoch(t.Context()); err == nil {
				t.Fatal("ChangeEpoch on the 0002 schema: got nil, want an error")
			}
			mustOK(t, s.Close())

			s = open()
			var versions int
			mustOK(t, store.DB(s).GetContext(t.Context(), &versions, `SELECT COUNT(*) FROM schema_migrations`))
			if want := store.Migrations(t, s); versions != want {
				t.Errorf("got %d applied migrations, want %d", versions, want)
			}
			before := changeEpoch(t, s)
			got, tier, err := s.FindImageForServing(t.Context(), img.ID)
			mustOK(t, err)
			if got.ID != img.ID || tier.Name != "Premium" {
				t.Errorf("got %s on %s after the migration, want %s on Premium", got.ID, tier.Name, img.ID)
			}
			mustOK(t, s.DeleteImage(t.Context(), alice.ID, img.ID))
			if after := changeEpoch(t, s); after == before {
				t.Errorf("got the epoch at %d after a delete, want it moved", after)
			}
		})
	}
}

// TestOnChange checks that OnChange's functions run after each committed change that moves
// the epoch, and never for a change refused, rolled back, or that moves nothing.
func TestOnChange(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		var calls atomic.Int64
		s.OnChange(func() { calls.Add(1) })
		want := func(what string, n int64) {
			t.Helper()
			if got := calls.Load(); got != n {
				t.Fatalf("%s: got %d calls, want %d", what, got, n)
			}
		}
		mustOK(t, s.CreateTier(ctx, &tierpix.Tier{Name: "Gold", ThumbnailHeights: []int{100}}))
		alice := createUser(t, s, "alice", "Basic")
		want("creating a tier and a user", 0)
		_, err := s.ModifyTier(ctx, "Gold", func(t *tierpix.Tier) error { t.ThumbnailHeights = []int{100, 200}; return nil })
		mustOK(t, err)
		want("a tier edited", 1)
		_, err = s.ModifyUser(ctx, "alice", func(u *tierpix.User) error { u.TierName = "Nope"; return nil })
		wantCode(t, err, tierpix.EINVALID)
		want("a refused change", 1)
		_, err = s.ModifyUser(ctx, "alice", func(u *tierpix.User) error { u.TierName = "gold"; return nil })
		mustOK(t, err)
		want("a user moved", 2)
		_, err = s.ModifyUser(ctx, "alice", func(u *tierpix.User) error { u.PasswordHash = "other"; return nil })
		mustOK(t, err)
		want("a password changed, the tier kept", 2)
		_, err = s.DeleteUser(ctx, alice.Username)
		mustOK(t, err)
		want("a user deleted", 3)
	})
}
