package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
	"golang.org/x/crypto/bcrypt"
)

func TestAdminUserCreate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ts := newTestServerWith(t, st, Config{})
		ctx := context.Background()
		c, csrf := ts.signedIn(t, "admin")

		form := ts.adminGet(t, c, "/admin/users/new")
		form.wantStatus(t, http.StatusOK)
		form.wantBody(t, `<option value="Basic" selected>Basic</option>`, `<option value="Premium">Premium</option>`,
			`<label for="password">Password</label>`, `autocomplete="new-password"`)

		tests := []struct {
			name       string
			form       url.Values
			wantStatus int
			wantFields map[string]string
			wantBody   []string
			wantTier   string // of the user created
			wantAdmin  bool
		}{
			{name: "basic user", form: url.Values{"username": {"bob"}, "password": {"bob's password"}, "tier": {"Premium"}}, wantStatus: http.StatusSeeOther, wantTier: "Premium"},
			{name: "admin, tier in another case", form: url.Values{"username": {"carol@example.com"}, "password": {"carol's password"}, "tier": {"enterprise"}, "is_admin": {"on"}}, wantStatus: http.StatusSeeOther, wantTier: "Enterprise", wantAdmin: true},
			{name: "no tier is Basic", form: url.Values{"username": {"dave"}, "password": {"dave's password"}}, wantStatus: http.StatusSeeOther, wantTier: "Basic"},
			{
				name:       "bad username and short password",
				form:       url.Values{"username": {"bad name!"}, "password": {"short"}, "tier": {"Premium"}, "is_admin": {"on"}},
				wantStatus: http.StatusBadRequest,
				wantFields: map[string]string{
					"username": "The username must be 1 to 150 letters, digits or . @ + _ -.",
					"password": "The password must be 8 to 72 bytes long.",
				},
				wantBody: []string{`value="bad name!"`, `<option value="Premium" selected>`, `name="is_admin" type="checkbox" value="on" checked>`},
			},
			{
				name:       "unknown tier",
				form:       url.Values{"username": {"erin"}, "password": {"erin's password"}, "tier": {"Gold"}},
				wantStatus: http.StatusBadRequest,
				wantFields: map[string]string{"tier": "No tier named Gold."},
				wantBody:   []string{`value="erin"`},
			},
			{
				name:       "taken username",
				form:       url.Values{"username": {"alice"}, "password": {"another password"}},
				wantStatus: http.StatusConflict,
				wantFields: map[string]string{"username": `The user "alice" already exists.`},
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				username := tt.form.Get("username")
				got := ts.adminPostForm(t, c, "/admin/users/new", csrf, tt.form)
				got.wantStatus(t, tt.wantStatus)
				if tt.wantStatus == http.StatusSeeOther {
					got.wantRedirect(t, "/admin/users")
					u := ts.adminUser(t, username)
					if u.TierName != tt.wantTier || u.IsAdmin != tt.wantAdmin {
						t.Errorf("got user on %q, admin %t, want %q, %t", u.TierName, u.IsAdmin, tt.wantTier, tt.wantAdmin)
					}
					if err := bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(tt.form.Get("password"))); err != nil {
						t.Errorf("password does not match the hash: %v", err)
					}
					ts.adminGet(t, c, got.location).wantBody(t, adminEsc("User "+username+" created."))
					// The notice was the session's for one page: a reload does not repeat it.
					ts.adminGet(t, c, got.location).wantNoBody(t, adminEsc("User "+username+" created."))
					return
				}
				for field, msg := range tt.wantFields {
					got.wantFieldError(t, field, msg)
				}
				got.wantBody(t, tt.wantBody...)
				if pw := tt.form.Get("password"); strings.Contains(got.body, `value="`+pw+`"`) {
					t.Errorf("the re-rendered form holds the password")
				}
				if tt.wantStatus != http.StatusConflict {
					if _, err := ts.st.FindUser(ctx, username); tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
						t.Errorf("find user %q: got %v, want ENOTFOUND", username, err)
					}
				}
			})
		}
	})
}

