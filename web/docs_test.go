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

	// The contents link every operation, and each operation starts closed, its heading in
	// the summary that opens it, so the page starts short and a link to it shows the heading.
	tocs := elements(r.doc, "nav", "class", "toc")
	if len(tocs) != 1 {
		t.Fatalf("got %d nav.toc, want 1", len(tocs))
	}
	for _, a := range articles {
		h := elements(a, "h3")
		if len(h) != 1 {
			t.Fatalf("article %q: got %d h3, want 1", textOf(a), len(h))
		}
		if len(elements(tocs[0], "a", "href", "#"+attr(h[0], "id"))) != 1 {
			t.Errorf("contents: want one link to #%s (%s)", attr(h[0], "id"), textOf(h[0]))
		}
		details := elements(a, "details")
		if len(details) != 1 {
			t.Fatalf("%s: got %d details, want 1", textOf(h[0]), len(details))
		}
		if _, open := attrOf(details[0], "open"); open {
			t.Errorf("%s: want it closed", textOf(h[0]))
		}
		if p := h[0].Parent; p.Data != "summary" || p.Parent != details[0] {
			t.Errorf("%s: want the heading inside the details' summary", textOf(h[0]))
		}
		if n := len(elements(a, "table")); n != len(elements(details[0], "table")) {
			t.Errorf("%s: %d tables outside the details", textOf(h[0]), n-len(elements(details[0], "table")))
		}
	}

	// Descriptions are rendered, not shown as Markdown: no backtick reaches the text, and
	// code spans become <code>, in tables too.
	if text := textOf(r.doc); strings.Contains(text, "`") {
		i := strings.Index(text, "`")
		t.Errorf("a backtick in the page's text: %q", text[max(0, i-60):min(len(text), i+60)])
	}
	var cursorRow *html.Node
	for _, tr := range elements(r.doc, "tr") {
		if c := elements(tr, "code"); len(c) > 0 && textOf(c[0]) == "cursor" {
			cursorRow = tr
			break
		}
	}
	if cursorRow == nil {
		t.Fatalf("no parameter row for cursor")
	}
	if codes := elements(cursorRow, "code"); len(codes) < 2 || textOf(codes[1]) != "next" {
		t.Errorf("cursor's description: want `next` as <code>, got %q", textOf(cursorRow))
	}
	if text := textOf(cursorRow); !strings.Contains(text, "at least 1 character") || strings.Contains(text, "1 characters") {
		t.Errorf("cursor's constraints: got %q, want at least 1 character", text)
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

func TestCount(t *testing.T) {
	tests := []struct {
		name string
		n    int
		want string
	}{
		{name: "zero", n: 0, want: "0 characters"},
		{name: "one", n: 1, want: "1 character"},
		{name: "many", n: 150, want: "150 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := count(tt.n, "character"); got != tt.want {
				t.Errorf("count(%d): got %q, want %q", tt.n, got, tt.want)
			}
		})
	}
}
