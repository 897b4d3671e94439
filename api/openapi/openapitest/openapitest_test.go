package openapitest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tierpix/tierpix/api/openapi"
)

// recorder is a testing.TB that records Errorf instead of failing, so a test can assert that
// the validator reported something.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) Helper() {}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	errs := r.errs
	r.errs = nil
	return errs
}

// answer is what the test server sends for one request.
type answer struct {
	status  int
	header  map[string]string
	body    string
	noCType bool // send no Content-Type at all
}

const (
	meJSON     = `{"username": "alice", "is_admin": false, "tier": {"name": "Basic", "thumbnail_heights": [200], "original_link": false, "expiring_links": false, "builtin": true}}`
	problem404 = `{"type": "about:blank", "title": "Not Found", "status": 404, "detail": "There is nothing at this path."}`
	problem401 = `{"type": "about:blank", "title": "Unauthorized", "status": 401, "detail": "Authentication is required."}`
	imageJSON  = `{"id": "abc", "name": "a.png", "content_type": "image/png", "width": 3, "height": 2, "size_bytes": 10, "created_at": "2030-01-02T03:04:05Z", "links": {"thumbnails": []}}`
	jsonType   = "application/json"
	problem    = "application/problem+json"
	challenge  = `Bearer realm="tierpix", Basic realm="tierpix", charset="UTF-8"`
)

