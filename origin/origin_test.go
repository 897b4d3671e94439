package origin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/imaging"
	"github.com/tierpix/tierpix/imaging/imagingtest"
	"github.com/tierpix/tierpix/signing"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
	"github.com/valyala/fasthttp"
)

// testNow is the fixed clock of tests that do not care about time; links expire relative to
// it. It is close to the real time so that nothing about it looks odd in headers.
var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// env is one origin under test: a real SQLite store, a real signer, a real fasthttp server.
type env struct {
	st     *store.Store
	signer *signing.Signer
	origin *Origin
	base   string // http://127.0.0.1:port
	owner  tierpix.User
	tier   tierpix.Tier
}

func TestMain(m *testing.M) { imagingtest.Main(m) }

// newEnv starts an origin whose owner is on a fresh tier t. cfg.CacheDir defaults to a temp
// dir and cfg.Now to testNow.
func newEnv(t testing.TB, tier tierpix.Tier, cfg Config) *env {
	t.Helper()
	return newEnvOn(t, storetest.SQLite(t), tier, cfg)
}

// newEnvOn is newEnv over a given store, for tests that run on both dialects.
func newEnvOn(t testing.TB, st *store.Store, tier tierpix.Tier, cfg Config) *env {
	t.Helper()
	return newEnvServing(t, st, st, tier, cfg)
}

// newEnvServing is newEnvOn with an origin that serves from served, which may wrap st (to make
// some of its calls fail); the test sets things up through st.
func newEnvServing(t testing.TB, st *store.Store, served Store, tier tierpix.Tier, cfg Config) *env {
	t.Helper()
	signer, err := signing.New([][]byte{[]byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatalf("signing.New: %v", err)
	}
	ctx := context.Background()
	if err := st.CreateTier(ctx, &tier); err != nil {
		t.Fatalf("CreateTier: %v", err)
	}
	owner := tierpix.User{Username: "owner", PasswordHash: "x", TierName: tier.Name}
	if err := st.CreateUser(ctx, &owner); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = t.TempDir()
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	e := &env{st: st, signer: signer, owner: owner, tier: tier}
	e.origin, e.base = startOrigin(t, cfg, served, signer)
	return e
}

// startOrigin serves a new Origin on 127.0.0.1:0 until the test ends.
func startOrigin(t testing.TB, cfg Config, st Store, signer *signing.Signer) (*Origin, string) {
	t.Helper()
	o, err := New(cfg, st, signer, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r := router.New()
	o.Register(r)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := &fasthttp.Server{Handler: r.Handler}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		o.Close()
	})
	return o, "http://" + ln.Addr().String()
}

// addImage uploads a generated w x h image in format through the store, as the API would.
func (e *env) addImage(t testing.TB, format string, w, h int) (tierpix.Image, []byte) {
	t.Helper()
	body := encodeImage(t, format, w, h)
	f, err := os.CreateTemp(e.st.TempDir(), "upload-*")
	if err != nil {
		t.Fatalf("create upload: %v", err)
	}
	if _, err := f.Write(body); err != nil {
		t.Fatalf("write upload: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close upload: %v", err)
	}
	img := tierpix.Image{
		OwnerID:   e.owner.ID,
		Name:      "test." + format,
		Format:    format,
		Width:     w,
		Height:    h,
		SizeBytes: int64(len(body)),
	}
	if err := e.st.CreateImage(context.Background(), &img, f.Name()); err != nil {
		t.Fatalf("CreateImage: %v", err)
	}
	return img, body
}

// encodeImage draws a gradient with a translucent corner, so PNG alpha survives or fails
// visibly.
func encodeImage(t testing.TB, format string, w, h int) []byte {
	t.Helper()
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			a := uint8(255)
			if x < w/4 && y < h/4 {
				a = 128
			}
			m.SetNRGBA(x, y, color.NRGBA{R: uint8(x * 255 / w), G: uint8(y * 255 / h), B: 90, A: a})
		}
	}
	var buf bytes.Buffer
	var err error
	switch format {
	case tierpix.FormatPNG:
		err = png.Encode(&buf, m)
	case tierpix.FormatJPEG:
		err = jpeg.Encode(&buf, m, &jpeg.Options{Quality: 90})
	default:
		t.Fatalf("unknown format %q", format)
	}
	if err != nil {
		t.Fatalf("encode %s: %v", format, err)
	}
	return buf.Bytes()
}

// tamper changes the first character of a path's signature to another base64url character.
func tamper(path string) string {
	b := []byte(path)
	const i = len("/i/")
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func (e *env) url(l signing.Link) string { return e.base + e.signer.Path(l) }

type response struct {
	status int
	header http.Header
	body   []byte
}

// fetch sends one request with the given header lines ("Name: value"); a name given twice
// is sent on two lines. It does not fail the test itself, so goroutines may call it.
func fetch(method, url string, header ...string) (response, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return response{}, err
	}
	for _, h := range header {
		name, value, _ := strings.Cut(h, ":")
		req.Header.Add(name, strings.TrimSpace(value))
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, fmt.Errorf("read body: %w", err)
	}
	return response{status: res.StatusCode, header: res.Header, body: body}, nil
}

