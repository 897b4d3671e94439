package api

import (
	"bytes"
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// session signs username in through the store and returns what a browser holds: the cookie's
// token and the page's CSRF token.
func (ts *testServer) session(t *testing.T, username string) (token, csrf string) {
	t.Helper()
	id := ts.user(t, username)
	token, sess, err := ts.st.CreateSession(context.Background(), id.User.ID, time.Hour, "test", "127.0.0.1")
	if err != nil {
		t.Fatalf("create session: %v", err)
	}
	return token, sess.CSRFToken
}

// withSession authenticates by the session cookie, as a browser does.
func withSession(token string) auth {
	return func(r *http.Request) {
		r.AddCookie(&http.Cookie{Name: "tierpix_session", Value: token})
	}
}

// also applies extra request changes after as.
func also(as auth, more ...func(*http.Request)) auth {
	return func(r *http.Request) {
		as(r)
		for _, m := range more {
			m(r)
		}
	}
}

func header(k, v string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set(k, v) }
}

// browserAccept is what Chrome sends when it navigates.
const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8"

func form(values url.Values) (string, *strings.Reader) {
	return "application/x-www-form-urlencoded", strings.NewReader(values.Encode())
}

func TestSessionAuthenticates(t *testing.T) {
	ts := newTestServer(t, Config{})
	token, _ := ts.session(t, "pam")

	r := ts.do(t, http.MethodGet, "/api/me", withSession(token), "", nil)
	r.wantStatus(t, http.StatusOK)
	r.wantHeaders(t, jsonHeaders)
	var me struct {
		Username string `json:"username"`
	}
	r.decode(t, &me)
	if me.Username != "pam" {
		t.Errorf("username: got %q, want pam", me.Username)
	}

	// A header wins over the cookie: Basic for alice with pam's session is alice.
	r = ts.do(t, http.MethodGet, "/api/me", also(asAlice, withSession(token)), "", nil)
	r.wantStatus(t, http.StatusOK)
	r.decode(t, &me)
	if me.Username != "alice" {
		t.Errorf("username with Basic and a session: got %q, want alice", me.Username)
	}

	// An unknown session is no session.
	ts.do(t, http.MethodGet, "/api/me", withSession("not-a-session"), "", nil).wantProblem(t, http.StatusUnauthorized)

	// The admin API still wants an admin.
	ts.do(t, http.MethodGet, "/api/admin/tiers", withSession(token), "", nil).wantProblem(t, http.StatusForbidden)
}

