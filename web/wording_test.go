package web

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tierpix/tierpix/api/openapi"
)

// jargon is wording for the server's developers, not for someone using the API: the browsable
// API's headings, help texts and form hints (operation summaries and descriptions, request
// fields) say it in plain words. The docs page's tables of responses and headers may keep it.
var jargon = []string{
	"caller", "100-continue", "417", "magic bytes", "sha-256", "as absent as", "mint",
	"authenticat", "deduplicated", "rendered on demand", "variant", "normalisation",
}

func TestPlainWords(t *testing.T) {
	spec, err := openapi.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range spec.Operations {
		texts := map[string]string{"summary": op.Summary, "description": op.Description}
		if op.Body != nil {
			for _, f := range op.Body.Fields {
				texts["field "+f.Name] = f.Description
			}
		}
		for what, text := range texts {
			for _, word := range jargon {
				if strings.Contains(strings.ToLower(text), word) {
					t.Errorf("%s %s, %s: %q says %q", op.Method, op.Path, what, text, word)
				}
			}
		}
	}

	ts := browseServer(t, map[string]fakeAnswer{"GET /api/me": {status: 200, ctype: "application/json", body: `{"username":"alice"}`}})
	c, _ := ts.signedIn(t, "alice")
	r := ts.browse(t, c, "/api/me")
	r.wantStatus(t, http.StatusOK)
	if h := elements(r.doc, "h1"); len(h) != 1 || textOf(h[0]) != "Get your account" {
		t.Errorf("/api/me: want the heading Get your account")
	}
}
