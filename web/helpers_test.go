package web

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/api/openapi"
	"github.com/tierpix/tierpix/imaging/imagingtest"
	"github.com/tierpix/tierpix/origin"
	"github.com/tierpix/tierpix/service"
	"github.com/tierpix/tierpix/signin"
	"github.com/tierpix/tierpix/signing"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
	"github.com/valyala/fasthttp"
	"golang.org/x/net/html"
)

func TestMain(m *testing.M) { imagingtest.Main(m) }

// testBcryptCost keeps password hashing cheap in tests.
const testBcryptCost = 4

// testPassword is the password of every user the tests create.
const testPassword = "test-password"

// testServer is the web UI and the origin on one router, served on 127.0.0.1:0, with an admin
// "admin" and a Basic user "alice".
type testServer struct {
	url    string
	st     *store.Store
	web    *Web
	origin *origin.Origin
	signer *signing.Signer
}

func newTestServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	return newTestServerWith(t, storetest.SQLite(t), cfg)
}

func newTestServerWith(t *testing.T, st *store.Store, cfg Config) *testServer {
	t.Helper()
	return newTestServerRoutes(t, st, cfg, nil)
}

// newTestServerRoutes is newTestServerWith with extra routes, added by extra (when not nil)
// after the web UI's and the origin's: tests stand in for the api package's handlers with it.
func newTestServerRoutes(t *testing.T, st *store.Store, cfg Config, extra func(r *router.Router, w *Web)) *testServer {
	t.Helper()
	return newTestServerSignIn(t, st, cfg, signin.Config{}, extra)
}

// newTestServerSignIn is newTestServerRoutes with the sign-in service's settings.
func newTestServerSignIn(t *testing.T, st *store.Store, cfg Config, sicfg signin.Config, extra func(r *router.Router, w *Web)) *testServer {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	signer, err := signing.New([][]byte{bytes.Repeat([]byte("k"), signing.MinKeyLength)})
	if err != nil {
		t.Fatalf("signing.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	o, err := origin.New(origin.Config{CacheDir: t.TempDir()}, st, signer, logger)
	if err != nil {
		t.Fatalf("origin.New: %v", err)
	}
	t.Cleanup(o.Close)
	spec, err := openapi.Load()
	if err != nil {
		t.Fatalf("openapi.Load: %v", err)
	}
	cfg.PublicURL = "http://" + ln.Addr().String()
	if sicfg.BcryptCost == 0 {
		sicfg.BcryptCost = testBcryptCost
	}
	si, err := signin.New(sicfg, st, logger)
	if err != nil {
		t.Fatalf("signin.New: %v", err)
	}
	svc, err := service.New(service.Config{BcryptCost: testBcryptCost}, st, si, o, logger)
	if err != nil {
		t.Fatalf("service.New: %v", err)
	}
	w, err := New(cfg, svc, st, si, o, spec, logger)
	if err != nil {
		t.Fatalf("web.New: %v", err)
	}
	r := router.New()
	w.Register(r)
	o.Register(r)
	if extra != nil {
		extra(r, w)
	}
	srv := &fasthttp.Server{Handler: r.Handler}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln) //nolint:errcheck // ends with Shutdown
	}()
	t.Cleanup(func() {
		// Bounded: a connection that never goes idle fails the test with every goroutine's
		// stack instead of hanging the package until go test's timeout.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := srv.ShutdownWithContext(ctx); err != nil {
			stacks := make([]byte, 4<<20)
			t.Errorf("server shutdown: %v; goroutines:\n%s", err, stacks[:runtime.Stack(stacks, true)])
		}
		<-done
	})
	ts := &testServer{url: "http://" + ln.Addr().String(), st: st, web: w, origin: o, signer: signer}
	ts.createUser(t, "admin", "Basic", true)
	ts.createUser(t, "alice", "Basic", false)
	return ts
}

// createUser adds a user with testPassword.
func (ts *testServer) createUser(t *testing.T, username, tier string, admin bool) tierpix.User {
	t.Helper()
	hash, err := store.HashPassword(testPassword, testBcryptCost)
	if err != nil {
		t.Fatalf("HashPassword: %v", err)
	}
	u := tierpix.User{Username: username, PasswordHash: hash, TierName: tier, IsAdmin: admin}
	if err := ts.st.CreateUser(context.Background(), &u); err != nil {
		t.Fatalf("create user %s: %v", username, err)
	}
	return u
}