// TestAdminUserList checks the change list: search, filters by tier and admin flag, sorting
// by each column both ways, keyset pages both ways keeping all of these, and the count.
func TestAdminUserList(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ts := newTestServerWith(t, st, Config{})
		c, _ := ts.signedIn(t, "admin")
		for i := range 60 {
			ts.createUser(t, fmt.Sprintf("user%02d", i), "Basic", false)
		}
		ts.createUser(t, "Zed_User", "Premium", true)
		rowRE := regexp.MustCompile(`<th scope="row" data-label="Username"><a href="/admin/users/([^"]+)">`)
		rows := func(r adminResponse) []string {
			var names []string
			for _, m := range rowRE.FindAllStringSubmatch(r.body, -1) {
				names = append(names, m[1])
			}
			return names
		}
		linkRE := func(rel string) *regexp.Regexp { return regexp.MustCompile(`<a href="([^"]+)" rel="` + rel + `">`) }
		link := func(r adminResponse, rel string) string {
			m := linkRE(rel).FindStringSubmatch(r.body)
			if m == nil {
				return ""
			}
			return strings.ReplaceAll(m[1], "&amp;", "&")
		}

		tests := []struct {
			name      string
			path      string
			wantFirst string
			wantLast  string
			wantRows  int
			wantCount string
			wantNext  bool
		}{
			// Byte order: upper case first, then admin, alice and the users.
			{name: "first page", path: "/admin/users", wantFirst: "Zed_User", wantLast: "user46", wantRows: 50, wantCount: "1–50 of 63 users", wantNext: true},
			{name: "search, case-insensitive", path: "/admin/users?q=USER", wantFirst: "Zed_User", wantLast: "user48", wantRows: 50, wantCount: "1–50 of 61 users", wantNext: true},
			{name: "search one", path: "/admin/users?q=r05", wantFirst: "user05", wantLast: "user05", wantRows: 1, wantCount: "1–1 of 1 users"},
			{name: "search underscore is literal", path: "/admin/users?q=_", wantFirst: "Zed_User", wantLast: "Zed_User", wantRows: 1},
			{name: "no match", path: "/admin/users?q=nobody", wantRows: 0, wantCount: "0 users"},
			{name: "tier filter", path: "/admin/users?tier=premium", wantFirst: "Zed_User", wantLast: "Zed_User", wantRows: 1},
			{name: "admins", path: "/admin/users?admin=yes", wantFirst: "Zed_User", wantLast: "admin", wantRows: 2},
			{name: "filters together", path: "/admin/users?admin=no&tier=Basic&q=user0", wantFirst: "user00", wantLast: "user09", wantRows: 10},
			{name: "by tier", path: "/admin/users?o=tier", wantFirst: "admin", wantLast: "user47", wantRows: 50, wantNext: true},
			{name: "by tier, descending", path: "/admin/users?o=-tier", wantFirst: "Zed_User", wantLast: "user11", wantRows: 50, wantNext: true},
			{name: "by admin flag, descending", path: "/admin/users?o=-is_admin", wantFirst: "admin", wantLast: "user12", wantRows: 50, wantNext: true},
			{name: "by username, descending", path: "/admin/users?o=-username", wantFirst: "user59", wantLast: "user10", wantRows: 50, wantNext: true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got := ts.adminGet(t, c, tt.path)
				got.wantStatus(t, http.StatusOK)
				names := rows(got)
				if len(names) != tt.wantRows {
					t.Fatalf("got %d rows, want %d: %v", len(names), tt.wantRows, names)
				}
				if tt.wantRows > 0 && (names[0] != tt.wantFirst || names[len(names)-1] != tt.wantLast) {
					t.Errorf("got rows %s..%s, want %s..%s", names[0], names[len(names)-1], tt.wantFirst, tt.wantLast)
				}
				if tt.wantCount != "" {
					got.wantBody(t, `<p class="count" id="user-count" role="status">`+tt.wantCount+`</p>`)
				}
				next := link(got, "next")
				if (next != "") != tt.wantNext {
					t.Fatalf("next link %q, want one: %t", next, tt.wantNext)
				}
				if tt.wantRows == 0 {
					got.wantBody(t, "No user matches")
				}
				if next == "" {
					return
				}
				// The next page keeps the search, the filters and the order, and comes back.
				second := ts.adminGet(t, c, next)
				second.wantStatus(t, http.StatusOK)
				more := rows(second)
				if len(more) == 0 || slices.Contains(names, more[0]) {
					t.Fatalf("second page %v after %v", more, names)
				}
				second.wantBody(t, "51–")
				prev := link(second, "prev")
				if prev == "" || link(second, "first") == "" {
					t.Fatal("the second page has no previous or first link")
				}
				if back := rows(ts.adminGet(t, c, prev)); !slices.Equal(back, names) {
					t.Errorf("previous of the second page: got %v, want %v", back, names)
				}
			})
		}
		// The sorted column says so, and its heading sorts the other way.
		byTier := ts.adminGet(t, c, "/admin/users?o=tier")
		byTier.wantBody(t, `<th scope="col" aria-sort="ascending"><a href="/admin/users?o=-tier">Tier`)
		ts.adminGet(t, c, "/admin/users?q=Zed").wantBody(t, `<td data-label="Tier">Premium</td>
      <td data-label="Admin">Yes</td>`, `value="Zed"`)
		// A hand-made ordering falls back to the default order and says why.
		ts.adminGet(t, c, "/admin/users?o=password").wantBody(t, "is not a column users can be ordered by")
	})
}

