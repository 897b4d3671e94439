package web

import (
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tierpix/tierpix/signin"
	"github.com/tierpix/tierpix/store/storetest"
)

// loginToken fetches the sign-in form with c (which keeps the login cookie) and returns its
// login CSRF token.
func (ts *testServer) loginToken(t *testing.T, c *http.Client) string {
	t.Helper()
	r := ts.do(t, c, http.MethodGet, "/login", nil, nil)
	r.wantStatus(t, http.StatusOK)
	return formCSRF(t, r.doc, "/login")
}

// login signs in through the form and returns the answer.
func (ts *testServer) login(t *testing.T, c *http.Client, username, password, next string, hdr http.Header) reply {
	t.Helper()
	form := url.Values{"csrf_token": {ts.loginToken(t, c)}, "username": {username}, "password": {password}}
	if next != "" {
		form.Set("next", next)
	}
	return ts.postForm(t, c, "/login", form, hdr)
}

// sessionCookie returns the session cookie c holds for the test server, or "".
func (ts *testServer) sessionCookie(t *testing.T, c *http.Client) string {
	t.Helper()
	u, _ := url.Parse(ts.url)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == ts.web.cookieName() {
			return ck.Value
		}
	}
	return ""
}

// wantSignedIn checks through GET / whether c holds a live session.
func (ts *testServer) wantSignedIn(t *testing.T, c *http.Client, want bool) {
	t.Helper()
	loc := "/login"
	if want {
		loc = "/api"
	}
	ts.do(t, c, http.MethodGet, "/", nil, nil).wantRedirect(t, loc)
}

func TestLoginSucceeds(t *testing.T) {
	ts := newTestServer(t, Config{})
	tests := []struct {
		name, user, want string
	}{
		{name: "admin goes to the dashboard", user: "admin", want: "/admin"},
		{name: "user goes to the API", user: "alice", want: "/api"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.client(t)
			ts.wantSignedIn(t, c, false)
			r := ts.login(t, c, tt.user, testPassword, "", nil)
			r.wantRedirect(t, tt.want)
			wantPageHeaders(t, r.header)
			ts.wantSignedIn(t, c, true)

			var sawDelete bool
			for _, sc := range r.header.Values("Set-Cookie") {
				ck, err := http.ParseSetCookie(sc)
				if err != nil {
					t.Fatalf("parse Set-Cookie %q: %v", sc, err)
				}
				if ck.Name == ts.web.loginCookieName() {
					sawDelete = ck.Value == "" && ck.Expires.Before(time.Now())
				}
			}
			if !sawDelete {
				t.Errorf("Set-Cookie %q: want the login cookie deleted", r.header.Values("Set-Cookie"))
			}

			// A signed-in user asking for the form goes straight on.
			ts.do(t, c, http.MethodGet, "/login?next=%2Fapi%2Fimages", nil, nil).wantRedirect(t, "/api/images")
		})
	}
}

func TestLoginNext(t *testing.T) {
	ts := newTestServer(t, Config{})
	tests := []struct {
		name, next, want string
	}{
		{name: "local path with query", next: "/api/images?limit=5", want: "/api/images?limit=5"},
		{name: "admin page", next: "/admin/users", want: "/admin/users"},
		{name: "protocol-relative", next: "//evil.example/x", want: "/api"},
		{name: "backslash", next: `/\evil.example`, want: "/api"},
		{name: "backslashes", next: `\\evil.example`, want: "/api"},
		{name: "absolute URL", next: "https://evil.example/", want: "/api"},
		{name: "scheme without slashes", next: "javascript:alert(1)", want: "/api"},
		{name: "relative path", next: "api/images", want: "/api"},
		{name: "encoded slashes", next: "/%2F%2Fevil.example", want: "/api"},
		{name: "tab inside", next: "/\t/evil.example", want: "/api"},
		{name: "newline inside", next: "/api\r\nSet-Cookie: x=y", want: "/api"},
		{name: "empty", next: "", want: "/api"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.client(t)
			ts.login(t, c, "alice", testPassword, tt.next, nil).wantRedirect(t, tt.want)
		})
	}

	t.Run("next survives the form", func(t *testing.T) {
		c := ts.client(t)
		r := ts.do(t, c, http.MethodGet, "/login?next="+url.QueryEscape("/api/me"), nil, nil)
		inputs := elements(r.doc, "input", "name", "next")
		if len(inputs) != 1 || attr(inputs[0], "value") != "/api/me" {
			t.Fatalf("hidden next inputs: got %d, want one holding /api/me", len(inputs))
		}
		r = ts.do(t, c, http.MethodGet, "/login?next="+url.QueryEscape("//evil.example"), nil, nil)
		if n := len(elements(r.doc, "input", "name", "next")); n != 0 {
			t.Fatalf("hidden next inputs for an unsafe next: got %d, want 0", n)
		}
	})
}