func do(t *testing.T, method, url string, header ...string) response {
	t.Helper()
	res, err := fetch(method, url, header...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// getAsync sends a GET from a goroutine; the result arrives on the returned channel, and a
// transport error arrives as status 0 with the error text as body.
func getAsync(url string) <-chan response {
	c := make(chan response, 1)
	go func() {
		res, err := fetch(http.MethodGet, url)
		if err != nil {
			res = response{body: []byte(err.Error())}
		}
		c <- res
	}()
	return c
}

func get(t *testing.T, url string, header ...string) response {
	t.Helper()
	return do(t, http.MethodGet, url, header...)
}

// wantProblem checks an error response: status, problem+json, not cacheable, and a detail
// containing detail.
func wantProblem(t *testing.T, res response, status int, detail string) {
	t.Helper()
	if res.status != status {
		t.Fatalf("status: got %d, want %d (body %s)", res.status, status, res.body)
	}
	if got := res.header.Get("Content-Type"); got != "application/problem+json" {
		t.Errorf("Content-Type: got %q, want application/problem+json", got)
	}
	if got := res.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control: got %q, want no-store", got)
	}
	if got := res.header.Get("ETag"); got != "" {
		t.Errorf("ETag: got %q, want none on an error", got)
	}
	var p struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(res.body, &p); err != nil {
		t.Fatalf("decode problem %s: %v", res.body, err)
	}
	if p.Status != status {
		t.Errorf("problem status: got %d, want %d", p.Status, status)
	}
	if !strings.Contains(p.Detail, detail) {
		t.Errorf("problem detail: got %q, want it to contain %q", p.Detail, detail)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// requestStats returns o's counters without those that background work moves on its own
// schedule: the DiskBytes gauge (tests of the disk budget check it apart), the change epoch's
// reads, and metadata lookups, which the first read of the epoch makes again for what was
// looked up before it (epoch_test.go checks those).
func requestStats(o *Origin) Stats {
	s := o.Stats()
	s.DiskBytes = 0
	s.MetadataLookups, s.EpochReads, s.EpochFailures = 0, 0, 0
	return s
}

var fullTier = tierpix.Tier{Name: "Full", ThumbnailHeights: []int{100, 200, 400, 800}, OriginalLink: true, ExpiringLinks: true}

func TestThumbnail(t *testing.T) {
	e := newEnv(t, fullTier, Config{})
	tests := []struct {
		name          string
		format        string
		w, h          int
		height        int
		wantW, wantH  int
		wantType      string
		wantAlphaKept bool
	}{
		{name: "jpeg downscaled", format: tierpix.FormatJPEG, w: 600, h: 400, height: 200, wantW: 300, wantH: 200, wantType: "image/jpeg"},
		{name: "png downscaled keeps alpha", format: tierpix.FormatPNG, w: 600, h: 400, height: 100, wantW: 150, wantH: 100, wantType: "image/png", wantAlphaKept: true},
		{name: "portrait", format: tierpix.FormatJPEG, w: 300, h: 900, height: 400, wantW: 133, wantH: 400, wantType: "image/jpeg"},
		{name: "smaller original not upscaled", format: tierpix.FormatPNG, w: 120, h: 90, height: 400, wantW: 120, wantH: 90, wantType: "image/png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, _ := e.addImage(t, tt.format, tt.w, tt.h)
			res := get(t, e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(tt.height)}))
			if res.status != http.StatusOK {
				t.Fatalf("status: got %d, want 200 (body %s)", res.status, res.body)
			}
			if got := res.header.Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type: got %q, want %q", got, tt.wantType)
			}
			if got, want := res.header.Get("Content-Length"), fmt.Sprint(len(res.body)); got != want {
				t.Errorf("Content-Length: got %s, want %s", got, want)
			}
			m, format, err := image.Decode(bytes.NewReader(res.body))
			if err != nil {
				t.Fatalf("decode thumbnail: %v", err)
			}
			if format != tt.format {
				t.Errorf("format: got %s, want %s", format, tt.format)
			}
			if b := m.Bounds(); b.Dx() != tt.wantW || b.Dy() != tt.wantH {
				t.Errorf("size: got %dx%d, want %dx%d", b.Dx(), b.Dy(), tt.wantW, tt.wantH)
			}
			if tt.wantAlphaKept {
				if _, _, _, a := m.At(0, 0).RGBA(); a == 0xffff {
					t.Errorf("alpha at the translucent corner: got opaque, want translucent")
				}
			}
			wantHeaders := map[string]string{
				"Cache-Control":          "public, max-age=3600",
				"X-Content-Type-Options": "nosniff",
				"Last-Modified":          img.CreatedAt.UTC().Format(http.TimeFormat),
				"Expires":                "",
			}
			for k, want := range wantHeaders {
				if got := res.header.Get(k); got != want {
					t.Errorf("%s: got %q, want %q", k, got, want)
				}
			}
			if etag := res.header.Get("ETag"); !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 3 {
				t.Errorf("ETag: got %q, want a strong quoted tag", etag)
			}
		})
	}
}

