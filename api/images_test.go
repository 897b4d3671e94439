package api

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/service"
	"github.com/tierpix/tierpix/signing"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
	"github.com/valyala/fasthttp"
)

func TestUpload(t *testing.T) {
	ts := newTestServerService(t, Config{}, service.Config{MaxPixels: 1_000_000})
	alice := ts.user(t, "alice")
	pngData := encodePNG(t, picture(300, 200))
	truncated := encodePNG(t, noise(64, 64))
	truncated = truncated[:len(truncated)/2]

	tests := []struct {
		name        string
		field       string
		filename    string
		data        []byte
		contentType string // overrides the multipart type when set
		want        int
		wantW       int
		wantH       int
		wantType    string
		wantName    string
	}{
		{name: "png", field: "image", filename: "cat.png", data: pngData, want: http.StatusCreated, wantW: 300, wantH: 200, wantType: "image/png", wantName: "cat.png"},
		{name: "jpeg", field: "image", filename: "dog.jpg", data: encodeJPEG(t, picture(120, 90), 0), want: http.StatusCreated, wantW: 120, wantH: 90, wantType: "image/jpeg", wantName: "dog.jpg"},
		{name: "exif rotated jpeg", field: "image", filename: "rotated.jpg", data: encodeJPEG(t, picture(120, 90), 6), want: http.StatusCreated, wantW: 90, wantH: 120, wantType: "image/jpeg", wantName: "rotated.jpg"},
		{name: "path in file name", field: "image", filename: `..\..\evil.png`, data: pngData, want: http.StatusCreated, wantW: 300, wantH: 200, wantType: "image/png", wantName: "evil.png"},
		{name: "no file name", field: "image", filename: "", data: pngData, want: http.StatusCreated, wantW: 300, wantH: 200, wantType: "image/png", wantName: "image"},
		{name: "gif", field: "image", filename: "a.gif", data: encodeGIF(t, picture(20, 20)), want: http.StatusUnsupportedMediaType},
		{name: "text", field: "image", filename: "a.png", data: []byte("hello, not an image"), want: http.StatusUnsupportedMediaType},
		{name: "empty file", field: "image", filename: "a.png", data: nil, want: http.StatusUnsupportedMediaType},
		{name: "corrupt png", field: "image", filename: "a.png", data: truncated, want: http.StatusUnprocessableEntity},
		{name: "too many pixels", field: "image", filename: "big.png", data: encodePNG(t, picture(1001, 1000)), want: http.StatusUnprocessableEntity},
		{name: "no image field", field: "file", filename: "a.png", data: pngData, want: http.StatusBadRequest},
		{name: "not multipart", field: "image", filename: "a.png", data: pngData, contentType: "image/png", want: http.StatusUnsupportedMediaType},
		{name: "multipart without boundary", field: "image", filename: "a.png", data: pngData, contentType: "multipart/form-data", want: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.imageCount(t, alice.User.ID)
			filesBefore := len(ts.files(t))
			body, ct := multipartBody(t, tt.field, tt.filename, tt.data)
			if tt.contentType != "" {
				ct = tt.contentType
			}
			r := ts.do(t, http.MethodPost, "/api/images", asAlice, ct, bytes.NewReader(body))
			if tt.want != http.StatusCreated {
				p := r.wantProblem(t, tt.want)
				if tt.want == http.StatusBadRequest && tt.field != "image" && p.Errors["image"] != "This field is required." {
					t.Errorf("errors.image: got %q, want %q", p.Errors["image"], "This field is required.")
				}
				if got := ts.imageCount(t, alice.User.ID); got != before {
					t.Errorf("images after a rejected upload: got %d, want %d", got, before)
				}
				if got := ts.files(t); len(got) != filesBefore {
					t.Errorf("files after a rejected upload: got %v, want %d files", got, filesBefore)
				}
				return
			}
			r.wantStatus(t, http.StatusCreated)
			r.wantHeaders(t, jsonHeaders)
			var img apiImage
			r.decode(t, &img)
			if img.Width != tt.wantW || img.Height != tt.wantH {
				t.Errorf("size: got %dx%d, want %dx%d", img.Width, img.Height, tt.wantW, tt.wantH)
			}
			if img.ContentType != tt.wantType || img.Name != tt.wantName || img.SizeBytes != int64(len(tt.data)) {
				t.Errorf("got type %q name %q size %d, want %q %q %d", img.ContentType, img.Name, img.SizeBytes, tt.wantType, tt.wantName, len(tt.data))
			}
			if got, want := r.header.Get("Location"), ts.url+"/api/images/"+img.ID; got != want {
				t.Errorf("Location: got %q, want %q", got, want)
			}
			if ct, err := time.Parse(time.RFC3339, img.CreatedAt); err != nil || !strings.HasSuffix(img.CreatedAt, "Z") || ct.IsZero() {
				t.Errorf("created_at: got %q (%v), want RFC 3339 UTC", img.CreatedAt, err)
			}
			if len(img.Links.Thumbnails) != 1 || img.Links.Thumbnails[0].Height != 200 {
				t.Errorf("thumbnails: got %+v, want one of height 200", img.Links.Thumbnails)
			}
			if bytes.Contains(r.body, []byte(`"original"`)) {
				t.Errorf("body: got %s, want no original link for a Basic user", r.body)
			}
			if got := ts.imageCount(t, alice.User.ID); got != before+1 {
				t.Errorf("images: got %d, want %d", got, before+1)
			}
		})
	}
}