func TestLoginFails(t *testing.T) {
	ts := newTestServer(t, Config{})
	tests := []struct {
		name, user, password string
	}{
		{name: "wrong password", user: "alice", password: "not-the-password"},
		{name: "unknown user", user: "nobody", password: testPassword},
		{name: "invalid username", user: "<script>", password: testPassword},
		{name: "empty password", user: "alice", password: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.client(t)
			r := ts.login(t, c, tt.user, tt.password, "", nil)
			r.wantStatus(t, http.StatusBadRequest)
			wantPageHeaders(t, r.header)
			if !strings.Contains(r.body, msgBadCredentials) {
				t.Errorf("body: want %q in it", msgBadCredentials)
			}
			if strings.Contains(r.body, "<script>") {
				t.Errorf("body: the username was not escaped")
			}
			if in := elements(r.doc, "input", "name", "username"); len(in) != 1 || attr(in[0], "value") != tt.user {
				t.Errorf("username input: want it kept as %q", tt.user)
			}
			if in := elements(r.doc, "input", "name", "password"); len(in) != 1 || attr(in[0], "value") != "" {
				t.Errorf("password input: want it empty")
			}
			if ts.sessionCookie(t, c) != "" {
				t.Errorf("got a session cookie after a failed sign-in")
			}
			ts.wantSignedIn(t, c, false)
		})
	}
}

func TestLoginCSRF(t *testing.T) {
	ts := newTestServer(t, Config{})
	creds := url.Values{"username": {"alice"}, "password": {testPassword}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for key, vals := range creds {
			f[key] = vals
		}
		f.Set(k, v)
		return f
	}
	tests := []struct {
		name   string
		form   func(t *testing.T, c *http.Client) url.Values
		header http.Header
	}{
		{name: "no token, no cookie", form: func(t *testing.T, c *http.Client) url.Values { return creds }},
		{name: "token but no cookie", form: func(t *testing.T, c *http.Client) url.Values {
			token := ts.loginToken(t, ts.client(t)) // another browser's token
			return with("csrf_token", token)
		}},
		{name: "cookie but no token", form: func(t *testing.T, c *http.Client) url.Values {
			ts.loginToken(t, c)
			return creds
		}},
		{name: "cookie and another token", form: func(t *testing.T, c *http.Client) url.Values {
			ts.loginToken(t, c)
			return with("csrf_token", ts.loginToken(t, ts.client(t)))
		}},
		{name: "cross-site", form: func(t *testing.T, c *http.Client) url.Values {
			return with("csrf_token", ts.loginToken(t, c))
		}, header: http.Header{"Sec-Fetch-Site": {"cross-site"}}},
		{name: "foreign origin", form: func(t *testing.T, c *http.Client) url.Values {
			return with("csrf_token", ts.loginToken(t, c))
		}, header: http.Header{"Origin": {"https://evil.example"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.client(t)
			r := ts.postForm(t, c, "/login", tt.form(t, c), tt.header)
			r.wantStatus(t, http.StatusForbidden)
			wantPageHeaders(t, r.header)
			if !strings.Contains(r.body, "has expired or did not come from this site") {
				t.Errorf("body: want the expired-form message")
			}
			if ts.sessionCookie(t, c) != "" {
				t.Errorf("got a session cookie from a refused sign-in")
			}
			// The page offers a fresh form that works.
			form := with("csrf_token", formCSRF(t, r.doc, "/login"))
			ts.postForm(t, c, "/login", form, nil).wantRedirect(t, "/api")
		})
	}

	t.Run("same-origin headers pass", func(t *testing.T) {
		c := ts.client(t)
		hdr := http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {ts.url}}
		ts.login(t, c, "alice", testPassword, "", hdr).wantRedirect(t, "/api")
	})
}

func TestLoginThrottlesAccount(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.client(t)
	for i := range signin.DefaultPairLimit {
		r := ts.login(t, c, "admin", "wrong-"+strconv.Itoa(i), "", nil)
		r.wantStatus(t, http.StatusBadRequest)
	}
	// The right password is refused now, with no session.
	r := ts.login(t, c, "admin", testPassword, "", nil)
	r.wantStatus(t, http.StatusTooManyRequests)
	wantPageHeaders(t, r.header)
	if got, want := r.header.Get("Retry-After"), strconv.Itoa(int(signin.DefaultWindow/time.Second)); got != want {
		t.Errorf("Retry-After: got %q, want %q", got, want)
	}
	if !strings.Contains(r.body, "Too many failed sign-ins") {
		t.Errorf("body: want the throttle message")
	}
	ts.wantSignedIn(t, c, false)
	// So is any other spelling of the account.
	ts.login(t, c, "ADMIN", "wrong", "", nil).wantStatus(t, http.StatusTooManyRequests)

	// Another account from the same address is not affected.
	ts.login(t, ts.client(t), "alice", testPassword, "", nil).wantRedirect(t, "/api")
}