func TestAdminUserEdit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ts := newTestServerWith(t, st, Config{})
		ctx := context.Background()
		c, csrf := ts.signedIn(t, "admin")
		alice := ts.adminUser(t, "alice")
		aliceClient, _ := ts.signedIn(t, "alice")

		page := ts.adminGet(t, c, "/admin/users/alice")
		page.wantStatus(t, http.StatusOK)
		page.wantBody(t, `<option value="Basic" selected>Basic</option>`, `<label for="password">New password</label>`,
			`autocomplete="new-password"`, `href="/admin/users/alice/delete"`, `<td data-label="Browser">test</td>`, `<td data-label="Address">127.0.0.1</td>`)

		t.Run("tier and admin, password unchanged", func(t *testing.T) {
			got := ts.adminPostForm(t, c, "/admin/users/alice", csrf, url.Values{"tier": {"premium"}, "is_admin": {"on"}, "password": {""}})
			got.wantRedirect(t, "/admin/users")
			u := ts.adminUser(t, "alice")
			if u.TierName != "Premium" || !u.IsAdmin || u.PasswordHash != alice.PasswordHash {
				t.Errorf("got alice on %q, admin %t, hash changed %t; want Premium, true, false", u.TierName, u.IsAdmin, u.PasswordHash != alice.PasswordHash)
			}
			ts.adminGet(t, c, got.location).wantBody(t, "User alice saved.")
			// No password: the sessions go on.
			if sessions, err := ts.st.ListUserSessions(ctx, alice.ID, time.Time{}); err != nil || len(sessions) != 1 {
				t.Errorf("alice's sessions: got %d, %v, want 1", len(sessions), err)
			}
		})

		t.Run("invalid password and unknown tier", func(t *testing.T) {
			got := ts.adminPostForm(t, c, "/admin/users/alice", csrf, url.Values{"tier": {"Basic"}, "password": {"short"}})
			got.wantStatus(t, http.StatusBadRequest)
			got.wantFieldError(t, "password", "The password must be 8 to 72 bytes long.")
			got.wantBody(t, `<option value="Basic" selected>`, `name="is_admin" type="checkbox" value="on">`)
			got.wantNoBody(t, `value="short"`)
			got = ts.adminPostForm(t, c, "/admin/users/alice", csrf, url.Values{"tier": {"Gold"}})
			got.wantStatus(t, http.StatusBadRequest)
			got.wantFieldError(t, "tier", "No tier named Gold.")
			if u := ts.adminUser(t, "alice"); u.TierName != "Premium" || !u.IsAdmin {
				t.Errorf("got alice on %q, admin %t, want Premium, true", u.TierName, u.IsAdmin)
			}
		})

		t.Run("new password ends the sessions", func(t *testing.T) {
			got := ts.adminPostForm(t, c, "/admin/users/alice", csrf, url.Values{"tier": {"Basic"}, "password": {"a brand new password"}})
			got.wantRedirect(t, "/admin/users")
			u := ts.adminUser(t, "alice")
			if err := bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte("a brand new password")); err != nil {
				t.Errorf("new password does not match: %v", err)
			}
			if u.TierName != "Basic" || u.IsAdmin {
				t.Errorf("got alice on %q, admin %t, want Basic, false", u.TierName, u.IsAdmin)
			}
			if sessions, err := ts.st.ListUserSessions(ctx, alice.ID, time.Time{}); err != nil || len(sessions) != 0 {
				t.Errorf("alice's sessions: got %d, %v, want 0", len(sessions), err)
			}
			// Her browser is signed out: the admin pages send it to sign in.
			ts.adminGet(t, aliceClient, "/admin").wantRedirect(t, "/login?next=%2Fadmin")
		})

		t.Run("unknown user", func(t *testing.T) {
			ts.adminGet(t, c, "/admin/users/nobody").wantStatus(t, http.StatusNotFound)
			ts.adminPostForm(t, c, "/admin/users/nobody", csrf, url.Values{"tier": {"Basic"}}).wantStatus(t, http.StatusNotFound)
		})
	})
}

