package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/api/openapi"
	"github.com/tierpix/tierpix/api/openapi/openapitest"
	"github.com/tierpix/tierpix/imaging/imagingtest"
	"github.com/tierpix/tierpix/origin"
	"github.com/tierpix/tierpix/service"
	"github.com/tierpix/tierpix/signin"
	"github.com/tierpix/tierpix/signing"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
	"github.com/valyala/fasthttp"
)

func TestMain(m *testing.M) { imagingtest.Main(m) }

// NewTestBrowser builds the web UI as the browsable API's Browser, with its routes. It is set
// by browser_web_test.go (package api_test), which may import package web: web imports api,
// so this package's own tests cannot.
var NewTestBrowser func(publicURL string, svc Services, st *store.Store, si *signin.Service, o *origin.Origin, spec *openapi.Spec, logger *slog.Logger) (Browser, func(*router.Router), error)

// testBcryptCost keeps password hashing cheap in tests.
const testBcryptCost = 4

// Passwords of the users every test server starts with.
const (
	adminPassword = "admin-password"
	userPassword  = "user-password"
)

// testNow is the API's clock in tests, so expiries are exact.
var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// recordingPurger records purges and passes them on to the origin.
type recordingPurger struct {
	next service.Purger
	mu   sync.Mutex
	ids  []string
}

func (p *recordingPurger) Purge(id string) {
	p.mu.Lock()
	p.ids = append(p.ids, id)
	p.mu.Unlock()
	p.next.Purge(id)
}

func (p *recordingPurger) purged() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ids...)
}

// testServer is the API and the origin on one router, served on 127.0.0.1:0 the way
// cmd/tierpix serves them, with users admin (admin), alice (Basic), pam (Premium) and erin
// (Enterprise).
type testServer struct {
	url    string
	st     *store.Store
	api    *API
	signin *signin.Service
	signer *signing.Signer
	purger *recordingPurger
	client *http.Client
}

func newTestServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	return newTestServerWith(t, storetest.SQLite(t), cfg, nil)
}

// newTestServerWith serves on st; tune, if set, changes the fasthttp.Server before it starts.
func newTestServerWith(t *testing.T, st *store.Store, cfg Config, tune func(*fasthttp.Server)) *testServer {
	t.Helper()
	return newTestServerSignIn(t, st, cfg, signin.Config{}, tune)
}

// newTestServerService is newTestServer with the services' settings.
func newTestServerService(t *testing.T, cfg Config, scfg service.Config) *testServer {
	t.Helper()
	return newTestServerFull(t, storetest.SQLite(t), cfg, signin.Config{}, scfg, nil)
}

// newTestServerSignIn is newTestServerWith with the sign-in service's settings.
func newTestServerSignIn(t *testing.T, st *store.Store, cfg Config, sicfg signin.Config, tune func(*fasthttp.Server)) *testServer {
	t.Helper()
	return newTestServerFull(t, st, cfg, sicfg, service.Config{}, tune)
}

// newTestServerFull is newTestServerSignIn with the services' settings.
func newTestServerFull(t *testing.T, st *store.Store, cfg Config, sicfg signin.Config, scfg service.Config, tune func(*fasthttp.Server)) *testServer {
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
	purger := &recordingPurger{next: o}

	cfg.PublicURL = "http://" + ln.Addr().String() + "/"
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	spec, err := openapi.Load()
	if err != nil {
		t.Fatalf("openapi.Load: %v", err)
	}
	if sicfg.BcryptCost == 0 {
		sicfg.BcryptCost = testBcryptCost
	}
	si, err := signin.New(sicfg, st, logger)
	if err != nil {
		t.Fatalf("signin.New: %v", err)
	}
	if scfg.BcryptCost == 0 {
		scfg.BcryptCost = testBcryptCost
	}
	svc, err := service.New(scfg, st, si, purger, logger)
	if err != nil {
		t.Fatalf("service.New: %v", err)
	}
	w, registerWeb, err := NewTestBrowser(cfg.PublicURL, svc, st, si, o, spec, logger)
	if err != nil {
		t.Fatalf("web.New: %v", err)
	}
	a, err := New(cfg, svc, st, si, signer, w, logger)
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	r := router.New()
	a.Register(r)
	o.Register(r)
	registerWeb(r)
	srv := &fasthttp.Server{
		Handler:                      MethodOverride(r.Handler),
		ErrorHandler:                 a.ErrorHandler,
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		MaxRequestBodySize:           a.MaxRequestBodySize(),
		Logger:                       discardLogger{},
	}
	if tune != nil {
		tune(srv)
	}
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

	ts := &testServer{
		url:    "http://" + ln.Addr().String(),
		st:     st,
		api:    a,
		signin: si,
		signer: signer,
		purger: purger,
		client: &http.Client{Transport: openapitest.Transport(t, &http.Transport{})},
	}
	t.Cleanup(ts.client.CloseIdleConnections)
	ts.createUser(t, "admin", adminPassword, "Basic", true)
	ts.createUser(t, "alice", userPassword, "Basic", false)
	ts.createUser(t, "pam", userPassword, "Premium", false)
	ts.createUser(t, "erin", userPassword, "Enterprise", false)
	return ts
}

