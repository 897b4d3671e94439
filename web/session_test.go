package web

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
	"github.com/valyala/fasthttp"
)

// setCookies parses the Set-Cookie headers of an answer by name.
func setCookies(t *testing.T, values []string) map[string]*http.Cookie {
	t.Helper()
	out := map[string]*http.Cookie{}
	for _, v := range values {
		c, err := http.ParseSetCookie(v)
		if err != nil {
			t.Fatalf("parse Set-Cookie %q: %v", v, err)
		}
		out[c.Name] = c
	}
	return out
}

// fastCookies returns the Set-Cookie values of a fasthttp response.
func fastCookies(resp *fasthttp.Response) []string {
	var out []string
	resp.Header.VisitAllCookie(func(_, v []byte) { out = append(out, string(v)) })
	return out
}

func TestSessionCookieOverHTTP(t *testing.T) {
	ts := newTestServer(t, Config{SessionMaxAge: 3 * time.Hour})
	c := ts.client(t)
	r := ts.login(t, c, "alice", testPassword, "", nil)
	r.wantRedirect(t, "/api")
	ck := setCookies(t, r.header.Values("Set-Cookie"))["tierpix_session"]
	if ck == nil {
		t.Fatalf("Set-Cookie %q: no tierpix_session", r.header.Values("Set-Cookie"))
	}
	if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" || ck.Secure {
		t.Errorf("cookie %q: want HttpOnly, SameSite=Lax, Path=/, no Domain, not Secure", ck.Raw)
	}
	if ck.MaxAge != 3*3600 {
		t.Errorf("cookie Max-Age: got %d, want %d", ck.MaxAge, 3*3600)
	}
	if len(ck.Value) < 32 {
		t.Errorf("cookie value %q: want a long random token", ck.Value)
	}
}

// TestSessionCookieOverHTTPS drives the handlers of a web UI whose public URL is https
// directly: the test server itself speaks plain HTTP.
func TestSessionCookieOverHTTPS(t *testing.T) {
	ts := newTestServer(t, Config{})
	w, err := New(Config{PublicURL: "https://tierpix.example"}, ts.web.svc, ts.st, ts.web.signin, ts.origin, ts.web.spec, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if got := w.cookieName(); got != "__Host-tierpix_session" {
		t.Fatalf("cookie name: got %q, want __Host-tierpix_session", got)
	}
	newCtx := func(method, uri string) *fasthttp.RequestCtx {
		var req fasthttp.Request
		req.Header.SetMethod(method)
		req.SetRequestURI(uri)
		ctx := &fasthttp.RequestCtx{}
		ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1234}, nil)
		return ctx
	}

	form := newCtx(http.MethodGet, "/login")
	w.handleLoginForm(form)
	login := setCookies(t, fastCookies(&form.Response))["__Host-tierpix_login"]
	if login == nil {
		t.Fatalf("Set-Cookie %q: no __Host-tierpix_login", fastCookies(&form.Response))
	}
	if !login.Secure || !login.HttpOnly || login.SameSite != http.SameSiteStrictMode || login.Path != "/" || login.Domain != "" {
		t.Errorf("login cookie %q: want Secure, HttpOnly, SameSite=Strict, Path=/, no Domain", login.Raw)
	}

	post := newCtx(http.MethodPost, "/login")
	post.Request.Header.SetContentType("application/x-www-form-urlencoded")
	post.Request.Header.SetCookie("__Host-tierpix_login", login.Value)
	post.Request.SetBodyString(url.Values{"csrf_token": {login.Value}, "username": {"alice"}, "password": {testPassword}}.Encode())
	w.handleLogin(post)
	if got := post.Response.StatusCode(); got != http.StatusSeeOther {
		t.Fatalf("status: got %d, want 303; body %s", got, post.Response.Body())
	}
	sess := setCookies(t, fastCookies(&post.Response))["__Host-tierpix_session"]
	if sess == nil {
		t.Fatalf("Set-Cookie %q: no __Host-tierpix_session", fastCookies(&post.Response))
	}
	if !sess.Secure || !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode || sess.Path != "/" || sess.Domain != "" {
		t.Errorf("session cookie %q: want Secure, HttpOnly, SameSite=Lax, Path=/, no Domain", sess.Raw)
	}
	if sess.MaxAge != int(DefaultSessionMaxAge/time.Second) {
		t.Errorf("session cookie Max-Age: got %d, want %d", sess.MaxAge, int(DefaultSessionMaxAge/time.Second))
	}

	// The cookie identifies the user to that web UI.
	next := newCtx(http.MethodGet, "/")
	next.Request.Header.SetCookie("__Host-tierpix_session", sess.Value)
	id, ok, err := w.Identify(next)
	if err != nil || !ok || id.User.Username != "alice" {
		t.Fatalf("Identify: got %q, %v, %v; want alice, true, nil", id.User.Username, ok, err)
	}
}