func TestSessionCSRF(t *testing.T) {
	ts := newTestServer(t, Config{})
	token, csrf := ts.session(t, "erin")
	img := ts.uploadImage(t, asErin, encodePNG(t, picture(40, 30)))
	links := "/api/images/" + img.ID + "/expiring-links"
	sess := withSession(token)
	// otherCSRF differs from csrf in its first character (a fixed "A" matched one token in 64).
	otherCSRF := "A" + csrf[1:]
	if csrf[0] == 'A' {
		otherCSRF = "B" + csrf[1:]
	}

	tests := []struct {
		name   string
		as     auth
		ct     string
		body   string
		status int
	}{
		{"json without token", sess, jsonType, `{"expires_in": 600}`, http.StatusForbidden},
		{"json with header token", also(sess, header("X-CSRF-Token", csrf)), jsonType, `{"expires_in": 600}`, http.StatusCreated},
		{"json with a wrong header token", also(sess, header("X-CSRF-Token", csrf+"x")), jsonType, `{"expires_in": 600}`, http.StatusForbidden},
		{"form with token", sess, "application/x-www-form-urlencoded", url.Values{"expires_in": {"600"}, "csrf_token": {csrf}}.Encode(), http.StatusCreated},
		{"form without token", sess, "application/x-www-form-urlencoded", url.Values{"expires_in": {"600"}}.Encode(), http.StatusForbidden},
		{"form with another session's token", sess, "application/x-www-form-urlencoded", url.Values{"expires_in": {"600"}, "csrf_token": {otherCSRF}}.Encode(), http.StatusForbidden},
		{"token right but another origin", also(sess, header("Origin", "https://evil.example")), "application/x-www-form-urlencoded", url.Values{"expires_in": {"600"}, "csrf_token": {csrf}}.Encode(), http.StatusForbidden},
		{"token right but a cross-site fetch", also(sess, header("Sec-Fetch-Site", "cross-site")), "application/x-www-form-urlencoded", url.Values{"expires_in": {"600"}, "csrf_token": {csrf}}.Encode(), http.StatusForbidden},
		{"same-origin fetch with token", also(sess, header("Sec-Fetch-Site", "same-origin"), header("Origin", ts.url)), "application/x-www-form-urlencoded", url.Values{"expires_in": {"600"}, "csrf_token": {csrf}}.Encode(), http.StatusCreated},
		{"basic needs no token", asErin, jsonType, `{"expires_in": 600}`, http.StatusCreated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(t, http.MethodPost, links, tt.as, tt.ct, strings.NewReader(tt.body))
			if tt.status >= 400 {
				r.wantProblem(t, tt.status)
				return
			}
			r.wantStatus(t, tt.status)
		})
	}

	// GET needs no token: it changes nothing.
	ts.do(t, http.MethodGet, "/api/images/"+img.ID, sess, "", nil).wantStatus(t, http.StatusOK)

	// Deleting through a form: POST ?_method=DELETE, without and then with the token.
	del := "/api/images/" + img.ID + "?_method=DELETE"
	ct, body := form(url.Values{})
	ts.do(t, http.MethodPost, del, sess, ct, body).wantProblem(t, http.StatusForbidden)
	ts.do(t, http.MethodGet, "/api/images/"+img.ID, asErin, "", nil).wantStatus(t, http.StatusOK)
	ct, body = form(url.Values{"csrf_token": {csrf}})
	ts.do(t, http.MethodPost, del, sess, ct, body).wantStatus(t, http.StatusNoContent)
	ts.do(t, http.MethodGet, "/api/images/"+img.ID, asErin, "", nil).wantProblem(t, http.StatusNotFound)
}

// uploadForm builds an upload form as a browser sends it: fields in document order.
func uploadForm(t *testing.T, fields [][2]string, data []byte) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		if f[0] == "image" {
			w, err := mw.CreateFormFile("image", "form.png")
			if err != nil {
				t.Fatalf("create form file: %v", err)
			}
			w.Write(data) //nolint:errcheck // bytes.Buffer
			continue
		}
		if err := mw.WriteField(f[0], f[1]); err != nil {
			t.Fatalf("write field: %v", err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatalf("close multipart: %v", err)
	}
	return buf.Bytes(), mw.FormDataContentType()
}

func TestSessionUploadCSRF(t *testing.T) {
	ts := newTestServer(t, Config{})
	token, csrf := ts.session(t, "alice")
	alice := ts.user(t, "alice")
	data := encodePNG(t, picture(30, 20))

	tests := []struct {
		name   string
		fields [][2]string
		status int
	}{
		{"token before the image", [][2]string{{"csrf_token", csrf}, {"image", ""}}, http.StatusCreated},
		{"no token", [][2]string{{"image", ""}}, http.StatusForbidden},
		{"token after the image", [][2]string{{"image", ""}, {"csrf_token", csrf}}, http.StatusForbidden},
		{"wrong token", [][2]string{{"csrf_token", "nope"}, {"image", ""}}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.imageCount(t, alice.User.ID)
			body, ct := uploadForm(t, tt.fields, data)
			r := ts.do(t, http.MethodPost, "/api/images", withSession(token), ct, bytes.NewReader(body))
			want := before
			if tt.status == http.StatusCreated {
				r.wantStatus(t, tt.status)
				want++
			} else {
				r.wantProblem(t, tt.status)
			}
			if got := ts.imageCount(t, alice.User.ID); got != want {
				t.Errorf("images: got %d, want %d", got, want)
			}
		})
	}
	if files := ts.files(t); len(files) != 1 {
		t.Errorf("files: got %v, want the one accepted upload", files)
	}
}

