package web

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tierpix/tierpix"
)

// adminRoute is one admin route with a concrete path.
type adminRoute struct {
	method string
	path   string
}

// adminRoutes lists every admin route of Register, on a Basic tier, alice and one image.
func adminRoutes(imageID string) []adminRoute {
	return []adminRoute{
		{http.MethodGet, "/admin"},
		{http.MethodGet, "/admin/tiers"},
		{http.MethodGet, "/admin/tiers/new"},
		{http.MethodPost, "/admin/tiers/new"},
		{http.MethodGet, "/admin/tiers/Basic"},
		{http.MethodPost, "/admin/tiers/Basic"},
		{http.MethodGet, "/admin/tiers/Basic/delete"},
		{http.MethodPost, "/admin/tiers/Basic/delete"},
		{http.MethodGet, "/admin/users"},
		{http.MethodGet, "/admin/users/new"},
		{http.MethodPost, "/admin/users/new"},
		{http.MethodGet, "/admin/users/alice"},
		{http.MethodPost, "/admin/users/alice"},
		{http.MethodGet, "/admin/users/alice/delete"},
		{http.MethodPost, "/admin/users/alice/delete"},
		{http.MethodPost, "/admin/users/alice/tokens"},
		{http.MethodPost, "/admin/users/alice/tokens/1/delete"},
		{http.MethodPost, "/admin/users/alice/sessions/delete"},
		{http.MethodGet, "/admin/images"},
		{http.MethodGet, "/admin/images/" + imageID + "/preview"},
		{http.MethodGet, "/admin/images/" + imageID + "/delete"},
		{http.MethodPost, "/admin/images/" + imageID + "/delete"},
	}
}

// TestAdminAccess checks that every admin route wants an admin: no session is sent to sign
// in, a non-admin is refused whatever the form carries, and nothing changes meanwhile.
func TestAdminAccess(t *testing.T) {
	ts := newTestServer(t, Config{})
	ctx := context.Background()
	alice := ts.adminUser(t, "alice")
	img := ts.adminAddImage(t, alice.ID, "cat.jpg", 40, 30)
	aliceClient, aliceCSRF := ts.signedIn(t, "alice")
	anon := ts.client(t)
	tiersBefore, err := ts.st.ListTiers(ctx)
	if err != nil {
		t.Fatalf("list tiers: %v", err)
	}

	// A form that would change something, were it accepted.
	form := url.Values{
		"name": {"Gold"}, "thumbnail_heights": {"1"}, "username": {"mallory"},
		"password": {"long enough password"}, "tier": {"Premium"}, "is_admin": {"on"},
	}
	for _, r := range adminRoutes(img.ID) {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			t.Run("no session", func(t *testing.T) {
				got := ts.adminDo(t, anon, r.method, r.path, form)
				want := "/login"
				if r.method == http.MethodGet {
					want += "?next=" + url.QueryEscape(r.path)
				}
				got.wantRedirect(t, want)
			})
			t.Run("not an admin", func(t *testing.T) {
				f := url.Values{"csrf_token": {aliceCSRF}}
				for k, v := range form {
					f[k] = v
				}
				if r.method == http.MethodGet {
					f = nil
				}
				got := ts.adminDo(t, aliceClient, r.method, r.path, f)
				got.wantStatus(t, http.StatusForbidden)
				got.wantNoBody(t, "cat.jpg", "Gold")
			})
		})
	}

	alice2 := ts.adminUser(t, "alice")
	if alice2 != alice {
		t.Errorf("got alice %+v after the refused requests, want %+v", alice2, alice)
	}
	if _, err := ts.st.FindImage(ctx, img.ID); err != nil {
		t.Errorf("find image after the refused requests: got %v, want nil", err)
	}
	if _, err := ts.st.FindUser(ctx, "mallory"); tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
		t.Errorf("find mallory: got %v, want ENOTFOUND", err)
	}
	tiersAfter, err := ts.st.ListTiers(ctx)
	if err != nil {
		t.Fatalf("list tiers: %v", err)
	}
	if !slices.EqualFunc(tiersBefore, tiersAfter, func(a, b tierpix.Tier) bool {
		return a.Name == b.Name && slices.Equal(a.ThumbnailHeights, b.ThumbnailHeights) && a.OriginalLink == b.OriginalLink
	}) {
		t.Errorf("got tiers %+v after the refused requests, want %+v", tiersAfter, tiersBefore)
	}
	if tokens, err := ts.st.ListTokens(ctx, alice.ID); err != nil || len(tokens) != 0 {
		t.Errorf("alice's tokens: got %v, %v, want none", tokens, err)
	}
	if sessions, err := ts.st.ListUserSessions(ctx, alice.ID, time.Time{}); err != nil || len(sessions) != 1 {
		t.Errorf("alice's sessions: got %d, %v, want 1", len(sessions), err)
	}
}

