package service_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
)

// changes returns the whole audit log, newest first, walking its pages of two.
func (f *fixture) changes(t *testing.T, q tierpix.ChangeQuery) []tierpix.Change {
	t.Helper()
	q.Limit = 2
	var all []tierpix.Change
	for {
		page, err := f.svc.ListChanges(t.Context(), &f.admin, q)
		if err != nil {
			t.Fatalf("list changes: %v", err)
		}
		all = append(all, page.Changes...)
		if !page.More {
			return all
		}
		q.Before = page.Changes[len(page.Changes)-1].ID
	}
}

// TestAuditLog proves that every change through the services is recorded once, with who
// made it and what changed, and never a secret; that refused changes leave no entry; and
// that the log pages and filters right. On SQLite and PostgreSQL.
func TestAuditLog(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st)
		ctx := context.Background()
		admin, alice := &f.admin, &f.alice
		setup := len(f.changes(t, tierpix.ChangeQuery{})) // the fixture's two users

		if _, err := f.svc.CreateTier(ctx, admin, tierpix.Tier{Name: "Gold", ThumbnailHeights: []int{300}}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.UpdateTier(ctx, admin, "gold", tierpix.TierUpdate{ThumbnailHeights: &[]int{300, 500}, OriginalLink: ptr(false)}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.CreateUser(ctx, admin, tierpix.NewUser{Username: "bob", Password: "bob-password", Tier: "Gold"}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.UpdateUser(ctx, admin, "bob", tierpix.UserUpdate{Password: ptr("bob-password-2"), Tier: ptr("premium")}); err != nil {
			t.Fatal(err)
		}
		_, token, secret, err := f.svc.CreateToken(ctx, admin, "bob")
		if err != nil {
			t.Fatal(err)
		}
		if err := f.svc.DeleteToken(ctx, admin, "bob", token.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.EndSessions(ctx, admin, "bob"); err != nil {
			t.Fatal(err)
		}
		img := f.upload(t, alice)
		if err := f.svc.DeleteAnyImage(ctx, admin, img.ID); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.ChangePassword(ctx, alice, "alice-password", "alice-password-2", "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		bobImg := f.upload(t, ptr(f.find(t, "bob")))
		if err := f.svc.DeleteUser(ctx, nil, "bob"); err != nil {
			t.Fatal(err)
		}

		// Refused changes record nothing.
		wantCode(t, "delete Basic", f.svc.DeleteTier(ctx, admin, "Basic"), tierpix.ECONFLICT)
		_, err = f.svc.CreateUser(ctx, admin, tierpix.NewUser{Username: "alice", Password: "another-password"})
		wantCode(t, "duplicate user", err, tierpix.ECONFLICT)
		// A short password does not hide that the username is taken.
		_, err = f.svc.CreateUser(ctx, admin, tierpix.NewUser{Username: "alice", Password: "short"})
		if fields := tierpix.ErrorFields(err); fields["username"] == "" || fields["password"] == "" {
			t.Fatalf("taken username and short password: fields %v, want both named", fields)
		}
		err = f.svc.ChangePassword(ctx, alice, "wrong-password", "alice-password-3", "192.0.2.1")
		wantCode(t, "wrong current password", err, tierpix.EINVALID)
		if tierpix.ErrorFields(err)["current_password"] == "" {
			t.Fatalf("wrong current password: fields %v, want current_password named", tierpix.ErrorFields(err))
		}

		log := f.changes(t, tierpix.ChangeQuery{})
		got := log[:len(log)-setup]
		type entry struct{ actor, action, objType, repr string }
		want := []entry{ // newest first
			{"", tierpix.ActionDelete, tierpix.ObjectUser, "bob"},
			{"bob", tierpix.ActionCreate, tierpix.ObjectImage, "p.jpg"},
			{"alice", tierpix.ActionPassword, tierpix.ObjectUser, "alice"},
			{"root", tierpix.ActionDelete, tierpix.ObjectImage, "p.jpg"},
			{"alice", tierpix.ActionCreate, tierpix.ObjectImage, "p.jpg"},
			{"root", tierpix.ActionEndSessions, tierpix.ObjectUser, "bob"},
			{"root", tierpix.ActionRevokeToken, tierpix.ObjectUser, "bob"},
			{"root", tierpix.ActionMintToken, tierpix.ObjectUser, "bob"},
			{"root", tierpix.ActionUpdate, tierpix.ObjectUser, "bob"},
			{"root", tierpix.ActionCreate, tierpix.ObjectUser, "bob"},
			{"root", tierpix.ActionUpdate, tierpix.ObjectTier, "Gold"},
			{"root", tierpix.ActionCreate, tierpix.ObjectTier, "Gold"},
		}
		if len(got) != len(want) {
			t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
		}
		for i, w := range want {
			c := got[i]
			if (entry{c.Actor, c.Action, c.ObjectType, c.ObjectRepr}) != w {
				t.Errorf("entry %d: got %s %s %s %q, want %+v", i, c.Actor, c.Action, c.ObjectType, c.ObjectRepr, w)
			}
			if i > 0 && c.ID >= got[i-1].ID {
				t.Errorf("entry %d: id %d not older than %d", i, c.ID, got[i-1].ID)
			}
			for _, fc := range c.Fields {
				for _, v := range []string{fc.Old, fc.New, fc.Note} {
					if strings.Contains(v, "password-") || strings.Contains(v, "$2a$") || (secret != "" && strings.Contains(v, secret[4:12])) {
						t.Errorf("entry %d (%s): field %s holds a secret: %q", i, c.Action, fc.Field, v)
					}
				}
			}
		}
		fields := func(c tierpix.Change) map[string]tierpix.FieldChange {
			m := map[string]tierpix.FieldChange{}
			for _, fc := range c.Fields {
				m[fc.Field] = fc
			}
			return m
		}
		tierUpd := fields(got[10])
		if h := tierUpd["thumbnail_heights"]; h.Old != "300" || h.New != "300, 500" {
			t.Errorf("tier update heights: got %+v", h)
		}
		if _, ok := tierUpd["expiring_links"]; ok {
			t.Errorf("tier update lists expiring_links, which did not change: %+v", got[10].Fields)
		}
		userUpd := fields(got[8])
		if userUpd["tier"].Old != "Gold" || userUpd["tier"].New != "Premium" || userUpd["password"].Note != "changed" {
			t.Errorf("user update: got %+v", got[8].Fields)
		}
		if del := fields(got[0]); del["images"].Old != "1" || del["tier"].Old != "Premium" {
			t.Errorf("user delete: got %+v, want 1 image and the tier it was on", got[0].Fields)
		}
		if got[0].ObjectID != got[9].ObjectID || got[0].ActorID != 0 {
			t.Errorf("bob's delete and create: object ids %q and %q, actor id %d", got[0].ObjectID, got[9].ObjectID, got[0].ActorID)
		}
		if got[1].ObjectID != bobImg.ID {
			t.Errorf("bob's upload: object id %q, want %q", got[1].ObjectID, bobImg.ID)
		}

		// Filters, each alone and together, and the operator.
		for _, tc := range []struct {
			q    tierpix.ChangeQuery
			want int
		}{
			{tierpix.ChangeQuery{Actor: "alice"}, 2},
			{tierpix.ChangeQuery{Actor: tierpix.OperatorActor}, setup + 1},
			{tierpix.ChangeQuery{ObjectType: tierpix.ObjectTier}, 2},
			{tierpix.ChangeQuery{ObjectType: tierpix.ObjectUser, ObjectID: got[0].ObjectID}, 6},
			{tierpix.ChangeQuery{Action: tierpix.ActionDelete, Actor: "root"}, 1},
		} {
			if n := len(f.changes(t, tc.q)); n != tc.want {
				t.Errorf("%+v: got %d entries, want %d", tc.q, n, tc.want)
			}
		}
		_, err = f.svc.ListChanges(ctx, alice, tierpix.ChangeQuery{Limit: 10})
		wantCode(t, "a user reads the log", err, tierpix.EFORBIDDEN)
		_, err = f.svc.ListChanges(ctx, admin, tierpix.ChangeQuery{Action: "drop", Limit: 10})
		wantCode(t, "unknown action", err, tierpix.EINVALID)

		// Back from the third page of two: the second page again.
		p1, _ := f.svc.ListChanges(ctx, admin, tierpix.ChangeQuery{Limit: 2})
		p2, _ := f.svc.ListChanges(ctx, admin, tierpix.ChangeQuery{Limit: 2, Before: p1.Changes[1].ID})
		p3, _ := f.svc.ListChanges(ctx, admin, tierpix.ChangeQuery{Limit: 2, Before: p2.Changes[1].ID})
		back, err := f.svc.ListChanges(ctx, admin, tierpix.ChangeQuery{Limit: 2, After: p3.Changes[0].ID})
		if err != nil || len(back.Changes) != 2 || back.Changes[0].ID != p2.Changes[0].ID || back.Changes[1].ID != p2.Changes[1].ID || !back.Newer || !back.More {
			t.Fatalf("back from page 3: got %+v, %v; want page 2 %d, %d with neighbours both ways", back, err, p2.Changes[0].ID, p2.Changes[1].ID)
		}
		first, _ := f.svc.ListChanges(ctx, admin, tierpix.ChangeQuery{Limit: 2, After: p2.Changes[0].ID})
		if first.Newer || first.Changes[0].ID != p1.Changes[0].ID {
			t.Fatalf("back to page 1: got %+v, want the newest first and nothing newer", first)
		}
	})
}

// TestChangePassword proves a user's own password change: the new one works, the old one
// and every session end, as when an admin sets it.
func TestChangePassword(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st)
		ctx := context.Background()
		if _, _, err := f.st.CreateSession(ctx, f.alice.User.ID, 3600e9, "test", "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		err := f.svc.ChangePassword(ctx, &f.alice, "alice-password", "short", "192.0.2.1")
		wantCode(t, "short new password", err, tierpix.EINVALID)
		if tierpix.ErrorFields(err)["new_password"] == "" {
			t.Fatalf("short new password: fields %v", tierpix.ErrorFields(err))
		}
		if err := f.svc.ChangePassword(ctx, &f.alice, "alice-password", "alice-password-2", "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.si.SignIn(ctx, "alice", "alice-password", "192.0.2.1"); tierpix.ErrorCode(err) != tierpix.EUNAUTHORIZED {
			t.Fatalf("the old password: got %v, want EUNAUTHORIZED", err)
		}
		if _, err := f.si.SignIn(ctx, "alice", "alice-password-2", "192.0.2.1"); err != nil {
			t.Fatalf("the new password: %v", err)
		}
		sessions, err := f.st.ListUserSessions(ctx, f.alice.User.ID, storetest.ClockStart.AddDate(-1, 0, 0))
		if err != nil || len(sessions) != 0 {
			t.Fatalf("sessions after the change: got %d, %v; want none", len(sessions), err)
		}
	})
}