func TestFormBodies(t *testing.T) {
	ts := newTestServer(t, Config{})

	// Create a tier as a browser form would, with Basic (no CSRF needed).
	ct, body := form(url.Values{"name": {"Gold"}, "thumbnail_heights": {"600, 150 150"}, "original_link": {"on"}, "expiring_links": {""}})
	r := ts.do(t, http.MethodPost, "/api/admin/tiers", asAdmin, ct, body)
	r.wantStatus(t, http.StatusCreated)
	var tier struct {
		Name             string `json:"name"`
		ThumbnailHeights []int  `json:"thumbnail_heights"`
		OriginalLink     bool   `json:"original_link"`
		ExpiringLinks    bool   `json:"expiring_links"`
	}
	r.decode(t, &tier)
	if tier.Name != "Gold" || len(tier.ThumbnailHeights) != 2 || tier.ThumbnailHeights[0] != 150 || tier.ThumbnailHeights[1] != 600 || !tier.OriginalLink || tier.ExpiringLinks {
		t.Errorf("tier: got %+v, want Gold [150 600] original only", tier)
	}

	// PATCH through the method override; a blank field changes nothing.
	ct, body = form(url.Values{"expiring_links": {"true"}, "thumbnail_heights": {""}})
	r = ts.do(t, http.MethodPost, "/api/admin/tiers/Gold?_method=PATCH", asAdmin, ct, body)
	r.wantStatus(t, http.StatusOK)
	r.decode(t, &tier)
	if !tier.ExpiringLinks || len(tier.ThumbnailHeights) != 2 {
		t.Errorf("patched tier: got %+v, want expiring links and the heights kept", tier)
	}

	// Repeated fields make an array too.
	ct, body = form(url.Values{"name": {"Silver"}, "thumbnail_heights": {"100", "300"}})
	ts.do(t, http.MethodPost, "/api/admin/tiers", asAdmin, ct, body).wantStatus(t, http.StatusCreated)

	// A multipart form without files works like the urlencoded one.
	mp, mpType := uploadForm(t, [][2]string{{"name", "Bronze"}, {"thumbnail_heights", "90"}}, nil)
	ts.do(t, http.MethodPost, "/api/admin/tiers", asAdmin, mpType, bytes.NewReader(mp)).wantStatus(t, http.StatusCreated)

	tests := []struct {
		name   string
		values url.Values
		fields []string
	}{
		{"heights not numbers", url.Values{"name": {"X1"}, "thumbnail_heights": {"150, abc"}}, []string{"thumbnail_heights"}},
		{"boolean not a boolean", url.Values{"name": {"X2"}, "original_link": {"maybe"}}, []string{"original_link"}},
		{"unknown field", url.Values{"name": {"X3"}, "colour": {"red"}}, []string{"colour"}},
		{"name missing", url.Values{"thumbnail_heights": {"100"}}, []string{"name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, body := form(tt.values)
			ts.do(t, http.MethodPost, "/api/admin/tiers", asAdmin, ct, body).wantProblem(t, http.StatusBadRequest, tt.fields...)
		})
	}

	// A form's password keeps its spaces.
	ct, body = form(url.Values{"username": {"spacey"}, "password": {"  spaced out  "}})
	ts.do(t, http.MethodPost, "/api/admin/users", asAdmin, ct, body).wantStatus(t, http.StatusCreated)
	ts.do(t, http.MethodGet, "/api/me", basic("spacey", "  spaced out  "), "", nil).wantStatus(t, http.StatusOK)
}

func TestMethodOverrideOnlyFromPost(t *testing.T) {
	ts := newTestServer(t, Config{})
	img := ts.uploadImage(t, asAlice, encodePNG(t, picture(20, 20)))
	// A link cannot delete: GET stays GET.
	ts.do(t, http.MethodGet, "/api/images/"+img.ID+"?_method=DELETE", asAlice, "", nil).wantStatus(t, http.StatusOK)
	ts.do(t, http.MethodGet, "/api/images/"+img.ID, asAlice, "", nil).wantStatus(t, http.StatusOK)
	// An unknown override is left alone: POST on an image is not a route.
	ts.do(t, http.MethodPost, "/api/images/"+img.ID+"?_method=TRACE", asAlice, "", nil).wantProblem(t, http.StatusMethodNotAllowed)
}