// TestAdminUserRefusals checks the API's rules: an admin cannot demote or delete themselves.
// (The store's last-admin refusal cannot be reached from a page, since whoever uses the page
// is an admin: demoting or deleting the last one is demoting or deleting oneself.)
func TestAdminUserRefusals(t *testing.T) {
	ts := newTestServer(t, Config{})
	ctx := context.Background()
	c, csrf := ts.signedIn(t, "admin")

	page := ts.adminGet(t, c, "/admin/users/admin")
	page.wantBody(t, "This is your own account.", "You cannot demote yourself.")
	page.wantNoBody(t, `href="/admin/users/admin/delete"`)

	got := ts.adminPostForm(t, c, "/admin/users/admin", csrf, url.Values{"tier": {"Premium"}})
	got.wantStatus(t, http.StatusConflict)
	got.wantBody(t, `<p class="flash error" id="form-error" role="alert">You cannot demote yourself.</p>`)
	if u := ts.adminUser(t, "admin"); !u.IsAdmin || u.TierName != "Basic" {
		t.Errorf("got admin on %q, admin %t, want Basic, true", u.TierName, u.IsAdmin)
	}

	confirm := ts.adminGet(t, c, "/admin/users/admin/delete")
	confirm.wantStatus(t, http.StatusOK)
	confirm.wantBody(t, `<p class="flash error" id="refusal" role="alert">You cannot delete your own account.</p>`)
	confirm.wantNoBody(t, `action="/admin/users/admin/delete"`)
	got = ts.adminPostForm(t, c, "/admin/users/admin/delete", csrf, nil)
	got.wantStatus(t, http.StatusConflict)
	got.wantBody(t, "You cannot delete your own account.")
	if _, err := ts.st.FindUser(ctx, "admin"); err != nil {
		t.Errorf("find admin: got %v, want nil", err)
	}
}

func TestAdminUserDelete(t *testing.T) {
	ts := newTestServer(t, Config{})
	ctx := context.Background()
	c, csrf := ts.signedIn(t, "admin")
	alice := ts.adminUser(t, "alice")
	img := ts.adminAddImage(t, alice.ID, "cat.jpg", 300, 240)
	if _, _, err := ts.st.CreateToken(ctx, alice.ID); err != nil {
		t.Fatalf("create token: %v", err)
	}
	link := ts.adminLink(img.ID)
	ts.adminGet(t, ts.client(t), link).wantStatus(t, http.StatusOK)

	confirm := ts.adminGet(t, c, "/admin/users/alice/delete")
	confirm.wantStatus(t, http.StatusOK)
	confirm.wantBody(t, `<form method="post" action="/admin/users/alice/delete">`)

	got := ts.adminPostForm(t, c, "/admin/users/alice/delete", csrf, nil)
	got.wantRedirect(t, "/admin/users")
	ts.adminGet(t, c, got.location).wantBody(t, "User alice deleted.")
	if _, err := ts.st.FindUser(ctx, "alice"); tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
		t.Errorf("find alice: got %v, want ENOTFOUND", err)
	}
	if _, err := ts.st.FindImage(ctx, img.ID); tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
		t.Errorf("find image: got %v, want ENOTFOUND", err)
	}
	// Purged: the link the origin served a moment ago, with its metadata cached, is gone now.
	ts.adminGet(t, ts.client(t), link).wantStatus(t, http.StatusNotFound)

	ts.adminPostForm(t, c, "/admin/users/alice/delete", csrf, nil).wantStatus(t, http.StatusNotFound)
}