func TestOriginal(t *testing.T) {
	e := newEnv(t, fullTier, Config{})
	tests := []struct {
		name   string
		format string
	}{
		{name: "jpeg", format: tierpix.FormatJPEG},
		{name: "png", format: tierpix.FormatPNG},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, upload := e.addImage(t, tt.format, 320, 240)
			res := get(t, e.url(signing.Link{ImageID: img.ID, Variant: signing.Original}))
			if res.status != http.StatusOK {
				t.Fatalf("status: got %d, want 200 (body %s)", res.status, res.body)
			}
			if !bytes.Equal(res.body, upload) {
				t.Errorf("body: got %d bytes differing from the %d uploaded, want them identical", len(res.body), len(upload))
			}
			if got, want := res.header.Get("Content-Type"), tierpix.ContentTypeOf(tt.format); got != want {
				t.Errorf("Content-Type: got %q, want %q", got, want)
			}
			if got, want := res.header.Get("Content-Length"), fmt.Sprint(len(upload)); got != want {
				t.Errorf("Content-Length: got %s, want %s", got, want)
			}
			if got, want := res.header.Get("ETag"), `"`+img.ID+`-o"`; got != want {
				t.Errorf("ETag: got %s, want %s", got, want)
			}
			if got := res.header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options: got %q, want nosniff", got)
			}
		})
	}
}

func TestHead(t *testing.T) {
	e := newEnv(t, fullTier, Config{})
	img, _ := e.addImage(t, tierpix.FormatJPEG, 640, 480)
	tests := []struct {
		name    string
		variant signing.Variant
	}{
		{name: "thumbnail", variant: signing.Thumbnail(200)},
		{name: "original", variant: signing.Original},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := e.url(signing.Link{ImageID: img.ID, Variant: tt.variant})
			head := do(t, http.MethodHead, url)
			full := get(t, url)
			if head.status != http.StatusOK {
				t.Fatalf("HEAD status: got %d, want 200", head.status)
			}
			if len(head.body) != 0 {
				t.Errorf("HEAD body: got %d bytes, want none", len(head.body))
			}
			for _, k := range []string{"Content-Type", "Content-Length", "ETag", "Cache-Control", "Last-Modified", "X-Content-Type-Options"} {
				if got, want := head.header.Get(k), full.header.Get(k); got != want || want == "" {
					t.Errorf("HEAD %s: got %q, want %q as GET (non-empty)", k, got, want)
				}
			}
			if got, want := head.header.Get("Content-Length"), fmt.Sprint(len(full.body)); got != want {
				t.Errorf("HEAD Content-Length: got %s, want %s", got, want)
			}
		})
	}
}

func TestRejections(t *testing.T) {
	limited := tierpix.Tier{Name: "Limited", ThumbnailHeights: []int{200}}
	e := newEnv(t, limited, Config{})
	img, _ := e.addImage(t, tierpix.FormatJPEG, 640, 480)
	permanent := e.signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200)})

	tests := []struct {
		name   string
		path   string
		status int
		detail string
	}{
		{name: "malformed", path: "/i/not-a-link", status: 404, detail: "No such image."},
		{name: "unknown image", path: e.signer.Path(signing.Link{ImageID: "zzzzzzzzzzzzzzzzzzzzzzzz", Variant: signing.Thumbnail(200)}), status: 404, detail: "No such image."},
		{name: "tampered signature", path: tamper(permanent), status: 403, detail: "signature"},
		{name: "tampered variant", path: strings.Replace(permanent, "/h200", "/h400", 1), status: 403, detail: "signature"},
		{name: "expired", path: e.signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200), Expires: testNow.Unix() - 1}), status: 410, detail: "expired"},
		{name: "height not in tier", path: e.signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(400)}), status: 403, detail: "The owner's tier does not include 400 px thumbnails."},
		{name: "original not in tier", path: e.signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Original}), status: 403, detail: "does not include the original"},
		{name: "expiring link not in tier", path: e.signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200), Expires: testNow.Unix() + 600}), status: 403, detail: "does not include expiring links"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantProblem(t, get(t, e.base+tt.path), tt.status, tt.detail)
		})
	}
	t.Run("permanent link still works", func(t *testing.T) {
		if res := get(t, e.base+permanent); res.status != http.StatusOK {
			t.Errorf("status: got %d, want 200", res.status)
		}
	})
}

func TestDeletedImage(t *testing.T) {
	storetest.Each(t, testDeletedImage)
}

func testDeletedImage(t *testing.T, st *store.Store) {
	e := newEnvOn(t, st, fullTier, Config{})
	img, _ := e.addImage(t, tierpix.FormatPNG, 300, 300)
	thumb := e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200)})
	orig := e.url(signing.Link{ImageID: img.ID, Variant: signing.Original})
	for _, u := range []string{thumb, orig} {
		if res := get(t, u); res.status != http.StatusOK {
			t.Fatalf("before delete: got %d, want 200", res.status)
		}
	}
	dir, _ := e.origin.imageDir(img.ID)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("disk cache before delete: got %v, want the image dir", err)
	}

	if err := e.st.DeleteImage(context.Background(), e.owner.ID, img.ID); err != nil {
		t.Fatalf("DeleteImage: %v", err)
	}
	e.origin.Purge(img.ID)

	for _, u := range []string{thumb, orig} {
		wantProblem(t, get(t, u), http.StatusNotFound, "No such image.")
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("disk cache after purge: got %v, want not exist", err)
	}
	if e.origin.memGet(img.ID, 200) != nil {
		t.Errorf("memory cache after purge: got the variant, want none")
	}
}

