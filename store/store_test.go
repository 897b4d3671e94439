package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
)

// wantCode fails the test unless err carries the given tierpix error code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := tierpix.ErrorCode(err); got != code {
		t.Fatalf("got error code %q (%v), want %q", got, err, code)
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("got error %v, want nil", err)
	}
}

func createUser(t *testing.T, s *store.Store, username, tier string) tierpix.User {
	t.Helper()
	u := tierpix.User{Username: username, PasswordHash: "$2a$10$notarealhash", TierName: tier}
	mustOK(t, s.CreateUser(t.Context(), &u))
	return u
}

// writeTemp writes content to a new file in the store's temp directory.
func writeTemp(t *testing.T, s *store.Store, content string) string {
	t.Helper()
	f, err := os.CreateTemp(s.TempDir(), "upload-*")
	mustOK(t, err)
	_, err = f.WriteString(content)
	mustOK(t, err)
	mustOK(t, f.Close())
	return f.Name()
}

func createImage(t *testing.T, s *store.Store, ownerID int64, name string) tierpix.Image {
	t.Helper()
	img := tierpix.Image{OwnerID: ownerID, Name: name, Format: tierpix.FormatPNG, Width: 30, Height: 20}
	mustOK(t, s.CreateImage(t.Context(), &img, writeTemp(t, s, "bytes of "+name)))
	return img
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat %s: %v", path, err)
	}
	return err == nil
}

// originalFiles lists every file under the originals directory.
func originalFiles(t *testing.T, s *store.Store) []string {
	t.Helper()
	root := filepath.Dir(filepath.Dir(s.OriginalPath("aaaaaaaaaaaaaaaaaaaaaaaa")))
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	mustOK(t, err)
	return files
}

func TestBuiltinTiers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		tiers, err := s.ListTiers(t.Context())
		mustOK(t, err)
		want := []struct {
			name     string
			heights  []int
			original bool
			expiring bool
		}{
			{name: "Basic", heights: []int{200}},
			{name: "Enterprise", heights: []int{200, 400}, original: true, expiring: true},
			{name: "Premium", heights: []int{200, 400}, original: true},
		}
		if len(tiers) != len(want) {
			t.Fatalf("got %d tiers, want %d", len(tiers), len(want))
		}
		for i, w := range want {
			got := tiers[i]
			if got.Name != w.name || !slices.Equal(got.ThumbnailHeights, w.heights) ||
				got.OriginalLink != w.original || got.ExpiringLinks != w.expiring || !got.Builtin {
				t.Errorf("tier %d: got %+v, want %+v (builtin)", i, got, w)
			}
			if got.CreatedAt.IsZero() || got.CreatedAt.Location() != time.UTC {
				t.Errorf("tier %s: got created_at %v, want a UTC time", got.Name, got.CreatedAt)
			}
		}
	})
}

func TestTiers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		gold := tierpix.Tier{Name: "Gold", ThumbnailHeights: []int{800, 100, 800}, OriginalLink: true}
		mustOK(t, s.CreateTier(ctx, &gold))
		if !slices.Equal(gold.ThumbnailHeights, []int{100, 800}) || gold.CreatedAt.IsZero() || gold.Builtin {
			t.Fatalf("got created tier %+v, want normalized heights [100 800], timestamps, not builtin", gold)
		}

		got, err := s.FindTier(ctx, "gOLD")
		mustOK(t, err)
		if got.Name != "Gold" || !slices.Equal(got.ThumbnailHeights, []int{100, 800}) || !got.OriginalLink || got.ExpiringLinks {
			t.Fatalf("got %+v, want Gold [100 800] original", got)
		}
		if !got.CreatedAt.Equal(gold.CreatedAt) {
			t.Errorf("got created_at %v, want %v", got.CreatedAt, gold.CreatedAt)
		}

		up := tierpix.Tier{Name: "GOLD", ThumbnailHeights: []int{300}, ExpiringLinks: true}
		mustOK(t, storetest.UpdateTier(ctx, s, &up))
		if up.Name != "Gold" || up.Builtin || !slices.Equal(up.ThumbnailHeights, []int{300}) || up.OriginalLink || !up.ExpiringLinks {
			t.Fatalf("got updated tier %+v, want Gold [300] expiring", up)
		}
		got, err = s.FindTier(ctx, "gold")
		mustOK(t, err)
		if !slices.Equal(got.ThumbnailHeights, []int{300}) || !got.ExpiringLinks || got.OriginalLink {
			t.Fatalf("got %+v after update, want [300] expiring", got)
		}

		builtin := tierpix.Tier{Name: "basic", ThumbnailHeights: []int{200, 300}}
		mustOK(t, storetest.UpdateTier(ctx, s, &builtin))
		if builtin.Name != "Basic" || !builtin.Builtin {
			t.Errorf("got %+v, want the builtin Basic", builtin)
		}

		errTests := []struct {
			name string
			run  func() error
			code string
		}{
			{name: "create duplicate other case", code: tierpix.ECONFLICT, run: func() error {
				return s.CreateTier(ctx, &tierpix.Tier{Name: "gold"})
			}},
			{name: "create duplicate builtin", code: tierpix.ECONFLICT, run: func() error {
				return s.CreateTier(ctx, &tierpix.Tier{Name: "PREMIUM"})
			}},
			{name: "create invalid name", code: tierpix.EINVALID, run: func() error {
				return s.CreateTier(ctx, &tierpix.Tier{Name: "no spaces"})
			}},
			{name: "create invalid height", code: tierpix.EINVALID, run: func() error {
				return s.CreateTier(ctx, &tierpix.Tier{Name: "Tall", ThumbnailHeights: []int{0}})
			}},
			{name: "find unknown", code: tierpix.ENOTFOUND, run: func() error {
				_, err := s.FindTier(ctx, "Platinum")
				return err
			}},
			{name: "update unknown", code: tierpix.ENOTFOUND, run: func() error {
				return storetest.UpdateTier(ctx, s, &tierpix.Tier{Name: "Platinum"})
			}},
			{name: "update invalid", code: tierpix.EINVALID, run: func() error {
				return storetest.UpdateTier(ctx, s, &tierpix.Tier{Name: "Gold", ThumbnailHeights: []int{tierpix.MaxThumbnailHeight + 1}})
			}},
			{name: "delete unknown", code: tierpix.ENOTFOUND, run: func() error {
				return s.DeleteTier(ctx, "Platinum")
			}},
		}
		for _, tt := range errTests {
			t.Run(tt.name, func(t *testing.T) { wantCode(t, tt.run(), tt.code) })
		}

		mustOK(t, s.DeleteTier(ctx, "gold"))
		_, err = s.FindTier(ctx, "Gold")
		wantCode(t, err, tierpix.ENOTFOUND)
		tiers, err := s.ListTiers(ctx)
		mustOK(t, err)
		if len(tiers) != 3 {
			t.Errorf("got %d tiers after delete, want 3", len(tiers))
		}
	})
}

