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
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"maps"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/tierpix/tierpix/api/openapi/openapitest"
	"github.com/tierpix/tierpix/store/storetest"
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
	s := &server{URL: "http://" + ln.Addr().String(), logs: &syncBuffer{}}
	full := map[string]string{
		"TIERPIX_ADDR":           ln.Addr().String(),
		"TIERPIX_PUBLIC_URL":     s.URL,
		"TIERPIX_ADMIN_USERNAME": testAdmin,
		"TIERPIX_ADMIN_PASSWORD": testAdminPW,
		"TIERPIX_LOG_LEVEL":      "warn",
	}
	for k, v := range env {
		full[k] = v
	}
	if full["TIERPIX_DATA_DIR"] == "" {
		full["TIERPIX_DATA_DIR"] = t.TempDir()
	}
	s.DataDir = full["TIERPIX_DATA_DIR"]
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
			Height  int    `json:"height"`
			URL     string `json:"url"`
			WebPURL string `json:"webp_url"`
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

// configuration is one way of keeping tierpix's data that the API's contract must hold in: a
// database and a place for the originals.
type configuration struct {
	env    map[string]string // its part of the environment
	bucket *storetest.Bucket // nil: the originals live in the data dir
}

// configurations runs fn as the subtests "sqlite", "postgres", "sqlite-s3" and "postgres-s3":
// each database with the originals in the data dir, then in a fresh bucket of one real S3
// server (versitygw on 127.0.0.1) started for the test. PostgreSQL runs in a fresh schema of
// TEST_DATABASE_URL. Under CI=true a missing PostgreSQL or versitygw is a failure.
func configurations(t *testing.T, fn func(t *testing.T, c configuration)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, configuration{env: map[string]string{}}) })
	t.Run("postgres", func(t *testing.T) {
		fn(t, configuration{env: map[string]string{"DATABASE_URL": postgresURL(t)}})
	})
	srv := storetest.StartS3(t)
	inBucket := func(t *testing.T, env map[string]string) configuration {
		c := configuration{env: env, bucket: storetest.NewStoreBucket(t, srv)}
		maps.Copy(c.env, srv.Env(c.bucket.Name))
		return c
	}
	t.Run("sqlite-s3", func(t *testing.T) { fn(t, inBucket(t, map[string]string{})) })
	t.Run("postgres-s3", func(t *testing.T) {
		fn(t, inBucket(t, map[string]string{"DATABASE_URL": postgresURL(t)}))
	})
}

// postgresURL returns a fresh schema of TEST_DATABASE_URL, or skips the test without one
// (fails it under CI=true).
func postgresURL(t *testing.T) string {
	t.Helper()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TEST_DATABASE_URL is not set; make test starts a throwaway PostgreSQL")
		}
		t.Skip("TEST_DATABASE_URL is not set; run make test for the PostgreSQL suite")
	}
	return pgSchemaURL(t, base)
}

// originals returns the sorted ids of the originals s keeps: the files under the data dir's
// originals/, or the objects in the bucket.
func (c configuration) originals(t *testing.T, s *server) []string {
	t.Helper()
	var ids []string
	if c.bucket != nil {
		ids = c.bucket.IDs(t)
	} else {
		ids = fileNames(t, filepath.Join(s.DataDir, "originals"))
	}
	slices.Sort(ids)
	return ids
}