func TestBrowserGetsPages(t *testing.T) {
	ts := newTestServer(t, Config{})
	token, _ := ts.session(t, "pam")
	img := ts.uploadImage(t, asPam, encodePNG(t, picture(60, 40)))
	html := header("Accept", browserAccept)

	r := ts.do(t, http.MethodGet, "/api/images", also(withSession(token), html), "", nil)
	r.wantStatus(t, http.StatusOK)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("content type: got %q, want text/html", ct)
	}
	for _, want := range []string{img.ID, img.Links.Thumbnails[0].URL} {
		if !bytes.Contains(r.body, []byte(want)) {
			t.Errorf("page does not show %q", want)
		}
	}
	// Each thumbnail is a <picture>: WebP from its webp_url where the browser takes it, the
	// negotiated url otherwise.
	for _, th := range img.Links.Thumbnails {
		want := fmt.Sprintf(`<picture><source type="image/webp" srcset="%s"><img src="%s"`, th.WebPURL, th.URL)
		if th.WebPURL == "" || !bytes.Contains(r.body, []byte(want)) {
			t.Errorf("page does not show the %d px thumbnail as %s", th.Height, want)
		}
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP: got %q, want frame-ancestors 'none'", csp)
	}

	// Not signed in: a 401 page that links to the sign-in page and does not offer Basic, so
	// the browser shows the page rather than its password dialog.
	r = ts.do(t, http.MethodGet, "/api/images", html, "", nil)
	r.wantStatus(t, http.StatusUnauthorized)
	if got := r.header.Get("WWW-Authenticate"); got == "" || strings.Contains(got, "Basic") {
		t.Errorf("WWW-Authenticate for a browser: got %q, want a challenge without Basic", got)
	}
	if !bytes.Contains(r.body, []byte("/login?next=")) {
		t.Errorf("401 page has no sign-in link: %s", r.body)
	}

	// Unknown paths under /api are pages too.
	r = ts.do(t, http.MethodGet, "/api/nothing-here", also(withSession(token), html), "", nil)
	r.wantStatus(t, http.StatusNotFound)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("404 content type: got %q, want text/html", ct)
	}

	// A browser's form that deletes is sent on to the collection (303), not left on a 204.
	tok2, csrf2 := ts.session(t, "pam")
	ct, body := form(url.Values{"csrf_token": {csrf2}})
	req, err := http.NewRequest(http.MethodPost, ts.url+"/api/images/"+img.ID+"?_method=DELETE", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	also(withSession(tok2), html)(req)
	noFollow := &http.Client{
		Transport:     ts.client.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/api/images" {
		t.Errorf("browser's delete: got %d to %q, want 303 to /api/images", resp.StatusCode, resp.Header.Get("Location"))
	}
	ts.do(t, http.MethodGet, "/api/images/"+img.ID, asPam, "", nil).wantProblem(t, http.StatusNotFound)

	// API clients see JSON whatever else they accept.
	for _, accept := range []string{"", "*/*", "application/json", "application/json, text/html;q=0.5"} {
		r = ts.do(t, http.MethodGet, "/api/images", also(withSession(token), header("Accept", accept)), "", nil)
		r.wantStatus(t, http.StatusOK)
		r.wantHeaders(t, jsonHeaders)
	}
	// The document and the health check are never pages.
	for _, path := range []string{"/api/openapi.json", "/healthz"} {
		r = ts.do(t, http.MethodGet, path, html, "", nil)
		r.wantStatus(t, http.StatusOK)
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s content type: got %q, want application/json", path, ct)
		}
	}
}

func TestRootAndDocument(t *testing.T) {
	ts := newTestServer(t, Config{})
	r := ts.do(t, http.MethodGet, "/api", noAuth, "", nil)
	r.wantStatus(t, http.StatusOK)
	var root map[string]string
	r.decode(t, &root)
	for _, k := range []string{"me", "images", "admin_tiers", "admin_users", "admin_images", "openapi", "docs"} {
		if !strings.HasPrefix(root[k], ts.url+"/api") {
			t.Errorf("root link %s: got %q, want a URL under %s/api", k, root[k], ts.url)
		}
	}
	r = ts.do(t, http.MethodGet, "/api/openapi.json", noAuth, "", nil)
	r.wantStatus(t, http.StatusOK)
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	r.decode(t, &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.1") || doc.Paths["/api/images"] == nil {
		t.Errorf("document: got openapi %q with %d paths, want 3.1 describing /api/images", doc.OpenAPI, len(doc.Paths))
	}
}