func TestDeleteTierInUse(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		mustOK(t, s.CreateTier(ctx, &tierpix.Tier{Name: "Gold", ThumbnailHeights: []int{100}}))
		createUser(t, s, "alice", "gold")
		createUser(t, s, "bob", "Gold")

		err := s.DeleteTier(ctx, "GOLD")
		wantCode(t, err, tierpix.ECONFLICT)
		if got, want := tierpix.ErrorMessage(err), "The tier Gold has 2 users."; got != want {
			t.Errorf("got message %q, want %q", got, want)
		}
		if _, err := s.FindTier(ctx, "Gold"); err != nil {
			t.Errorf("got %v finding the tier after a refused delete, want it kept", err)
		}

		_, err = s.DeleteUser(ctx, "bob")
		mustOK(t, err)
		err = s.DeleteTier(ctx, "gold")
		if got, want := tierpix.ErrorMessage(err), "The tier Gold has 1 user."; got != want {
			t.Errorf("got message %q, want %q", got, want)
		}
	})
}

func TestUsers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		alice := createUser(t, s, "alice", "premium")
		if alice.ID == 0 || alice.TierName != "Premium" || alice.CreatedAt.IsZero() || !alice.UpdatedAt.Equal(alice.CreatedAt) {
			t.Fatalf("got created user %+v, want an id, tier Premium, timestamps", alice)
		}
		admin := tierpix.User{Username: "root@example.com", PasswordHash: "h", TierName: "Basic", IsAdmin: true}
		mustOK(t, s.CreateUser(ctx, &admin))

		id, err := s.FindUser(ctx, "alice")
		mustOK(t, err)
		if id.User != alice {
			t.Errorf("got user %+v, want %+v", id.User, alice)
		}
		if id.Tier.Name != "Premium" || !slices.Equal(id.Tier.ThumbnailHeights, []int{200, 400}) || !id.Tier.OriginalLink {
			t.Errorf("got tier %+v, want Premium", id.Tier)
		}
		byID, err := s.FindUserByID(ctx, alice.ID)
		mustOK(t, err)
		if byID.User != alice || byID.Tier.Name != "Premium" {
			t.Errorf("got %+v by id, want alice on Premium", byID)
		}

		n, err := s.CountAdmins(ctx)
		mustOK(t, err)
		if n != 1 {
			t.Errorf("got %d admins, want 1", n)
		}

		alice.TierName = "ENTERPRISE"
		alice.IsAdmin = true
		alice.PasswordHash = "new-hash"
		mustOK(t, updateUser(ctx, s, &alice))
		if alice.TierName != "Enterprise" || alice.UpdatedAt.Before(alice.CreatedAt) {
			t.Errorf("got updated user %+v, want tier Enterprise", alice)
		}
		id, err = s.FindUser(ctx, "alice")
		mustOK(t, err)
		if id.User.TierName != "Enterprise" || id.Tier.Name != "Enterprise" || !id.User.IsAdmin || id.User.PasswordHash != "new-hash" {
			t.Errorf("got %+v after update, want admin on Enterprise with the new hash", id)
		}
		n, err = s.CountAdmins(ctx)
		mustOK(t, err)
		if n != 2 {
			t.Errorf("got %d admins, want 2", n)
		}

		tests := []struct {
			name  string
			run   func() error
			code  string
			field string
			msg   string
		}{
			{name: "duplicate username", code: tierpix.ECONFLICT, run: func() error {
				return s.CreateUser(ctx, &tierpix.User{Username: "alice", PasswordHash: "h", TierName: "Basic"})
			}},
			{name: "unknown tier", code: tierpix.EINVALID, field: "tier", msg: "No tier named Nope.", run: func() error {
				return s.CreateUser(ctx, &tierpix.User{Username: "carol", PasswordHash: "h", TierName: "Nope"})
			}},
			{name: "no tier", code: tierpix.EINVALID, field: "tier", msg: "A tier is required.", run: func() error {
				return s.CreateUser(ctx, &tierpix.User{Username: "carol", PasswordHash: "h"})
			}},
			{name: "invalid username", code: tierpix.EINVALID, field: "username", run: func() error {
				return s.CreateUser(ctx, &tierpix.User{Username: "no spaces", PasswordHash: "h", TierName: "Basic"})
			}},
			{name: "update to unknown tier", code: tierpix.EINVALID, field: "tier", msg: "No tier named Gold.", run: func() error {
				u := alice
				u.TierName = "Gold"
				return updateUser(ctx, s, &u)
			}},
			{name: "update unknown user", code: tierpix.ENOTFOUND, run: func() error {
				return updateUser(ctx, s, &tierpix.User{ID: 999999, Username: "ghost", PasswordHash: "h", TierName: "Basic"})
			}},
			{name: "find unknown", code: tierpix.ENOTFOUND, run: func() error {
				_, err := s.FindUser(ctx, "ghost")
				return err
			}},
			{name: "find unknown id", code: tierpix.ENOTFOUND, run: func() error {
				_, err := s.FindUserByID(ctx, 999999)
				return err
			}},
			{name: "delete unknown", code: tierpix.ENOTFOUND, run: func() error {
				_, err := s.DeleteUser(ctx, "ghost")
				return err
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := tt.run()
				wantCode(t, err, tt.code)
				if tt.field != "" {
					msg, ok := tierpix.ErrorFields(err)[tt.field]
					if !ok {
						t.Fatalf("got fields %v, want field %q", tierpix.ErrorFields(err), tt.field)
					}
					if tt.msg != "" && msg != tt.msg {
						t.Errorf("got field message %q, want %q", msg, tt.msg)
					}
				}
			})
		}

		ids, err := s.DeleteUser(ctx, "alice")
		mustOK(t, err)
		if len(ids) != 0 {
			t.Errorf("got deleted image ids %v, want none", ids)
		}
		_, err = s.FindUser(ctx, "alice")
		wantCode(t, err, tierpix.ENOTFOUND)
	})
}