// TestUploadLinksServe follows the links of an upload through the origin on the same router:
// the API signs what the origin verifies, and a deleted image's links stop working.
func TestUploadLinksServe(t *testing.T) {
	ts := newTestServer(t, Config{})
	img := ts.uploadImage(t, asPam, encodePNG(t, picture(600, 500)))
	if len(img.Links.Thumbnails) != 2 || img.Links.Original == nil {
		t.Fatalf("links: got %+v, want two thumbnails and the original for Premium", img.Links)
	}
	wantHeights := []int{200, 400}
	for i, th := range img.Links.Thumbnails {
		if th.Height != wantHeights[i] || !strings.HasPrefix(th.URL, ts.url+"/i/") {
			t.Errorf("thumbnail %d: got %+v, want height %d under %s/i/", i, th, wantHeights[i], ts.url)
		}
		// Both links are permanent links to this thumbnail, the WebP one naming its format.
		for _, l := range []struct {
			url  string
			want signing.Variant
		}{
			{th.URL, signing.Thumbnail(wantHeights[i])},
			{th.WebPURL, signing.ThumbnailAs(wantHeights[i], tierpix.FormatWebP)},
		} {
			u, err := url.Parse(l.url)
			if err != nil || !strings.HasPrefix(l.url, ts.url+"/i/") {
				t.Errorf("thumbnail %d: got link %q, want one under %s/i/", i, l.url, ts.url)
				continue
			}
			link, err := ts.signer.Verify([]byte(u.Path), testNow)
			if err != nil || link.ImageID != img.ID || link.Variant != l.want || link.Expires != 0 {
				t.Errorf("verify %s: got %+v, %v, want image %s variant %v, permanent", u.Path, link, err, img.ID, l.want)
			}
		}
		if want := fmt.Sprintf("/%s/h%d.webp", img.ID, wantHeights[i]); !strings.HasSuffix(th.WebPURL, want) {
			t.Errorf("thumbnail %d: webp_url %q, want it to end in %s", i, th.WebPURL, want)
		}
		r := ts.do(t, http.MethodGet, th.URL, noAuth, "", nil)
		r.wantStatus(t, http.StatusOK)
		if got := r.header.Get("Content-Type"); got != "image/png" {
			t.Errorf("thumbnail content type: got %q, want image/png", got)
		}
	}
	orig := ts.do(t, http.MethodGet, *img.Links.Original, noAuth, "", nil)
	orig.wantStatus(t, http.StatusOK)
	if int64(len(orig.body)) != img.SizeBytes {
		t.Errorf("original: got %d bytes, want %d", len(orig.body), img.SizeBytes)
	}

	ts.do(t, http.MethodDelete, "/api/images/"+img.ID, asPam, "", nil).wantStatus(t, http.StatusNoContent)
	r := ts.do(t, http.MethodGet, img.Links.Thumbnails[0].URL, noAuth, "", nil)
	if r.status != http.StatusNotFound {
		t.Errorf("thumbnail after delete: got %d, want 404", r.status)
	}
}

// TestUploadPreParsedForm checks uploads still work when the server parses multipart forms
// itself (DisablePreParseMultipartForm unset).
func TestUploadPreParsedForm(t *testing.T) {
	ts := newTestServerWith(t, storetest.SQLite(t), Config{MaxUploadBytes: 64 << 10}, func(s *fasthttp.Server) {
		s.DisablePreParseMultipartForm = false
	})
	img := ts.uploadImage(t, asAlice, encodePNG(t, picture(50, 40)))
	if img.Width != 50 || img.Height != 40 {
		t.Errorf("size: got %dx%d, want 50x40", img.Width, img.Height)
	}
	ts.upload(t, asAlice, "file", "a.png", []byte("x")).wantProblem(t, http.StatusBadRequest, "image")
	ts.upload(t, asAlice, "image", "a.png", encodePNG(t, noise(200, 200))).wantProblem(t, http.StatusRequestEntityTooLarge)
	if files := ts.files(t); len(files) != 1 {
		t.Errorf("files: got %v, want only the accepted original", files)
	}
}