func TestTierChangeApplies(t *testing.T) {
	storetest.Each(t, testTierChangeApplies)
}

func testTierChangeApplies(t *testing.T, st *store.Store) {
	tier := tierpix.Tier{Name: "Changing", ThumbnailHeights: []int{200}}
	e := newEnvOn(t, st, tier, Config{MetadataTTL: 50 * time.Millisecond})
	img, _ := e.addImage(t, tierpix.FormatJPEG, 800, 600)
	u := e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(400)})
	wantProblem(t, get(t, u), http.StatusForbidden, "400 px")

	steps := []struct {
		name    string
		heights []int
		status  int
	}{
		{name: "height added", heights: []int{200, 400}, status: http.StatusOK},
		{name: "height removed", heights: []int{200}, status: http.StatusForbidden},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			tier := tierpix.Tier{Name: tier.Name, ThumbnailHeights: s.heights}
			if err := storetest.UpdateTier(context.Background(), e.st, &tier); err != nil {
				t.Fatalf("UpdateTier: %v", err)
			}
			var last int
			waitFor(t, fmt.Sprintf("status %d", s.status), func() bool {
				last = get(t, u).status
				return last == s.status
			})
		})
	}
}

func TestMetadataIsCached(t *testing.T) {
	tier := tierpix.Tier{Name: "Cached", ThumbnailHeights: []int{200}}
	e := newEnv(t, tier, Config{MetadataTTL: 5 * time.Second})
	waitForEpochRead(t, e.origin)
	img, _ := e.addImage(t, tierpix.FormatJPEG, 400, 400)
	u := e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200)})
	if res := get(t, u); res.status != http.StatusOK {
		t.Fatalf("first: got %d, want 200", res.status)
	}
	lookups, queries := e.origin.Stats().MetadataLookups, e.st.Queries()
	for i := range 3 {
		if res := get(t, u); res.status != http.StatusOK {
			t.Fatalf("request %d: got %d, want 200", i+2, res.status)
		}
	}
	if got := e.origin.Stats().MetadataLookups - lookups; got != 0 {
		t.Errorf("lookups for 3 more requests: got %d, want 0", got)
	}
	if got := e.st.Queries() - queries; got != 0 {
		t.Errorf("store queries for 3 more requests: got %d, want 0", got)
	}

	// A tier change, and the entry marked stale by hand as Purge would, whether or not a read
	// of the epoch has come meanwhile: links that remember it must look the image up again.
	tier.ThumbnailHeights = []int{100}
	if err := storetest.UpdateTier(context.Background(), e.st, &tier); err != nil {
		t.Fatalf("UpdateTier: %v", err)
	}
	e.origin.metaMu.RLock()
	m, ok := e.origin.meta[img.ID]
	e.origin.metaMu.RUnlock()
	if !ok {
		t.Fatal("cached entry: got none, want the image's")
	}
	m.stale.Store(true)
	wantProblem(t, get(t, u), http.StatusForbidden, "200 px")
}

func TestConditional(t *testing.T) {
	e := newEnv(t, tierpix.Tier{Name: "Cond", ThumbnailHeights: []int{200}, OriginalLink: true}, Config{})
	img, _ := e.addImage(t, tierpix.FormatJPEG, 400, 300)
	thumb := e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200)})
	first := get(t, thumb)
	if first.status != http.StatusOK {
		t.Fatalf("first: got %d, want 200", first.status)
	}
	etag := first.header.Get("ETag")
	tests := []struct {
		name   string
		url    string
		inm    string
		more   []string // further If-None-Match lines
		status int
	}{
		{name: "exact", url: thumb, inm: etag, status: 304},
		// A list may come over several header lines (RFC 9110 5.3); each counts.
		{name: "on a second line", url: thumb, inm: `"other"`, more: []string{etag}, status: 304},
		{name: "on no line", url: thumb, inm: `"other"`, more: []string{`"another"`}, status: 200},
		{name: "in a list", url: thumb, inm: `"other", ` + etag, status: 304},
		{name: "weak", url: thumb, inm: "W/" + etag, status: 304},
		{name: "star", url: thumb, inm: "*", status: 304},
		{name: "other tag", url: thumb, inm: `"other"`, status: 200},
		{name: "original's tag", url: e.url(signing.Link{ImageID: img.ID, Variant: signing.Original}), inm: `"` + img.ID + `-o"`, status: 304},
		{name: "thumbnail tag on original", url: e.url(signing.Link{ImageID: img.ID, Variant: signing.Original}), inm: etag, status: 200},
		// The tier does not include 400 px: authorization comes before the 304.
		{name: "revoked link", url: e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(400)}), inm: "*", status: 403},
		{name: "bad signature", url: e.base + tamper(e.signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200)})), inm: "*", status: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := []string{"If-None-Match: " + tt.inm}
			for _, v := range tt.more {
				header = append(header, "If-None-Match: "+v)
			}
			res := get(t, tt.url, header...)
			if res.status != tt.status {
				t.Fatalf("status: got %d, want %d", res.status, tt.status)
			}
			if tt.status != http.StatusNotModified {
				return
			}
			if len(res.body) != 0 {
				t.Errorf("304 body: got %d bytes, want none", len(res.body))
			}
			if res.header.Get("ETag") == "" || res.header.Get("Cache-Control") != "public, max-age=3600" {
				t.Errorf("304 headers: got ETag %q Cache-Control %q, want both set", res.header.Get("ETag"), res.header.Get("Cache-Control"))
			}
		})
	}
}