func TestSessionIdleExpiry(t *testing.T) {
	clock := storetest.NewClock()
	st := storetest.SQLite(t, storetest.WithNow(clock.Now))
	ts := newTestServerWith(t, st, Config{Now: clock.Now, SessionIdleTimeout: 10 * time.Minute, SessionMaxAge: time.Hour})
	c := ts.client(t)
	ts.login(t, c, "alice", testPassword, "", nil).wantRedirect(t, "/api")

	// Use within the idle timeout keeps the session alive past it.
	for range 3 {
		clock.Advance(9 * time.Minute)
		ts.wantSignedIn(t, c, true)
	}
	clock.Advance(10*time.Minute + time.Second)
	r := ts.do(t, c, http.MethodGet, "/", nil, nil)
	r.wantRedirect(t, "/login")
	if ck := setCookies(t, r.header.Values("Set-Cookie"))[ts.web.cookieName()]; ck == nil || ck.Value != "" || !ck.Expires.Before(time.Now()) {
		t.Errorf("Set-Cookie %q: want the dead session's cookie cleared", r.header.Values("Set-Cookie"))
	}
}

func TestSessionAbsoluteExpiry(t *testing.T) {
	clock := storetest.NewClock()
	st := storetest.SQLite(t, storetest.WithNow(clock.Now))
	ts := newTestServerWith(t, st, Config{Now: clock.Now, SessionIdleTimeout: 10 * time.Minute, SessionMaxAge: 30 * time.Minute})
	c := ts.client(t)
	ts.login(t, c, "alice", testPassword, "", nil).wantRedirect(t, "/api")
	for range 3 {
		clock.Advance(9 * time.Minute)
		ts.wantSignedIn(t, c, true) // 27 minutes in, used every 9
	}
	clock.Advance(3 * time.Minute)
	ts.wantSignedIn(t, c, false)
}

// TestSessionAbsoluteExpiryByWebClock checks that the web's own limits hold even when the
// store's clock (here the real one) would keep the session.
func TestSessionAbsoluteExpiryByWebClock(t *testing.T) {
	clock := storetest.NewClock()
	clock.Advance(time.Since(clock.Now())) // the real time: the store runs on it
	ts := newTestServer(t, Config{Now: clock.Now, SessionIdleTimeout: 2 * time.Hour, SessionMaxAge: 2 * time.Hour})
	c, _ := ts.signedIn(t, "alice") // a store session of one hour
	ts.wantSignedIn(t, c, true)
	clock.Advance(time.Hour + time.Second)
	ts.wantSignedIn(t, c, false)
}