func TestUploadTooLarge(t *testing.T) {
	const maxUpload = 64 << 10
	ts := newTestServer(t, Config{MaxUploadBytes: maxUpload})
	alice := ts.user(t, "alice")
	big := encodePNG(t, noise(200, 200)) // about 160 KB: over the cap, under the body limit
	if len(big) <= maxUpload {
		t.Fatalf("test image is %d bytes, want more than %d", len(big), maxUpload)
	}
	tests := []struct {
		name    string
		chunked bool
	}{
		{name: "over the cap"},
		{name: "over the cap, chunked", chunked: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, ct := multipartBody(t, "image", "big.png", big)
			var r io.Reader = bytes.NewReader(body)
			if tt.chunked {
				r = io.MultiReader(r) // hides the length, so the client sends it chunked
			}
			ts.do(t, http.MethodPost, "/api/images", asAlice, ct, r).wantProblem(t, http.StatusRequestEntityTooLarge)
			if files := ts.files(t); len(files) != 0 {
				t.Errorf("files: got %v, want none", files)
			}
			if n := ts.imageCount(t, alice.User.ID); n != 0 {
				t.Errorf("images: got %d, want 0", n)
			}
		})
	}

	// Bodies far over the limit are refused without reading them, so the client sends only
	// what the server reads before it answers: the answer must come all the same.
	limit := ts.api.MaxRequestBodySize()
	headers := "POST /api/images HTTP/1.1\r\nHost: test\r\nAuthorization: " + basicHeader("alice", userPassword) +
		"\r\nContent-Type: multipart/form-data; boundary=b\r\n"
	partHead := "--b\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"x.png\"\r\n\r\n"
	raw := []struct {
		name    string
		request string
	}{
		{name: "declared length over the body limit", request: headers + fmt.Sprintf("Content-Length: %d\r\n\r\n", limit+1) +
			strings.Repeat("x", 8192)}, // fasthttp reads 8 KiB before it calls the handler
		{name: "chunked image over the cap", request: headers + "Transfer-Encoding: chunked\r\n\r\n" +
			chunk(fmt.Sprintf(partHead, "image")+"\x89PNG\r\n\x1a\n"+strings.Repeat("x", maxUpload))},
		{name: "chunked fields over the body limit", request: headers + "Transfer-Encoding: chunked\r\n\r\n" +
			chunk(fmt.Sprintf(partHead, "padding")+strings.Repeat("x", limit))},
	}
	for _, tt := range raw {
		t.Run(tt.name, func(t *testing.T) {
			ts.rawRequest(t, tt.request).wantProblem(t, http.StatusRequestEntityTooLarge)
			if files := ts.files(t); len(files) != 0 {
				t.Errorf("files: got %v, want none", files)
			}
			if n := ts.imageCount(t, alice.User.ID); n != 0 {
				t.Errorf("images: got %d, want 0", n)
			}
		})
	}

	t.Run("at the cap", func(t *testing.T) {
		// A PNG padded with an ancillary chunk to exactly the cap is accepted.
		data := encodePNG(t, picture(10, 10))
		pad := maxUpload - len(data) - 12
		chunk := pngChunk("tEXt", append([]byte("c\x00"), bytes.Repeat([]byte("x"), pad-2)...))
		data = append(append(append([]byte{}, data[:33]...), chunk...), data[33:]...)
		if len(data) != maxUpload {
			t.Fatalf("padded PNG is %d bytes, want %d", len(data), maxUpload)
		}
		img := ts.uploadImage(t, asAlice, data)
		if img.SizeBytes != maxUpload {
			t.Errorf("size_bytes: got %d, want %d", img.SizeBytes, maxUpload)
		}
	})
}

