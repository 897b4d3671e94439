package web

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/api/openapi"
	"github.com/tierpix/tierpix/imaging"
	"github.com/tierpix/tierpix/origin"
	"github.com/tierpix/tierpix/signing"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
	"github.com/valyala/fasthttp"
)

func TestMain(m *testing.M) {
	if err := imaging.Start(imaging.Config{}, slog.New(slog.DiscardHandler)); err != nil {
		fmt.Fprintln(os.Stderr, "start imaging:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

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
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = testBcryptCost
	}
	w, err := New(cfg, st, o, o, spec, logger)
	if err != nil {
		t.Fatalf("web.New: %v", err)
	}
	r := router.New()
	w.Register(r)
	o.Register(r)
	srv := &fasthttp.Server{Handler: r.Handler}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln) //nolint:errcheck // ends with Shutdown
	}()
	t.Cleanup(func() {
		srv.Shutdown() //nolint:errcheck
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
