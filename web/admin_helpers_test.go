package web

import (
	"bytes"
	"context"
	"html"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/signing"
)

// adminResponse is what a test needs of an answer: status, body, redirect target, headers.
type adminResponse struct {
	status   int
	body     string
	location string
	header   http.Header
}

// adminDo sends a request to the test server with c and reads the whole answer. A non-nil form
// is sent urlencoded.
func (ts *testServer) adminDo(t *testing.T, c *http.Client, method, path string, form url.Values) adminResponse {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, ts.url+path, body)
	if err != nil {
		t.Fatalf("new request %s %s: %v", method, path, err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s %s: %v", method, path, err)
	}
	return adminResponse{status: resp.StatusCode, body: string(b), location: resp.Header.Get("Location"), header: resp.Header}
}

// adminGet is a GET of path.
func (ts *testServer) adminGet(t *testing.T, c *http.Client, path string) adminResponse {
	t.Helper()
	return ts.adminDo(t, c, http.MethodGet, path, nil)
}

// adminPostForm posts form to path, with csrf as its csrf_token when csrf is not empty.
func (ts *testServer) adminPostForm(t *testing.T, c *http.Client, path, csrf string, form url.Values) adminResponse {
	t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if csrf != "" {
		form.Set("csrf_token", csrf)
	}
	return ts.adminDo(t, c, http.MethodPost, path, form)
}

// wantStatus fails unless r has the status want.
func (r adminResponse) wantStatus(t *testing.T, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("got status %d, want %d; body:\n%s", r.status, want, r.body)
	}
}

// wantRedirect fails unless r is a 303 to location.
func (r adminResponse) wantRedirect(t *testing.T, location string) {
	t.Helper()
	r.wantStatus(t, http.StatusSeeOther)
	if r.location != location {
		t.Fatalf("got Location %q, want %q", r.location, location)
	}
}

// wantBody fails unless the body holds every fragment (HTML as the server writes it).
func (r adminResponse) wantBody(t *testing.T, fragments ...string) {
	t.Helper()
	for _, f := range fragments {
		if !strings.Contains(r.body, f) {
			t.Errorf("body does not contain %q; body:\n%s", f, r.body)
		}
	}
}

// wantNoBody fails if the body holds any of the fragments.
func (r adminResponse) wantNoBody(t *testing.T, fragments ...string) {
	t.Helper()
	for _, f := range fragments {
		if strings.Contains(r.body, f) {
			t.Errorf("body contains %q, want it absent; body:\n%s", f, r.body)
		}
	}
}

// adminEsc is text as html/template writes it, which escapes '+' too.
func adminEsc(s string) string { return strings.ReplaceAll(html.EscapeString(s), "+", "&#43;") }

// wantFieldError fails unless the body shows msg as the error of field, with the input
// marked invalid and described by the message.
func (r adminResponse) wantFieldError(t *testing.T, field, msg string) {
	t.Helper()
	r.wantBody(t, `<p class="field-error" id="`+field+`-error">`+adminEsc(msg)+`</p>`)
	input := regexp.MustCompile(`<(input|select) id="` + regexp.QuoteMeta(field) + `"[^>]*>`).FindString(r.body)
	if input == "" {
		t.Fatalf("no input with id %q; body:\n%s", field, r.body)
	}
	if !strings.Contains(input, `aria-invalid="true"`) || !regexp.MustCompile(`aria-describedby="[^"]*\b`+regexp.QuoteMeta(field)+`-error\b`).MatchString(input) {
		t.Errorf("input %s is not marked invalid and described by %s-error", input, field)
	}
}

// adminJPEG encodes a w×h JPEG of one colour.
func adminJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{R: uint8(x), G: uint8(y), B: 120, A: 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatalf("encode jpeg: %v", err)
	}
	return buf.Bytes()
}

// adminAddImage records a real w×h JPEG of owner through the store, as an upload would.
func (ts *testServer) adminAddImage(t *testing.T, ownerID int64, name string, w, h int) tierpix.Image {
	t.Helper()
	f, err := ts.st.CreateTemp()
	if err != nil {
		t.Fatalf("create temp: %v", err)
	}
	defer f.Close()
	if _, err := f.Write(adminJPEG(t, w, h)); err != nil {
		t.Fatalf("write temp: %v", err)
	}
	img := tierpix.Image{OwnerID: ownerID, Name: name, Format: tierpix.FormatJPEG, Width: w, Height: h}
	if err := ts.st.CreateImage(context.Background(), &img, f.Name()); err != nil {
		t.Fatalf("create image: %v", err)
	}
	return img
}

// adminUser returns a user as stored now.
func (ts *testServer) adminUser(t *testing.T, username string) tierpix.User {
	t.Helper()
	id, err := ts.st.FindUser(context.Background(), username)
	if err != nil {
		t.Fatalf("find user %s: %v", username, err)
	}
	return id.User
}

// adminLink is the signed path of an image's 200 px thumbnail, which Basic allows.
func (ts *testServer) adminLink(id string) string {
	return ts.signer.Path(signing.Link{ImageID: id, Variant: signing.Thumbnail(200)})
}