// TestUploadStreams checks that an upload's body is streamed to disk, not buffered: a 32 MiB
// upload allocates a small fraction of its size in the whole process, client included.
func TestUploadStreams(t *testing.T) {
	ts := newTestServer(t, Config{})
	const size = 32 << 20
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	if _, err := mw.CreateFormFile("image", "big.png"); err != nil {
		t.Fatalf("create form file: %v", err)
	}
	head.Write([]byte("\x89PNG\r\n\x1a\n"))
	tail := "\r\n--" + mw.Boundary() + "--\r\n"
	body := io.MultiReader(bytes.NewReader(head.Bytes()), io.LimitReader(zeros{}, size), strings.NewReader(tail))
	req, err := http.NewRequest(http.MethodPost, ts.url+"/api/images", body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.ContentLength = int64(head.Len()) + size + int64(len(tail))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	asAlice(req)
	ts.do(t, http.MethodGet, "/api/me", asAlice, "", nil).wantStatus(t, http.StatusOK) // warm up the connection and the credential cache

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	io.Copy(io.Discard, resp.Body) //nolint:errcheck
	resp.Body.Close()
	runtime.ReadMemStats(&after)

	// The PNG signature followed by zeros has no valid header: 422, after the whole body went
	// through the temp file.
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("status: got %d, want 422", resp.StatusCode)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/4 {
		t.Errorf("allocated %d bytes for a %d-byte upload, want at most %d", alloc, size, size/4)
	}
	if files := ts.files(t); len(files) != 0 {
		t.Errorf("files: got %v, want none", files)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestListImages(t *testing.T) {
	ts := newTestServer(t, Config{})
	alice := ts.user(t, "alice")
	pam := ts.user(t, "pam")
	ids := ts.addImages(t, alice.User.ID, 23)
	ts.addImages(t, pam.User.ID, 3)

	t.Run("pages", func(t *testing.T) {
		var got []string
		var sizes []int
		next := "/api/images?limit=5"
		for page := 0; next != ""; page++ {
			if page > 10 {
				t.Fatalf("more than 10 pages for 23 images")
			}
			r := ts.do(t, http.MethodGet, next, asAlice, "", nil)
			r.wantStatus(t, http.StatusOK)
			r.wantHeaders(t, jsonHeaders)
			var p imagePage
			r.decode(t, &p)
			sizes = append(sizes, len(p.Results))
			for _, img := range p.Results {
				got = append(got, img.ID)
			}
			next = ""
			if p.Next != nil {
				next = *p.Next
				if !strings.HasPrefix(next, ts.url+"/api/images?") || strings.Contains(string(r.body), `\u0026`) {
					t.Errorf("next: got %q in %s, want an unescaped URL under %s", next, r.body, ts.url)
				}
			} else if !bytes.Contains(r.body, []byte(`"next":null`)) {
				t.Errorf("body: got %s, want \"next\":null on the last page", r.body)
			}
		}
		if fmt.Sprint(sizes) != "[5 5 5 5 3]" {
			t.Errorf("page sizes: got %v, want [5 5 5 5 3]", sizes)
		}
		if fmt.Sprint(got) != fmt.Sprint(ids) {
			t.Errorf("ids: got %v, want %v (newest first, no duplicates or gaps)", got, ids)
		}
	})

	t.Run("cursors are sealed and bound to their owner", func(t *testing.T) {
		r := ts.do(t, http.MethodGet, "/api/images?limit=1", asAlice, "", nil)
		r.wantStatus(t, http.StatusOK)
		var p imagePage
		r.decode(t, &p)
		if p.Next == nil {
			t.Fatal("next: got null, want a second page")
		}
		next, err := url.Parse(*p.Next)
		if err != nil {
			t.Fatal(err)
		}
		cursor := next.Query().Get("cursor")
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(raw) != 16 {
			t.Fatalf("cursor %q: got %d bytes (%v), want one sealed 16-byte block", cursor, len(raw), err)
		}
		if _, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			t.Fatalf("cursor %q is a plain number, want it sealed", cursor)
		}
		ts.do(t, http.MethodGet, "/api/images?limit=1&cursor="+cursor, asAlice, "", nil).wantStatus(t, http.StatusOK)
		// Another user's list does not open with alice's cursor, and a changed cursor is no cursor.
		ts.do(t, http.MethodGet, "/api/images?limit=1&cursor="+cursor, asPam, "", nil).wantProblem(t, http.StatusBadRequest, "cursor")
		raw[3] ^= 1
		tampered := base64.RawURLEncoding.EncodeToString(raw)
		ts.do(t, http.MethodGet, "/api/images?limit=1&cursor="+tampered, asAlice, "", nil).wantProblem(t, http.StatusBadRequest, "cursor")
		ts.do(t, http.MethodGet, "/api/images?limit=1&cursor="+cursor+"AA", asAlice, "", nil).wantProblem(t, http.StatusBadRequest, "cursor")
	})

	t.Run("default limit", func(t *testing.T) {
		r := ts.do(t, http.MethodGet, "/api/images", asAlice, "", nil)
		r.wantStatus(t, http.StatusOK)
		var p imagePage
		r.decode(t, &p)
		if len(p.Results) != 20 || p.Next == nil {
			t.Errorf("got %d results and next %v, want 20 and a next link", len(p.Results), p.Next)
		}
	})

	t.Run("exact last page", func(t *testing.T) {
		r := ts.do(t, http.MethodGet, "/api/images?limit=23", asAlice, "", nil)
		var p imagePage
		r.decode(t, &p)
		if len(p.Results) != 23 || p.Next != nil {
			t.Errorf("got %d results and next %v, want 23 and null", len(p.Results), p.Next)
		}
	})

	t.Run("previous and first walk back", func(t *testing.T) {
		type walkPage struct {
			Results []struct {
				ID string `json:"id"`
			} `json:"results"`
			First, Previous, Next *string
		}
		get := func(u string) walkPage {
			var p walkPage
			r := ts.do(t, http.MethodGet, u, asAlice, "", nil)
			r.wantStatus(t, http.StatusOK)
			r.decode(t, &p)
			return p
		}
		ids := func(p walkPage) string {
			var s []string
			for _, r := range p.Results {
				s = append(s, r.ID)
			}
			return strings.Join(s, ",")
		}
		var pages []walkPage
		for u := "/api/images?limit=7"; u != ""; {
			p := get(u)
			pages = append(pages, p)
			u = ""
			if p.Next != nil {
				u = *p.Next
			}
		}
		if len(pages) != 4 || pages[0].Previous != nil || pages[0].First != nil {
			t.Fatalf("got %d pages of 7 of 23, the first with previous %v; want 4, the first without", len(pages), pages[0].Previous)
		}
		for i := len(pages) - 1; i > 0; i-- {
			if pages[i].Previous == nil || pages[i].First == nil {
				t.Fatalf("page %d: no previous or first link", i+1)
			}
			if got, want := ids(get(*pages[i].Previous)), ids(pages[i-1]); got != want {
				t.Errorf("previous of page %d: got %s, want %s", i+1, got, want)
			}
			if got := ids(get(*pages[i].First)); got != ids(pages[0]) {
				t.Errorf("first from page %d: got %s", i+1, got)
			}
		}
		// Back from the second page: the first again, which has no previous but a next.
		back := get(*pages[1].Previous)
		if back.Previous != nil || back.Next == nil {
			t.Errorf("the first page reached backwards: previous %v, next %v; want none and one", back.Previous, back.Next)
		}
	})

	t.Run("empty", func(t *testing.T) {
		r := ts.do(t, http.MethodGet, "/api/images", asErin, "", nil)
		r.wantStatus(t, http.StatusOK)
		if want := `{"results":[],"first":null,"previous":null,"next":null}`; strings.TrimSuffix(string(r.body), "\n") != want {
			t.Errorf("body: got %s, want %s", r.body, want)
		}
	})

	bad := []struct {
		name  string
		query string
		field string
	}{
		{name: "limit zero", query: "limit=0", field: "limit"},
		{name: "limit over 100", query: "limit=101", field: "limit"},
		{name: "limit not a number", query: "limit=ten", field: "limit"},
		{name: "limit empty", query: "limit=", field: "limit"},
		{name: "cursor not base64", query: "cursor=***", field: "cursor"},
		{name: "cursor not a number", query: "cursor=" + base64.RawURLEncoding.EncodeToString([]byte("abc")), field: "cursor"},
		{name: "cursor negative", query: "cursor=" + base64.RawURLEncoding.EncodeToString([]byte("-4")), field: "cursor"},
		{name: "cursor empty", query: "cursor=", field: "cursor"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			ts.do(t, http.MethodGet, "/api/images?"+tt.query, asAlice, "", nil).wantProblem(t, http.StatusBadRequest, tt.field)
		})
	}
}

// TestListImagesQueries checks that a list page costs the same number of statements whatever
// its size, authentication included: no query per image.
func TestListImagesQueries(t *testing.T) {
	ts := newTestServer(t, Config{})
	alice := ts.user(t, "alice")
	ts.addImages(t, alice.User.ID, 120)
	tok := ts.doJSON(t, http.MethodPost, "/api/admin/users/alice/tokens", asAdmin, nil)
	var token struct{ Token string }
	tok.decode(t, &token)

	for _, as := range []struct {
		name string
		auth auth
	}{{"basic", asAlice}, {"bearer", bearer(token.Token)}} {
		t.Run(as.name, func(t *testing.T) {
			ts.do(t, http.MethodGet, "/api/images?limit=1", as.auth, "", nil).wantStatus(t, http.StatusOK) // warm the credential cache
			var deltas []uint64
			for _, limit := range []int{1, 20, 100} {
				before := ts.st.Queries()
				r := ts.do(t, http.MethodGet, fmt.Sprintf("/api/images?limit=%d", limit), as.auth, "", nil)
				r.wantStatus(t, http.StatusOK)
				deltas = append(deltas, ts.st.Queries()-before)
				var p imagePage
				r.decode(t, &p)
				if len(p.Results) != limit {
					t.Errorf("limit %d: got %d results", limit, len(p.Results))
				}
			}
			if deltas[0] != deltas[1] || deltas[1] != deltas[2] || deltas[0] > 2 {
				t.Errorf("statements per page for limits 1, 20, 100: got %v, want the same, at most 2", deltas)
			}
		})
	}
}

func TestGetAndDeleteImage(t *testing.T) {
	ts := newTestServer(t, Config{})
	up := ts.upload(t, asAlice, "image", "cat.png", encodePNG(t, picture(40, 30)))
	up.wantStatus(t, http.StatusCreated)
	var img apiImage
	up.decode(t, &img)

	tests := []struct {
		name   string
		method string
		id     string
		as     auth
		want   int
	}{
		{name: "get own", method: http.MethodGet, id: img.ID, as: asAlice, want: http.StatusOK},
		{name: "get other's", method: http.MethodGet, id: img.ID, as: asPam, want: http.StatusNotFound},
		{name: "get missing", method: http.MethodGet, id: "nosuchimage", as: asAlice, want: http.StatusNotFound},
		{name: "get unauthenticated", method: http.MethodGet, id: img.ID, as: noAuth, want: http.StatusUnauthorized},
		{name: "delete other's", method: http.MethodDelete, id: img.ID, as: asPam, want: http.StatusNotFound},
		{name: "delete missing", method: http.MethodDelete, id: "nosuchimage", as: asAlice, want: http.StatusNotFound},
		{name: "delete own", method: http.MethodDelete, id: img.ID, as: asAlice, want: http.StatusNoContent},
		{name: "get deleted", method: http.MethodGet, id: img.ID, as: asAlice, want: http.StatusNotFound},
		{name: "delete deleted", method: http.MethodDelete, id: img.ID, as: asAlice, want: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(t, tt.method, "/api/images/"+tt.id, tt.as, "", nil)
			switch tt.want {
			case http.StatusOK:
				r.wantStatus(t, http.StatusOK)
				r.wantHeaders(t, jsonHeaders)
				if !bytes.Equal(r.body, up.body) {
					t.Errorf("body: got %s, want the upload's %s", r.body, up.body)
				}
			case http.StatusNoContent:
				r.wantStatus(t, http.StatusNoContent)
				if got := ts.purger.purged(); len(got) != 1 || got[0] != img.ID {
					t.Errorf("purged: got %v, want [%s]", got, img.ID)
				}
				if files := ts.files(t); len(files) != 0 {
					t.Errorf("files: got %v, want none", files)
				}
			default:
				r.wantProblem(t, tt.want)
			}
		})
	}
}