func TestExpiringLinkCaching(t *testing.T) {
	e := newEnv(t, fullTier, Config{MaxAge: 30 * time.Minute})
	img, _ := e.addImage(t, tierpix.FormatPNG, 200, 200)
	tests := []struct {
		name       string
		expiresIn  time.Duration
		wantMaxAge string
	}{
		{name: "shorter than max-age", expiresIn: 600 * time.Second, wantMaxAge: "public, max-age=600"},
		{name: "longer than max-age", expiresIn: 5 * time.Hour, wantMaxAge: "public, max-age=1800"},
		{name: "one second left", expiresIn: time.Second, wantMaxAge: "public, max-age=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp := testNow.Add(tt.expiresIn)
			res := get(t, e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(100), Expires: exp.Unix()}))
			if res.status != http.StatusOK {
				t.Fatalf("status: got %d, want 200 (body %s)", res.status, res.body)
			}
			if got := res.header.Get("Cache-Control"); got != tt.wantMaxAge {
				t.Errorf("Cache-Control: got %q, want %q", got, tt.wantMaxAge)
			}
			if got, want := res.header.Get("Expires"), exp.Format(http.TimeFormat); got != want {
				t.Errorf("Expires: got %q, want %q", got, want)
			}
		})
	}
}

func TestCacheLayers(t *testing.T) {
	cacheDir := t.TempDir()
	e := newEnv(t, fullTier, Config{CacheDir: cacheDir})
	img, _ := e.addImage(t, tierpix.FormatJPEG, 600, 300)
	u := e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200)})

	first := get(t, u)
	second := get(t, u)
	if first.status != 200 || second.status != 200 {
		t.Fatalf("status: got %d and %d, want 200 and 200", first.status, second.status)
	}
	if !bytes.Equal(first.body, second.body) || first.header.Get("ETag") != second.header.Get("ETag") {
		t.Errorf("second response: got a different body or ETag, want the same")
	}
	if got, want := requestStats(e.origin), (Stats{Renders: 1, MemoryHits: 1}); got != want {
		t.Errorf("stats: got %+v, want %+v", got, want)
	}
	disk, _ := e.origin.diskPath(img.ID, 200)
	if onDisk, err := os.ReadFile(disk); err != nil || !bytes.Equal(onDisk, first.body) {
		t.Errorf("disk cache %s: got %d bytes (err %v), want the served body", disk, len(onDisk), err)
	}
	if ents, err := os.ReadDir(filepath.Join(cacheDir, ".tmp")); err != nil || len(ents) != 0 {
		t.Errorf("temp dir: got %d entries (err %v), want none left", len(ents), err)
	}

	// A second origin over the same directory, as after a restart.
	o2, base2 := startOrigin(t, Config{CacheDir: cacheDir, Now: func() time.Time { return testNow }}, e.st, e.signer)
	u2 := base2 + e.signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200)})
	for range 2 {
		res := get(t, u2)
		if res.status != 200 || !bytes.Equal(res.body, first.body) {
			t.Fatalf("restarted origin: got %d with %d bytes, want 200 with the cached body", res.status, len(res.body))
		}
	}
	if got, want := requestStats(o2), (Stats{DiskHits: 1, MemoryHits: 1}); got != want {
		t.Errorf("restarted origin stats: got %+v, want %+v", got, want)
	}
}