func TestTransport(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		target  string
		answer  answer
		wantErr string // "" when the answer is right
	}{
		// Right answers.
		{name: "me", method: "GET", target: "/api/me", answer: answer{status: 200, header: map[string]string{"Content-Type": jsonType}, body: meJSON}},
		{name: "media type parameters are ignored", method: "GET", target: "/api/me", answer: answer{status: 200, header: map[string]string{"Content-Type": "application/json; charset=utf-8"}, body: meJSON}},
		{name: "browsable page", method: "GET", target: "/api/me", answer: answer{status: 200, header: map[string]string{"Content-Type": "text/html; charset=utf-8"}, body: "<!doctype html><p>hi"}},
		{name: "HEAD has no body", method: "HEAD", target: "/api/me", answer: answer{status: 200, header: map[string]string{"Content-Type": jsonType}}},
		{name: "401 with a challenge", method: "GET", target: "/api/me", answer: answer{status: 401, header: map[string]string{"Content-Type": problem, "WWW-Authenticate": challenge}, body: problem401}},
		{name: "page", method: "GET", target: "/api/images?limit=1", answer: answer{status: 200, header: map[string]string{"Content-Type": jsonType}, body: `{"results": [` + imageJSON + `], "first": null, "previous": null, "next": "http://127.0.0.1:1/api/images?limit=1&cursor=x"}`}},
		{name: "created with Location", method: "POST", target: "/api/images", answer: answer{status: 201, header: map[string]string{"Content-Type": jsonType, "Location": "http://127.0.0.1:1/api/images/abc"}, body: imageJSON}},
		{name: "field errors", method: "GET", target: "/api/images?limit=0", answer: answer{status: 400, header: map[string]string{"Content-Type": problem}, body: `{"type": "about:blank", "title": "Bad Request", "status": 400, "detail": "x", "errors": {"limit": "must be an integer between 1 and 100"}}`}},
		{name: "417 without a body", method: "POST", target: "/api/images", answer: answer{status: 417, noCType: true}},
		{name: "no content", method: "DELETE", target: "/api/images/abc", answer: answer{status: 204}},
		{name: "_method override", method: "POST", target: "/api/images/abc?_method=DELETE", answer: answer{status: 204}},
		{name: "unknown path", method: "GET", target: "/api/nothing-here", answer: answer{status: 404, header: map[string]string{"Content-Type": problem}, body: problem404}},
		{name: "wrong method", method: "PUT", target: "/api/images", answer: answer{status: 405, header: map[string]string{"Content-Type": problem, "Allow": "GET, HEAD, POST"}, body: `{"type": "about:blank", "title": "Method Not Allowed", "status": 405, "detail": "no"}`}},
		{name: "unknown path for a browser", method: "GET", target: "/api/nothing-here", answer: answer{status: 404, header: map[string]string{"Content-Type": "text/html; charset=utf-8"}, body: "<p>not found"}},
		{name: "trailing slash redirected", method: "GET", target: "/api/me/", answer: answer{status: 301, header: map[string]string{"Location": "/api/me"}, noCType: true}},
		{name: "trailing slash redirected with 308", method: "DELETE", target: "/api/images/abc/", answer: answer{status: 308, header: map[string]string{"Location": "http://127.0.0.1:1/api/images/abc"}, noCType: true}},
		{name: "not the API", method: "GET", target: "/login", answer: answer{status: 200, header: map[string]string{"Content-Type": "text/html"}, body: "<p>sign in"}},
		{name: "image", method: "GET", target: "/i/sig/abc/h200", answer: answer{status: 200, header: map[string]string{"Content-Type": "image/png", "ETag": `"abc-h200-v2"`, "Cache-Control": "public, max-age=60", "Content-Security-Policy": "sandbox; default-src 'none'"}, body: "\x89PNG..."}},
		{name: "not modified", method: "GET", target: "/i/sig/abc/h200", answer: answer{status: 304, header: map[string]string{"ETag": `"abc-h200-v2"`, "Cache-Control": "public, max-age=60", "Content-Security-Policy": "sandbox; default-src 'none'"}}},
		{name: "malformed link", method: "GET", target: "/i/nonsense", answer: answer{status: 404, header: map[string]string{"Content-Type": problem}, body: `{"type": "about:blank", "title": "Not Found", "status": 404, "detail": "No such image."}`}},
		{name: "health", method: "GET", target: "/healthz", answer: answer{status: 200, header: map[string]string{"Content-Type": jsonType}, body: `{"status":"ok","checks":{"database":"ok","disk":"ok","originals":"ok"}}`}},

		// Wrong answers.
		{name: "extra field", method: "GET", target: "/api/me", answer: answer{status: 200, header: map[string]string{"Content-Type": jsonType}, body: strings.Replace(meJSON, `"username"`, `"password_hash": "x", "username"`, 1)}, wantErr: "password_hash"},
		{name: "wrong type", method: "GET", target: "/api/me", answer: answer{status: 200, header: map[string]string{"Content-Type": jsonType}, body: strings.Replace(meJSON, `"is_admin": false`, `"is_admin": "no"`, 1)}, wantErr: "is_admin"},
		{name: "nested wrong type", method: "GET", target: "/api/images", answer: answer{status: 200, header: map[string]string{"Content-Type": jsonType}, body: `{"results": [` + strings.Replace(imageJSON, `"width": 3`, `"width": 3.5`, 1) + `], "first": null, "previous": null, "next": null}`}, wantErr: "width"},
		{name: "missing field", method: "GET", target: "/api/images", answer: answer{status: 200, header: map[string]string{"Content-Type": jsonType}, body: `{"results": []}`}, wantErr: "next"},
		{name: "not JSON", method: "GET", target: "/api/me", answer: answer{status: 200, header: map[string]string{"Content-Type": jsonType}, body: `{"username":`}, wantErr: "not JSON"},
		{name: "undocumented status", method: "GET", target: "/api/me", answer: answer{status: 418, header: map[string]string{"Content-Type": problem}, body: `{"type": "about:blank", "title": "I'm a teapot", "status": 418}`}, wantErr: "status 418 is not documented"},
		{name: "wrong content type", method: "GET", target: "/api/me", answer: answer{status: 200, header: map[string]string{"Content-Type": "text/plain"}, body: "alice"}, wantErr: `"text/plain" is not documented`},
		{name: "error as plain JSON", method: "GET", target: "/api/images/abc", answer: answer{status: 404, header: map[string]string{"Content-Type": jsonType}, body: problem404}, wantErr: `"application/json" is not documented`},
		{name: "HEAD with a wrong content type", method: "HEAD", target: "/api/me", answer: answer{status: 200, header: map[string]string{"Content-Type": "text/plain"}}, wantErr: "text/plain"},
		{name: "401 without a challenge", method: "GET", target: "/api/me", answer: answer{status: 401, header: map[string]string{"Content-Type": problem}, body: problem401}, wantErr: "WWW-Authenticate"},
		{name: "created without Location", method: "POST", target: "/api/images", answer: answer{status: 201, header: map[string]string{"Content-Type": jsonType}, body: imageJSON}, wantErr: "Location"},
		{name: "image without ETag", method: "GET", target: "/i/sig/abc/h200", answer: answer{status: 200, header: map[string]string{"Content-Type": "image/png", "Cache-Control": "public, max-age=60"}, body: "\x89PNG..."}, wantErr: "ETag"},
		{name: "empty body", method: "GET", target: "/api/me", answer: answer{status: 200, header: map[string]string{"Content-Type": jsonType}}, wantErr: "empty"},
		{name: "body where none is documented", method: "POST", target: "/api/images", answer: answer{status: 417, header: map[string]string{"Content-Type": "text/plain"}, body: "nope"}, wantErr: "documents no body"},
		{name: "undocumented path answered", method: "GET", target: "/api/nothing-here", answer: answer{status: 200, header: map[string]string{"Content-Type": jsonType}, body: `{}`}, wantErr: "must be 404 or 405"},
		{name: "POST without the override", method: "POST", target: "/api/images/abc", answer: answer{status: 204}, wantErr: "must be 404 or 405"},
		{name: "unknown path without a problem", method: "GET", target: "/api/nothing-here", answer: answer{status: 404, header: map[string]string{"Content-Type": "text/plain"}, body: "404 page not found"}, wantErr: "problem+json"},
		{name: "unknown path with a bad problem", method: "GET", target: "/api/nothing-here", answer: answer{status: 404, header: map[string]string{"Content-Type": problem}, body: `{"status": 404}`}, wantErr: "title"},
		{name: "redirect to nowhere", method: "GET", target: "/api/nothing-here/", answer: answer{status: 301, header: map[string]string{"Location": "/api/nothing-here"}, noCType: true}, wantErr: "not documented either"},
		{name: "redirect without Location", method: "GET", target: "/api/me/", answer: answer{status: 308, noCType: true}, wantErr: "Location"},
		{name: "405 without Allow", method: "PUT", target: "/api/images", answer: answer{status: 405, header: map[string]string{"Content-Type": problem}, body: `{"type": "about:blank", "title": "Method Not Allowed", "status": 405}`}, wantErr: "Allow"},
	}

	byTarget := map[string]answer{}
	for _, tt := range tests {
		byTarget[tt.name] = tt.answer
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := byTarget[r.Header.Get("X-Case")]
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		if a.noCType {
			w.Header()["Content-Type"] = nil // net/http would sniff one
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body) //nolint:errcheck // the client reports a short body
	}))
	t.Cleanup(srv.Close)

	rec := &recorder{TB: t}
	client := &http.Client{
		Transport: Transport(rec, &http.Transport{}),
		// Redirects are answers to check, not to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(client.CloseIdleConnections)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.target, nil)
			if err != nil {
				t.Fatalf("new request: %v", err)
			}
			req.Header.Set("X-Case", tt.name)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tt.method, tt.target, err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("read body: %v", err)
			}
			if tt.method != "HEAD" && resp.StatusCode != 204 && resp.StatusCode != 304 && string(body) != tt.answer.body {
				t.Errorf("body after the transport: got %q, want %q", body, tt.answer.body)
			}

			errs := rec.take()
			switch {
			case tt.wantErr == "" && len(errs) > 0:
				t.Errorf("got reports %q, want none", errs)
			case tt.wantErr != "" && len(errs) != 1:
				t.Errorf("got %d reports %q, want one containing %q", len(errs), errs, tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(errs[0], tt.wantErr):
				t.Errorf("got report %q, want it to contain %q", errs[0], tt.wantErr)
			}
			if tt.wantErr != "" && len(errs) == 1 {
				for _, part := range []string{tt.method, strings.SplitN(tt.target, "?", 2)[0], fmt.Sprint(tt.answer.status)} {
					if !strings.Contains(errs[0], part) {
						t.Errorf("report %q: want it to name %q", errs[0], part)
					}
				}
			}
		})
	}
}

