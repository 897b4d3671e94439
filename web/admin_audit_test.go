package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
)

// TestAdminAuditPages proves the audit log in the admin UI: changes made through the pages
// show on the dashboard's Recent actions, on the log's page with its filters, and on each
// object's history page, with what changed.
func TestAdminAuditPages(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ts := newTestServerWith(t, st, Config{})
		c, csrf := ts.signedIn(t, "admin")
		ts.adminPostForm(t, c, "/admin/tiers/new", csrf, url.Values{"name": {"Gold"}, "thumbnail_heights": {"300"}}).wantStatus(t, http.StatusSeeOther)
		ts.adminPostForm(t, c, "/admin/users/alice", csrf, url.Values{"tier": {"Gold"}}).wantStatus(t, http.StatusSeeOther)
		img := ts.adminAddImage(t, ts.adminUser(t, "alice").ID, "cat.jpg", 8, 6)
		ts.adminPostForm(t, c, "/admin/images/"+img.ID+"/delete", csrf, nil).wantStatus(t, http.StatusSeeOther)

		dash := ts.adminGet(t, c, "/admin")
		dash.wantStatus(t, http.StatusOK)
		dash.wantBody(t, `id="recent-actions"`, "Created tier", `<a href="/admin/tiers/Gold">Gold</a>`,
			"Changed user", "tier: Basic → Gold", "Deleted image", "cat.jpg", `<a href="/admin/audit">All actions</a>`)

		all := ts.adminGet(t, c, "/admin/audit")
		all.wantStatus(t, http.StatusOK)
		if strings.Index(all.body, "Deleted image") > strings.Index(all.body, "Created tier") {
			t.Error("the log is not newest first")
		}
		tiers := ts.adminGet(t, c, "/admin/audit?object_type=tier")
		tiers.wantBody(t, "Created tier")
		tiers.wantNoBody(t, "Changed user", "Deleted image")
		ts.adminGet(t, c, "/admin/audit?actor=nobody").wantBody(t, `id="no-actions"`)

		alice := ts.adminGet(t, c, "/admin/users/alice/history")
		alice.wantStatus(t, http.StatusOK)
		alice.wantBody(t, "History of user alice", "tier: Basic → Gold")
		alice.wantNoBody(t, "Created tier")
		gold := ts.adminGet(t, c, "/admin/tiers/Gold/history")
		gold.wantBody(t, "History of tier Gold", "thumbnail heights: 300")
		gone := ts.adminGet(t, c, "/admin/images/"+img.ID+"/history")
		gone.wantStatus(t, http.StatusOK)
		gone.wantBody(t, "Deleted image", "name was cat.jpg")
	})
}

// TestAdminBulkDelete proves django-admin's "delete selected": one confirmation lists what
// goes with each user (and what cannot go, and why), and nothing goes before its post.
func TestAdminBulkDelete(t *testing.T) {
	ts := newTestServer(t, Config{})
	c, csrf := ts.signedIn(t, "admin")
	alice := ts.adminUser(t, "alice")
	ts.createUser(t, "bob", "Basic", false)
	ts.adminAddImage(t, alice.ID, "a.jpg", 8, 6)
	ts.adminAddImage(t, alice.ID, "b.jpg", 8, 6)

	confirm := ts.adminGet(t, c, "/admin/delete-users?user=alice&user=bob&user=admin&user=nobody")
	confirm.wantStatus(t, http.StatusOK)
	confirm.wantBody(t, "Delete 2 users?", "alice, with 2 images, 0 API tokens and 0 sessions",
		"bob, with 0 images", "admin: You cannot delete your own account.", "nobody: there is no such user.",
		`<input type="hidden" name="user" value="alice">`, `<button type="submit" class="button danger">Delete 2 users</button>`)
	confirm.wantNoBody(t, `<input type="hidden" name="user" value="admin">`)
	ts.adminUser(t, "alice") // still there: a GET deletes nothing

	done := ts.adminPostForm(t, c, "/admin/delete-users", csrf, url.Values{"user": {"alice", "bob"}})
	done.wantRedirect(t, "/admin/users")
	ts.adminGet(t, c, done.location).wantBody(t, "Deleted 2 users.")
	for _, name := range []string{"alice", "bob"} {
		if _, err := ts.st.FindUser(t.Context(), name); tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
			t.Errorf("%s after the bulk delete: %v", name, err)
		}
	}
	// The admin's own account cannot go, even posted by hand.
	own := ts.adminPostForm(t, c, "/admin/delete-users", csrf, url.Values{"user": {"admin"}})
	own.wantRedirect(t, "/admin/users")
	ts.adminGet(t, c, own.location).wantBody(t, "Deleted 0 users. Not deleted: admin (You cannot delete your own account)")

	// Images alike.
	admin := ts.adminUser(t, "admin")
	x := ts.adminAddImage(t, admin.ID, "x.jpg", 8, 6)
	y := ts.adminAddImage(t, admin.ID, "y.jpg", 8, 6)
	ic := ts.adminGet(t, c, fmt.Sprintf("/admin/delete-images?id=%s&id=%s", x.ID, y.ID))
	ic.wantBody(t, "Delete 2 images?", "x.jpg of admin", "y.jpg of admin")
	id := ts.adminPostForm(t, c, "/admin/delete-images", csrf, url.Values{"id": {x.ID, y.ID}})
	ts.adminGet(t, c, id.location).wantBody(t, "Deleted 2 images.")
	if _, err := ts.st.FindImage(t.Context(), x.ID); tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
		t.Errorf("x.jpg after the bulk delete: %v", err)
	}
}