// TestLastAdmin checks that the store itself never lets the last admin go, by demotion or by
// deletion, so that no interleaving of requests can leave the service without an admin.
func TestLastAdmin(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		root := tierpix.User{Username: "root", PasswordHash: "h", TierName: "Basic", IsAdmin: true}
		mustOK(t, s.CreateUser(ctx, &root))
		alice := createUser(t, s, "alice", "Basic")

		// Updating users who are not the last admin is not affected.
		alice.TierName = "Premium"
		mustOK(t, updateUser(ctx, s, &alice))
		root.TierName = "Premium"
		mustOK(t, updateUser(ctx, s, &root))

		demoted := root
		demoted.IsAdmin = false
		wantCode(t, updateUser(ctx, s, &demoted), tierpix.ECONFLICT)
		_, err := s.DeleteUser(ctx, "root")
		wantCode(t, err, tierpix.ECONFLICT)
		id, err := s.FindUser(ctx, "root")
		mustOK(t, err)
		if !id.User.IsAdmin {
			t.Fatalf("got root demoted, want still an admin")
		}

		// With a second admin, either may go, and then the other is the last.
		alice.IsAdmin = true
		mustOK(t, updateUser(ctx, s, &alice))
		mustOK(t, updateUser(ctx, s, &demoted))
		_, err = s.DeleteUser(ctx, "alice")
		wantCode(t, err, tierpix.ECONFLICT)
		alice.IsAdmin = false
		wantCode(t, updateUser(ctx, s, &alice), tierpix.ECONFLICT)

		// A user that does not exist is still not found, and an unknown tier still invalid.
		wantCode(t, updateUser(ctx, s, &tierpix.User{ID: 999999, Username: "ghost", PasswordHash: "h", TierName: "Basic"}), tierpix.ENOTFOUND)
		alice.IsAdmin, alice.TierName = true, "Gold"
		wantCode(t, updateUser(ctx, s, &alice), tierpix.EINVALID)
	})
}

// TestLastAdminConcurrent has two admins demote, or delete, each other at the same moment, many
// times over: exactly one of each pair may succeed, and one admin must always remain.
func TestLastAdminConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		for round := range 20 {
			var admins [2]tierpix.User
			for i := range admins {
				admins[i] = tierpix.User{Username: fmt.Sprintf("admin%d-%d", round, i), PasswordHash: "h", TierName: "Basic", IsAdmin: true}
				mustOK(t, s.CreateUser(ctx, &admins[i]))
			}
			deleting := round%2 == 1
			var wg sync.WaitGroup
			errs := make([]error, len(admins))
			start := make(chan struct{})
			for i := range admins {
				wg.Go(func() {
					<-start
					if deleting {
						_, errs[i] = s.DeleteUser(ctx, admins[i].Username)
						return
					}
					u := admins[i]
					u.IsAdmin = false
					errs[i] = updateUser(ctx, s, &u)
				})
			}
			close(start)
			wg.Wait()
			ok := 0
			for _, err := range errs {
				switch tierpix.ErrorCode(err) {
				case "":
					ok++
				case tierpix.ECONFLICT:
				default:
					t.Fatalf("round %d: got error %v, want success or a conflict", round, err)
				}
			}
			n, err := s.CountAdmins(ctx)
			mustOK(t, err)
			if ok != 1 || n != 1 {
				t.Fatalf("round %d (deleting %v): got %d successes and %d admins left, want 1 and 1", round, deleting, ok, n)
			}
			// Leave no admin from this round, so that the next round's two are the only ones.
			for _, a := range admins {
				if _, err := s.DeleteUser(ctx, a.Username); err != nil && tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
					// The survivor is the last admin; remove it behind the guard's back.
					_, err := store.DB(s).ExecContext(ctx, store.DB(s).Rebind(`DELETE FROM users WHERE username = ?`), a.Username)
					mustOK(t, err)
				}
			}
		}
	})
}