// TestDamagedDiskFileIsRenderedAnew checks what a crash can leave of an unsynced cache file
// (nothing, zeros, the first part) is rendered again rather than served.
func TestDamagedDiskFileIsRenderedAnew(t *testing.T) {
	tests := []struct {
		name   string
		format string
		damage func(whole []byte) []byte
	}{
		{name: "empty", format: tierpix.FormatJPEG, damage: func([]byte) []byte { return nil }},
		{name: "zero-filled", format: tierpix.FormatJPEG, damage: func(b []byte) []byte { return make([]byte, len(b)) }},
		{name: "cut short", format: tierpix.FormatJPEG, damage: func(b []byte) []byte { return b[:len(b)/2] }},
		{name: "png cut short", format: tierpix.FormatPNG, damage: func(b []byte) []byte { return b[:len(b)-4] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, fullTier, Config{})
			img, _ := e.addImage(t, tt.format, 300, 300)
			whole, err := imaging.Thumbnail(e.st.OriginalPath(img.ID), 100, imaging.Encoding{})
			if err != nil {
				t.Fatal(err)
			}
			disk, _ := e.origin.diskPath(img.ID, 100)
			if err := os.MkdirAll(filepath.Dir(disk), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(disk, tt.damage(whole.Body), 0o644); err != nil {
				t.Fatal(err)
			}
			res := get(t, e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(100)}))
			if res.status != 200 || !bytes.Equal(res.body, whole.Body) {
				t.Fatalf("response: got %d with %d bytes, want 200 with the %d bytes of a render", res.status, len(res.body), len(whole.Body))
			}
			if got, want := requestStats(e.origin), (Stats{Renders: 1}); got != want {
				t.Errorf("stats: got %+v, want %+v", got, want)
			}
			if onDisk, err := os.ReadFile(disk); err != nil || !bytes.Equal(onDisk, res.body) {
				t.Errorf("disk cache: got %d bytes (err %v), want the rendered body", len(onDisk), err)
			}
		})
	}
}

// TestDiskCacheOfOtherRenderVersion checks that a disk cache file written by a release that
// rendered differently is not served under this release's ETag: nodes on both sides of an
// upgrade share the directory, and the ETag promises the bytes of this render version.
func TestDiskCacheOfOtherRenderVersion(t *testing.T) {
	cacheDir := t.TempDir()
	e := newEnv(t, fullTier, Config{CacheDir: cacheDir})
	img, _ := e.addImage(t, tierpix.FormatJPEG, 300, 300)
	old := []byte("rendered by an older release")
	dir, _ := e.origin.imageDir(img.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// "h100" is the name releases before render version 2 gave the file.
	for _, name := range []string{"h100", "h100-v1"} {
		if err := os.WriteFile(filepath.Join(dir, name), old, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res := get(t, e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(100)}))
	if res.status != 200 || bytes.Equal(res.body, old) {
		t.Fatalf("response: got %d with %q, want 200 with a fresh render", res.status, res.body[:min(len(res.body), 40)])
	}
	if got, want := res.header.Get("ETag"), `"`+img.ID+`-h100-v`+renderVersion+`"`; got != want {
		t.Errorf("ETag: got %s, want %s", got, want)
	}
	if got, want := requestStats(e.origin), (Stats{Renders: 1}); got != want {
		t.Errorf("stats: got %+v, want %+v", got, want)
	}
}

func TestEffectiveHeightSharesRender(t *testing.T) {
	e := newEnv(t, fullTier, Config{})
	img, _ := e.addImage(t, tierpix.FormatPNG, 400, 300)
	var bodies [][]byte
	var etags []string
	for _, h := range []int{400, 800} {
		res := get(t, e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(h)}))
		if res.status != 200 {
			t.Fatalf("h%d: got %d, want 200", h, res.status)
		}
		bodies = append(bodies, res.body)
		etags = append(etags, res.header.Get("ETag"))
	}
	if !bytes.Equal(bodies[0], bodies[1]) || etags[0] != etags[1] {
		t.Errorf("h400 and h800 of a 300 px image: got different bodies or ETags %v, want one variant", etags)
	}
	if got := e.origin.Stats().Renders; got != 1 {
		t.Errorf("renders: got %d, want 1", got)
	}
}

// holdRenders returns hooks that make every render wait in its worker slot until release is
// called (or the test ends). entered receives the variant key of each render that started.
func holdRenders(t *testing.T) (hooks Hooks, entered <-chan string, release func()) {
	t.Helper()
	in := make(chan string, 64)
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	hook := func(key string) {
		in <- key
		<-gate
	}
	t.Cleanup(release)
	return Hooks{BeforeRender: hook}, in, release
}

func TestConcurrentRequestsShareOneRender(t *testing.T) {
	hooks, entered, release := holdRenders(t)
	e := newEnv(t, fullTier, Config{Hooks: hooks})
	img, _ := e.addImage(t, tierpix.FormatJPEG, 1200, 800)
	u := e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(400)})

	const n = 8
	var results []<-chan response
	for range n {
		results = append(results, getAsync(u))
	}
	<-entered
	key := variantKey(img.ID, 400)
	waitFor(t, "all requests to wait on the render", func() bool { return e.origin.variants.waiting(key) == n-1 })
	release()

	var first []byte
	for _, c := range results {
		res := <-c
		if res.status != 200 {
			t.Fatalf("status: got %d, want 200 (%s)", res.status, res.body)
		}
		if first == nil {
			first = res.body
		} else if !bytes.Equal(res.body, first) {
			t.Errorf("bodies: got different bodies, want one shared render")
		}
	}
	if got := e.origin.Stats().Renders; got != 1 {
		t.Errorf("renders: got %d, want 1", got)
	}
}