func TestSessionTouchedAtMostOncePerMinute(t *testing.T) {
	clock := storetest.NewClock()
	st := storetest.SQLite(t, storetest.WithNow(clock.Now))
	ts := newTestServerWith(t, st, Config{Now: clock.Now})
	c := ts.client(t)
	ts.login(t, c, "alice", testPassword, "", nil).wantRedirect(t, "/api")
	alice, err := st.FindUser(context.Background(), "alice")
	if err != nil {
		t.Fatalf("FindUser: %v", err)
	}
	lastSeen := func() time.Time {
		t.Helper()
		ss, err := st.ListUserSessions(context.Background(), alice.User.ID, clock.Now().Add(-time.Hour))
		if err != nil || len(ss) != 1 {
			t.Fatalf("ListUserSessions: got %d sessions, %v; want 1", len(ss), err)
		}
		return ss[0].LastSeenAt
	}
	start := lastSeen()
	clock.Advance(30 * time.Second)
	before := st.Queries()
	ts.wantSignedIn(t, c, true)
	if got := lastSeen(); !got.Equal(start) {
		t.Errorf("LastSeenAt after 30 s: got %v, want it unchanged at %v", got, start)
	}
	if n := st.Queries() - before; n > 2 { // the lookup, and lastSeen's list
		t.Errorf("statements for a request 30 s after the last: got %d, want 1 (plus the check's 1)", n)
	}
	clock.Advance(61 * time.Second)
	ts.wantSignedIn(t, c, true)
	if got, want := lastSeen(), clock.Now(); !got.Equal(want) {
		t.Errorf("LastSeenAt after 91 s: got %v, want %v", got, want)
	}
}

func TestUnknownSessionCookieIsCleared(t *testing.T) {
	ts := newTestServer(t, Config{})
	for _, value := range []string{"not-a-session", strings.Repeat("x", 1000)} {
		c := ts.client(t)
		u, _ := url.Parse(ts.url)
		c.Jar.SetCookies(u, []*http.Cookie{{Name: ts.web.cookieName(), Value: value, Path: "/"}})
		r := ts.do(t, c, http.MethodGet, "/", nil, nil)
		r.wantRedirect(t, "/login")
		if ck := setCookies(t, r.header.Values("Set-Cookie"))[ts.web.cookieName()]; ck == nil || ck.Value != "" {
			t.Errorf("cookie of %d bytes: Set-Cookie %q: want it cleared", len(value), r.header.Values("Set-Cookie"))
		}
		if ts.sessionCookie(t, c) != "" {
			t.Errorf("cookie of %d bytes: the browser kept it", len(value))
		}
	}
}

