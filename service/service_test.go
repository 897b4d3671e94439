package service_test

import (
	"bytes"
	"context"
	"image/jpeg"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/imaging/imagingtest"
	"github.com/tierpix/tierpix/imaging/testimage"
	"github.com/tierpix/tierpix/service"
	"github.com/tierpix/tierpix/signin"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
)

func TestMain(m *testing.M) { imagingtest.Main(m) }

// purges records what the services purged.
type purges struct {
	mu  sync.Mutex
	ids []string
}

func (p *purges) Purge(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ids = append(p.ids, id)
}

func (p *purges) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.ids)
}

type fixture struct {
	svc    *service.Service
	st     *store.Store
	si     *signin.Service
	purged *purges
	admin  tierpix.Identity // "root", an admin
	alice  tierpix.Identity // a Basic user
}

func newFixture(t *testing.T, st *store.Store) *fixture {
	t.Helper()
	si, err := signin.New(signin.Config{BcryptCost: 4}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, si: si, purged: &purges{}}
	if f.svc, err = service.New(service.Config{BcryptCost: 4}, st, si, f.purged, nil); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	// nil is the operator at the command line.
	if _, err := f.svc.CreateUser(ctx, nil, tierpix.NewUser{Username: "root", Password: "root-password", IsAdmin: true}); err != nil {
		t.Fatalf("create root: %v", err)
	}
	if _, err := f.svc.CreateUser(ctx, nil, tierpix.NewUser{Username: "alice", Password: "alice-password"}); err != nil {
		t.Fatalf("create alice: %v", err)
	}
	f.admin, f.alice = f.find(t, "root"), f.find(t, "alice")
	return f
}

func (f *fixture) find(t *testing.T, username string) tierpix.Identity {
	t.Helper()
	id, err := f.svc.FindUser(t.Context(), nil, username)
	if err != nil {
		t.Fatalf("find %s: %v", username, err)
	}
	return id
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := tierpix.ErrorCode(err); got != code {
		t.Fatalf("%s: got %v (code %q), want code %q", what, err, got, code)
	}
}

// upload adds a small JPEG of owner's through the services, as the API does.
func (f *fixture) upload(t *testing.T, owner *tierpix.Identity) tierpix.Image {
	t.Helper()
	tmp, err := f.st.CreateTemp()
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, testimage.Photo(64, 48, 4), nil); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	if _, err := tmp.Write(data); err != nil {
		t.Fatal(err)
	}
	img, err := f.svc.AddImage(t.Context(), owner, tmp.Name(), "p.jpg", int64(len(data)))
	if err != nil {
		t.Fatalf("add image: %v", err)
	}
	return img
}