func (ts *testServer) createUser(t *testing.T, username, password, tier string, admin bool) tierpix.User {
	t.Helper()
	hash, err := store.HashPassword(password, testBcryptCost)
	if err != nil {
		t.Fatalf("HashPassword: %v", err)
	}
	u := tierpix.User{Username: username, PasswordHash: hash, TierName: tier, IsAdmin: admin}
	if err := ts.st.CreateUser(context.Background(), &u); err != nil {
		t.Fatalf("create user %s: %v", username, err)
	}
	return u
}

func (ts *testServer) user(t *testing.T, username string) tierpix.Identity {
	t.Helper()
	id, err := ts.st.FindUser(context.Background(), username)
	if err != nil {
		t.Fatalf("find user %s: %v", username, err)
	}
	return id
}

// auth sets a request's credentials.
type auth func(*http.Request)

func basic(username, password string) auth {
	return func(r *http.Request) { r.SetBasicAuth(username, password) }
}

func bearer(token string) auth {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

var (
	noAuth         auth = func(*http.Request) {}
	asAdmin             = basic("admin", adminPassword)
	asAlice             = basic("alice", userPassword)
	asPam               = basic("pam", userPassword)
	asErin              = basic("erin", userPassword)
	jsonType            = "application/json"
	jsonHeaders         = map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
	problemHeaders      = map[string]string{"Content-Type": "application/problem+json", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
)

// response is a finished response with its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request to the test server. path may be absolute (a next link) or start with /.
func (ts *testServer) do(t *testing.T, method, path string, as auth, contentType string, body io.Reader) response {
	t.Helper()
	u := path
	if strings.HasPrefix(path, "/") {
		u = ts.url + path
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	as(req)
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// doJSON sends body (a string is sent as is, anything else marshalled) as application/json.
func (ts *testServer) doJSON(t *testing.T, method, path string, as auth, body any) response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		r = bytes.NewReader(j)
	}
	ct := ""
	if r != nil {
		ct = jsonType
	}
	return ts.do(t, method, path, as, ct, r)
}

func (r response) wantStatus(t *testing.T, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status: got %d, want %d; body: %s", r.status, want, r.body)
	}
}

// decode unmarshals the body into v.
func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// problemBody is a problem document as a client sees it.
type problemBody struct {
	Type   string            `json:"type"`
	Title  string            `json:"title"`
	Status int               `json:"status"`
	Detail string            `json:"detail"`
	Errors map[string]string `json:"errors"`
}

// wantProblem checks a problem answer: status, media type, and that each of fields has a
// message.
func (r response) wantProblem(t *testing.T, status int, fields ...string) problemBody {
	t.Helper()
	r.wantStatus(t, status)
	r.wantHeaders(t, problemHeaders)
	var p problemBody
	r.decode(t, &p)
	if p.Status != status || p.Title == "" || p.Detail == "" {
		t.Errorf("problem: got %+v, want status %d with a title and a detail", p, status)
	}
	for _, f := range fields {
		if p.Errors[f] == "" {
			t.Errorf("problem errors: got %v, want a message for %q", p.Errors, f)
		}
	}
	return p
}

func (r response) wantHeaders(t *testing.T, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := r.header.Get(k); got != v {
			t.Errorf("header %s: got %q, want %q", k, got, v)
		}
	}
}

// apiImage is the image JSON as a client sees it.
type apiImage struct {
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
		Original *string `json:"original"`
	} `json:"links"`
}

type imagePage struct {
	Results []apiImage `json:"results"`
	Next    *string    `json:"next"`
}

// upload posts data as the multipart field "image" (or field) with file name filename.
func (ts *testServer) upload(t *testing.T, as auth, field, filename string, data []byte) response {
	t.Helper()
	body, ct := multipartBody(t, field, filename, data)
	return ts.do(t, http.MethodPost, "/api/images", as, ct, bytes.NewReader(body))
}

// uploadImage uploads data and returns the created image.
func (ts *testServer) uploadImage(t *testing.T, as auth, data []byte) apiImage {
	t.Helper()
	r := ts.upload(t, as, "image", "pic.png", data)
	r.wantStatus(t, http.StatusCreated)
	var img apiImage
	r.decode(t, &img)
	return img
}