// TestDeleteKeepsFile deletes an image, and a user with an image, whose original cannot be
// removed from disk (a non-empty directory stands in its place): the rows are gone, so the
// answer is a success that purges the caches, not a 500; the file is left for the sweep.
func TestDeleteKeepsFile(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.createUser(t, "bob", userPassword, "Basic", false)
	asBob := basic("bob", userPassword)
	pin := func(id string) {
		t.Helper()
		path := ts.st.OriginalPath(id)
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(path, "pinned"), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	img := ts.uploadImage(t, asAlice, encodePNG(t, picture(40, 30)))
	pin(img.ID)
	ts.do(t, http.MethodDelete, "/api/images/"+img.ID, asAlice, "", nil).wantStatus(t, http.StatusNoContent)
	ts.do(t, http.MethodGet, "/api/images/"+img.ID, asAlice, "", nil).wantProblem(t, http.StatusNotFound)
	if got := ts.purger.purged(); len(got) != 1 || got[0] != img.ID {
		t.Errorf("purged: got %v, want [%s]", got, img.ID)
	}

	bobImg := ts.uploadImage(t, asBob, encodePNG(t, picture(40, 30)))
	pin(bobImg.ID)
	ts.doJSON(t, http.MethodDelete, "/api/admin/users/bob", asAdmin, nil).wantStatus(t, http.StatusNoContent)
	ts.doJSON(t, http.MethodGet, "/api/admin/users/bob", asAdmin, nil).wantProblem(t, http.StatusNotFound)
	if got := ts.purger.purged(); len(got) != 2 || got[1] != bobImg.ID {
		t.Errorf("purged: got %v, want [%s %s]", got, img.ID, bobImg.ID)
	}
}

func TestExpiringLinks(t *testing.T) {
	ts := newTestServer(t, Config{})
	pic := encodePNG(t, picture(60, 40))
	erinImg := ts.uploadImage(t, asErin, pic)
	pamImg := ts.uploadImage(t, asPam, pic)
	ts.doJSON(t, http.MethodPost, "/api/admin/tiers", asAdmin, map[string]any{"name": "Fleeting", "thumbnail_heights": []int{100}, "expiring_links": true}).wantStatus(t, http.StatusCreated)
	ts.createUser(t, "fred", userPassword, "Fleeting", false)
	asFred := basic("fred", userPassword)
	fredImg := ts.uploadImage(t, asFred, pic)

	tests := []struct {
		name        string
		as          auth
		id          string
		body        any
		want        int
		fields      []string // exactly the fields a 400 names
		message     string   // in the message of the first of fields
		wantVariant signing.Variant
		wantExpiry  int64
	}{
		{name: "thumbnail", as: asErin, id: erinImg.ID, body: `{"expires_in":600,"height":400}`, want: http.StatusCreated, wantVariant: signing.Thumbnail(400), wantExpiry: 600},
		{name: "original", as: asErin, id: erinImg.ID, body: `{"expires_in":300}`, want: http.StatusCreated, wantVariant: signing.Original, wantExpiry: 300},
		{name: "longest", as: asErin, id: erinImg.ID, body: `{"expires_in":30000,"height":200}`, want: http.StatusCreated, wantVariant: signing.Thumbnail(200), wantExpiry: 30000},
		{name: "thumbnail without original access", as: asFred, id: fredImg.ID, body: `{"expires_in":600,"height":100}`, want: http.StatusCreated, wantVariant: signing.Thumbnail(100), wantExpiry: 600},
		{name: "too short", as: asErin, id: erinImg.ID, body: `{"expires_in":299}`, want: http.StatusBadRequest, fields: []string{"expires_in"}},
		{name: "too long", as: asErin, id: erinImg.ID, body: `{"expires_in":30001}`, want: http.StatusBadRequest, fields: []string{"expires_in"}},
		{name: "missing expiry", as: asErin, id: erinImg.ID, body: `{"height":200}`, want: http.StatusBadRequest, fields: []string{"expires_in"}},
		{name: "fractional expiry", as: asErin, id: erinImg.ID, body: `{"expires_in":300.5}`, want: http.StatusBadRequest, fields: []string{"expires_in"}},
		{name: "height not in tier", as: asErin, id: erinImg.ID, body: `{"expires_in":600,"height":300}`, want: http.StatusBadRequest, fields: []string{"height"}, message: "200, 400"},
		{name: "height zero", as: asErin, id: erinImg.ID, body: `{"expires_in":600,"height":0}`, want: http.StatusBadRequest, fields: []string{"height"}},
		{name: "height wrong type", as: asErin, id: erinImg.ID, body: `{"expires_in":600,"height":"200"}`, want: http.StatusBadRequest, fields: []string{"height"}},
		{name: "unknown field", as: asErin, id: erinImg.ID, body: `{"expires_in":600,"width":200}`, want: http.StatusBadRequest, fields: []string{"width"}},
		{name: "webp thumbnail", as: asErin, id: erinImg.ID, body: `{"expires_in":600,"height":400,"format":"webp"}`, want: http.StatusCreated, wantVariant: signing.ThumbnailAs(400, tierpix.FormatWebP), wantExpiry: 600},
		{name: "webp thumbnail without original access", as: asFred, id: fredImg.ID, body: `{"expires_in":600,"height":100,"format":"webp"}`, want: http.StatusCreated, wantVariant: signing.ThumbnailAs(100, tierpix.FormatWebP), wantExpiry: 600},
		{name: "another format", as: asErin, id: erinImg.ID, body: `{"expires_in":600,"height":200,"format":"png"}`, want: http.StatusBadRequest, fields: []string{"format"}, message: `"webp"`},
		{name: "upper-case format", as: asErin, id: erinImg.ID, body: `{"expires_in":600,"height":200,"format":"WEBP"}`, want: http.StatusBadRequest, fields: []string{"format"}, message: `"webp"`},
		{name: "empty format", as: asErin, id: erinImg.ID, body: `{"expires_in":600,"height":200,"format":""}`, want: http.StatusBadRequest, fields: []string{"format"}, message: `"webp"`},
		{name: "format wrong type", as: asErin, id: erinImg.ID, body: `{"expires_in":600,"height":200,"format":1}`, want: http.StatusBadRequest, fields: []string{"format"}},
		{name: "webp original", as: asErin, id: erinImg.ID, body: `{"expires_in":600,"format":"webp"}`, want: http.StatusBadRequest, fields: []string{"format"}, message: "never converted"},
		{name: "webp original without original access", as: asFred, id: fredImg.ID, body: `{"expires_in":600,"format":"webp"}`, want: http.StatusBadRequest, fields: []string{"format"}, message: "never converted"},
		{name: "webp at a height not in tier", as: asErin, id: erinImg.ID, body: `{"expires_in":600,"height":300,"format":"webp"}`, want: http.StatusBadRequest, fields: []string{"height"}, message: "200, 400"},
		{name: "another format at a height not in tier", as: asErin, id: erinImg.ID, body: `{"expires_in":600,"height":300,"format":"gif"}`, want: http.StatusBadRequest, fields: []string{"format", "height"}, message: `"webp"`},
		{name: "webp at height zero", as: asErin, id: erinImg.ID, body: `{"expires_in":600,"height":0,"format":"webp"}`, want: http.StatusBadRequest, fields: []string{"height"}},
		{name: "tier without expiring links", as: asPam, id: pamImg.ID, body: `{"expires_in":600,"height":200}`, want: http.StatusForbidden},
		{name: "original without original access", as: asFred, id: fredImg.ID, body: `{"expires_in":600}`, want: http.StatusForbidden},
		{name: "other's image", as: asErin, id: pamImg.ID, body: `{"expires_in":600,"height":200}`, want: http.StatusNotFound},
		{name: "unauthenticated", as: noAuth, id: erinImg.ID, body: `{"expires_in":600}`, want: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.doJSON(t, http.MethodPost, "/api/images/"+tt.id+"/expiring-links", tt.as, tt.body)
			if tt.want != http.StatusCreated {
				p := r.wantProblem(t, tt.want, tt.fields...)
				var named []string
				for f := range p.Errors {
					named = append(named, f)
				}
				slices.Sort(named)
				if !slices.Equal(named, tt.fields) {
					t.Errorf("errors: got %v, want messages for exactly %v", p.Errors, tt.fields)
				}
				if tt.message != "" && !strings.Contains(p.Errors[tt.fields[0]], tt.message) {
					t.Errorf("errors.%s: got %q, want it to say %s", tt.fields[0], p.Errors[tt.fields[0]], tt.message)
				}
				return
			}
			r.wantStatus(t, http.StatusCreated)
			r.wantHeaders(t, jsonHeaders)
			var got struct {
				URL       string `json:"url"`
				ExpiresAt string `json:"expires_at"`
			}
			r.decode(t, &got)
			wantExpires := testNow.Add(time.Duration(tt.wantExpiry) * time.Second)
			if got.ExpiresAt != wantExpires.Format(time.RFC3339) {
				t.Errorf("expires_at: got %q, want %q", got.ExpiresAt, wantExpires.Format(time.RFC3339))
			}
			u, err := url.Parse(got.URL)
			if err != nil || !strings.HasPrefix(got.URL, ts.url+"/i/") {
				t.Fatalf("url: got %q, want a link under %s/i/", got.URL, ts.url)
			}
			link, err := ts.signer.Verify([]byte(u.Path), testNow)
			if err != nil {
				t.Fatalf("verify %s: %v", u.Path, err)
			}
			if link.ImageID != tt.id || link.Variant != tt.wantVariant || link.Expires != wantExpires.Unix() {
				t.Errorf("link: got %+v, want image %s variant %v expires %d", link, tt.id, tt.wantVariant, wantExpires.Unix())
			}
			if _, err := ts.signer.Verify([]byte(u.Path), wantExpires.Add(time.Second)); err == nil {
				t.Errorf("verify after expiry: got nil, want an error")
			}
		})
	}

	// The browsable API's form: its format select sends "webp", or nothing when left at
	// "(not set)", which must mean the negotiated link rather than an invalid format.
	for _, tt := range []struct {
		format string
		want   signing.Variant
	}{
		{"webp", signing.ThumbnailAs(200, tierpix.FormatWebP)},
		{"", signing.Thumbnail(200)},
	} {
		ct, body := form(url.Values{"expires_in": {"600"}, "height": {"200"}, "format": {tt.format}})
		r := ts.do(t, http.MethodPost, "/api/images/"+erinImg.ID+"/expiring-links", asErin, ct, body)
		r.wantStatus(t, http.StatusCreated)
		var got struct {
			URL string `json:"url"`
		}
		r.decode(t, &got)
		u, err := url.Parse(got.URL)
		if err != nil {
			t.Fatalf("url %q: %v", got.URL, err)
		}
		if link, err := ts.signer.Verify([]byte(u.Path), testNow); err != nil || link.Variant != tt.want {
			t.Errorf("form with format %q: got %+v, %v, want variant %v", tt.format, link, err, tt.want)
		}
	}
}