// TestModifySerializes runs a second ModifyUser (ModifyTier) while a first one is between its
// read and its write: the second must not slip in and be overwritten by the first.
func TestModifySerializes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		createUser(t, s, "bob", "Basic")
		mustOK(t, s.CreateTier(ctx, &tierpix.Tier{Name: "Gold", ThumbnailHeights: []int{100}}))

		// race starts first, waits inside it until second has had its chance, then finishes.
		race := func(first, second func(hold func()) error) {
			t.Helper()
			inside, release := make(chan struct{}), make(chan struct{})
			errs := make(chan error, 2)
			go func() { errs <- first(func() { close(inside); <-release }) }()
			<-inside
			go func() { errs <- second(func() {}) }()
			pending := 2
			select {
			case err := <-errs: // second finished while first was inside: no serialization
				mustOK(t, err)
				pending--
			case <-time.After(200 * time.Millisecond): // second is waiting, as it should
			}
			close(release)
			for range pending {
				mustOK(t, <-errs)
			}
		}

		race(func(hold func()) error {
			_, err := s.ModifyUser(ctx, "bob", func(u *tierpix.User) error { hold(); u.PasswordHash = "new-hash"; return nil })
			return err
		}, func(hold func()) error {
			_, err := s.ModifyUser(ctx, "bob", func(u *tierpix.User) error { hold(); u.TierName = "premium"; return nil })
			return err
		})
		id, err := s.FindUser(ctx, "bob")
		mustOK(t, err)
		if id.User.PasswordHash != "new-hash" || id.User.TierName != "Premium" {
			t.Errorf("got hash %q and tier %s, want both changes: new-hash and Premium", id.User.PasswordHash, id.User.TierName)
		}

		race(func(hold func()) error {
			_, err := s.ModifyTier(ctx, "gold", func(t *tierpix.Tier) error { hold(); t.ThumbnailHeights = []int{300}; return nil })
			return err
		}, func(hold func()) error {
			_, err := s.ModifyTier(ctx, "GOLD", func(t *tierpix.Tier) error { hold(); t.OriginalLink = true; return nil })
			return err
		})
		gold, err := s.FindTier(ctx, "Gold")
		mustOK(t, err)
		if !slices.Equal(gold.ThumbnailHeights, []int{300}) || !gold.OriginalLink {
			t.Errorf("got tier %+v, want both changes: heights [300] and original_link", gold)
		}

		_, err = s.ModifyUser(ctx, "ghost", func(*tierpix.User) error { return nil })
		wantCode(t, err, tierpix.ENOTFOUND)
		_, err = s.ModifyTier(ctx, "Nope", func(*tierpix.Tier) error { return nil })
		wantCode(t, err, tierpix.ENOTFOUND)
		_, err = s.ModifyUser(ctx, "bob", func(u *tierpix.User) error { u.TierName = "Nope"; return nil })
		wantCode(t, err, tierpix.EINVALID)
		_, err = s.ModifyTier(ctx, "Gold", func(t *tierpix.Tier) error { t.ThumbnailHeights = []int{0}; return nil })
		wantCode(t, err, tierpix.EINVALID)
		_, err = s.ModifyUser(ctx, "bob", func(u *tierpix.User) error { return tierpix.Errorf(tierpix.ECONFLICT, "no") })
		wantCode(t, err, tierpix.ECONFLICT)
	})
}

func TestTokens(t *testing.T) {
	storetest.EachClock(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := t.Context()
		alice := createUser(t, s, "alice", "Enterprise")
		bob := createUser(t, s, "bob", "Basic")
		k, token, err := s.CreateToken(ctx, alice.ID)
		mustOK(t, err)
		if !strings.HasPrefix(token, "tpx_") || len(token) < len("tpx_")+22 {
			t.Fatalf("got token %q, want tpx_ and at least 128 bits", token)
		}
		wantToken := store.Token{ID: k.ID, UserID: alice.ID, Hint: token[:len("tpx_")+4], CreatedAt: clock.Now()}
		if k.ID == 0 || k != wantToken {
			t.Fatalf("got stored token %+v, want %+v with an id", k, wantToken)
		}
		clock.Advance(time.Second)
		k2, other, err := s.CreateToken(ctx, alice.ID)
		mustOK(t, err)
		if other == token || k2.ID == k.ID {
			t.Fatalf("got the same token twice: %q (id %d)", token, k.ID)
		}
		kb, bobToken, err := s.CreateToken(ctx, bob.ID)
		mustOK(t, err)

		id, err := s.FindIdentityByToken(ctx, token)
		mustOK(t, err)
		if id.User.ID != alice.ID || id.Tier.Name != "Enterprise" || !id.Tier.ExpiringLinks {
			t.Errorf("got %+v, want alice on Enterprise", id)
		}

		var hashes []string
		mustOK(t, store.DB(s).SelectContext(ctx, &hashes, `SELECT token_hash FROM tokens ORDER BY id`))
		sum := sha256.Sum256([]byte(token))
		if len(hashes) != 3 || hashes[0] != hex.EncodeToString(sum[:]) {
			t.Fatalf("got stored hashes %v, want the SHA-256 of the first token first", hashes)
		}
		for _, h := range hashes {
			if strings.Contains(h, strings.TrimPrefix(token, "tpx_")) || strings.Contains(h, strings.TrimPrefix(other, "tpx_")) {
				t.Errorf("got stored %q, want no plaintext", h)
			}
		}

		list, err := s.ListTokens(ctx, alice.ID)
		mustOK(t, err)
		if want := []store.Token{k2, k}; !slices.Equal(list, want) {
			t.Errorf("got tokens %+v, want %+v (newest first)", list, want)
		}
		list, err = s.ListTokens(ctx, 999999)
		mustOK(t, err)
		if list == nil || len(list) != 0 {
			t.Errorf("got tokens %#v of an unknown user, want an empty list", list)
		}

		unknown := []struct {
			name  string
			token string
		}{
			{name: "unknown", token: "tpx_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
			{name: "no prefix", token: strings.TrimPrefix(token, "tpx_")},
			{name: "empty", token: ""},
			{name: "hash itself", token: hashes[0]},
			{name: "hint", token: k.Hint},
		}
		for _, tt := range unknown {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.FindIdentityByToken(ctx, tt.token)
				wantCode(t, err, tierpix.ENOTFOUND)
			})
		}

		_, _, err = s.CreateToken(ctx, 999999)
		wantCode(t, err, tierpix.ENOTFOUND)

		deletes := []struct {
			name    string
			userID  int64
			tokenID int64
			code    string
		}{
			{name: "other user's token", userID: bob.ID, tokenID: k.ID, code: tierpix.ENOTFOUND},
			{name: "unknown token", userID: alice.ID, tokenID: 999999, code: tierpix.ENOTFOUND},
			{name: "own token", userID: alice.ID, tokenID: k.ID},
			{name: "own token again", userID: alice.ID, tokenID: k.ID, code: tierpix.ENOTFOUND},
		}
		for _, tt := range deletes {
			t.Run(tt.name, func(t *testing.T) { wantCode(t, s.DeleteToken(ctx, tt.userID, tt.tokenID), tt.code) })
		}
		_, err = s.FindIdentityByToken(ctx, token)
		wantCode(t, err, tierpix.ENOTFOUND)
		for _, live := range []string{other, bobToken} {
			_, err = s.FindIdentityByToken(ctx, live)
			mustOK(t, err)
		}
		list, err = s.ListTokens(ctx, alice.ID)
		mustOK(t, err)
		if want := []store.Token{k2}; !slices.Equal(list, want) {
			t.Errorf("got tokens %+v after delete, want %+v", list, want)
		}
		list, err = s.ListTokens(ctx, bob.ID)
		mustOK(t, err)
		if want := []store.Token{kb}; !slices.Equal(list, want) {
			t.Errorf("got bob's tokens %+v, want %+v", list, want)
		}

		_, err = s.DeleteUser(ctx, "alice")
		mustOK(t, err)
		_, err = s.FindIdentityByToken(ctx, other)
		wantCode(t, err, tierpix.ENOTFOUND)
		var left int
		mustOK(t, store.DB(s).GetContext(ctx, &left, store.DB(s).Rebind(`SELECT COUNT(*) FROM tokens WHERE user_id = ?`), alice.ID))
		if left != 0 {
			t.Errorf("got %d tokens after deleting their user, want 0", left)
		}
	})
}

