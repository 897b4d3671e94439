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
