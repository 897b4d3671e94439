package web

import (
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

func TestDocs(t *testing.T) {
	ts := newTestServer(t, Config{})
	spec := ts.web.spec

	r := ts.do(t, ts.client(t), http.MethodGet, "/api/docs", nil, nil)
	r.wantStatus(t, http.StatusOK)
	wantPageHeaders(t, r.header)

	if len(elements(r.doc, "a", "href", "/api/openapi.json")) == 0 {
		t.Errorf("want a link to /api/openapi.json")
	}
	if !strings.Contains(textOf(r.doc), "signed links to thumbnails") {
		t.Errorf("want the document's description")
	}
	if strings.Contains(r.body, "## Authentication") {
		t.Errorf("want the description's markup left out")
	}

	articles := elements(r.doc, "article")
	if len(articles) != len(spec.Operations) {
		t.Fatalf("got %d operations on the page, want %d", len(articles), len(spec.Operations))
	}
	// Every contents link leads somewhere on the page.
	ids := map[string]bool{}
	for _, el := range findAll(r.doc, func(n *html.Node) bool { return attr(n, "id") != "" }) {
		ids[attr(el, "id")] = true
	}
	toc := findAll(r.doc, func(n *html.Node) bool { return n.Data == "a" && strings.HasPrefix(attr(n, "href"), "#") })
	if len(toc) < len(spec.Operations) {
		t.Errorf("got %d in-page links, want at least one per operation", len(toc))
	}
	for _, a := range toc {
		if id := strings.TrimPrefix(attr(a, "href"), "#"); !ids[id] {
			t.Errorf("link to #%s: no such id", id)
		}
	}

	article := func(method, path string) *html.Node {
		t.Helper()
		for _, a := range articles {
			if h := elements(a, "h3"); len(h) == 1 && textOf(h[0]) == method+" "+path {
				return a
			}
		}
		t.Fatalf("no operation %s %s on the page", method, path)
		return nil
	}
	tests := []struct {
		method, path string
		want         []string
	}{
		{"POST", "/api/images/{id}/expiring-links", []string{"Make an expiring link", "Signed-in users", "expires_in", "minimum 300", "maximum 30000", "height", "application/json", "201"}},
		{"POST", "/api/images", []string{"Upload an image", "image", "string (binary)", "multipart/form-data"}},
		{"GET", "/api/images", []string{"List your images", "limit", "query", "cursor"}},
		{"DELETE", "/api/admin/tiers/{name}", []string{"Delete a tier", "Admins only", "name", "path", "409"}},
		{"POST", "/api/admin/tiers", []string{"thumbnail_heights", "array of integer", "at most 16 items"}},
		{"GET", "/healthz", []string{"Public: no authentication"}},
	}
	for _, tt := range tests {
		text := textOf(article(tt.method, tt.path))
		for _, want := range tt.want {
			if !strings.Contains(text, want) {
				t.Errorf("%s %s: want %q in %q", tt.method, tt.path, want, text)
			}
		}
	}

	if len(elements(r.doc, "form", "action", "/logout")) != 0 {
		t.Errorf("a sign-out form without a session")
	}
	c, csrf := ts.signedIn(t, "alice")
	r = ts.do(t, c, http.MethodGet, "/api/docs", nil, nil)
	r.wantStatus(t, http.StatusOK)
	if got := formCSRF(t, r.doc, "/logout"); got != csrf {
		t.Errorf("sign-out form token: got %q, want the session's", got)
	}
	if !strings.Contains(textOf(r.doc), "Sign out (alice)") {
		t.Errorf("top bar: want alice shown")
	}
}