// TestCheck covers what Check decides without a server: paths it leaves alone, escaped paths,
// a document of its own.
func TestCheck(t *testing.T) {
	ok := http.Header{"Content-Type": {jsonType}}
	tests := []struct {
		name    string
		doc     []byte
		method  string
		target  string
		status  int
		header  http.Header
		body    string
		wantErr string
	}{
		{name: "web page ignored", method: "GET", target: "/admin/users", status: 500, header: http.Header{}, body: "boom"},
		{name: "static ignored", method: "GET", target: "/static/site.css", status: 200, header: http.Header{"Content-Type": {"text/css"}}, body: "p{}"},
		{name: "prefix that is not /api", method: "GET", target: "/apix", status: 200, header: http.Header{}, body: "x"},
		{name: "escaped path", method: "GET", target: "/api/admin/users/b%40b", status: 200, header: ok,
			body: `{"username": "b@b", "tier": "Basic", "is_admin": false, "created_at": "2030-01-02T03:04:05Z"}`},
		{name: "lower-case override", method: "POST", target: "/api/admin/tiers/Gold?_method=patch", status: 200, header: ok,
			body: `{"name": "Gold", "thumbnail_heights": [], "original_link": false, "expiring_links": false, "builtin": false}`},
		{name: "no override to GET", method: "POST", target: "/api/me?_method=GET", status: 200, header: ok,
			body: `{"username": "a", "is_admin": false, "tier": {"name": "Basic", "thumbnail_heights": [], "original_link": false, "expiring_links": false, "builtin": true}}`, wantErr: "must be 404 or 405"},
		{name: "override only for POST", method: "GET", target: "/api/images/abc?_method=DELETE", status: 204, header: http.Header{}, wantErr: "not documented"},
		{name: "negotiated webp thumbnail", method: "GET", target: "/i/c2ln/abc/h200", status: 200, header: imageHeader("image/webp", "Accept"), body: "RIFF....WEBP"},
		{name: "explicit webp thumbnail", method: "GET", target: "/i/c2ln/abc/h200.webp/1893456000", status: 200,
			header: withHeader(imageHeader("image/webp", ""), "Expires", "Tue, 01 Jan 2030 00:00:00 GMT"), body: "RIFF....WEBP"},
		{name: "thumbnail in a format not documented", method: "GET", target: "/i/c2ln/abc/h200", status: 200, header: imageHeader("image/avif", "Accept"), body: "...", wantErr: `"image/avif" is not documented`},
		{name: "range status", doc: []byte(`{"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {"/api/x": {"get": {"responses": {
			"4XX": {"description": "e", "content": {"application/json": {"schema": {"type": "object", "required": ["e"]}}}}}}}}}`),
			method: "GET", target: "/api/x", status: 409, header: ok, body: `{}`, wantErr: `missing property 'e'`},
		{name: "default status", doc: []byte(`{"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {"/api/x": {"get": {"responses": {
			"default": {"description": "e", "content": {"application/json": {"schema": {"type": "string"}}}}}}}}}`),
			method: "GET", target: "/api/x", status: 599, header: ok, body: `"fine"`},
		{name: "broken document", doc: []byte(`{"openapi": "3.1.0", "paths": {"/api/x": {"$ref": "#/nowhere"}}}`),
			method: "GET", target: "/api/x", status: 200, header: ok, body: `{}`, wantErr: "only local refs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := tt.doc
			if doc == nil {
				doc = openapi.Document()
			}
			err := Check(doc, tt.method, tt.target, tt.status, tt.header, []byte(tt.body))
			if tt.wantErr == "" && err != nil {
				t.Errorf("got %v, want nil", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// imageHeader is the header of an image link's 200 in content type ct, with Vary when vary
// is not empty.
func imageHeader(ct, vary string) http.Header {
	h := http.Header{
		"Content-Type":            {ct},
		"Etag":                    {`"abc-h200"`},
		"Cache-Control":           {"public, max-age=3600"},
		"Content-Security-Policy": {"sandbox; default-src 'none'"},
	}
	if vary != "" {
		h.Set("Vary", vary)
	}
	return h
}

func withHeader(h http.Header, k, v string) http.Header {
	h.Set(k, v)
	return h
}