// TestThumbnailLinkAllocs checks what an image's links cost a list page: one allocation per
// thumbnail, its negotiated and its WebP link sharing one string, whatever the tier's heights.
func TestThumbnailLinkAllocs(t *testing.T) {
	signer, err := signing.New([][]byte{bytes.Repeat([]byte("k"), signing.MinKeyLength)})
	if err != nil {
		t.Fatalf("signing.New: %v", err)
	}
	a := &API{cfg: Config{PublicURL: "http://127.0.0.1:8080"}, signer: signer}
	img := &tierpix.Image{ID: "abc123", Name: "a.png", Format: tierpix.FormatPNG, Width: 300, Height: 200, SizeBytes: 10, CreatedAt: testNow}
	lb := a.links()
	allocs := func(heights ...int) float64 {
		tier := &tierpix.Tier{Name: "T", ThumbnailHeights: heights}
		return testing.AllocsPerRun(100, func() { lb.image(img, tier) })
	}
	one, four := allocs(200), allocs(100, 200, 400, 800)
	if got := four - one; got != 3 && !raceEnabled {
		t.Errorf("allocations for three more thumbnails: got %v (%v for one, %v for four), want 3", got, one, four)
	}

	th := lb.image(img, &tierpix.Tier{ThumbnailHeights: []int{200}}).Links.Thumbnails[0]
	if want := "http://127.0.0.1:8080" + signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200)}); th.URL != want {
		t.Errorf("url: got %q, want %q", th.URL, want)
	}
	if want := "http://127.0.0.1:8080" + signer.Path(signing.Link{ImageID: img.ID, Variant: signing.ThumbnailAs(200, tierpix.FormatWebP)}); th.WebPURL != want {
		t.Errorf("webp_url: got %q, want %q", th.WebPURL, want)
	}
}