func TestAdminTokens(t *testing.T) {
	ts := newTestServer(t, Config{})
	ctx := context.Background()
	c, csrf := ts.signedIn(t, "admin")
	alice := ts.adminUser(t, "alice")

	// Post, redirect, get: the token waits in the session for the one page that shows it.
	minted := ts.adminPostForm(t, c, "/admin/users/alice/tokens", csrf, nil)
	minted.wantRedirect(t, "/admin/users/alice/token")
	admin := ts.adminUser(t, "admin")
	sessions, err := ts.st.ListUserSessions(ctx, admin.ID, time.Now().AddDate(-1, 0, 0))
	if err != nil || len(sessions) != 1 || sessions[0].Flash == "" || strings.Contains(sessions[0].Flash, "tpx_") {
		t.Fatalf("the admin's session after the mint: %+v, %v; want one, its flash holding the token sealed", sessions, err)
	}
	got := ts.adminGet(t, c, minted.location)
	got.wantStatus(t, http.StatusOK)
	if cc := got.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("got Cache-Control %q, want no-store", cc)
	}
	m := regexp.MustCompile(`<code class="token" id="new-token">(tpx_[A-Za-z0-9_-]+)</code>`).FindStringSubmatch(got.body)
	if m == nil {
		t.Fatalf("no token in the page:\n%s", got.body)
	}
	token := m[1]
	got.wantBody(t, "it will not be shown again")
	if strings.Contains(minted.location, token) {
		t.Fatal("the token travelled in the redirect's URL")
	}
	// A reload neither shows the token again nor mints another.
	again := ts.adminGet(t, c, minted.location)
	again.wantStatus(t, http.StatusOK)
	again.wantNoBody(t, token, `id="new-token"`)
	again.wantBody(t, `id="token-gone"`)
	id, err := ts.st.FindIdentityByToken(ctx, token)
	if err != nil || id.User.ID != alice.ID {
		t.Fatalf("find identity by token: got %v, %v, want alice", id.User.Username, err)
	}

	tokens, err := ts.st.ListTokens(ctx, alice.ID)
	if err != nil || len(tokens) != 1 {
		t.Fatalf("list tokens: got %v, %v, want one", tokens, err)
	}
	page := ts.adminGet(t, c, "/admin/users/alice")
	page.wantBody(t, "<code>"+tokens[0].Hint+"</code>", fmt.Sprintf(`href="/admin/users/alice/tokens/%d/delete"`, tokens[0].ID))
	page.wantNoBody(t, token)

	// Another user's page cannot revoke alice's token.
	ts.createUser(t, "bob", "Basic", false)
	ts.adminPostForm(t, c, fmt.Sprintf("/admin/users/bob/tokens/%d/delete", tokens[0].ID), csrf, nil).wantStatus(t, http.StatusNotFound)
	if _, err := ts.st.FindIdentityByToken(ctx, token); err != nil {
		t.Fatalf("find identity by token after bob's revoke: got %v, want nil", err)
	}

	// Revoking asks first, naming the token.
	confirm := ts.adminGet(t, c, fmt.Sprintf("/admin/users/alice/tokens/%d/delete", tokens[0].ID))
	confirm.wantStatus(t, http.StatusOK)
	confirm.wantBody(t, tokens[0].Hint, `<button type="submit" class="button danger">Revoke token</button>`)
	if _, err := ts.st.FindIdentityByToken(ctx, token); err != nil {
		t.Fatalf("the token after the confirmation page alone: %v", err)
	}
	revoke := ts.adminPostForm(t, c, fmt.Sprintf("/admin/users/alice/tokens/%d/delete", tokens[0].ID), csrf, nil)
	revoke.wantRedirect(t, "/admin/users/alice")
	ts.adminGet(t, c, revoke.location).wantBody(t, "Token revoked.", "No API tokens.")
	if _, err := ts.st.FindIdentityByToken(ctx, token); tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
		t.Errorf("find identity by revoked token: got %v, want ENOTFOUND", err)
	}
	ts.adminPostForm(t, c, "/admin/users/alice/tokens/abc/delete", csrf, nil).wantStatus(t, http.StatusNotFound)
	ts.adminPostForm(t, c, "/admin/users/nobody/tokens", csrf, nil).wantStatus(t, http.StatusNotFound)
}

func TestAdminSignOutEverywhere(t *testing.T) {
	ts := newTestServer(t, Config{})
	ctx := context.Background()
	c, csrf := ts.signedIn(t, "admin")
	alice := ts.adminUser(t, "alice")
	phone, _ := ts.signedIn(t, "alice")
	ts.signedIn(t, "alice") // a second browser

	page := ts.adminGet(t, c, "/admin/users/alice")
	if n := strings.Count(page.body, `<td data-label="Address">127.0.0.1</td>`); n != 2 {
		t.Errorf("got %d sessions listed, want 2", n)
	}
	got := ts.adminPostForm(t, c, "/admin/users/alice/sessions/delete", csrf, nil)
	got.wantRedirect(t, "/admin/users/alice")
	after := ts.adminGet(t, c, got.location)
	after.wantBody(t, "Signed out everywhere: 2 sessions ended.", "Not signed in anywhere.")
	if sessions, err := ts.st.ListUserSessions(ctx, alice.ID, time.Time{}); err != nil || len(sessions) != 0 {
		t.Errorf("alice's sessions: got %d, %v, want 0", len(sessions), err)
	}
	ts.adminGet(t, phone, "/admin").wantRedirect(t, "/login?next=%2Fadmin")
	// The admin's own session is untouched.
	ts.adminGet(t, c, "/admin").wantStatus(t, http.StatusOK)
}
