package api

import (
	"net/http"
	"net/netip"
	"strconv"
	"testing"

	"github.com/tierpix/tierpix/signin"
	"github.com/tierpix/tierpix/store/storetest"
)

// withHeader is as, plus a header.
func withHeader(as auth, name, value string) auth {
	return func(r *http.Request) {
		as(r)
		r.Header.Set(name, value)
	}
}

// TestBasicThrottled: Basic guesses are throttled like the sign-in form's, per account and
// address: a throttled request answers 429 with Retry-After and runs no bcrypt, even with the
// right password, while the owner elsewhere is let in.
func TestBasicThrottled(t *testing.T) {
	ts := newTestServerSignIn(t, storetest.SQLite(t), Config{}, signin.Config{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	}, nil)
	from := func(as auth, addr string) auth { return withHeader(as, "X-Forwarded-For", addr) }
	const attacker, owner = "198.51.100.1", "203.0.113.7"
	checks := func() uint64 { return ts.signin.Stats().PasswordChecks }

	for i := range signin.DefaultPairLimit {
		ts.do(t, http.MethodGet, "/api/me", from(basic("alice", "guess-"+strconv.Itoa(i)), attacker), "", nil).
			wantProblem(t, http.StatusUnauthorized)
	}
	before := checks()
	for _, as := range []auth{basic("alice", "guess"), asAlice, basic("ALICE", "guess")} {
		r := ts.do(t, http.MethodGet, "/api/me", from(as, attacker), "", nil)
		r.wantProblem(t, http.StatusTooManyRequests)
		if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra <= 0 {
			t.Errorf("Retry-After: got %q, want a positive number of seconds", r.header.Get("Retry-After"))
		}
	}
	if n := checks() - before; n != 0 {
		t.Errorf("throttled requests: got %d password checks, want 0", n)
	}
	ts.do(t, http.MethodGet, "/api/me", from(asAlice, owner), "", nil).wantStatus(t, http.StatusOK)
	// A Bearer token is not a guess: it is not throttled.
	token := ts.mintToken(t, "alice")
	ts.do(t, http.MethodGet, "/api/me", from(bearer(token), attacker), "", nil).wantStatus(t, http.StatusOK)
}

// TestBasicCrossSite: a state change authenticated by Basic that the browser says another site
// made is refused and changes nothing; the same from this site, by token, or a read, is not.
func TestBasicCrossSite(t *testing.T) {
	ts := newTestServer(t, Config{})
	alice := ts.user(t, "alice").User
	ids := ts.addImages(t, alice.ID, 3)
	token := ts.mintToken(t, "alice")
	crossSite := func(as auth) auth { return withHeader(as, "Sec-Fetch-Site", "cross-site") }

	tests := []struct {
		name   string
		method string
		path   string
		as     auth
		status int
	}{
		{name: "delete", method: http.MethodDelete, path: "/api/images/" + ids[0], as: crossSite(asAlice), status: http.StatusForbidden},
		{name: "delete by _method", method: http.MethodPost, path: "/api/images/" + ids[0] + "?_method=DELETE", as: crossSite(asAlice), status: http.StatusForbidden},
		{name: "same-site sibling", method: http.MethodDelete, path: "/api/images/" + ids[0], as: withHeader(asAlice, "Sec-Fetch-Site", "same-site"), status: http.StatusForbidden},
		{name: "upload", method: http.MethodPost, path: "/api/images", as: crossSite(asAlice), status: http.StatusForbidden},
		{name: "read", method: http.MethodGet, path: "/api/images/" + ids[0], as: crossSite(asAlice), status: http.StatusOK},
		{name: "same origin", method: http.MethodDelete, path: "/api/images/" + ids[1], as: withHeader(asAlice, "Sec-Fetch-Site", "same-origin"), status: http.StatusNoContent},
		{name: "no header", method: http.MethodDelete, path: "/api/images/" + ids[2], as: asAlice, status: http.StatusNoContent},
		{name: "token", method: http.MethodDelete, path: "/api/images/" + ids[0], as: crossSite(bearer(token)), status: http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(t, tt.method, tt.path, tt.as, "", nil)
			if r.status != tt.status {
				t.Fatalf("status: got %d, want %d; body: %s", r.status, tt.status, r.body)
			}
			if tt.status == http.StatusForbidden {
				r.wantProblem(t, http.StatusForbidden)
				if n := ts.imageCount(t, alice.ID); n != 3 {
					t.Errorf("images after a refused request: got %d, want 3", n)
				}
			}
		})
	}
}

// mintToken returns a new API token of a user, made in the store.
func (ts *testServer) mintToken(t *testing.T, username string) string {
	t.Helper()
	_, token, err := ts.st.CreateToken(t.Context(), ts.user(t, username).User.ID)
	if err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	return token
}

// TestBasicRememberedCostsNoMore: once verified, Basic credentials cost a request no more
// queries than a token does: the throttle's counters are not read on a remembered password.
func TestBasicRememberedCostsNoMore(t *testing.T) {
	ts := newTestServer(t, Config{})
	token := ts.mintToken(t, "alice")
	queries := func(as auth) uint64 {
		before := ts.st.Queries()
		ts.do(t, http.MethodGet, "/api/me", as, "", nil).wantStatus(t, http.StatusOK)
		return ts.st.Queries() - before
	}
	queries(asAlice) // verified once, by bcrypt
	byToken, byBasic := queries(bearer(token)), queries(asAlice)
	if byBasic != byToken {
		t.Errorf("GET /api/me: got %d queries with remembered Basic credentials, want %d as with a token", byBasic, byToken)
	}
}