func TestImagesPagination(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		alice := createUser(t, s, "alice", "Basic")
		bob := createUser(t, s, "bob", "Basic")

		var created []tierpix.Image
		for i := range 7 {
			created = append(created, createImage(t, s, alice.ID, fmt.Sprintf("a%d.png", i)))
			createImage(t, s, bob.ID, fmt.Sprintf("b%d.png", i))
		}
		seen := map[string]bool{}
		for _, img := range created {
			if !tierpix.ValidImageID(img.ID) || seen[img.ID] {
				t.Fatalf("got id %q, want a fresh 24-character base32 id", img.ID)
			}
			seen[img.ID] = true
			data, err := os.ReadFile(s.OriginalPath(img.ID))
			mustOK(t, err)
			if want := "bytes of " + img.Name; string(data) != want || img.SizeBytes != int64(len(want)) {
				t.Errorf("got file %q of size %d, want %q", data, img.SizeBytes, want)
			}
		}

		tests := []struct {
			name  string
			limit int
		}{
			{name: "limit 1", limit: 1},
			{name: "limit 3", limit: 3},
			{name: "limit 7", limit: 7},
			{name: "limit 100", limit: 100},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var got []tierpix.Image
				before := int64(0)
				for range 20 {
					page, err := s.ListImages(ctx, alice.ID, before, tt.limit)
					mustOK(t, err)
					if len(page) > tt.limit {
						t.Fatalf("got %d images, want at most %d", len(page), tt.limit)
					}
					if len(page) == 0 {
						break
					}
					got = append(got, page...)
					before = page[len(page)-1].Seq
				}
				if len(got) != len(created) {
					t.Fatalf("got %d images, want %d", len(got), len(created))
				}
				for i, img := range got {
					want := created[len(created)-1-i]
					if img != want {
						t.Errorf("image %d: got %+v, want %+v", i, img, want)
					}
				}
			})
		}

		// A page costs one query whatever its size.
		before := s.Queries()
		page, err := s.ListImages(ctx, alice.ID, 0, 100)
		mustOK(t, err)
		if got := s.Queries() - before; got != 1 || len(page) != 7 {
			t.Errorf("got %d queries for %d images, want 1 for 7", got, len(page))
		}

		found, err := s.FindImage(ctx, created[2].ID)
		mustOK(t, err)
		if found != created[2] {
			t.Errorf("got %+v, want %+v", found, created[2])
		}
		for _, id := range []string{"", "../../../../etc/passwd", strings.Repeat("a", 24)} {
			_, err := s.FindImage(ctx, id)
			wantCode(t, err, tierpix.ENOTFOUND)
		}
	})
}

func TestListAllImages(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		alice := createUser(t, s, "alice", "Basic")
		bob := createUser(t, s, "bob", "Premium")
		createUser(t, s, "carol", "Basic") // no images

		var created []store.OwnedImage // oldest first
		for i := range 5 {
			created = append(created, store.OwnedImage{Image: createImage(t, s, alice.ID, fmt.Sprintf("a%d.png", i)), Owner: "alice"})
			if i%2 == 0 {
				created = append(created, store.OwnedImage{Image: createImage(t, s, bob.ID, fmt.Sprintf("b%d.png", i)), Owner: "bob"})
			}
		}
		newestFirst := func(owner string) []store.OwnedImage {
			var want []store.OwnedImage
			for i := len(created) - 1; i >= 0; i-- {
				if owner == "" || created[i].Owner == owner {
					want = append(want, created[i])
				}
			}
			return want
		}

		tests := []struct {
			name    string
			ownerID int64
			want    []store.OwnedImage
		}{
			{name: "everyone", want: newestFirst("")},
			{name: "alice", ownerID: alice.ID, want: newestFirst("alice")},
			{name: "bob", ownerID: bob.ID, want: newestFirst("bob")},
			{name: "owner without images", ownerID: 999999, want: nil},
		}
		for _, tt := range tests {
			for _, limit := range []int{1, 2, 100} {
				t.Run(fmt.Sprintf("%s limit %d", tt.name, limit), func(t *testing.T) {
					var got []store.OwnedImage
					before := int64(0)
					for range 20 {
						page, err := s.ListAllImages(ctx, tt.ownerID, before, limit)
						mustOK(t, err)
						if len(page) > limit {
							t.Fatalf("got %d images, want at most %d", len(page), limit)
						}
						if len(page) == 0 {
							break
						}
						got = append(got, page...)
						before = page[len(page)-1].Seq
					}
					if !slices.Equal(got, tt.want) {
						t.Errorf("got %+v, want %+v", got, tt.want)
					}
				})
			}
		}

		// A keyset in the middle: strictly older than the given seq.
		all := newestFirst("")
		page, err := s.ListAllImages(ctx, 0, all[2].Seq, 2)
		mustOK(t, err)
		if want := all[3:5]; !slices.Equal(page, want) {
			t.Errorf("got %+v before seq %d, want %+v", page, all[2].Seq, want)
		}
		page, err = s.ListAllImages(ctx, 0, 0, 100)
		mustOK(t, err)
		if page == nil {
			t.Errorf("got a nil page, want an empty or full slice")
		}
		_, err = s.ListAllImages(ctx, 0, 0, 0)
		wantCode(t, err, tierpix.EINVALID)
	})
}