func TestQueueFull(t *testing.T) {
	hooks, entered, release := holdRenders(t)
	e := newEnv(t, fullTier, Config{RenderWorkers: 1, RenderQueue: 1, Hooks: hooks})
	img, _ := e.addImage(t, tierpix.FormatJPEG, 1200, 800)
	link := func(h int) string {
		return e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(h)})
	}

	held := []<-chan response{getAsync(link(100))}
	<-entered // the one worker is busy
	held = append(held, getAsync(link(200)))
	waitFor(t, "a render waiting in the queue", func() bool { return e.origin.pending.Load() == 2 })

	res := get(t, link(400))
	wantProblem(t, res, http.StatusServiceUnavailable, "retry")
	if got := res.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After: got %q, want 1", got)
	}
	if got := e.origin.Stats().Rejected; got != 1 {
		t.Errorf("rejected: got %d, want 1", got)
	}

	release()
	for _, c := range held {
		if res := <-c; res.status != 200 {
			t.Errorf("held request: got %d, want 200 (%s)", res.status, res.body)
		}
	}
	if res := get(t, link(400)); res.status != 200 {
		t.Errorf("after the queue drained: got %d, want 200", res.status)
	}
}

func TestPurgeDuringRender(t *testing.T) {
	hooks, entered, release := holdRenders(t)
	e := newEnv(t, fullTier, Config{Hooks: hooks})
	img, _ := e.addImage(t, tierpix.FormatPNG, 500, 500)
	u := e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200)})

	result := getAsync(u)
	<-entered
	e.origin.Purge(img.ID)
	release()
	if res := <-result; res.status != 200 {
		t.Fatalf("in-flight request: got %d, want 200 (%s)", res.status, res.body)
	}

	if e.origin.memGet(img.ID, 200) != nil {
		t.Errorf("memory cache: got the purged variant, want none")
	}
	dir, _ := e.origin.imageDir(img.ID)
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("disk cache: got %v, want not exist", err)
	}
	if res := get(t, u); res.status != 200 {
		t.Fatalf("after purge: got %d, want 200", res.status)
	}
	if got := e.origin.Stats().Renders; got != 2 {
		t.Errorf("renders: got %d, want 2 (the purged render was not kept)", got)
	}
}

func TestOriginalStreamIsClosed(t *testing.T) {
	// fasthttp closes a body stream that is an io.Closer once it is written; requests for the
	// original must not leave the file open. GC is off so that no finalizer closes a leaked
	// file behind our back.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	e := newEnv(t, fullTier, Config{})
	img, _ := e.addImage(t, tierpix.FormatJPEG, 64, 64)
	u := e.url(signing.Link{ImageID: img.ID, Variant: signing.Original})
	for range 20 {
		if res := get(t, u); res.status != 200 {
			t.Fatalf("status: got %d, want 200", res.status)
		}
	}
	path := e.st.OriginalPath(img.ID)
	waitFor(t, "the original to be closed", func() bool { return openCount(t, path) == 0 })
}

// openCount returns how many of the process's file descriptors refer to path.
func openCount(t *testing.T, path string) int {
	t.Helper()
	dir := "/proc/self/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Skipf("no %s: %v", dir, err)
	}
	n := 0
	for _, d := range ents {
		if target, err := os.Readlink(filepath.Join(dir, d.Name())); err == nil && target == path {
			n++
		}
	}
	return n
}

