package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/tierpix/tierpix/api/openapi/openapitest"
)

// server is a tierpix started in-process through serve, as `tierpix serve` runs it.
type server struct {
	URL     string
	DataDir string
	logs    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const (
	testAdmin    = "root"
	testAdminPW  = "correct horse battery"
	testUserPW   = "user-password-1"
	testUserName = "alice"
)

// startServer runs serve on 127.0.0.1:0 with env on top of a fresh data dir and waits for
// /healthz. It stops the server (and checks it stopped cleanly) at cleanup.
func startServer(t *testing.T, env map[string]string) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{URL: "http://" + ln.Addr().String(), DataDir: t.TempDir(), logs: &syncBuffer{}}
	full := map[string]string{
		"TIERPIX_ADDR":           ln.Addr().String(),
		"TIERPIX_DATA_DIR":       s.DataDir,
		"TIERPIX_PUBLIC_URL":     s.URL,
		"TIERPIX_ADMIN_USERNAME": testAdmin,
		"TIERPIX_ADMIN_PASSWORD": testAdminPW,
		"TIERPIX_LOG_LEVEL":      "warn",
	}
	for k, v := range env {
		full[k] = v
	}
	cfg, err := loadConfig(func(k string) string { return full[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, ln, newLogger(cfg, s.logs), s.logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("server did not stop within 30s")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	health := apiClient(t)
	for {
		select {
		case err := <-done:
			t.Fatalf("serve stopped early: %v\n%s", err, s.logs.String())
		default:
		}
		resp, err := health.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not healthy within 30s: %v\n%s", err, s.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// client is a credentialed HTTP client for one server.
type client struct {
	t       *testing.T
	base    string
	auth    func(*http.Request)
	httpCli *http.Client
}

func (s *server) basic(t *testing.T, user, pw string) *client {
	return &client{t: t, base: s.URL, httpCli: apiClient(t), auth: func(r *http.Request) { r.SetBasicAuth(user, pw) }}
}

func (s *server) bearer(t *testing.T, token string) *client {
	return &client{t: t, base: s.URL, httpCli: apiClient(t), auth: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }}
}

// apiClient is an HTTP client that checks every response it gets against the OpenAPI
// document.
func apiClient(t *testing.T) *http.Client {
	c := &http.Client{Transport: openapitest.Transport(t, &http.Transport{})}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// do sends a request and decodes a JSON answer into out (when non-nil), returning the response
// with its body read into the second value.
func (c *client) do(method, path string, body io.Reader, contentType string, out any) (*http.Response, []byte) {
	c.t.Helper()
	target := path
	if !strings.HasPrefix(path, "http") {
		target = c.base + path
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.auth != nil {
		c.auth(req)
	}
	resp, err := c.httpCli.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp, b
}

func (c *client) json(method, path string, in any, out any) (*http.Response, []byte) {
	c.t.Helper()
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			c.t.Fatal(err)
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	return c.do(method, path, body, ct, out)
}

func (c *client) upload(name string, data []byte, out any) (*http.Response, []byte) {
	c.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile("image", name)
	if err != nil {
		c.t.Fatal(err)
	}
	fw.Write(data)
	mw.Close()
	return c.do(http.MethodPost, "/api/images", &buf, mw.FormDataContentType(), out)
}

func wantStatus(t *testing.T, what string, resp *http.Response, body []byte, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s: got status %d, want %d; body %s", what, resp.StatusCode, want, body)
	}
}

type imageJSON struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Width       int    `json:"width"`
	Height      int    `json:"height"`
	SizeBytes   int64  `json:"size_bytes"`
	CreatedAt   string `json:"created_at"`
	Links       struct {
		Thumbnails []struct {
			Height int    `json:"height"`
			URL    string `json:"url"`
		} `json:"thumbnails"`
		Original string `json:"original"`
	} `json:"links"`
}

func gradientJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func noiseJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	if _, err := rand.Read(img.Pix); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func alphaPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.NRGBA{200, uint8(x), uint8(y), uint8(x * 255 / w)})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// getLink fetches an image link without credentials, as a browser would.
func getLink(t *testing.T, link string) (*http.Response, []byte) {
	t.Helper()
	resp, err := apiClient(t).Get(link)
	if err != nil {
		t.Fatalf("GET %s: %v", link, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// dialects runs fn against SQLite and, with TEST_DATABASE_URL, against PostgreSQL in a fresh
// schema. Under CI=true a missing PostgreSQL is a failure.
func dialects(t *testing.T, fn func(t *testing.T, env map[string]string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, map[string]string{}) })
	t.Run("postgres", func(t *testing.T) {
		base := os.Getenv("TEST_DATABASE_URL")
		if base == "" {
			if os.Getenv("CI") == "true" {
				t.Fatal("TEST_DATABASE_URL is not set; make test starts a throwaway PostgreSQL")
			}
			t.Skip("TEST_DATABASE_URL is not set; run make test for the PostgreSQL suite")
		}
		fn(t, map[string]string{"DATABASE_URL": pgSchemaURL(t, base)})
	})
}

func pgSchemaURL(t *testing.T, base string) string {
	t.Helper()
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := make([]byte, 6)
	rand.Read(b)
	schema := "tpx_e2e_" + hex.EncodeToString(b)
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer db.Close()
		db.Exec("DROP SCHEMA " + schema + " CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestEndToEnd walks the README's flow through the real server: an admin creates a user and a
// token, the user uploads, lists, opens every link, makes an expiring link, and deletes.
func TestEndToEnd(t *testing.T) {
	dialects(t, func(t *testing.T, env map[string]string) {
		s := startServer(t, env)
		admin := s.basic(t, testAdmin, testAdminPW)

		user := newTestUser(t, s, admin, "Enterprise")
		var resp *http.Response
		var body []byte

		var me struct {
			Username string `json:"username"`
			Tier     struct {
				Name string `json:"name"`
			} `json:"tier"`
		}
		resp, body = user.json("GET", "/api/me", nil, &me)
		wantStatus(t, "me", resp, body, http.StatusOK)
		if me.Username != testUserName || me.Tier.Name != "Enterprise" {
			t.Fatalf("me: got %+v, want alice on Enterprise", me)
		}

		orig := gradientJPEG(t, 900, 600)
		var img imageJSON
		resp, body = user.upload("photo.jpg", orig, &img)
		wantStatus(t, "upload", resp, body, http.StatusCreated)
		if img.Width != 900 || img.Height != 600 || img.ContentType != "image/jpeg" || img.SizeBytes != int64(len(orig)) {
			t.Fatalf("upload: got %+v, want a 900x600 image/jpeg of %d bytes", img, len(orig))
		}

		var list struct {
			Results []imageJSON `json:"results"`
			Next    *string     `json:"next"`
		}
		resp, body = user.json("GET", "/api/images", nil, &list)
		wantStatus(t, "list", resp, body, http.StatusOK)
		if len(list.Results) != 1 || list.Results[0].ID != img.ID || list.Next != nil {
			t.Fatalf("list: got %s, want one image %s and next null", body, img.ID)
		}

		heights := []int{}
		for _, th := range list.Results[0].Links.Thumbnails {
			heights = append(heights, th.Height)
			resp, b := getLink(t, th.URL)
			wantStatus(t, "thumbnail", resp, b, http.StatusOK)
			cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
			if err != nil || format != "jpeg" {
				t.Fatalf("thumbnail %d: got format %q err %v, want jpeg", th.Height, format, err)
			}
			if cfg.Height != th.Height || cfg.Width != th.Height*3/2 {
				t.Fatalf("thumbnail: got %dx%d, want %dx%d", cfg.Width, cfg.Height, th.Height*3/2, th.Height)
			}
			for _, h := range []string{"ETag", "Cache-Control"} {
				if resp.Header.Get(h) == "" {
					t.Fatalf("thumbnail: no %s header", h)
				}
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Fatalf("thumbnail: X-Content-Type-Options %q, want nosniff", got)
			}
		}
		if fmt.Sprint(heights) != "[200 400]" {
			t.Fatalf("thumbnail heights: got %v, want [200 400]", heights)
		}
		resp, b := getLink(t, list.Results[0].Links.Original)
		wantStatus(t, "original", resp, b, http.StatusOK)
		if !bytes.Equal(b, orig) {
			t.Fatalf("original: got %d bytes, want the %d uploaded bytes", len(b), len(orig))
		}

		var exp struct {
			URL       string `json:"url"`
			ExpiresAt string `json:"expires_at"`
		}
		resp, body = user.json("POST", "/api/images/"+img.ID+"/expiring-links", map[string]any{"expires_in": 300, "height": 200}, &exp)
		wantStatus(t, "expiring link", resp, body, http.StatusCreated)
		resp, b = getLink(t, exp.URL)
		wantStatus(t, "expiring link fetch", resp, b, http.StatusOK)
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") {
			t.Fatalf("expiring link: Cache-Control %q has no max-age", cc)
		}

		resp, body = user.json("DELETE", "/api/images/"+img.ID, nil, nil)
		wantStatus(t, "delete", resp, body, http.StatusNoContent)
		for _, link := range []string{list.Results[0].Links.Thumbnails[0].URL, list.Results[0].Links.Original, exp.URL} {
			resp, b := getLink(t, link)
			wantStatus(t, "deleted image link", resp, b, http.StatusNotFound)
		}
		if n := countFiles(t, filepath.Join(s.DataDir, "originals")); n != 0 {
			t.Fatalf("after delete: got %d files under originals, want 0", n)
		}
	})
}

// TestTierChangeReachesOrigin shows a downgrade revoking a size on the origin within 5 seconds,
// and an upgrade granting one, with no change to the links already handed out.
func TestTierChangeReachesOrigin(t *testing.T) {
	s := startServer(t, nil)
	admin := s.basic(t, testAdmin, testAdminPW)
	resp, body := admin.json("POST", "/api/admin/users", map[string]any{"username": "bob", "password": testUserPW, "tier": "Premium"}, nil)
	wantStatus(t, "create user", resp, body, http.StatusCreated)
	bob := s.basic(t, "bob", testUserPW)
	var img imageJSON
	resp, body = bob.upload("a.png", alphaPNG(t, 640, 480), &img)
	wantStatus(t, "upload", resp, body, http.StatusCreated)
	var h400 string
	for _, th := range img.Links.Thumbnails {
		if th.Height == 400 {
			h400 = th.URL
		}
	}
	if h400 == "" || img.Links.Original == "" {
		t.Fatalf("Premium image links: got %+v, want a 400 px thumbnail and the original", img.Links)
	}
	resp, b := getLink(t, h400)
	wantStatus(t, "400 px on Premium", resp, b, http.StatusOK)

	resp, body = admin.json("PATCH", "/api/admin/users/bob", map[string]any{"tier": "Basic"}, nil)
	wantStatus(t, "downgrade", resp, body, http.StatusOK)
	changed := time.Now()
	waitStatus(t, h400, http.StatusForbidden, 5*time.Second)
	waitStatus(t, img.Links.Original, http.StatusForbidden, 5*time.Second-time.Since(changed))

	resp, body = admin.json("PATCH", "/api/admin/users/bob", map[string]any{"tier": "Premium"}, nil)
	wantStatus(t, "upgrade", resp, body, http.StatusOK)
	waitStatus(t, h400, http.StatusOK, 5*time.Second)
}

func waitStatus(t *testing.T, link string, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	cli := apiClient(t)
	for {
		last := 0
		resp, err := cli.Get(link)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
			last = resp.StatusCode
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: got status %d (err %v), want %d within %v", link, last, err, want, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// TestShutdownDrains starts an upload, stops the server halfway through the body, and checks
// the upload still completes with 201, new connections are refused, and serve returns cleanly.
func TestShutdownDrains(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	env := map[string]string{
		"TIERPIX_ADDR": addr, "TIERPIX_DATA_DIR": t.TempDir(), "TIERPIX_PUBLIC_URL": "http://" + addr,
		"TIERPIX_ADMIN_USERNAME": testAdmin, "TIERPIX_ADMIN_PASSWORD": testAdminPW, "TIERPIX_LOG_LEVEL": "warn",
	}
	cfg, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, ln, newLogger(cfg, logs), logs) }()
	s := &server{URL: "http://" + addr, logs: logs}
	waitHealthy(t, s, done)

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("image", "slow.jpg")
	fw.Write(noiseJPEG(t, 800, 600)) // a few hundred KB: more than fasthttp reads ahead
	mw.Close()

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/images HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		addr, basicAuth(testAdmin, testAdminPW), mw.FormDataContentType(), body.Len())
	half := body.Len() / 2
	if _, err := conn.Write(body.Bytes()[:half]); err != nil {
		t.Fatal(err)
	}
	// Wait until the server is inside the handler, reading the body, before stopping it.
	waitFor(t, 10*time.Second, "upload temp file", func() bool { return countFiles(t, filepath.Join(env["TIERPIX_DATA_DIR"], "tmp")) > 0 })
	cancel()
	waitFor(t, 10*time.Second, "listener closed", func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return false
		}
		return true
	})
	if _, err := conn.Write(body.Bytes()[half:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response of the in-flight upload: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantStatus(t, "in-flight upload during shutdown", resp, b, http.StatusCreated)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: got %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not return within 20s of the drain")
	}
}

func waitHealthy(t *testing.T, s *server, done chan error) {
	t.Helper()
	health := apiClient(t)
	waitFor(t, 30*time.Second, "healthz", func() bool {
		select {
		case err := <-done:
			t.Fatalf("serve stopped early: %v\n%s", err, s.logs.String())
		default:
		}
		resp, err := health.Get(s.URL + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// newTestUser creates testUserName on tier through the admin API and returns a client that
// authenticates as them with a freshly minted token.
func newTestUser(t *testing.T, s *server, admin *client, tier string) *client {
	t.Helper()
	resp, body := admin.json("POST", "/api/admin/users", map[string]any{
		"username": testUserName, "password": testUserPW, "tier": tier,
	}, nil)
	wantStatus(t, "create user", resp, body, http.StatusCreated)
	var tok struct {
		Token string `json:"token"`
	}
	resp, body = admin.json("POST", "/api/admin/users/"+testUserName+"/tokens", nil, &tok)
	wantStatus(t, "mint token", resp, body, http.StatusCreated)
	return s.bearer(t, tok.Token)
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: condition not met within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func basicAuth(user, pw string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pw))
}

// TestExpectContinue shows a client that announces an oversized upload with Expect:
// 100-continue is refused before it sends the body, while one within the cap is invited.
func TestExpectContinue(t *testing.T) {
	s := startServer(t, map[string]string{"TIERPIX_MAX_UPLOAD_BYTES": "1000000"})
	addr := strings.TrimPrefix(s.URL, "http://")
	tests := []struct {
		name   string
		length int
		want   string
	}{
		{"over the cap", 50 << 20, "HTTP/1.1 417"},
		{"within the cap", 1000, "HTTP/1.1 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST /api/images HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n",
				addr, basicAuth(testAdmin, testAdminPW), tt.length)
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil {
				t.Fatalf("read status line: %v", err)
			}
			if !strings.HasPrefix(line, tt.want) {
				t.Fatalf("got status line %q, want %s", line, tt.want)
			}
		})
	}
}