func TestFindImageForServingFollowsTier(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		alice := createUser(t, s, "alice", "Basic")
		img := createImage(t, s, alice.ID, "a.png")

		steps := []struct {
			name    string
			change  func()
			tier    string
			heights []int
		}{
			{name: "initial", change: func() {}, tier: "Basic", heights: []int{200}},
			{name: "user moved to premium", change: func() {
				alice.TierName = "premium"
				mustOK(t, updateUser(ctx, s, &alice))
			}, tier: "Premium", heights: []int{200, 400}},
			{name: "premium tier edited", change: func() {
				mustOK(t, storetest.UpdateTier(ctx, s, &tierpix.Tier{Name: "Premium", ThumbnailHeights: []int{200, 400, 800}, OriginalLink: true}))
			}, tier: "Premium", heights: []int{200, 400, 800}},
		}
		for _, st := range steps {
			st.change()
			before := s.Queries()
			gotImg, tier, err := s.FindImageForServing(ctx, img.ID)
			mustOK(t, err)
			if q := s.Queries() - before; q != 1 {
				t.Errorf("%s: got %d queries, want 1", st.name, q)
			}
			if gotImg != img || tier.Name != st.tier || !slices.Equal(tier.ThumbnailHeights, st.heights) {
				t.Errorf("%s: got %+v on %+v, want %+v on %s %v", st.name, gotImg, tier, img, st.tier, st.heights)
			}
		}

		_, _, err := s.FindImageForServing(ctx, strings.Repeat("b", 24))
		wantCode(t, err, tierpix.ENOTFOUND)
	})
}

func TestDeleteImage(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		alice := createUser(t, s, "alice", "Basic")
		bob := createUser(t, s, "bob", "Basic")
		img := createImage(t, s, alice.ID, "a.png")
		path := s.OriginalPath(img.ID)

		wantCode(t, s.DeleteImage(ctx, bob.ID, img.ID), tierpix.ENOTFOUND)
		if !exists(t, path) {
			t.Fatalf("got %s removed by another owner's delete, want it kept", path)
		}

		mustOK(t, s.DeleteImage(ctx, alice.ID, img.ID))
		if exists(t, path) {
			t.Errorf("got %s still on disk, want it removed", path)
		}
		_, err := s.FindImage(ctx, img.ID)
		wantCode(t, err, tierpix.ENOTFOUND)
		wantCode(t, s.DeleteImage(ctx, alice.ID, img.ID), tierpix.ENOTFOUND)

		// A row whose file is already gone deletes cleanly.
		img2 := createImage(t, s, alice.ID, "b.png")
		mustOK(t, os.Remove(s.OriginalPath(img2.ID)))
		mustOK(t, s.DeleteImage(ctx, alice.ID, img2.ID))
	})
}

func TestDeleteUserRemovesImages(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		alice := createUser(t, s, "alice", "Basic")
		bob := createUser(t, s, "bob", "Basic")
		var want []string
		for i := range 3 {
			want = append(want, createImage(t, s, alice.ID, fmt.Sprintf("%d.png", i)).ID)
		}
		kept := createImage(t, s, bob.ID, "bob.png")

		ids, err := s.DeleteUser(ctx, "alice")
		mustOK(t, err)
		slices.Sort(ids)
		slices.Sort(want)
		if !slices.Equal(ids, want) {
			t.Errorf("got deleted ids %v, want %v", ids, want)
		}
		for _, id := range want {
			if exists(t, s.OriginalPath(id)) {
				t.Errorf("got original %s still on disk, want it removed", id)
			}
			if _, err := s.FindImage(ctx, id); tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
				t.Errorf("got %v finding %s, want not found", err, id)
			}
		}
		if !exists(t, s.OriginalPath(kept.ID)) {
			t.Errorf("got bob's original removed, want it kept")
		}
	})
}

func TestCreateImageFailureLeavesNoFile(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		tests := []struct {
			name    string
			img     tierpix.Image
			code    string
			tmpKept bool
		}{
			{name: "owner does not exist", img: tierpix.Image{OwnerID: 999999, Name: "x.png", Format: tierpix.FormatPNG, Width: 1, Height: 1}, code: tierpix.EINVALID},
			{name: "unknown format", img: tierpix.Image{OwnerID: 1, Name: "x.gif", Format: "gif", Width: 1, Height: 1}, code: tierpix.EINVALID, tmpKept: true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tmp := writeTemp(t, s, "data")
				img := tt.img
				wantCode(t, s.CreateImage(t.Context(), &img, tmp), tt.code)
				if files := originalFiles(t, s); len(files) != 0 {
					t.Errorf("got originals %v, want none", files)
				}
				if got := exists(t, tmp); got != tt.tmpKept {
					t.Errorf("got temp file present %v, want %v", got, tt.tmpKept)
				}
			})
		}
	})
}