func TestTokens(t *testing.T) {
	ts := newTestServer(t, Config{})
	var minted struct {
		ID        int64  `json:"id"`
		Token     string `json:"token"`
		Hint      string `json:"hint"`
		CreatedAt string `json:"created_at"`
	}
	r := ts.do(t, http.MethodPost, "/api/admin/users/alice/tokens", asAdmin, "", nil)
	r.wantStatus(t, http.StatusCreated)
	r.decode(t, &minted)
	if !strings.HasPrefix(minted.Token, "tpx_") || !strings.HasPrefix(minted.Token, minted.Hint) || minted.ID < 1 {
		t.Fatalf("minted: got %+v, want a tpx_ token starting with its hint", minted)
	}
	ts.do(t, http.MethodGet, "/api/me", bearer(minted.Token), "", nil).wantStatus(t, http.StatusOK)

	var list struct {
		Results []map[string]any `json:"results"`
	}
	r = ts.do(t, http.MethodGet, "/api/admin/users/alice/tokens", asAdmin, "", nil)
	r.wantStatus(t, http.StatusOK)
	r.decode(t, &list)
	if len(list.Results) != 1 || list.Results[0]["hint"] != minted.Hint || list.Results[0]["token"] != nil {
		t.Errorf("token list: got %v, want one entry with the hint and no secret", list.Results)
	}

	id := strconv.FormatInt(minted.ID, 10)
	ts.do(t, http.MethodDelete, "/api/admin/users/pam/tokens/"+id, asAdmin, "", nil).wantProblem(t, http.StatusNotFound)
	ts.do(t, http.MethodGet, "/api/me", bearer(minted.Token), "", nil).wantStatus(t, http.StatusOK)
	ts.do(t, http.MethodDelete, "/api/admin/users/alice/tokens/"+id, asAdmin, "", nil).wantStatus(t, http.StatusNoContent)
	ts.do(t, http.MethodGet, "/api/me", bearer(minted.Token), "", nil).wantProblem(t, http.StatusUnauthorized)
	ts.do(t, http.MethodDelete, "/api/admin/users/alice/tokens/"+id, asAdmin, "", nil).wantProblem(t, http.StatusNotFound)
	ts.do(t, http.MethodDelete, "/api/admin/users/alice/tokens/x", asAdmin, "", nil).wantProblem(t, http.StatusNotFound)
	ts.do(t, http.MethodGet, "/api/admin/users/nobody/tokens", asAdmin, "", nil).wantProblem(t, http.StatusNotFound)
	ts.do(t, http.MethodGet, "/api/admin/users/alice/tokens", asAlice, "", nil).wantProblem(t, http.StatusForbidden)
}

func TestDeleteSessions(t *testing.T) {
	ts := newTestServer(t, Config{})
	token, _ := ts.session(t, "alice")
	ts.do(t, http.MethodGet, "/api/me", withSession(token), "", nil).wantStatus(t, http.StatusOK)
	ts.do(t, http.MethodDelete, "/api/admin/users/alice/sessions", asAdmin, "", nil).wantStatus(t, http.StatusNoContent)
	ts.do(t, http.MethodGet, "/api/me", withSession(token), "", nil).wantProblem(t, http.StatusUnauthorized)
	ts.do(t, http.MethodDelete, "/api/admin/users/nobody/sessions", asAdmin, "", nil).wantProblem(t, http.StatusNotFound)
}