func TestETagMatches(t *testing.T) {
	tests := []struct {
		name   string
		header string
		etag   string
		want   bool
	}{
		{name: "exact", header: `"a"`, etag: `"a"`, want: true},
		{name: "list", header: `"x", "a"`, etag: `"a"`, want: true},
		{name: "list without spaces", header: `"x","a"`, etag: `"a"`, want: true},
		{name: "weak", header: `W/"a"`, etag: `"a"`, want: true},
		{name: "star", header: `*`, etag: `"a"`, want: true},
		{name: "different", header: `"b"`, etag: `"a"`, want: false},
		{name: "unquoted", header: `a`, etag: `"a"`, want: false},
		{name: "prefix only", header: `"a`, etag: `"a"`, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := etagMatches([]byte(tt.header), []byte(tt.etag)); got != tt.want {
				t.Errorf("etagMatches(%q, %q): got %v, want %v", tt.header, tt.etag, got, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		wantField string
	}{
		{name: "defaults", cfg: Config{CacheDir: "x"}},
		{name: "no cache dir", cfg: Config{}, wantField: "cache_dir"},
		{name: "negative memory", cfg: Config{CacheDir: "x", MemoryCacheBytes: -1}, wantField: "memory_cache_bytes"},
		{name: "metadata ttl too long", cfg: Config{CacheDir: "x", MetadataTTL: 6 * time.Second}, wantField: "metadata_ttl"},
		{name: "negative metadata poll", cfg: Config{CacheDir: "x", MetadataPoll: -time.Second}, wantField: "metadata_poll"},
		{name: "metadata poll as long as the default ttl", cfg: Config{CacheDir: "x", MetadataPoll: DefaultMetadataTTL}, wantField: "metadata_poll"},
		{name: "metadata poll longer than the ttl", cfg: Config{CacheDir: "x", MetadataTTL: time.Second, MetadataPoll: 1500 * time.Millisecond}, wantField: "metadata_poll"},
		{name: "metadata poll shorter than the ttl", cfg: Config{CacheDir: "x", MetadataTTL: time.Second, MetadataPoll: 999 * time.Millisecond}},
		{name: "short ttl, default poll", cfg: Config{CacheDir: "x", MetadataTTL: 50 * time.Millisecond}},
		{name: "negative workers", cfg: Config{CacheDir: "x", RenderWorkers: -1}, wantField: "render_workers"},
		{name: "negative queue", cfg: Config{CacheDir: "x", RenderQueue: -1}, wantField: "render_queue"},
		{name: "negative max age", cfg: Config{CacheDir: "x", MaxAge: -time.Second}, wantField: "max_age"},
		{name: "unbounded disk cache", cfg: Config{CacheDir: "x", DiskCacheBytes: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Validate: got %v, want nil", err)
				}
				return
			}
			if code := tierpix.ErrorCode(err); code != tierpix.EINVALID {
				t.Fatalf("code: got %q, want %q", code, tierpix.EINVALID)
			}
			if _, ok := tierpix.ErrorFields(err)[tt.wantField]; !ok {
				t.Errorf("fields: got %v, want %q", tierpix.ErrorFields(err), tt.wantField)
			}
		})
	}
}

func TestFlight(t *testing.T) {
	var f flight[int]
	var runs atomic.Int32
	gate := make(chan struct{})
	const n = 5
	results := make(chan int, n)
	go func() {
		v, _, _ := f.do("k", func() (int, error) { runs.Add(1); <-gate; return 42, nil })
		results <- v
	}()
	waitFor(t, "the leader to start", func() bool { return runs.Load() == 1 })
	for range n - 1 {
		go func() {
			v, _, _ := f.do("k", func() (int, error) { runs.Add(1); return 0, nil })
			results <- v
		}()
	}
	waitFor(t, "waiters to join", func() bool { return f.waiting("k") == n-1 })
	close(gate)
	for range n {
		if v := <-results; v != 42 {
			t.Errorf("result: got %d, want 42", v)
		}
	}
	if got := runs.Load(); got != 1 {
		t.Errorf("runs: got %d, want 1", got)
	}
	if got := f.waiting("k"); got != 0 {
		t.Errorf("waiting after completion: got %d, want 0", got)
	}
}

// TestFront checks that Front answers image links as the router would, with the route
// recorded for request metrics, and leaves everything else to the router.
func TestFront(t *testing.T) {
	e := newEnv(t, fullTier, Config{})
	img, _ := e.addImage(t, tierpix.FormatJPEG, 600, 400)
	r := router.New()
	r.SaveMatchedRoutePath = true
	e.origin.Register(r)
	r.GET("/other", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("other") })
	var mu sync.Mutex
	var route any
	front := e.origin.Front(r.Handler)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		front(ctx)
		mu.Lock()
		route = ctx.UserValue(router.MatchedRoutePathParam)
		mu.Unlock()
	}}
	go srv.Serve(ln)                     //nolint:errcheck // ends with Shutdown
	t.Cleanup(func() { srv.Shutdown() }) //nolint:errcheck
	base := "http://" + ln.Addr().String()
	link := e.signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200)})

	tests := []struct {
		name      string
		method    string
		path      string
		status    int
		wantRoute any
	}{
		{name: "image link", method: http.MethodGet, path: link, status: 200, wantRoute: "/i/{path:*}"},
		{name: "image link, HEAD", method: http.MethodHead, path: link, status: 200, wantRoute: "/i/{path:*}"},
		{name: "bad link", method: http.MethodGet, path: tamper(link), status: 403, wantRoute: "/i/{path:*}"},
		{name: "image link, POST, to the router", method: http.MethodPost, path: link, status: 405, wantRoute: nil},
		{name: "other route, to the router", method: http.MethodGet, path: "/other", status: 200, wantRoute: "/other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := do(t, tt.method, base+tt.path)
			if res.status != tt.status {
				t.Fatalf("status: got %d, want %d (%s)", res.status, tt.status, res.body)
			}
			mu.Lock()
			got := route
			mu.Unlock()
			if got != tt.wantRoute {
				t.Errorf("matched route: got %v, want %v", got, tt.wantRoute)
			}
		})
	}
}

// TestRememberedLinkExpires checks that a link served once, and so remembered as verified, is
// still refused once its expiry passes.
func TestRememberedLinkExpires(t *testing.T) {
	var mu sync.Mutex
	clock := testNow
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	e := newEnv(t, fullTier, Config{Now: now})
	img, _ := e.addImage(t, tierpix.FormatJPEG, 300, 200)
	u := e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(100), Expires: testNow.Unix() + 600})
	for range 2 {
		if res := get(t, u); res.status != http.StatusOK {
			t.Fatalf("before expiry: got %d, want 200", res.status)
		}
	}
	mu.Lock()
	clock = testNow.Add(600 * time.Second)
	mu.Unlock()
	wantProblem(t, get(t, u), http.StatusGone, "expired")
}