func TestSweep(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		alice := createUser(t, s, "alice", "Basic")
		old := time.Now().Add(-2 * time.Hour)

		staleTmp := writeTemp(t, s, "stale")
		mustOK(t, os.Chtimes(staleTmp, old, old))
		// A live upload's temp file is locked by its writer; a crashed one's is not.
		live, err := s.CreateTemp()
		mustOK(t, err)
		defer live.Close()
		liveTmp := live.Name()
		crashedTmp := writeTemp(t, s, "fresh but unlocked")

		orphan := func(id string, mtime time.Time) string {
			t.Helper()
			p := s.OriginalPath(id)
			mustOK(t, os.MkdirAll(filepath.Dir(p), 0o755))
			mustOK(t, os.WriteFile(p, []byte("orphan"), 0o644))
			mustOK(t, os.Chtimes(p, mtime, mtime))
			return p
		}
		staleOrphan := orphan("aaaaaaaaaaaaaaaaaaaaaaaa", old)
		staleOrphan2 := orphan("zzzzzzzzzzzzzzzzzzzzzzz2", old)
		freshOrphan := orphan("abaaaaaaaaaaaaaaaaaaaaaa", time.Now())
		img := createImage(t, s, alice.ID, "kept.png")
		kept := s.OriginalPath(img.ID)
		mustOK(t, os.Chtimes(kept, old, old))

		res, err := s.Sweep(ctx, time.Hour)
		mustOK(t, err)
		if want := (store.SweepResult{TempFiles: 2, Orphans: 2}); res != want {
			t.Errorf("got %+v, want %+v", res, want)
		}
		files := []struct {
			name string
			path string
			want bool
		}{
			{name: "stale temp", path: staleTmp, want: false},
			{name: "temp of a live upload", path: liveTmp, want: true},
			{name: "fresh temp of a dead upload", path: crashedTmp, want: false},
			{name: "stale orphan", path: staleOrphan, want: false},
			{name: "stale orphan in another shard", path: staleOrphan2, want: false},
			{name: "fresh orphan", path: freshOrphan, want: true},
			{name: "old original with a row", path: kept, want: true},
		}
		for _, f := range files {
			if got := exists(t, f.path); got != f.want {
				t.Errorf("%s: got present %v, want %v", f.name, got, f.want)
			}
		}

		res, err = s.Sweep(ctx, time.Hour)
		mustOK(t, err)
		if res != (store.SweepResult{}) {
			t.Errorf("got %+v on the second sweep, want nothing removed", res)
		}
	})
}

// TestCreateTempRacesSweep has a sweep run in the moment between CreateTemp creating its file
// and locking it, when the file looks like a dead upload's: the upload must still get a temp
// file that stays in the directory, and later sweeps must leave it alone.
func TestCreateTempRacesSweep(t *testing.T) {
	ctx := t.Context()
	swept := 0
	var s *store.Store
	s = storetest.SQLite(t, storetest.WithHooks(store.Hooks{BeforeTempLock: func(path string) {
		if swept > 0 {
			return
		}
		res, err := s.Sweep(ctx, time.Hour)
		mustOK(t, err)
		swept += res.TempFiles
	}}))
	f, err := s.CreateTemp()
	mustOK(t, err)
	defer f.Close()
	if swept != 1 {
		t.Fatalf("got %d temp files swept in the window, want 1", swept)
	}
	fi, err := f.Stat()
	mustOK(t, err)
	pi, err := os.Stat(f.Name())
	if err != nil || !os.SameFile(fi, pi) {
		t.Fatalf("got the temp file gone from %s (%v), want it there", f.Name(), err)
	}
	res, err := s.Sweep(ctx, time.Hour)
	mustOK(t, err)
	if res.TempFiles != 0 || !exists(t, f.Name()) {
		t.Errorf("got %+v and present %v after a later sweep, want the locked temp file kept", res, exists(t, f.Name()))
	}
}

func TestSweepBatches(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		// More orphans than one batch, plus one file with a row: a query per batch, not per file.
		old := time.Now().Add(-2 * time.Hour)
		alice := createUser(t, s, "alice", "Basic")
		img := createImage(t, s, alice.ID, "kept.png")
		mustOK(t, os.Chtimes(s.OriginalPath(img.ID), old, old))
		const n = 1200
		for i := range n {
			// Digits spelled as letters, least significant first: ids spread over 100 shards.
			digits := []byte(fmt.Sprintf("%024d", i))
			slices.Reverse(digits)
			for j := range digits {
				digits[j] += 'a' - '0'
			}
			id := string(digits)
			p := s.OriginalPath(id)
			mustOK(t, os.MkdirAll(filepath.Dir(p), 0o755))
			mustOK(t, os.WriteFile(p, nil, 0o644))
			mustOK(t, os.Chtimes(p, old, old))
		}
		before := s.Queries()
		res, err := s.Sweep(t.Context(), time.Hour)
		mustOK(t, err)
		if res.Orphans != n {
			t.Errorf("got %d orphans removed, want %d", res.Orphans, n)
		}
		if q := s.Queries() - before; q > 4 {
			t.Errorf("got %d queries for %d files, want at most 4", q, n+1)
		}
		if !exists(t, s.OriginalPath(img.ID)) {
			t.Errorf("got the original with a row removed, want it kept")
		}
	})
}

// TestListImagesUsesIndex checks that the image lists are range scans of an index that gives
// their order, on both planners, so that a page costs the same however many images there are.
func TestListImagesUsesIndex(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		pkey := map[string]string{store.DialectSQLite: "INTEGER PRIMARY KEY", store.DialectPostgres: "images_pkey"}[s.Dialect()]
		tests := []struct {
			name  string
			query string
			args  []any
			index string
		}{
			{name: "ListImages", query: store.ListImagesQuery, args: []any{1, 100, 20}, index: "images_owner_seq"},
			{name: "ListAllImages of owner", query: store.ListOwnerImagesQuery, args: []any{1, 100, 20}, index: "images_owner_seq"},
			{name: "ListAllImages", query: store.ListAllImagesQuery, args: []any{100, 20}, index: pkey},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				plan := queryPlan(t, s, tt.query, tt.args...)
				joined := strings.Join(plan, "\n")
				if !strings.Contains(joined, tt.index) {
					t.Errorf("got plan\n%s\nwant it to use %s", joined, tt.index)
				}
				if strings.Contains(joined, "TEMP B-TREE") || strings.Contains(joined, "Sort") {
					t.Errorf("got plan\n%s\nwant no sort step", joined)
				}
				// A full scan of either table: SQLite says SCAN without an index, PostgreSQL
				// Seq Scan (disabled below, so it would show only as the last resort).
				for _, line := range plan {
					if (strings.Contains(line, "SCAN ") && !strings.Contains(line, "USING")) || strings.Contains(line, "Seq Scan") {
						t.Errorf("got plan\n%s\nwant no full scan", joined)
					}
				}
			})
		}
	})
}