// TestDialects runs the flow whose cost and correctness depend on the SQL (authentication by
// either scheme, upload, a list page's statement count, delete) on SQLite and PostgreSQL.
func TestDialects(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ts := newTestServerWith(t, st, Config{}, nil)
		erin := ts.user(t, "erin")
		ts.addImages(t, erin.User.ID, 30)
		img := ts.uploadImage(t, asErin, encodePNG(t, picture(40, 30)))
		var token struct{ Token string }
		ts.doJSON(t, http.MethodPost, "/api/admin/users/erin/tokens", asAdmin, nil).decode(t, &token)

		for _, as := range []auth{asErin, bearer(token.Token)} {
			ts.do(t, http.MethodGet, "/api/me", as, "", nil).wantStatus(t, http.StatusOK)
			var deltas []uint64
			for _, limit := range []int{1, 20} {
				before := ts.st.Queries()
				r := ts.do(t, http.MethodGet, fmt.Sprintf("/api/images?limit=%d", limit), as, "", nil)
				deltas = append(deltas, ts.st.Queries()-before)
				var p imagePage
				r.decode(t, &p)
				if len(p.Results) != limit || p.Results[0].ID != img.ID {
					t.Errorf("limit %d: got %d results starting %v, want %d starting with the upload", limit, len(p.Results), p.Results, limit)
				}
			}
			if deltas[0] != deltas[1] || deltas[0] > 2 {
				t.Errorf("statements per page for limits 1 and 20: got %v, want the same, at most 2", deltas)
			}
		}
		ts.do(t, http.MethodDelete, "/api/images/"+img.ID, asErin, "", nil).wantStatus(t, http.StatusNoContent)
		ts.do(t, http.MethodGet, "/api/images/"+img.ID, asErin, "", nil).wantProblem(t, http.StatusNotFound)
	})
}