func multipartBody(t *testing.T, field, filename string, data []byte) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if err := mw.WriteField("title", "a small field before the image"); err != nil {
		t.Fatalf("write field: %v", err)
	}
	w, err := mw.CreateFormFile(field, filename)
	if err != nil {
		t.Fatalf("create form file: %v", err)
	}
	w.Write(data) //nolint:errcheck // bytes.Buffer
	if err := mw.Close(); err != nil {
		t.Fatalf("close multipart: %v", err)
	}
	return buf.Bytes(), mw.FormDataContentType()
}

// picture is a w×h image with a gradient, so encoders cannot squeeze it to nothing.
func picture(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255})
		}
	}
	return img
}

// noise is a w×h image of random pixels: it does not compress, for size-cap tests.
func noise(w, h int) *image.NRGBA {
	rng := rand.New(rand.NewPCG(1, 2))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
	}
	return img
}

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatalf("encode png: %v", err)
	}
	return buf.Bytes()
}

// encodeJPEG encodes img; an orientation of 1..8 adds an Exif APP1 segment carrying it.
func encodeJPEG(t *testing.T, img image.Image, orientation int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatalf("encode jpeg: %v", err)
	}
	b := buf.Bytes()
	if orientation == 0 {
		return b
	}
	var tiff bytes.Buffer
	tiff.WriteString("MM\x00\x2a")
	for _, v := range []any{uint32(8), uint16(1), uint16(0x0112), uint16(3), uint32(1), uint16(orientation), uint16(0), uint32(0)} {
		binary.Write(&tiff, binary.BigEndian, v) //nolint:errcheck // bytes.Buffer
	}
	payload := append([]byte("Exif\x00\x00"), tiff.Bytes()...)
	seg := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(payload)+2))
	out := append([]byte{}, b[:2]...)
	out = append(out, seg...)
	out = append(out, payload...)
	return append(out, b[2:]...)
}

func encodeGIF(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := gif.Encode(&buf, img, nil); err != nil {
		t.Fatalf("encode gif: %v", err)
	}
	return buf.Bytes()
}

// addImages records n images of owner straight through the store, oldest first, and returns
// their ids newest first, as the list answers them.
func (ts *testServer) addImages(t *testing.T, owner int64, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		f, err := os.CreateTemp(ts.st.TempDir(), "seed-*")
		if err != nil {
			t.Fatalf("create temp: %v", err)
		}
		f.WriteString("not an image; listing does not read it") //nolint:errcheck
		f.Close()
		img := tierpix.Image{OwnerID: owner, Name: fmt.Sprintf("seed-%d.png", i), Format: tierpix.FormatPNG, Width: 10, Height: 10, SizeBytes: 39}
		if err := ts.st.CreateImage(context.Background(), &img, f.Name()); err != nil {
			t.Fatalf("create image: %v", err)
		}
		ids[n-1-i] = img.ID
	}
	return ids
}

// files lists the regular files under the upload temp dir and the originals.
func (ts *testServer) files(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, dir := range []string{ts.st.TempDir(), filepath.Dir(ts.st.OriginalPath("x"))} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("walk %s: %v", dir, err)
		}
	}
	return files
}

// imageCount returns how many images owner has, through the store.
func (ts *testServer) imageCount(t *testing.T, owner int64) int {
	t.Helper()
	imgs, err := ts.st.ListImages(context.Background(), owner, 0, 1000)
	if err != nil {
		t.Fatalf("list images: %v", err)
	}
	return len(imgs)
}

func basicHeader(username, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(username+":"+password))
}

// pngChunk encodes one PNG chunk with its CRC.
func pngChunk(typ string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
}

// discardLogger keeps fasthttp's connection errors, provoked on purpose, out of test output.
type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

// chunk frames s as one chunk of a chunked body.
func chunk(s string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(s), s) }

// rawRequest writes request to a new connection as is and reads the response. The request
// may stop short of its declared body: the connection closes once the response is read.
func (ts *testServer) rawRequest(t *testing.T, request string) response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	go conn.Write([]byte(request)) //nolint:errcheck // the server may answer before reading it all
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response body: %v", err)
	}
	checkRaw(t, request, resp, body)
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// checkRaw checks a response read off a raw connection against the OpenAPI document, as the
// client's transport does for every other request.
func checkRaw(t *testing.T, request string, resp *http.Response, body []byte) {
	t.Helper()
	line, _, _ := strings.Cut(request, "\r\n")
	method, rest, _ := strings.Cut(line, " ")
	target, _, _ := strings.Cut(rest, " ")
	if err := openapitest.Check(openapi.Document(), method, target, resp.StatusCode, resp.Header, body); err != nil {
		t.Errorf("openapi: %s %s: %d: %v", method, target, resp.StatusCode, err)
	}
}