// TestAdminImageDetail proves the admin's page of one image.
func TestAdminImageDetail(t *testing.T) {
	ts := newTestServer(t, Config{})
	c, _ := ts.signedIn(t, "admin")
	img := ts.adminAddImage(t, ts.adminUser(t, "alice").ID, "dog.jpg", 40, 30)
	page := ts.adminGet(t, c, "/admin/images/"+img.ID)
	page.wantStatus(t, http.StatusOK)
	page.wantBody(t, "<h1>Image dog.jpg</h1>", "<dd>40×30</dd>", "<dd>JPEG</dd>", `<a href="/admin/users/alice">alice</a>`,
		`href="/admin/images/`+img.ID+`/delete"`)
	ts.adminGet(t, c, "/admin/images/aaaaaaaaaaaaaaaaaaaaaaaa").wantStatus(t, http.StatusNotFound)
}

// TestAdminConfirmations proves that signing out everywhere asks first.
func TestAdminConfirmations(t *testing.T) {
	ts := newTestServer(t, Config{})
	c, _ := ts.signedIn(t, "admin")
	ts.signedIn(t, "alice")
	confirm := ts.adminGet(t, c, "/admin/users/alice/sessions/delete")
	confirm.wantStatus(t, http.StatusOK)
	confirm.wantBody(t, "1 session (expired ones included)", `<button type="submit" class="button danger">Sign out everywhere</button>`)
	sessions, err := ts.st.ListUserSessions(t.Context(), ts.adminUser(t, "alice").ID, time.Now().AddDate(-5, 0, 0))
	if err != nil || len(sessions) != 1 {
		t.Fatalf("alice's sessions after the confirmation alone: %d, %v", len(sessions), err)
	}
}

// TestAdminImageOrder proves the image list's Uploaded heading: oldest first, in pages, and
// back.
func TestAdminImageOrder(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ts := newTestServerWith(t, st, Config{})
		c, _ := ts.signedIn(t, "admin")
		alice := ts.adminUser(t, "alice")
		var ids []string // oldest first
		var seqs []int64
		for i := range 55 {
			img := ts.adminAddImage(t, alice.ID, fmt.Sprintf("img-%02d.jpg", i), 8, 6)
			ids, seqs = append(ids, img.ID), append(seqs, img.Seq)
		}
		order := func(r adminResponse) []string {
			var got []string
			for _, part := range strings.Split(r.body, `id="select-`)[1:] {
				got = append(got, part[:24])
			}
			return got
		}
		newest := ts.adminGet(t, c, "/admin/images")
		newest.wantBody(t, `aria-sort="descending"><a href="/admin/images?o=created_at">Uploaded`)
		if got := order(newest); len(got) != 50 || got[0] != ids[54] {
			t.Fatalf("newest first: got %d rows from %v, want 50 from %s", len(got), got[:1], ids[54])
		}
		oldest := ts.adminGet(t, c, "/admin/images?o=created_at")
		oldest.wantBody(t, `aria-sort="ascending"><a href="/admin/images">Uploaded`)
		got := order(oldest)
		if len(got) != 50 || got[0] != ids[0] || got[49] != ids[49] {
			t.Fatalf("oldest first: got %d rows, want ids[0..49]", len(got))
		}
		next := ts.adminGet(t, c, fmt.Sprintf("/admin/images?before=%d&o=created_at", seqs[49]))
		if rest := order(next); len(rest) != 5 || rest[0] != ids[50] {
			t.Fatalf("oldest first, page 2: got %v, want ids[50..54]", rest)
		}
	})
}