// TestAdminPages checks that every admin page renders for an admin, with the headers every
// page carries and no script.
func TestAdminPages(t *testing.T) {
	ts := newTestServer(t, Config{})
	alice := ts.adminUser(t, "alice")
	img := ts.adminAddImage(t, alice.ID, "cat.jpg", 40, 30)
	c, _ := ts.signedIn(t, "admin")
	for _, r := range adminRoutes(img.ID) {
		if r.method != http.MethodGet {
			continue
		}
		t.Run(r.path, func(t *testing.T) {
			got := ts.adminGet(t, c, r.path)
			got.wantStatus(t, http.StatusOK)
			if r.path == "/admin/images/"+img.ID+"/preview" {
				return // a picture, checked in TestAdminImagePreview
			}
			if got.header.Get("Content-Security-Policy") == "" {
				t.Errorf("got no Content-Security-Policy")
			}
			if ct := got.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("got Content-Type %q, want text/html; charset=utf-8", ct)
			}
			got.wantNoBody(t, "<script")
			section := "/admin"
			for _, s := range []string{"/admin/tiers", "/admin/users", "/admin/images"} {
				if strings.HasPrefix(r.path, s) {
					section = s
				}
			}
			got.wantBody(t, `<nav class="subnav" aria-label="Admin sections">`, `<a href="`+section+`" aria-current="page">`)
			subnav, _, _ := strings.Cut(got.body[strings.Index(got.body, `<nav class="subnav"`)+1:], "</nav>")
			if n := strings.Count(subnav, `aria-current="page"`); n != 1 {
				t.Errorf("got %d links marked current, want 1", n)
			}
		})
	}
}

// TestAdminDashboard checks the counts on /admin.
func TestAdminDashboard(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.createUser(t, "bob", "Premium", true)
	c, _ := ts.signedIn(t, "admin")
	got := ts.adminGet(t, c, "/admin")
	got.wantStatus(t, http.StatusOK)
	got.wantBody(t,
		`<span id="count-tiers">3</span>`,
		`<span id="count-users">3</span>`,
		`<span id="count-admins">2</span>`,
		`href="/admin/tiers"`, `href="/admin/users"`, `href="/admin/images"`,
	)
}

// TestAdminCSRF checks that a form post without the session's CSRF token, or with another
// session's, is refused and changes nothing.
func TestAdminCSRF(t *testing.T) {
	ts := newTestServer(t, Config{})
	ctx := context.Background()
	alice := ts.adminUser(t, "alice")
	img := ts.adminAddImage(t, alice.ID, "cat.jpg", 40, 30)
	c, csrf := ts.signedIn(t, "admin")
	_, aliceCSRF := ts.signedIn(t, "alice")
	if _, _, err := ts.st.CreateToken(ctx, alice.ID); err != nil {
		t.Fatalf("create token: %v", err)
	}
	tokens, err := ts.st.ListTokens(ctx, alice.ID)
	if err != nil || len(tokens) != 1 {
		t.Fatalf("list tokens: got %v, %v, want one", tokens, err)
	}
	tokenPath := "/admin/users/alice/tokens/" + strconv.FormatInt(tokens[0].ID, 10) + "/delete"

	unchanged := func(t *testing.T) {
		t.Helper()
		if _, err := ts.st.FindTier(ctx, "Gold"); tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
			t.Errorf("find tier Gold: got %v, want ENOTFOUND", err)
		}
		if tier, err := ts.st.FindTier(ctx, "Premium"); err != nil || !slices.Equal(tier.ThumbnailHeights, []int{200, 400}) {
			t.Errorf("tier Premium: got %+v, %v, want heights 200, 400", tier, err)
		}
		if u := ts.adminUser(t, "alice"); u != alice {
			t.Errorf("got alice %+v, want %+v", u, alice)
		}
		if _, err := ts.st.FindUser(ctx, "mallory"); tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
			t.Errorf("find mallory: got %v, want ENOTFOUND", err)
		}
		if _, err := ts.st.FindImage(ctx, img.ID); err != nil {
			t.Errorf("find image: got %v, want nil", err)
		}
		if got, err := ts.st.ListTokens(ctx, alice.ID); err != nil || len(got) != 1 {
			t.Errorf("alice's tokens: got %v, %v, want one", got, err)
		}
		if got, err := ts.st.ListUserSessions(ctx, alice.ID, time.Time{}); err != nil || len(got) != 1 {
			t.Errorf("alice's sessions: got %d, %v, want 1", len(got), err)
		}
	}

	tests := []struct {
		name string
		path string
		form url.Values
	}{
		{name: "create tier", path: "/admin/tiers/new", form: url.Values{"name": {"Gold"}, "thumbnail_heights": {"100"}}},
		{name: "update tier", path: "/admin/tiers/Premium", form: url.Values{"thumbnail_heights": {"100"}}},
		{name: "delete tier", path: "/admin/tiers/Premium/delete"},
		{name: "create user", path: "/admin/users/new", form: url.Values{"username": {"mallory"}, "password": {"long enough"}, "tier": {"Basic"}}},
		{name: "update user", path: "/admin/users/alice", form: url.Values{"tier": {"Premium"}, "is_admin": {"on"}}},
		{name: "delete user", path: "/admin/users/alice/delete"},
		{name: "mint token", path: "/admin/users/alice/tokens"},
		{name: "revoke token", path: tokenPath},
		{name: "sign out everywhere", path: "/admin/users/alice/sessions/delete"},
		{name: "delete image", path: "/admin/images/" + img.ID + "/delete"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, token := range []string{"", "not-the-token", aliceCSRF} {
				form := url.Values{}
				for k, v := range tt.form {
					form[k] = v
				}
				got := ts.adminPostForm(t, c, tt.path, token, form)
				got.wantStatus(t, http.StatusForbidden)
				got.wantNoBody(t, "tpx_")
				unchanged(t)
			}
		})
	}

	// The same form with the token goes through, so the refusals above were the token's.
	ts.adminPostForm(t, c, "/admin/tiers/new", csrf, url.Values{"name": {"Gold"}}).wantRedirect(t, "/admin/tiers")
}