func TestCheckOrigin(t *testing.T) {
	w := &Web{cfg: Config{PublicURL: "https://tierpix.example"}}
	tests := []struct {
		name    string
		headers map[string]string
		want    bool
	}{
		{name: "no headers", want: true},
		{name: "same-origin", headers: map[string]string{"Sec-Fetch-Site": "same-origin"}, want: true},
		{name: "typed in", headers: map[string]string{"Sec-Fetch-Site": "none"}, want: true},
		{name: "same-site", headers: map[string]string{"Sec-Fetch-Site": "same-site"}, want: false},
		{name: "cross-site", headers: map[string]string{"Sec-Fetch-Site": "cross-site"}, want: false},
		{name: "own origin", headers: map[string]string{"Origin": "https://tierpix.example"}, want: true},
		{name: "own origin, other case", headers: map[string]string{"Origin": "https://TierPix.example"}, want: true},
		{name: "other origin", headers: map[string]string{"Origin": "https://evil.example"}, want: false},
		{name: "http origin", headers: map[string]string{"Origin": "http://tierpix.example"}, want: false},
		{name: "opaque origin", headers: map[string]string{"Origin": "null"}, want: false},
		{name: "good origin, cross-site", headers: map[string]string{"Origin": "https://tierpix.example", "Sec-Fetch-Site": "cross-site"}, want: false},
		{name: "same-origin, bad origin", headers: map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetMethod(http.MethodPost)
			for k, v := range tt.headers {
				ctx.Request.Header.Set(k, v)
			}
			if got := w.CheckOrigin(&ctx); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCheckCSRF(t *testing.T) {
	w := &Web{}
	var ctx fasthttp.RequestCtx
	if w.CheckCSRF(&ctx, "anything") {
		t.Errorf("without a session: got true, want false")
	}
	ctx.SetUserValue(sessionKey{}, &sessionState{sess: store.Session{CSRFToken: "the-token"}})
	tests := []struct {
		token string
		want  bool
	}{
		{"the-token", true},
		{"", false},
		{"the-toke", false},
		{"the-token2", false},
		{"THE-TOKEN", false},
	}
	for _, tt := range tests {
		if got := w.CheckCSRF(&ctx, tt.token); got != tt.want {
			t.Errorf("CheckCSRF(%q): got %v, want %v", tt.token, got, tt.want)
		}
	}
}

// guardedServer is a test server with three extra routes behind requireUser and checkForm,
// answering "ok <username>" when let through.
func guardedServer(t *testing.T) *testServer {
	t.Helper()
	return newTestServerRoutes(t, storetest.SQLite(t), Config{}, func(r *router.Router, w *Web) {
		guard := func(admin, form bool) fasthttp.RequestHandler {
			return func(ctx *fasthttp.RequestCtx) {
				id, _, ok := w.requireUser(ctx, admin)
				if !ok || (form && !w.checkForm(ctx)) {
					return
				}
				fmt.Fprintf(ctx, "ok %s %s", id.User.Username, ctx.PostArgs().Peek("field"))
			}
		}
		r.GET("/test/user", guard(false, false))
		r.GET("/test/admin", guard(true, false))
		r.POST("/test/form", guard(false, true))
	})
}

func TestRequireUser(t *testing.T) {
	ts := guardedServer(t)
	alice, _ := ts.signedIn(t, "alice")
	admin, _ := ts.signedIn(t, "admin")

	r := ts.do(t, ts.client(t), http.MethodGet, "/test/user?a=1&b=%2F", nil, nil)
	r.wantRedirect(t, "/login?next="+url.QueryEscape("/test/user?a=1&b=%2F"))
	wantPageHeaders(t, r.header)

	r = ts.do(t, alice, http.MethodGet, "/test/admin", nil, nil)
	r.wantStatus(t, http.StatusForbidden)
	wantPageHeaders(t, r.header)

	if r := ts.do(t, alice, http.MethodGet, "/test/user", nil, nil); r.status != http.StatusOK || r.body != "ok alice " {
		t.Errorf("alice on /test/user: got %d %q, want 200 %q", r.status, r.body, "ok alice ")
	}
	if r := ts.do(t, admin, http.MethodGet, "/test/admin", nil, nil); r.status != http.StatusOK || r.body != "ok admin " {
		t.Errorf("admin on /test/admin: got %d %q, want 200 %q", r.status, r.body, "ok admin ")
	}
	// A POST without a session goes to the form without next: the target may have no GET.
	ts.postForm(t, ts.client(t), "/test/form", url.Values{}, nil).wantRedirect(t, "/login")
}

func TestCheckForm(t *testing.T) {
	ts := guardedServer(t)
	c, csrf := ts.signedIn(t, "alice")
	tests := []struct {
		name   string
		form   url.Values
		header http.Header
		status int
	}{
		{name: "token", form: url.Values{"csrf_token": {csrf}, "field": {"v"}}, status: http.StatusOK},
		{name: "token and own origin", form: url.Values{"csrf_token": {csrf}, "field": {"v"}}, header: http.Header{"Origin": {ts.url}, "Sec-Fetch-Site": {"same-origin"}}, status: http.StatusOK},
		{name: "no token", form: url.Values{"field": {"v"}}, status: http.StatusForbidden},
		{name: "wrong token", form: url.Values{"csrf_token": {csrf + "x"}}, status: http.StatusForbidden},
		{name: "cross-site", form: url.Values{"csrf_token": {csrf}}, header: http.Header{"Sec-Fetch-Site": {"cross-site"}}, status: http.StatusForbidden},
		{name: "foreign origin", form: url.Values{"csrf_token": {csrf}}, header: http.Header{"Origin": {"http://evil.example"}}, status: http.StatusForbidden},
		{name: "too large", form: url.Values{"csrf_token": {csrf}, "field": {strings.Repeat("x", maxFormBytes)}}, status: http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.postForm(t, c, "/test/form", tt.form, tt.header)
			r.wantStatus(t, tt.status)
			switch tt.status {
			case http.StatusOK:
				if r.body != "ok alice v" {
					t.Errorf("body: got %q, want %q (the fields readable after the check)", r.body, "ok alice v")
				}
			case http.StatusForbidden:
				wantPageHeaders(t, r.header)
				if !strings.Contains(r.body, formExpiredMessage) {
					t.Errorf("body: want %q", formExpiredMessage)
				}
			}
		})
	}
}