// TestRules proves each rule of the services once, on SQLite and PostgreSQL.
func TestRules(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st)
		ctx := context.Background()
		admin, alice := &f.admin, &f.alice

		t.Run("admin-only operations refuse users", func(t *testing.T) {
			_, err := f.svc.CreateTier(ctx, alice, tierpix.Tier{Name: "Gold"})
			wantCode(t, "user creates a tier", err, tierpix.EFORBIDDEN)
			_, err = f.svc.ListUsers(ctx, alice, tierpix.UserQuery{Limit: 10})
			wantCode(t, "user lists users", err, tierpix.EFORBIDDEN)
			_, err = f.svc.FindUser(ctx, alice, "root")
			wantCode(t, "user reads another user", err, tierpix.EFORBIDDEN)
			_, err = f.svc.UpdateUser(ctx, alice, "alice", tierpix.UserUpdate{IsAdmin: ptr(true)})
			wantCode(t, "user promotes themselves", err, tierpix.EFORBIDDEN)
			err = f.svc.DeleteAnyImage(ctx, alice, "aaaaaaaaaaaaaaaaaaaaaaaa")
			wantCode(t, "user deletes any image", err, tierpix.EFORBIDDEN)
			if _, err := f.svc.FindUser(ctx, alice, "alice"); err != nil {
				t.Fatalf("user reads themselves: %v", err)
			}
		})

		t.Run("new users", func(t *testing.T) {
			_, err := f.svc.CreateUser(ctx, admin, tierpix.NewUser{Username: "bad name", Password: "short"})
			wantCode(t, "bad username and password", err, tierpix.EINVALID)
			if fields := tierpix.ErrorFields(err); fields["username"] == "" || fields["password"] == "" {
				t.Fatalf("fields: got %v, want username and password both named", fields)
			}
			u, err := f.svc.CreateUser(ctx, admin, tierpix.NewUser{Username: "bob", Password: "bob-password"})
			if err != nil || u.TierName != tierpix.DefaultTier {
				t.Fatalf("create bob: got %+v, %v; want him on %s", u, err, tierpix.DefaultTier)
			}
			if _, err := f.si.SignIn(ctx, "bob", "bob-password", "192.0.2.1"); err != nil {
				t.Fatalf("bob signs in with the password set: %v", err)
			}
		})

		t.Run("user lists refuse bad queries before the store sees them", func(t *testing.T) {
			p, err := f.svc.ListUsers(ctx, admin, tierpix.UserQuery{Sort: tierpix.SortTier, Limit: 1})
			if err != nil || len(p.Users) != 1 || p.Next == "" {
				t.Fatalf("first page by tier: got %+v, %v; want one user and a next cursor", p, err)
			}
			tierCursor := p.Next
			tests := []struct {
				name  string
				q     tierpix.UserQuery
				field string
			}{
				{name: "unknown order", q: tierpix.UserQuery{Sort: "password_hash", Limit: 10}, field: "ordering"},
				{name: "descending unknown order", q: tierpix.UserQuery{Sort: "-tier", Desc: true, Limit: 10}, field: "ordering"},
				{name: "cursor not from this list", q: tierpix.UserQuery{Cursor: "bm9wZQ", Limit: 10}, field: "cursor"},
				{name: "cursor of another order", q: tierpix.UserQuery{Sort: tierpix.SortCreatedAt, Cursor: tierCursor, Limit: 10}, field: "cursor"},
				{name: "no limit", q: tierpix.UserQuery{}, field: "limit"},
				{name: "search too long", q: tierpix.UserQuery{Search: strings.Repeat("x", tierpix.MaxUserSearch+1), Limit: 10}, field: "search"},
			}
			for _, tt := range tests {
				before := f.st.Queries()
				_, err := f.svc.ListUsers(ctx, admin, tt.q)
				wantCode(t, tt.name, err, tierpix.EINVALID)
				if fields := tierpix.ErrorFields(err); fields[tt.field] == "" {
					t.Errorf("%s: got fields %v, want %s named", tt.name, fields, tt.field)
				}
				if n := f.st.Queries() - before; n != 0 {
					t.Errorf("%s: got %d statements, want the query refused before any", tt.name, n)
				}
			}
			p, err = f.svc.ListUsers(ctx, admin, tierpix.UserQuery{Sort: tierpix.SortTier, Cursor: tierCursor, Limit: 10})
			if err != nil || p.First || len(p.Users) == 0 {
				t.Errorf("second page by tier: got %+v, %v; want the users after the first", p, err)
			}
		})

		t.Run("an admin cannot demote or delete themselves", func(t *testing.T) {
			_, err := f.svc.UpdateUser(ctx, admin, "root", tierpix.UserUpdate{IsAdmin: ptr(false)})
			wantCode(t, "self-demotion", err, tierpix.ECONFLICT)
			wantCode(t, "self-deletion", f.svc.DeleteUser(ctx, admin, "root"), tierpix.ECONFLICT)
			if err := tierpix.SelfDeleteRefusal(admin, &admin.User); err == nil {
				t.Fatal("SelfDeleteRefusal: got nil for the admin's own account")
			}
			if !f.find(t, "root").User.IsAdmin {
				t.Fatal("root is no longer an admin")
			}
		})

		t.Run("the last admin stays", func(t *testing.T) {
			// The operator (nil) has no account of their own to protect.
			_, err := f.svc.UpdateUser(ctx, nil, "root", tierpix.UserUpdate{IsAdmin: ptr(false)})
			wantCode(t, "demote the last admin", err, tierpix.ECONFLICT)
			wantCode(t, "delete the last admin", f.svc.DeleteUser(ctx, nil, "root"), tierpix.ECONFLICT)
		})

		t.Run("usernames and tier names do not change", func(t *testing.T) {
			_, err := f.svc.UpdateUser(ctx, admin, "alice", tierpix.UserUpdate{Username: ptr("alicia")})
			wantCode(t, "rename a user", err, tierpix.EINVALID)
			_, err = f.svc.UpdateTier(ctx, admin, "Basic", tierpix.TierUpdate{Name: ptr("Cheap")})
			wantCode(t, "rename a tier", err, tierpix.EINVALID)
		})

		t.Run("builtin tiers and tiers in use stay", func(t *testing.T) {
			wantCode(t, "delete Basic", f.svc.DeleteTier(ctx, admin, "Basic"), tierpix.ECONFLICT)
			gold, err := f.svc.CreateTier(ctx, admin, tierpix.Tier{Name: "Gold", ThumbnailHeights: []int{300, 100, 300}})
			if err != nil || !slices.Equal(gold.ThumbnailHeights, []int{100, 300}) {
				t.Fatalf("create Gold: got %+v, %v; want heights normalized to [100 300]", gold, err)
			}
			if _, err := f.svc.UpdateUser(ctx, admin, "alice", tierpix.UserUpdate{Tier: ptr("Gold")}); err != nil {
				t.Fatal(err)
			}
			wantCode(t, "delete Gold in use", f.svc.DeleteTier(ctx, admin, "Gold"), tierpix.ECONFLICT)
			if _, err := f.svc.UpdateUser(ctx, admin, "alice", tierpix.UserUpdate{Tier: ptr("Basic")}); err != nil {
				t.Fatal(err)
			}
			if err := f.svc.DeleteTier(ctx, admin, "Gold"); err != nil {
				t.Fatalf("delete Gold, unused: %v", err)
			}
		})

		t.Run("a new password ends the sessions and the old one", func(t *testing.T) {
			if _, _, err := f.st.CreateSession(ctx, alice.User.ID, 3600e9, "test", "192.0.2.1"); err != nil {
				t.Fatal(err)
			}
			if _, err := f.si.Authenticate(ctx, "alice", "alice-password", "192.0.2.1"); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.UpdateUser(ctx, admin, "alice", tierpix.UserUpdate{Password: ptr("new-password")}); err != nil {
				t.Fatal(err)
			}
			sessions, err := f.svc.ListSessions(ctx, admin, "alice", storetest.ClockStart.AddDate(-10, 0, 0))
			if err != nil || len(sessions) != 0 {
				t.Fatalf("alice's sessions after a new password: got %d, %v; want none", len(sessions), err)
			}
			_, err = f.si.Authenticate(ctx, "alice", "alice-password", "192.0.2.1")
			wantCode(t, "the old password, remembered before", err, tierpix.EUNAUTHORIZED)
		})

		t.Run("images: own only, and purged on delete", func(t *testing.T) {
			img := f.upload(t, alice)
			_, err := f.svc.FindImage(ctx, admin, img.ID)
			wantCode(t, "an admin's own-image lookup of alice's image", err, tierpix.ENOTFOUND)
			wantCode(t, "another user deletes it", f.svc.DeleteImage(ctx, admin, img.ID), tierpix.ENOTFOUND)
			owned, err := f.svc.FindAnyImage(ctx, admin, img.ID)
			if err != nil || owned.Owner != "alice" {
				t.Fatalf("FindAnyImage: got %+v, %v; want alice's", owned, err)
			}
			if err := f.svc.DeleteImage(ctx, alice, img.ID); err != nil {
				t.Fatal(err)
			}
			if got := f.purged.all(); !slices.Contains(got, img.ID) {
				t.Fatalf("purged: got %v, want %s", got, img.ID)
			}
			if _, err := os.Stat(filepath.Join(f.st.OriginalPath(img.ID))); !os.IsNotExist(err) {
				t.Fatalf("original after delete: %v, want it gone", err)
			}
		})

		t.Run("deleting a user purges their images", func(t *testing.T) {
			if _, err := f.svc.CreateUser(ctx, admin, tierpix.NewUser{Username: "carol", Password: "carol-password"}); err != nil {
				t.Fatal(err)
			}
			carol := f.find(t, "carol")
			a, b := f.upload(t, &carol), f.upload(t, &carol)
			if err := f.svc.DeleteUser(ctx, admin, "carol"); err != nil {
				t.Fatal(err)
			}
			got := f.purged.all()
			if !slices.Contains(got, a.ID) || !slices.Contains(got, b.ID) {
				t.Fatalf("purged: got %v, want %s and %s", got, a.ID, b.ID)
			}
			_, err := f.svc.FindUser(ctx, admin, "carol")
			wantCode(t, "carol after delete", err, tierpix.ENOTFOUND)
		})
	})
}

// TestGrants is the one rule of what a tier's links reach.
func TestGrants(t *testing.T) {
	premium := tierpix.Tier{ThumbnailHeights: []int{200, 400}, OriginalLink: true}
	basic := tierpix.Tier{ThumbnailHeights: []int{200}}
	tests := []struct {
		tier     tierpix.Tier
		height   int
		expiring bool
		want     tierpix.LinkRefusal
	}{
		{premium, 400, false, tierpix.LinkGranted},
		{premium, 0, false, tierpix.LinkGranted},
		{premium, 300, false, tierpix.NoHeight},
		{premium, 200, true, tierpix.NoExpiringLinks},
		{basic, 0, false, tierpix.NoOriginal},
		{basic, 400, false, tierpix.NoHeight},
	}
	for _, tt := range tests {
		if got := tt.tier.Grants(tt.height, tt.expiring); got != tt.want {
			t.Errorf("%+v.Grants(%d, %t): got %d, want %d", tt.tier, tt.height, tt.expiring, got, tt.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }
