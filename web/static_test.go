package web

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// TestFavicon checks that /favicon.ico, which browsers ask for unprompted, is an icon kept for
// a long time, and that every page links the icons.
func TestFavicon(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.client(t)
	r := ts.do(t, c, http.MethodGet, "/favicon.ico", nil, nil)
	r.wantStatus(t, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "image/x-icon" {
		t.Errorf("Content-Type: got %q, want image/x-icon", ct)
	}
	if !strings.HasPrefix(r.body, "\x00\x00\x01\x00") {
		t.Errorf("body: got % x..., want an ICO file", r.body[:min(8, len(r.body))])
	}
	if cc := r.header.Get("Cache-Control"); cc != faviconMaxAge {
		t.Errorf("Cache-Control: got %q, want %q", cc, faviconMaxAge)
	}
	etag := r.header.Get("ETag")
	head := ts.do(t, c, http.MethodHead, "/favicon.ico", nil, nil)
	head.wantStatus(t, http.StatusOK)
	if head.body != "" || head.header.Get("ETag") != etag {
		t.Errorf("HEAD: got %d bytes and ETag %q, want no body and %q", len(head.body), head.header.Get("ETag"), etag)
	}
	again := ts.do(t, c, http.MethodGet, "/favicon.ico", nil, http.Header{"If-None-Match": {etag}})
	again.wantStatus(t, http.StatusNotModified)

	page := ts.do(t, c, http.MethodGet, "/api/docs", nil, nil)
	icons := elements(page.doc, "link", "rel", "icon")
	if len(icons) != 2 {
		t.Fatalf("got %d <link rel=icon>, want 2 (ICO and SVG)", len(icons))
	}
	for _, l := range icons {
		r := ts.do(t, c, http.MethodGet, attr(l, "href"), nil, nil)
		r.wantStatus(t, http.StatusOK)
		if want := attr(l, "type"); want != "" && r.header.Get("Content-Type") != want {
			t.Errorf("%s: got Content-Type %q, want %q", attr(l, "href"), r.header.Get("Content-Type"), want)
		}
		if strings.HasSuffix(strings.Split(attr(l, "href"), "?")[0], ".svg") && !bytes.Contains([]byte(r.body), []byte("<svg")) {
			t.Errorf("%s: want an SVG", attr(l, "href"))
		}
	}
}