func TestAdminImages(t *testing.T) {
	ts := newTestServer(t, Config{})
	alice, pam := ts.user(t, "alice"), ts.user(t, "pam")
	aliceIDs := ts.addImages(t, alice.User.ID, 3)
	pamIDs := ts.addImages(t, pam.User.ID, 2)

	type adminImage struct {
		ID    string `json:"id"`
		Owner string `json:"owner"`
	}
	var page struct {
		Results []adminImage `json:"results"`
		Next    *string      `json:"next"`
	}
	// Everyone's, newest first (pam's were added last), two at a time.
	var got []string
	next := "/api/admin/images?limit=2"
	for next != "" {
		r := ts.do(t, http.MethodGet, next, asAdmin, "", nil)
		r.wantStatus(t, http.StatusOK)
		page.Next = nil
		r.decode(t, &page)
		for _, im := range page.Results {
			got = append(got, im.ID)
		}
		next = ""
		if page.Next != nil {
			next = *page.Next
		}
	}
	want := append(append([]string{}, pamIDs...), aliceIDs...)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("all images: got %v, want %v", got, want)
	}

	r := ts.do(t, http.MethodGet, "/api/admin/images?owner=alice&limit=2", asAdmin, "", nil)
	r.wantStatus(t, http.StatusOK)
	r.decode(t, &page)
	if len(page.Results) != 2 || page.Results[0].ID != aliceIDs[0] || page.Results[0].Owner != "alice" || page.Next == nil {
		t.Fatalf("alice's first page: got %+v, want her 2 newest and a next link", page)
	}
	if !strings.Contains(*page.Next, "owner=alice") {
		t.Errorf("next link %q does not keep the owner filter", *page.Next)
	}
	// A cursor of one list is not valid in another.
	u, _ := url.Parse(*page.Next)
	cursor := u.Query().Get("cursor")
	ts.do(t, http.MethodGet, "/api/admin/images?cursor="+cursor, asAdmin, "", nil).wantProblem(t, http.StatusBadRequest, "cursor")
	ts.do(t, http.MethodGet, "/api/images?cursor="+cursor, asAlice, "", nil).wantProblem(t, http.StatusBadRequest, "cursor")

	ts.do(t, http.MethodGet, "/api/admin/images?owner=nobody", asAdmin, "", nil).wantProblem(t, http.StatusNotFound)
	ts.do(t, http.MethodGet, "/api/admin/images", asAlice, "", nil).wantProblem(t, http.StatusForbidden)

	ts.do(t, http.MethodDelete, "/api/admin/images/"+aliceIDs[0], asAdmin, "", nil).wantStatus(t, http.StatusNoContent)
	if got := ts.imageCount(t, alice.User.ID); got != 2 {
		t.Errorf("alice's images after delete: got %d, want 2", got)
	}
	purged := ts.purger.purged()
	if len(purged) != 1 || purged[0] != aliceIDs[0] {
		t.Errorf("purged: got %v, want [%s]", purged, aliceIDs[0])
	}
	ts.do(t, http.MethodDelete, "/api/admin/images/"+aliceIDs[0], asAdmin, "", nil).wantProblem(t, http.StatusNotFound)
	ts.do(t, http.MethodDelete, "/api/admin/images/not-an-id", asAdmin, "", nil).wantProblem(t, http.StatusNotFound)
}

func TestUserSearch(t *testing.T) {
	ts := newTestServer(t, Config{})
	for _, u := range []string{"Bob_Smith", "bobby", "rob", "b.b"} {
		ts.createUser(t, u, userPassword, "Basic", false)
	}
	tests := []struct {
		search string
		want   string
	}{
		{"bob", "Bob_Smith,bobby"},
		{"BOB", "Bob_Smith,bobby"},
		{"b_s", "Bob_Smith"},
		{"_", "Bob_Smith"},
		{"%", ""},
		{".b", "b.b"},
		{"zzz", ""},
	}
	for _, tt := range tests {
		t.Run(tt.search, func(t *testing.T) {
			r := ts.do(t, http.MethodGet, "/api/admin/users?search="+url.QueryEscape(tt.search), asAdmin, "", nil)
			r.wantStatus(t, http.StatusOK)
			var page struct {
				Results []struct {
					Username string `json:"username"`
				} `json:"results"`
			}
			r.decode(t, &page)
			var got []string
			for _, u := range page.Results {
				got = append(got, u.Username)
			}
			if strings.Join(got, ",") != tt.want {
				t.Errorf("search %q: got %v, want %s", tt.search, got, tt.want)
			}
		})
	}
	// The next link keeps the search.
	r := ts.do(t, http.MethodGet, "/api/admin/users?search=bob&limit=1", asAdmin, "", nil)
	r.wantStatus(t, http.StatusOK)
	var page struct {
		Next *string `json:"next"`
	}
	r.decode(t, &page)
	if page.Next == nil || !strings.Contains(*page.Next, "search=bob") {
		t.Errorf("next: got %v, want a link keeping search=bob", page.Next)
	}
}