func TestLoginSuccessClearsAccountFailures(t *testing.T) {
	ts := newTestServerSignIn(t, storetest.SQLite(t), Config{}, signin.Config{PairLimit: 3}, nil)
	for round := range 3 {
		c := ts.client(t)
		for range 2 {
			ts.login(t, c, "alice", "wrong", "", nil).wantStatus(t, http.StatusBadRequest)
		}
		if r := ts.login(t, c, "alice", testPassword, "", nil); r.status != http.StatusSeeOther {
			t.Fatalf("round %d: status: got %d, want 303", round, r.status)
		}
	}
}

func TestLoginThrottlesAddress(t *testing.T) {
	ts := newTestServerSignIn(t, storetest.SQLite(t), Config{}, signin.Config{
		AddressLimit:   3,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	}, nil)
	from := func(addr string) http.Header {
		// The client's own claim on the left is ignored: the proxy's entry on the right counts.
		return http.Header{"X-Forwarded-For": {"203.0.113.99, " + addr}}
	}
	c := ts.client(t)
	for i := range 3 {
		ts.login(t, c, "nobody"+strconv.Itoa(i), "wrong", "", from("198.51.100.7")).wantStatus(t, http.StatusBadRequest)
	}
	ts.login(t, c, "alice", testPassword, "", from("198.51.100.7")).wantStatus(t, http.StatusTooManyRequests)
	ts.login(t, ts.client(t), "alice", testPassword, "", from("198.51.100.8")).wantRedirect(t, "/api")
	// Without the proxy's header the client is the proxy itself, another address again.
	ts.login(t, ts.client(t), "alice", testPassword, "", nil).wantRedirect(t, "/api")
}

func TestLogout(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.client(t)
	ts.login(t, c, "alice", testPassword, "", nil).wantRedirect(t, "/api")
	token := ts.sessionCookie(t, c)
	if token == "" {
		t.Fatal("no session cookie after sign-in")
	}
	// The sign-out form is on every page; its token is the session's.
	page := ts.do(t, c, http.MethodGet, "/api/docs", nil, nil)
	csrf := formCSRF(t, page.doc, "/logout")

	t.Run("without the token it is refused", func(t *testing.T) {
		r := ts.postForm(t, c, "/logout", url.Values{"csrf_token": {"wrong"}}, nil)
		r.wantStatus(t, http.StatusForbidden)
		wantPageHeaders(t, r.header)
		if !strings.Contains(r.body, formExpiredMessage) {
			t.Errorf("body: want %q", formExpiredMessage)
		}
		ts.postForm(t, c, "/logout", url.Values{}, nil).wantStatus(t, http.StatusForbidden)
		ts.postForm(t, c, "/logout", url.Values{"csrf_token": {csrf}}, http.Header{"Sec-Fetch-Site": {"same-site"}}).wantStatus(t, http.StatusForbidden)
		ts.wantSignedIn(t, c, true)
	})

	t.Run("with the token the session ends on the server", func(t *testing.T) {
		r := ts.postForm(t, c, "/logout", url.Values{"csrf_token": {csrf}}, nil)
		r.wantRedirect(t, "/login")
		wantPageHeaders(t, r.header)
		if ts.sessionCookie(t, c) != "" {
			t.Errorf("the browser kept its session cookie")
		}
		ts.wantSignedIn(t, c, false)

		// The old cookie, replayed by another client, no longer works.
		other := ts.client(t)
		u, _ := url.Parse(ts.url)
		other.Jar.SetCookies(u, []*http.Cookie{{Name: ts.web.cookieName(), Value: token, Path: "/"}})
		ts.wantSignedIn(t, other, false)
	})

	t.Run("without a session it just goes to the form", func(t *testing.T) {
		ts.postForm(t, ts.client(t), "/logout", url.Values{}, nil).wantRedirect(t, "/login")
	})
}

func TestRoot(t *testing.T) {
	ts := newTestServer(t, Config{})
	r := ts.do(t, ts.client(t), http.MethodGet, "/", nil, nil)
	r.wantRedirect(t, "/login")
	wantPageHeaders(t, r.header)
	if a := elements(r.doc, "a", "href", "/login"); len(a) != 1 {
		t.Errorf("303 body: got %d links to /login, want 1", len(a))
	}
	admin, _ := ts.signedIn(t, "admin")
	ts.do(t, admin, http.MethodGet, "/", nil, nil).wantRedirect(t, "/api")
}

func TestSafeNext(t *testing.T) {
	tests := []struct {
		next string
		want bool
	}{
		{"/", true},
		{"/api/images?cursor=abc&limit=5", true},
		{"/admin#users", true},
		{"", false},
		{"//evil.example", false},
		{"///evil.example", false},
		{`/\evil.example`, false},
		{`/api\..\x`, false},
		{"https://evil.example", false},
		{"http:/evil.example", false},
		{"mailto:x@evil.example", false},
		{"/api\x00", false},
		{"/api\x7f", false},
		{"/" + strings.Repeat("a", 3000), false},
	}
	for _, tt := range tests {
		if got := safeNext(tt.next); got != tt.want {
			t.Errorf("safeNext(%q): got %v, want %v", tt.next, got, tt.want)
		}
	}
}