// fileNames returns the names of the regular files under dir, at any depth.
func fileNames(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			names = append(names, d.Name())
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return names
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

// e2eMaxUpload is TestEndToEnd's TIERPIX_MAX_UPLOAD_BYTES: small, so an upload over it is
// cheap to make.
const e2eMaxUpload = 1 << 20

// TestEndToEnd walks the API's whole contract through the real server, in every
// configuration: an admin creates a user and a token; the user uploads a JPEG and a PNG, has
// a non-image, corrupt images and an oversized one refused without a trace, lists in pages
// both ways, opens every link (each thumbnail height, the original by GET and HEAD, expiring
// links, conditional GETs); a downgrade revokes what the tier no longer grants on links
// already handed out and an upgrade grants it back; deletes leave every link 404 and no
// original behind, on disk or in the bucket.
func TestEndToEnd(t *testing.T) {
	configurations(t, func(t *testing.T, c configuration) {
		env := maps.Clone(c.env)
		env["TIERPIX_MAX_UPLOAD_BYTES"] = strconv.Itoa(e2eMaxUpload)
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

		// holds checks that the user's images are exactly ids, by row, by original (file or
		// object) and in the node's cache of originals, and that no upload left a temp file.
		holds := func(t *testing.T, what string, ids ...string) {
			t.Helper()
			want := slices.Sorted(slices.Values(ids))
			var list struct {
				Results []imageJSON `json:"results"`
			}
			resp, body := user.json("GET", "/api/images?limit=100", nil, &list)
			wantStatus(t, what+": list", resp, body, http.StatusOK)
			var rows []string
			for _, r := range list.Results {
				rows = append(rows, r.ID)
			}
			slices.Sort(rows)
			if !slices.Equal(rows, want) {
				t.Fatalf("%s: got images %v, want %v", what, rows, want)
			}
			if got := c.originals(t, s); !slices.Equal(got, want) {
				t.Fatalf("%s: got originals %v, want %v", what, got, want)
			}
			if tmp := fileNames(t, filepath.Join(s.DataDir, "tmp")); len(tmp) > 0 {
				t.Fatalf("%s: got temp files %v, want none", what, tmp)
			}
			for _, id := range fileNames(t, filepath.Join(s.DataDir, "originals-cache")) {
				if !slices.Contains(want, id) {
					t.Fatalf("%s: the cache of originals holds %s, want only %v", what, id, want)
				}
			}
		}

		// Uploads: a JPEG and a PNG.
		orig := gradientJPEG(t, 900, 600)
		var img imageJSON
		resp, body = user.upload("photo.jpg", orig, &img)
		wantStatus(t, "upload", resp, body, http.StatusCreated)
		if img.Width != 900 || img.Height != 600 || img.ContentType != "image/jpeg" || img.SizeBytes != int64(len(orig)) {
			t.Fatalf("upload: got %+v, want a 900x600 image/jpeg of %d bytes", img, len(orig))
		}
		origPNG := alphaPNG(t, 640, 480)
		var pngImg imageJSON
		resp, body = user.upload("alpha.png", origPNG, &pngImg)
		wantStatus(t, "PNG upload", resp, body, http.StatusCreated)
		if pngImg.Width != 640 || pngImg.Height != 480 || pngImg.ContentType != "image/png" || pngImg.SizeBytes != int64(len(origPNG)) {
			t.Fatalf("PNG upload: got %+v, want a 640x480 image/png of %d bytes", pngImg, len(origPNG))
		}
		holds(t, "after two uploads", img.ID, pngImg.ID)

		// Refused uploads leave no row, no file and no object.
		corruptPNG := bytes.Clone(origPNG)
		for i := len(corruptPNG) / 3; i < len(corruptPNG)/3+64; i++ {
			corruptPNG[i] ^= 0x5a
		}
		oversized := append(bytes.Clone(orig), make([]byte, e2eMaxUpload+1-len(orig))...)
		for _, tt := range []struct {
			name, filename string
			data           []byte
			want           int
		}{
			{"not an image", "notes.txt", []byte("these are notes, not pixels\n"), http.StatusUnsupportedMediaType},
			{"truncated JPEG", "cut.jpg", orig[:len(orig)/2], http.StatusUnprocessableEntity},
			{"corrupt PNG", "bad.png", corruptPNG, http.StatusUnprocessableEntity},
			{"over TIERPIX_MAX_UPLOAD_BYTES", "big.jpg", oversized, http.StatusRequestEntityTooLarge},
		} {
			resp, body := user.upload(tt.filename, tt.data, nil)
			wantStatus(t, "upload "+tt.name, resp, body, tt.want)
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
				t.Fatalf("upload %s: Content-Type %q, want application/problem+json", tt.name, ct)
			}
			holds(t, "after the refused upload ("+tt.name+")", img.ID, pngImg.ID)
		}

		// Lists: five images in pages of two, newest first, followed by next and back by
		// previous.
		uploaded := []string{img.ID, pngImg.ID}
		for i := range 3 {
			var small imageJSON
			resp, body := user.upload(fmt.Sprintf("small-%d.jpg", i), gradientJPEG(t, 60+i, 40), &small)
			wantStatus(t, "small upload", resp, body, http.StatusCreated)
			uploaded = append(uploaded, small.ID)
		}
		newestFirst := slices.Clone(uploaded)
		slices.Reverse(newestFirst)
		type listPage struct {
			Results  []imageJSON `json:"results"`
			First    *string     `json:"first"`
			Previous *string     `json:"previous"`
			Next     *string     `json:"next"`
		}
		getPage := func(link string) listPage {
			t.Helper()
			var p listPage
			resp, body := user.json("GET", link, nil, &p)
			wantStatus(t, "list "+link, resp, body, http.StatusOK)
			return p
		}
		pageIDs := func(p listPage) (ids []string) {
			for _, r := range p.Results {
				ids = append(ids, r.ID)
			}
			return ids
		}
		listed := map[string]imageJSON{}
		var pages [][]string
		p := getPage("/api/images?limit=2")
		if p.Previous != nil {
			t.Fatalf("first page: previous %q, want null", *p.Previous)
		}
		for {
			pages = append(pages, pageIDs(p))
			for _, r := range p.Results {
				listed[r.ID] = r
			}
			if p.Next == nil {
				break
			}
			if len(pages) > len(uploaded) {
				t.Fatalf("list: more than %d pages", len(uploaded))
			}
			p = getPage(*p.Next)
			if p.Previous == nil {
				t.Fatalf("page %d: previous is null, want the page before", len(pages)+1)
			}
		}
		if got := fmt.Sprint(pages); got != fmt.Sprint([][]string{newestFirst[0:2], newestFirst[2:4], newestFirst[4:]}) {
			t.Fatalf("list by next: got pages %v, want %v in pages of 2", got, newestFirst)
		}
		for i := len(pages) - 2; i >= 0; i-- {
			p = getPage(*p.Previous)
			if got := pageIDs(p); !slices.Equal(got, pages[i]) {
				t.Fatalf("list by previous: got page %v, want %v", got, pages[i])
			}
		}
		if p.Previous != nil {
			t.Fatalf("back on the first page: previous %q, want null", *p.Previous)
		}
		links := listed[img.ID].Links

		// Every link kind.
		heights := []int{}
		for _, th := range links.Thumbnails {
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
			if got := resp.Header.Get("Vary"); got != "Accept" {
				t.Fatalf("thumbnail: Vary %q, want Accept", got)
			}
			jpegETag := resp.Header.Get("ETag")
			resp, b = fetchLink(t, http.MethodGet, th.URL, "If-None-Match", jpegETag)
			wantStatus(t, "conditional thumbnail", resp, b, http.StatusNotModified)
			if len(b) != 0 {
				t.Fatalf("conditional thumbnail: got %d bytes of body, want none", len(b))
			}
			// A browser's Accept gets WebP from the same link, with its own ETag; the
			// explicit link gets WebP whatever the Accept, without Vary; its suffix is signed.
			resp, b = fetchLink(t, http.MethodGet, th.URL, "Accept", "image/avif,image/webp,*/*")
			wantStatus(t, "thumbnail for a WebP client", resp, b, http.StatusOK)
			if ct := resp.Header.Get("Content-Type"); ct != "image/webp" || string(b[8:12]) != "WEBP" || resp.Header.Get("Vary") != "Accept" || resp.Header.Get("ETag") == jpegETag {
				t.Fatalf("thumbnail for a WebP client: got %q, Vary %q, ETag %q; want WebP, Vary: Accept, an ETag of its own", ct, resp.Header.Get("Vary"), resp.Header.Get("ETag"))
			}
			resp, b = fetchLink(t, http.MethodGet, th.WebPURL, "Accept", "image/jpeg")
			wantStatus(t, "webp_url", resp, b, http.StatusOK)
			if ct := resp.Header.Get("Content-Type"); ct != "image/webp" || resp.Header.Get("Vary") != "" {
				t.Fatalf("webp_url: got %q with Vary %q, want WebP without Vary", ct, resp.Header.Get("Vary"))
			}
			for _, tampered := range []string{strings.TrimSuffix(th.WebPURL, ".webp"), strings.TrimSuffix(th.WebPURL, ".webp") + ".png", th.URL + ".webp"} {
				resp, b = getLink(t, tampered)
				wantStatus(t, "tampered format suffix", resp, b, http.StatusForbidden)
			}
		}
		if fmt.Sprint(heights) != "[200 400]" {
			t.Fatalf("thumbnail heights: got %v, want [200 400]", heights)
		}
		resp, b := getLink(t, links.Original)
		wantStatus(t, "original", resp, b, http.StatusOK)
		if !bytes.Equal(b, orig) {
			t.Fatalf("original: got %d bytes, want the %d uploaded bytes", len(b), len(orig))
		}
		resp, b = fetchLink(t, http.MethodGet, links.Original, "If-None-Match", resp.Header.Get("ETag"))
		wantStatus(t, "conditional original", resp, b, http.StatusNotModified)
		resp, b = fetchLink(t, http.MethodHead, links.Original)
		wantStatus(t, "original HEAD", resp, b, http.StatusOK)
		if resp.ContentLength != int64(len(orig)) || len(b) != 0 || resp.Header.Get("Content-Type") != "image/jpeg" {
			t.Fatalf("original HEAD: got length %d, %d bytes of body, type %q; want length %d, no body, image/jpeg",
				resp.ContentLength, len(b), resp.Header.Get("Content-Type"), len(orig))
		}
		pngLinks := listed[pngImg.ID].Links
		for _, th := range pngLinks.Thumbnails {
			resp, b := getLink(t, th.URL)
			wantStatus(t, "PNG thumbnail", resp, b, http.StatusOK)
			if cfg, format, err := image.DecodeConfig(bytes.NewReader(b)); err != nil || format != "png" || cfg.Height != th.Height {
				t.Fatalf("PNG thumbnail %d: got %s %dx%d (err %v), want a png %d high", th.Height, format, cfg.Width, cfg.Height, err, th.Height)
			}
		}
		resp, b = getLink(t, pngLinks.Original)
		wantStatus(t, "PNG original", resp, b, http.StatusOK)
		if !bytes.Equal(b, origPNG) {
			t.Fatalf("PNG original: got %d bytes, want the %d uploaded bytes", len(b), len(origPNG))
		}

		var exp, expOrig struct {
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
		resp, body = user.json("POST", "/api/images/"+img.ID+"/expiring-links", map[string]any{"expires_in": 300}, &expOrig)
		wantStatus(t, "expiring link to the original", resp, body, http.StatusCreated)
		resp, b = getLink(t, expOrig.URL)
		wantStatus(t, "expiring link to the original fetch", resp, b, http.StatusOK)
		if !bytes.Equal(b, orig) {
			t.Fatalf("expiring link to the original: got %d bytes, want the %d uploaded bytes", len(b), len(orig))
		}

		// Tier changes reach the links already handed out: a downgrade to Basic (200 px
		// only, no original, no expiring links) refuses the rest, an upgrade grants it again.
		var h200, h400 string
		for _, th := range links.Thumbnails {
			switch th.Height {
			case 200:
				h200 = th.URL
			case 400:
				h400 = th.URL
			}
		}
		resp, body = admin.json("PATCH", "/api/admin/users/"+testUserName, map[string]any{"tier": "Basic"}, nil)
		wantStatus(t, "downgrade", resp, body, http.StatusOK)
		changed := time.Now()
		for _, link := range []string{h400, links.Original, exp.URL, expOrig.URL} {
			waitStatus(t, link, http.StatusForbidden, 5*time.Second-time.Since(changed))
		}
		resp, b = getLink(t, h200)
		wantStatus(t, "200 px after the downgrade", resp, b, http.StatusOK)
		var basic imageJSON
		resp, body = user.json("GET", "/api/images/"+img.ID, nil, &basic)
		wantStatus(t, "image after the downgrade", resp, body, http.StatusOK)
		if len(basic.Links.Thumbnails) != 1 || basic.Links.Thumbnails[0].Height != 200 || basic.Links.Original != "" {
			t.Fatalf("image after the downgrade: got links %+v, want one 200 px thumbnail and no original", basic.Links)
		}
		resp, body = admin.json("PATCH", "/api/admin/users/"+testUserName, map[string]any{"tier": "Enterprise"}, nil)
		wantStatus(t, "upgrade", resp, body, http.StatusOK)
		changed = time.Now()
		for _, link := range []string{h400, links.Original, exp.URL, expOrig.URL} {
			waitStatus(t, link, http.StatusOK, 5*time.Second-time.Since(changed))
		}

		// Deletes: every link of the image answers 404 and its original is gone.
		resp, body = user.json("DELETE", "/api/images/"+img.ID, nil, nil)
		wantStatus(t, "delete", resp, body, http.StatusNoContent)
		for _, link := range []string{h200, h400, links.Original, exp.URL, expOrig.URL} {
			resp, b := getLink(t, link)
			wantStatus(t, "deleted image link", resp, b, http.StatusNotFound)
		}
		resp, b = fetchLink(t, http.MethodHead, links.Original)
		wantStatus(t, "deleted image original HEAD", resp, b, http.StatusNotFound)
		resp, body = user.json("GET", "/api/images/"+img.ID, nil, nil)
		wantStatus(t, "deleted image", resp, body, http.StatusNotFound)
		resp, body = user.json("DELETE", "/api/images/"+img.ID, nil, nil)
		wantStatus(t, "delete again", resp, body, http.StatusNotFound)
		holds(t, "after one delete", uploaded[1:]...)
		for _, id := range uploaded[1:] {
			resp, body = user.json("DELETE", "/api/images/"+id, nil, nil)
			wantStatus(t, "delete", resp, body, http.StatusNoContent)
		}
		holds(t, "after every delete")
		if n := countFiles(t, filepath.Join(s.DataDir, "originals")); n != 0 {
			t.Fatalf("after delete: got %d files under originals, want 0", n)
		}
	})
}

// fetchLink sends method to an image link without credentials, with the header pairs given
// (name, value, ...).
func fetchLink(t *testing.T, method, link string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, link, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := apiClient(t).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, link, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
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
	return s.bearer(t, newTestUserToken(t, admin, tier))
}

// newTestUserToken creates testUserName on tier through the admin API and mints them a token.
func newTestUserToken(t *testing.T, admin *client, tier string) string {
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
	return tok.Token
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