// client returns a browser-like client: a cookie jar, and redirects not followed, so tests see
// each 303 themselves.
func (ts *testServer) client(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatalf("cookiejar: %v", err)
	}
	c := &http.Client{
		Jar:           jar,
		Transport:     &http.Transport{},
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// signedIn returns a client holding a session of username, made through the store (not the
// sign-in form), and the session's CSRF token.
func (ts *testServer) signedIn(t *testing.T, username string) (*http.Client, string) {
	t.Helper()
	id, err := ts.st.FindUser(context.Background(), username)
	if err != nil {
		t.Fatalf("find user %s: %v", username, err)
	}
	token, sess, err := ts.st.CreateSession(context.Background(), id.User.ID, time.Hour, "test", "127.0.0.1")
	if err != nil {
		t.Fatalf("create session: %v", err)
	}
	c := ts.client(t)
	u, _ := url.Parse(ts.url)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: ts.web.cookieName(), Value: token, Path: "/"}})
	return c, sess.CSRFToken
}

// reply is an answer read in full, its body parsed as HTML.
type reply struct {
	status int
	header http.Header
	body   string
	doc    *html.Node
}

// do sends a request to the test server with c (path is relative to the server) and reads the
// answer. hdr adds request headers.
func (ts *testServer) do(t *testing.T, c *http.Client, method, path string, body io.Reader, hdr http.Header) reply {
	t.Helper()
	req, err := http.NewRequest(method, ts.url+path, body)
	if err != nil {
		t.Fatalf("new request %s %s: %v", method, path, err)
	}
	maps.Copy(req.Header, hdr)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s %s: %v", method, path, err)
	}
	doc, err := html.Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse %s %s as HTML: %v", method, path, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b), doc: doc}
}

// postForm posts an urlencoded form.
func (ts *testServer) postForm(t *testing.T, c *http.Client, path string, form url.Values, hdr http.Header) reply {
	t.Helper()
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	maps.Copy(h, hdr)
	return ts.do(t, c, http.MethodPost, path, strings.NewReader(form.Encode()), h)
}

// wantStatus fails the test unless the answer has status want.
func (r reply) wantStatus(t *testing.T, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status: got %d, want %d; body:\n%s", r.status, want, r.body)
	}
}

// wantRedirect fails the test unless the answer is a 303 to location.
func (r reply) wantRedirect(t *testing.T, location string) {
	t.Helper()
	r.wantStatus(t, http.StatusSeeOther)
	if got := r.header.Get("Location"); got != location {
		t.Fatalf("Location: got %q, want %q", got, location)
	}
}

// wantPageHeaders fails the test unless h carries the headers of every HTML answer.
func wantPageHeaders(t *testing.T, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'none'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q: want it to contain %q", csp, want)
		}
	}
	for name, want := range map[string]string{
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "same-origin",
		"X-Frame-Options":        "DENY",
		"Cache-Control":          "no-store",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
	if ct := h.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type: got %q, want text/html; charset=utf-8", ct)
	}
}

// findAll returns the elements under n for which match is true, in document order.
func findAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for d := range n.Descendants() {
		if d.Type == html.ElementNode && match(d) {
			out = append(out, d)
		}
	}
	return out
}

// elements returns the elements with a tag name and, for each key=value in attrs, that
// attribute value.
func elements(n *html.Node, tag string, attrs ...string) []*html.Node {
	return findAll(n, func(e *html.Node) bool {
		if e.Data != tag {
			return false
		}
		for i := 0; i+1 < len(attrs); i += 2 {
			if v, ok := attrOf(e, attrs[i]); !ok || v != attrs[i+1] {
				return false
			}
		}
		return true
	})
}

// attrOf returns an attribute's value.
func attrOf(n *html.Node, name string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val, true
		}
	}
	return "", false
}

// attr returns an attribute's value, "" when absent.
func attr(n *html.Node, name string) string {
	v, _ := attrOf(n, name)
	return v
}

// textOf returns the text under n, spaces collapsed.
func textOf(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// formCSRF returns the value of the csrf_token input of the form posting to action.
func formCSRF(t *testing.T, doc *html.Node, action string) string {
	t.Helper()
	forms := elements(doc, "form", "action", action)
	if len(forms) == 0 {
		t.Fatalf("no form with action %q", action)
	}
	inputs := elements(forms[0], "input", "name", "csrf_token")
	if len(inputs) != 1 {
		t.Fatalf("form %q: got %d csrf_token inputs, want 1", action, len(inputs))
	}
	return attr(inputs[0], "value")
}