// queryPlan returns the plan of query on s's database, one line per step. On PostgreSQL,
// sequential scans are disabled first: an empty table is cheapest to scan whole, and the plan
// wanted is the one for a big table.
func queryPlan(t *testing.T, s *store.Store, query string, args ...any) []string {
	t.Helper()
	ctx := t.Context()
	db := store.DB(s)
	var plan []string
	switch s.Dialect() {
	case store.DialectSQLite:
		var rows []struct {
			ID      int    `db:"id"`
			Parent  int    `db:"parent"`
			NotUsed int    `db:"notused"`
			Detail  string `db:"detail"`
		}
		mustOK(t, db.SelectContext(ctx, &rows, `EXPLAIN QUERY PLAN `+query, args...))
		for _, r := range rows {
			plan = append(plan, r.Detail)
		}
	case store.DialectPostgres:
		conn, err := db.Connx(ctx)
		mustOK(t, err)
		defer conn.Close()
		_, err = conn.ExecContext(ctx, `SET enable_seqscan = off`)
		mustOK(t, err)
		defer conn.ExecContext(context.Background(), `RESET enable_seqscan`)
		mustOK(t, conn.SelectContext(ctx, &plan, db.Rebind(`EXPLAIN `+query), args...))
	default:
		t.Fatalf("got dialect %q, want sqlite or postgres", s.Dialect())
	}
	return plan
}

// TestOpenTwice opens several stores on one database at once and again after: migrations
// apply exactly once and the builtin tiers are seeded once.
func TestOpenTwice(t *testing.T) {
	tests := []struct {
		name   string
		config func(t *testing.T) store.Config
	}{
		{name: "sqlite", config: func(t *testing.T) store.Config {
			return store.Config{DataDir: t.TempDir()}
		}},
		{name: "postgres", config: func(t *testing.T) store.Config {
			return store.Config{DatabaseURL: storetest.NewSchema(t, storetest.PostgresURL(t)), DataDir: t.TempDir()}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.config(t)
			open := func() *store.Store {
				s, err := store.Open(context.Background(), cfg)
				if err != nil {
					t.Errorf("open: %v", err)
					return nil
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
			var wg sync.WaitGroup
			for range 3 {
				wg.Go(func() { open() })
			}
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
			s := open()
			if s == nil {
				t.FailNow()
			}
			var versions int
			mustOK(t, store.DB(s).GetContext(t.Context(), &versions, `SELECT COUNT(*) FROM schema_migrations`))
			if want := store.Migrations(t, s); versions != want {
				t.Errorf("got %d applied migrations, want %d", versions, want)
			}
			tiers, err := s.ListTiers(t.Context())
			mustOK(t, err)
			if len(tiers) != 3 {
				t.Errorf("got %d tiers, want the 3 builtin", len(tiers))
			}
		})
	}
}

func TestOpenInvalidConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  store.Config
	}{
		{name: "no data dir", cfg: store.Config{}},
		{name: "not postgres", cfg: store.Config{DataDir: t.TempDir(), DatabaseURL: "mysql://localhost/x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := store.Open(t.Context(), tt.cfg)
			if err == nil {
				s.Close()
				t.Fatalf("got a store, want an error")
			}
		})
	}
}

func TestValidImageID(t *testing.T) {
	tests := []struct {
		name string
		id   string
		want bool
	}{
		{name: "valid", id: "abcdefghijklmnopqrstuv27", want: true},
		{name: "too short", id: "abc", want: false},
		{name: "upper case", id: "ABCDEFGHIJKLMNOPQRSTUV27", want: false},
		{name: "digit 1", id: "abcdefghijklmnopqrstuv21", want: false},
		{name: "traversal", id: "../../../../../../etc/pa", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tierpix.ValidImageID(tt.id); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestLookupsCostOneQuery pins the statements per call of the lookups that every request makes.
func TestLookupsCostOneQuery(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		alice := createUser(t, s, "alice", "Premium")
		_, token, err := s.CreateToken(ctx, alice.ID)
		mustOK(t, err)
		img := createImage(t, s, alice.ID, "a.png")
		session, sess, err := s.CreateSession(ctx, alice.ID, time.Hour, "test", "127.0.0.1")
		mustOK(t, err)

		tests := []struct {
			name string
			run  func() error
		}{
			{name: "FindUser", run: func() error { _, err := s.FindUser(ctx, "alice"); return err }},
			{name: "FindUserByID", run: func() error { _, err := s.FindUserByID(ctx, alice.ID); return err }},
			{name: "FindIdentityByToken", run: func() error { _, err := s.FindIdentityByToken(ctx, token); return err }},
			{name: "FindImageForServing", run: func() error { _, _, err := s.FindImageForServing(ctx, img.ID); return err }},
			{name: "FindImage", run: func() error { _, err := s.FindImage(ctx, img.ID); return err }},
			{name: "ListImages", run: func() error { _, err := s.ListImages(ctx, alice.ID, 0, 20); return err }},
			{name: "ListAllImages", run: func() error { _, err := s.ListAllImages(ctx, 0, 0, 20); return err }},
			{name: "ListAllImages of owner", run: func() error { _, err := s.ListAllImages(ctx, alice.ID, 0, 20); return err }},
			{name: "FindSession", run: func() error { _, _, err := s.FindSession(ctx, session, time.Time{}); return err }},
			{name: "TouchSession", run: func() error { return s.TouchSession(ctx, sess.ID) }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := s.Queries()
				mustOK(t, tt.run())
				if got := s.Queries() - before; got != 1 {
					t.Errorf("got %d queries, want 1", got)
				}
			})
		}
	})
}

// updateUser saves u's tier, admin flag and password hash through ModifyUser, the store's one
// way to change a user, and sets u to what was stored.
func updateUser(ctx context.Context, s *store.Store, u *tierpix.User) error {
	got, err := s.ModifyUser(ctx, u.Username, func(cur *tierpix.User) error {
		cur.TierName, cur.IsAdmin, cur.PasswordHash = u.TierName, u.IsAdmin, u.PasswordHash
		return nil
	})
	if err == nil {
		*u = got
	}
	return err
}