// TestDeletePlans proves what the confirmations show before a delete: the counts a user's
// delete takes along, and refusals for tiers in use.
func TestDeletePlans(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st)
		ctx := context.Background()
		f.upload(t, &f.alice)
		f.upload(t, &f.alice)
		if _, _, _, err := f.svc.CreateToken(ctx, &f.admin, "alice"); err != nil {
			t.Fatal(err)
		}
		d, err := f.svc.PlanDeleteUser(ctx, &f.admin, "alice")
		if err != nil || d.Images != 2 || d.Tokens != 1 || d.Sessions != 0 || d.Refusal != nil {
			t.Fatalf("plan alice's delete: got %+v, %v; want 2 images, 1 token, no refusal", d, err)
		}
		if d, err := f.svc.PlanDeleteUser(ctx, &f.admin, "root"); err != nil || tierpix.ErrorCode(d.Refusal) != tierpix.ECONFLICT {
			t.Fatalf("plan root's own delete: got %+v, %v; want a refusal", d, err)
		}
		if _, err := f.svc.CreateTier(ctx, &f.admin, tierpix.Tier{Name: "Gold", ThumbnailHeights: []int{100}}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.CheckDeleteTier(ctx, &f.admin, "Gold"); err != nil {
			t.Fatalf("check unused Gold: %v", err)
		}
		if _, err := f.svc.UpdateUser(ctx, &f.admin, "alice", tierpix.UserUpdate{Tier: ptr("Gold")}); err != nil {
			t.Fatal(err)
		}
		_, err = f.svc.CheckDeleteTier(ctx, &f.admin, "Gold")
		wantCode(t, "check Gold in use", err, tierpix.ECONFLICT)
		if !strings.Contains(err.Error(), "1 user") {
			t.Fatalf("check Gold in use: %q does not count the user", err)
		}
	})
}
