package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/fasthttp/router"
	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/api"
	"github.com/tierpix/tierpix/problem"
	"github.com/tierpix/tierpix/store/storetest"
	"github.com/valyala/fasthttp"
	"golang.org/x/net/html"
)

// browserAccept is Firefox's Accept for a navigation.
const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

func TestWantsHTML(t *testing.T) {
	tests := []struct {
		name   string
		uri    string
		accept []string
		want   bool
	}{
		{name: "Chrome", accept: []string{"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"}, want: true},
		{name: "Firefox", accept: []string{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}, want: true},
		{name: "Firefox 65", accept: []string{"text/html,application/xhtml+xml,application/xml;q=0.9,image/webp,*/*;q=0.8"}, want: true},
		{name: "Safari", accept: []string{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}, want: true},
		{name: "curl", accept: []string{"*/*"}, want: false},
		{name: "no Accept", want: false},
		{name: "JSON", accept: []string{"application/json"}, want: false},
		{name: "problem JSON", accept: []string{"application/problem+json"}, want: false},
		{name: "HTML alone", accept: []string{"text/html"}, want: true},
		{name: "XHTML alone", accept: []string{"application/xhtml+xml"}, want: true},
		{name: "upper case", accept: []string{"TEXT/HTML"}, want: true},
		{name: "tie goes to JSON", accept: []string{"application/json, text/html"}, want: false},
		{name: "JSON preferred", accept: []string{"text/html;q=0.9, application/json"}, want: false},
		{name: "HTML preferred", accept: []string{"application/json;q=0.5, text/html"}, want: true},
		{name: "any type ranked above HTML", accept: []string{"text/html;q=0.5, */*"}, want: false},
		{name: "application/* ranked above HTML", accept: []string{"text/html;q=0.5, application/*"}, want: false},
		{name: "JSON refused, HTML fine", accept: []string{"application/json;q=0, */*"}, want: false},
		{name: "JSON refused, HTML named", accept: []string{"application/json;q=0, text/html"}, want: true},
		{name: "text/* is not explicit", accept: []string{"text/*"}, want: false},
		{name: "HTML refused", accept: []string{"text/html;q=0, */*;q=0.1"}, want: false},
		{name: "media type parameters", accept: []string{"text/html;level=1;q=0.9, */*;q=0.5"}, want: true},
		{name: "spaces", accept: []string{" text/html ; q=1.0 , */* ; q=0.8 "}, want: true},
		{name: "malformed q ignored", accept: []string{"text/html;q=x, */*;q=0.1"}, want: false},
		{name: "two headers", accept: []string{"text/html", "*/*;q=0.8"}, want: true},
		{name: "garbage", accept: []string{"nonsense, ,;;, /"}, want: false},
		{name: "format=json", uri: "/api/me?format=json", accept: []string{"text/html"}, want: false},
		{name: "another format", uri: "/api/me?format=api", accept: []string{"text/html"}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			ctx.Request.SetRequestURI(tt.uri)
			for _, a := range tt.accept {
				ctx.Request.Header.Add("Accept", a)
			}
			if got := WantsHTML(&ctx); got != tt.want {
				t.Errorf("Accept %q: got %v, want %v", tt.accept, got, tt.want)
			}
		})
	}
}

func TestPrettyJSON(t *testing.T) {
	bodies := []string{
		`{"b":1,"a":[1,2,{"c":null,"d":true}],"e":{},"f":[],"g":"x"}`,
		`[]`,
		`"just a string"`,
		`{"results":[{"id":"abc","links":{"thumbnails":[{"height":200,"url":"http://h/i/x"}]}}],"next":null}`,
		`{"n": -1.5e3, "s": "<b>&amp;</b>"}`,
	}
	for _, body := range bodies {
		segs, ok := prettyJSON([]byte(body), func(string) bool { return false })
		if !ok {
			t.Fatalf("prettyJSON(%s): not ok", body)
		}
		var got strings.Builder
		for _, s := range segs {
			got.WriteString(s.Text)
		}
		var want bytes.Buffer
		if err := json.Indent(&want, []byte(body), "", "  "); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("prettyJSON(%s):\ngot  %s\nwant %s", body, got.String(), want.String())
		}
	}
	for _, bad := range []string{``, `{`, `{"a":1} {"b":2}`, `not json`, `{"a":}`} {
		if _, ok := prettyJSON([]byte(bad), func(string) bool { return false }); ok {
			t.Errorf("prettyJSON(%q): got ok, want not ok", bad)
		}
	}
}

// fakeAnswer is what a stand-in API handler writes before it calls RenderAPI.
type fakeAnswer struct {
	status  int
	ctype   string
	body    string
	headers map[string]string
	page    api.Page // the typed values the API hands the page with that body
}

// browseServer is a test server whose /api routes are stand-ins for the api package's
// handlers: each writes a canned JSON answer as the API would and calls RenderAPI with its
// route template. answers maps a concrete "METHOD path" to its answer; anything else is 404.
func browseServer(t *testing.T, answers map[string]fakeAnswer) *testServer {
	t.Helper()
	return newTestServerRoutes(t, storetest.SQLite(t), Config{}, func(r *router.Router, w *Web) {
		handler := func(route string) fasthttp.RequestHandler {
			return func(ctx *fasthttp.RequestCtx) {
				key := effectiveMethod(ctx) + " " + string(ctx.Path())
				a, ok := answers[key]
				if !ok {
					a = fakeAnswer{status: 404, ctype: "application/problem+json", body: `{"type":"about:blank","title":"Not Found","status":404,"detail":"No such thing."}`,
						page: api.Page{Problem: &problem.Details{Title: "Not Found", Status: 404, Detail: "No such thing."}}}
				}
				ctx.SetStatusCode(a.status)
				for k, v := range a.headers {
					ctx.Response.Header.Set(k, v)
				}
				if a.body != "" {
					ctx.SetContentType(a.ctype)
					ctx.SetBodyString(a.body)
				}
				ctx.Response.Header.Set("Cache-Control", "no-store")
				ctx.Response.Header.Set("ETag", `"json"`)
				if WantsHTML(ctx) {
					p := a.page
					p.Route = route
					w.RenderAPI(ctx, p)
				}
			}
		}
		for _, route := range []string{"/api/images", "/api/images/{id}", "/api/me", "/api/admin/tiers/{name}", "/api/admin/users/{username}", "/api/admin/tiers", "/api/images/{id}/expiring-links", "/api/admin/users"} {
			r.GET(route, handler(route))
			r.POST(route, handler(route))
		}
	})
}

// browse GETs path as a browser would.
func (ts *testServer) browse(t *testing.T, c *http.Client, path string) reply {
	t.Helper()
	return ts.do(t, c, http.MethodGet, path, nil, http.Header{"Accept": {browserAccept}})
}

// formsByAction returns the page's operation forms by their action: not the sign-out form,
// the raw data forms (which share their operation's action) or the filter form.
func formsByAction(doc *html.Node) map[string]*html.Node {
	forms := map[string]*html.Node{}
	for _, f := range elements(doc, "form") {
		a, id := attr(f, "action"), attr(f, "id")
		if a != "/logout" && !strings.HasSuffix(id, "-raw") && id != "filters" {
			forms[a] = f
		}
	}
	return forms
}

func imageJSON(base, id, name string) string {
	b, _ := json.Marshal(map[string]any{
		"id": id, "name": name, "content_type": "image/png", "width": 800, "height": 600, "size_bytes": 1234,
		"created_at": "2030-01-02T03:04:05Z",
		"links": map[string]any{
			"thumbnails": []map[string]any{
				{"height": 200, "url": base + "/i/sig200/" + id + "/h200", "webp_url": base + "/i/sigw200/" + id + "/h200.webp"},
				{"height": 400, "url": base + "/i/sig400/" + id + "/h400", "webp_url": base + "/i/sigw400/" + id + "/h400.webp"},
			},
			"original": base + "/i/sigo/" + id + "/original",
		},
	})
	return string(b)
}

// imagePage is the typed image of imageJSON's answer.
func imagePage(base, id, name string) api.PageImage {
	return api.PageImage{ID: id, Name: name, Thumbs: []api.PageThumb{
		{URL: base + "/i/sig200/" + id + "/h200", WebPURL: base + "/i/sigw200/" + id + "/h200.webp", Height: 200},
		{URL: base + "/i/sig400/" + id + "/h400", WebPURL: base + "/i/sigw400/" + id + "/h400.webp", Height: 400},
	}}
}

func TestRenderAPI(t *testing.T) {
	answers := map[string]fakeAnswer{}
	ts := browseServer(t, answers)
	base := ts.url
	evil := `<script>alert(1)</script>.png`
	next := base + "/api/images?cursor=abc&limit=2"
	answers["GET /api/images"] = fakeAnswer{status: 200, ctype: "application/json",
		body: `{"results":[` + imageJSON(base, "img1", evil) + `,` + imageJSON(base, "img2", "cat.jpg") + `],"next":"` + next + `"}`,
		page: api.Page{InList: true, Images: []api.PageImage{imagePage(base, "img1", evil), imagePage(base, "img2", "cat.jpg")}, Next: next}}
	answers["GET /api/images/img1"] = fakeAnswer{status: 200, ctype: "application/json", body: imageJSON(base, "img1", "cat.png"),
		page: api.Page{Images: []api.PageImage{imagePage(base, "img1", "cat.png")}}}
	answers["GET /api/images/img4"] = fakeAnswer{status: 200, ctype: "application/json", body: imageJSON(base, "img4", "dog.png"),
		page: api.Page{Images: []api.PageImage{{ID: "img4", Name: "dog.png", Thumbs: []api.PageThumb{
			{URL: base + "/i/sig200/img4/h200", WebPURL: "https://elsewhere.example/i/sigw200/img4/h200.webp", Height: 200},
			{URL: base + "/i/sig400/img4/h400", Height: 400},
		}}}}}
	answers["POST /api/images"] = fakeAnswer{status: 201, ctype: "application/json", body: imageJSON(base, "img3", "new.png"),
		headers: map[string]string{"Location": base + "/api/images/img3"},
		page:    api.Page{Images: []api.PageImage{imagePage(base, "img3", "new.png")}}}
	answers["DELETE /api/images/img1"] = fakeAnswer{status: 204}
	answers["GET /api/me"] = fakeAnswer{status: 401, ctype: "application/problem+json",
		body:    `{"type":"about:blank","title":"Unauthorized","status":401,"detail":"Authentication is required."}`,
		headers: map[string]string{"WWW-Authenticate": `Bearer realm="tierpix"`},
		page:    api.Page{Problem: &problem.Details{Title: "Unauthorized", Status: 401, Detail: "Authentication is required."}}}
	answers["GET /api/admin/tiers/Gold"] = fakeAnswer{status: 200, ctype: "application/json",
		body: `{"name":"Gold","thumbnail_heights":[200,400],"original_link":true,"expiring_links":false,"builtin":false}`,
		page: api.Page{Values: map[string]string{"name": "Gold", "thumbnail_heights": "200, 400", "original_link": "true", "expiring_links": "false"}}}
	answers["POST /api/admin/tiers"] = fakeAnswer{status: 400, ctype: "application/problem+json",
		body: `{"type":"about:blank","title":"Bad Request","status":400,"detail":"The tier is not valid.","errors":{"thumbnail_heights":"each height must be between 1 and 10000","name":"<b>bad</b>"}}`,
		page: api.Page{Problem: &problem.Details{Title: "Bad Request", Status: 400, Detail: "The tier is not valid.",
			Errors: map[string]string{"thumbnail_heights": "each height must be between 1 and 10000", "name": "<b>bad</b>"}}}}
	answers["GET /api/admin/tiers"] = fakeAnswer{status: 200, ctype: "application/json",
		body: `{"results":[{"name":"Basic"},{"name":"Gold & Co"}],"next":null}`,
		page: api.Page{InList: true, Keys: []string{"Basic", "Gold & Co"}}}
	answers["GET /api/admin/users"] = fakeAnswer{status: 200, ctype: "application/json",
		body: `{"count":1,"count_capped":false,"first":"` + base + `/api/admin/users","previous":"` + base + `/api/admin/users?cursor=p","next":null,"results":[{"username":"alice"}]}`,
		page: api.Page{InList: true, Keys: []string{"alice"}, First: base + "/api/admin/users", Prev: base + "/api/admin/users?cursor=p"}}
	answers["GET /api/admin/users/alice"] = fakeAnswer{status: 200, ctype: "application/json",
		body: `{"username":"alice","tier":"Basic","is_admin":false}`,
		page: api.Page{Values: map[string]string{"username": "alice", "tier": "Basic", "is_admin": "false"}}}

	alice, aliceCSRF := ts.signedIn(t, "alice")
	admin, adminCSRF := ts.signedIn(t, "admin")
	ts.createUser(t, "erin", "Enterprise", false)
	erin, erinCSRF := ts.signedIn(t, "erin")
	anon := ts.client(t)

	t.Run("JSON clients get the JSON", func(t *testing.T) {
		for _, accept := range []string{"", "*/*", "application/json"} {
			r := ts.do(t, alice, http.MethodGet, "/api/images", nil, http.Header{"Accept": {accept}})
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Accept %q: Content-Type %q, want application/json", accept, ct)
			}
		}
	})

	t.Run("list", func(t *testing.T) {
		r := ts.browse(t, alice, "/api/images")
		r.wantStatus(t, http.StatusOK)
		wantPageHeaders(t, r.header)
		if v := r.header.Get("Vary"); !strings.Contains(v, "Accept") {
			t.Errorf("Vary: got %q, want Accept in it", v)
		}
		if r.header.Get("ETag") != "" {
			t.Errorf("ETag: got %q, want none on the page", r.header.Get("ETag"))
		}
		if strings.Contains(r.body, "<script>") || len(elements(r.doc, "script")) != 0 {
			t.Fatalf("the image name reached the page unescaped")
		}
		if !strings.Contains(r.body, "&lt;script&gt;alert(1)&lt;/script&gt;.png") {
			t.Errorf("body: want the name shown escaped")
		}
		pre := findAll(r.doc, func(n *html.Node) bool { return n.Data == "pre" && strings.Contains(attr(n, "class"), "json") })
		if len(pre) != 1 {
			t.Fatalf("got %d pre.json, want 1", len(pre))
		}
		if !strings.Contains(textOf(pre[0]), `"name": "<script>alert(1)</script>.png"`) {
			t.Errorf("JSON text: want the name as the API sent it, got %s", textOf(pre[0]))
		}
		var linked []string
		for _, a := range elements(pre[0], "a") {
			linked = append(linked, attr(a, "href"))
		}
		for _, want := range []string{base + "/i/sig200/img1/h200", base + "/i/sigo/img2/original", next} {
			if !slices.Contains(linked, want) {
				t.Errorf("links in the JSON: %q lacks %q", linked, want)
			}
		}

		imgs := elements(r.doc, "img")
		if len(imgs) != 4 {
			t.Fatalf("got %d images, want 4 (two thumbnails of two images)", len(imgs))
		}
		wantImg := map[string]string{
			base + "/i/sig200/img1/h200": evil + " at 200 px",
			base + "/i/sig400/img1/h400": evil + " at 400 px",
			base + "/i/sig200/img2/h200": "cat.jpg at 200 px",
			base + "/i/sig400/img2/h400": "cat.jpg at 400 px",
		}
		for _, img := range imgs {
			src := attr(img, "src")
			if alt, ok := wantImg[src]; !ok || attr(img, "alt") != alt {
				t.Errorf("img src %q alt %q: want one of %v", src, attr(img, "alt"), wantImg)
			}
			if attr(img, "loading") != "lazy" {
				t.Errorf("img %q: want loading=lazy", src)
			}
			if want := strings.TrimPrefix(src[strings.LastIndex(src, "/"):], "/h"); attr(img, "height") != want {
				t.Errorf("img %q: got height %q, want %s, its own", src, attr(img, "height"), want)
			}
			// A <picture>: its one <source> the WebP link, the <img> the negotiated one as the
			// fallback, the whole inside the link to the negotiated one.
			pic := img.Parent
			if pic.Data != "picture" {
				t.Errorf("img %q: got it inside <%s>, want a <picture>", src, pic.Data)
				continue
			}
			if img.NextSibling != nil {
				t.Errorf("img %q: want it last in its <picture>, after the sources", src)
			}
			sources := elements(pic, "source")
			wantWebP := strings.Replace(strings.Replace(src, "/sig", "/sigw", 1), "/h"+attr(img, "height"), "/h"+attr(img, "height")+".webp", 1)
			if len(sources) != 1 || attr(sources[0], "type") != "image/webp" || attr(sources[0], "srcset") != wantWebP {
				t.Errorf("img %q: got %d sources, want one of type image/webp with srcset %q", src, len(sources), wantWebP)
			}
			if p := pic.Parent; p.Data != "a" || attr(p, "href") != src || attr(p, "class") != "thumb" {
				t.Errorf("img %q: want its <picture> inside <a class=thumb href=%q>", src, src)
			}
		}
		if n := len(elements(r.doc, "picture")); n != 4 {
			t.Errorf("got %d pictures, want 4", n)
		}
		if a := elements(r.doc, "a", "href", "/api/images/img2"); len(a) != 1 {
			t.Errorf("got %d links to the second image's page, want 1", len(a))
		}

		nexts := elements(r.doc, "a", "rel", "next")
		if len(nexts) != 1 || attr(nexts[0], "href") != next || textOf(nexts[0]) != "Next page" {
			t.Fatalf("rel=next links: got %d, want one to %q saying Next page", len(nexts), next)
		}

		forms := formsByAction(r.doc)
		upload := forms["/api/images"]
		if upload == nil || len(forms) != 1 {
			t.Fatalf("forms: got actions %v, want only /api/images", keys(forms))
		}
		if attr(upload, "method") != "post" || attr(upload, "enctype") != "multipart/form-data" {
			t.Errorf("upload form: method %q enctype %q, want post multipart/form-data", attr(upload, "method"), attr(upload, "enctype"))
		}
		inputs := elements(upload, "input")
		if len(inputs) < 2 || attr(inputs[0], "name") != "csrf_token" || attr(inputs[0], "value") != aliceCSRF || attr(inputs[0], "type") != "hidden" {
			t.Errorf("upload form: want the session's csrf_token as its first input")
		}
		file := elements(upload, "input", "type", "file")
		if len(file) != 1 || attr(file[0], "name") != "image" || attr(file[0], "accept") != "image/png,image/jpeg" {
			t.Fatalf("upload form: want one file input named image accepting PNG and JPEG")
		}
		if _, ok := attrOf(file[0], "required"); !ok {
			t.Errorf("file input: want required")
		}
		if l := elements(upload, "label", "for", attr(file[0], "id")); len(l) != 1 {
			t.Errorf("file input: got %d labels for it, want 1", len(l))
		}
		if a := elements(r.doc, "a", "href", "/admin"); len(a) != 0 {
			t.Errorf("alice's page links to /admin")
		}
	})

	t.Run("thumbnail without a WebP link of this site", func(t *testing.T) {
		r := ts.browse(t, alice, "/api/images/img4")
		r.wantStatus(t, http.StatusOK)
		imgs := elements(r.doc, "img")
		if len(imgs) != 2 {
			t.Fatalf("got %d images, want 2", len(imgs))
		}
		if n := len(elements(r.doc, "source")); n != 0 {
			t.Errorf("got %d sources, want none: one WebP link is another site's, the other missing", n)
		}
		if strings.Contains(r.body, `srcset="https://elsewhere.example`) {
			t.Errorf("the page offers another site's WebP link")
		}
	})

	t.Run("image page of a tier without expiring links", func(t *testing.T) {
		r := ts.browse(t, alice, "/api/images/img1")
		r.wantStatus(t, http.StatusOK)
		if forms := formsByAction(r.doc); len(forms) != 1 || forms["/api/images/img1?_method=DELETE"] == nil {
			t.Errorf("forms: got %v, want only the delete: alice's Basic tier has no expiring links", keys(forms))
		}
	})

	t.Run("image page", func(t *testing.T) {
		r := ts.browse(t, erin, "/api/images/img1")
		r.wantStatus(t, http.StatusOK)
		if got := textOf(elements(r.doc, "h1")[0]); got != "Get one of your images" {
			t.Errorf("h1: got %q, want the operation's summary", got)
		}
		forms := formsByAction(r.doc)
		if len(forms) != 2 {
			t.Errorf("forms: got %v, want the expiring link and the delete", keys(forms))
		}
		links := forms["/api/images/img1/expiring-links"]
		if links == nil {
			t.Fatalf("forms: got %v, want /api/images/img1/expiring-links", keys(forms))
		}
		if attr(links, "enctype") != "" {
			t.Errorf("expiring-link form: enctype %q, want the urlencoded default", attr(links, "enctype"))
		}
		exp := elements(links, "input", "name", "expires_in")
		if len(exp) != 1 || attr(exp[0], "type") != "number" || attr(exp[0], "min") != "300" || attr(exp[0], "max") != "30000" {
			t.Fatalf("expires_in: want a number input from 300 to 30000")
		}
		if _, ok := attrOf(exp[0], "required"); !ok {
			t.Errorf("expires_in: want required")
		}
		// The height is a choice of what the tier grants, the original first.
		height := elements(links, "select", "name", "height")
		if len(height) != 1 {
			t.Fatalf("height: want a select")
		}
		var opts []string
		for _, o := range elements(height[0], "option") {
			opts = append(opts, attr(o, "value"))
		}
		if !slices.Equal(opts, []string{"", "200", "400"}) {
			t.Errorf("height options: got %q, want the original, 200 and 400", opts)
		}
		// The format: left out (negotiated) unless WebP is chosen.
		format := elements(links, "select", "name", "format")
		if len(format) != 1 {
			t.Fatalf("format: want a select")
		}
		opts = opts[:0]
		for _, o := range elements(format[0], "option") {
			opts = append(opts, attr(o, "value"))
		}
		if !slices.Equal(opts, []string{"", "webp"}) {
			t.Errorf("format options: got %q, want none and webp", opts)
		}
		if _, ok := attrOf(format[0], "required"); ok {
			t.Errorf("format: got required, want it optional")
		}
		if formCSRF(t, r.doc, "/api/images/img1/expiring-links") != erinCSRF {
			t.Errorf("expiring-link form: want the session's token")
		}
		del := forms["/api/images/img1?_method=DELETE"]
		if del == nil {
			t.Fatalf("forms: got %v, want /api/images/img1?_method=DELETE", keys(forms))
		}
		buttons := elements(del, "button")
		if len(buttons) != 1 || textOf(buttons[0]) != "Delete" || !strings.Contains(attr(buttons[0], "class"), "danger") {
			t.Errorf("delete form: want a single danger button saying Delete")
		}
		// Behind a confirmation: the form sits in a closed <details>, and a required box must
		// be ticked before the browser sends it.
		confirm := elements(del, "input", "name", "confirm")
		if len(confirm) != 1 || attr(confirm[0], "type") != "checkbox" {
			t.Fatalf("delete form: want a confirmation checkbox")
		}
		if _, ok := attrOf(confirm[0], "required"); !ok {
			t.Errorf("delete confirmation: want it required")
		}
		if d := del.Parent; d == nil || d.Data != "details" {
			t.Errorf("delete form: want it inside a <details>")
		}
	})

	t.Run("created", func(t *testing.T) {
		r := ts.do(t, alice, http.MethodPost, "/api/images", nil, http.Header{"Accept": {browserAccept}})
		r.wantStatus(t, http.StatusCreated)
		if got := r.header.Get("Location"); got != base+"/api/images/img3" {
			t.Errorf("Location: got %q, want the API's", got)
		}
		if !strings.Contains(r.body, "HTTP 201 Created") {
			t.Errorf("body: want the status line")
		}
	})

	t.Run("deleted", func(t *testing.T) {
		r := ts.do(t, alice, http.MethodPost, "/api/images/img1?_method=DELETE", nil, http.Header{"Accept": {browserAccept}})
		// A browser is sent on to the collection: answered 204, it would stay on the page of
		// what it deleted.
		r.wantStatus(t, http.StatusSeeOther)
		wantPageHeaders(t, r.header)
		if got := r.header.Get("Location"); got != "/api/images" {
			t.Errorf("Location: got %q, want /api/images", got)
		}
		// The collection says what happened, once.
		if list := ts.browse(t, alice, "/api/images"); !strings.Contains(list.body, `<p class="flash" role="status">Delete one of your images — done.</p>`) {
			t.Errorf("the list after the delete: want its notice")
		}
		if again := ts.browse(t, alice, "/api/images"); strings.Contains(again.body, "— done.") {
			t.Errorf("the list reloaded: the notice shows again")
		}
	})

	t.Run("raw data form", func(t *testing.T) {
		r := ts.browse(t, admin, "/api/admin/tiers/Gold")
		raw := elements(r.doc, "form", "id", "form-updateTier-raw")
		if len(raw) != 1 || attr(raw[0], "action") != "/api/admin/tiers/Gold?_method=PATCH" {
			t.Fatalf("want a raw data form posting the PATCH")
		}
		ct := elements(raw[0], "input", "name", "_content_type")
		if len(ct) != 1 || attr(ct[0], "value") != "application/json" {
			t.Errorf("raw data form: want _content_type application/json")
		}
		area := elements(raw[0], "textarea", "name", "_content")
		if len(area) != 1 {
			t.Fatalf("raw data form: want a _content textarea")
		}
		var body map[string]any
		if err := json.Unmarshal([]byte(textOf(area[0])), &body); err != nil || body["original_link"] != true || fmt.Sprint(body["thumbnail_heights"]) != "[200 400]" {
			t.Errorf("raw data form: got %q (%v), want the tier's current values as JSON", textOf(area[0]), err)
		}
	})

	t.Run("refused post keeps the input", func(t *testing.T) {
		form := url.Values{"csrf_token": {adminCSRF}, "name": {"Platinum"}, "thumbnail_heights": {"0"}}
		r := ts.do(t, admin, http.MethodPost, "/api/admin/tiers", strings.NewReader(form.Encode()),
			http.Header{"Accept": {browserAccept}, "Content-Type": {"application/x-www-form-urlencoded"}})
		r.wantStatus(t, http.StatusBadRequest)
		create := formsByAction(r.doc)["/api/admin/tiers"]
		if create == nil {
			t.Fatal("the create form is gone after the refusal")
		}
		name := elements(create, "input", "name", "name")
		if len(name) != 1 || attr(name[0], "value") != "Platinum" {
			t.Errorf("name: want what was typed, Platinum")
		}
		errs := findAll(create, func(n *html.Node) bool { return strings.Contains(attr(n, "class"), "field-error") })
		if len(errs) != 2 || !strings.Contains(r.body, "each height must be between 1 and 10000") {
			t.Errorf("field errors: got %d at the fields, want 2", len(errs))
		}
		// Each message shows once: at its field, not again in the problem's list.
		for _, li := range findAll(r.doc, func(n *html.Node) bool { return strings.Contains(attr(n, "class"), "problem-errors") }) {
			if strings.Contains(textOf(li), "each height") {
				t.Errorf("the height's error shows in the problem's list too")
			}
		}
	})

	t.Run("filters and pages", func(t *testing.T) {
		r := ts.browse(t, admin, "/api/admin/users?tier=Gold&is_admin=true&cursor=abc")
		r.wantStatus(t, http.StatusOK)
		filters := elements(r.doc, "form", "id", "filters")
		if len(filters) != 1 || attr(filters[0], "method") != "get" {
			t.Fatalf("want a GET filter form")
		}
		tier := elements(filters[0], "input", "name", "tier")
		if len(tier) != 1 || attr(tier[0], "value") != "Gold" {
			t.Errorf("tier filter: want Gold, as asked")
		}
		if sel := elements(filters[0], "select", "name", "is_admin"); len(sel) != 1 || attr(elements(sel[0], "option", "selected", "")[0], "value") != "true" {
			t.Errorf("is_admin filter: want true selected")
		}
		for _, name := range []string{"limit", "cursor"} {
			if len(elements(filters[0], "input", "name", name)) != 0 {
				t.Errorf("the filter form has the page's own %s", name)
			}
		}
		for rel, want := range map[string]string{"first": base + "/api/admin/users", "prev": base + "/api/admin/users?cursor=p"} {
			if a := elements(r.doc, "a", "rel", rel); len(a) != 1 || attr(a[0], "href") != want {
				t.Errorf("%s link: want %q", rel, want)
			}
		}
	})

	t.Run("unauthorized", func(t *testing.T) {
		r := ts.browse(t, anon, "/api/me")
		r.wantStatus(t, http.StatusUnauthorized)
		wantPageHeaders(t, r.header)
		if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="tierpix"` {
			t.Errorf("WWW-Authenticate: got %q, want the API's", got)
		}
		signIn := findAll(r.doc, func(n *html.Node) bool {
			return n.Data == "a" && strings.EqualFold(attr(n, "href"), "/login?next=%2Fapi%2Fme") && textOf(n) == "Sign in"
		})
		if len(signIn) == 0 {
			t.Errorf("want a Sign in link to /login?next=/api/me")
		}
		if !strings.Contains(r.body, "Authentication is required.") {
			t.Errorf("body: want the problem's detail")
		}
	})

	t.Run("problem with field errors", func(t *testing.T) {
		r := ts.do(t, admin, http.MethodPost, "/api/admin/tiers", nil, http.Header{"Accept": {browserAccept}})
		r.wantStatus(t, http.StatusBadRequest)
		probs := findAll(r.doc, func(n *html.Node) bool { return strings.Contains(attr(n, "class"), "problem") && n.Data == "div" })
		if len(probs) != 1 {
			t.Fatalf("got %d problem boxes, want 1", len(probs))
		}
		text := textOf(probs[0])
		for _, want := range []string{"Bad Request", "The tier is not valid.", "thumbnail_heights each height must be between 1 and 10000", "name <b>bad</b>"} {
			if !strings.Contains(text, want) {
				t.Errorf("problem box %q: want %q", text, want)
			}
		}
		if len(elements(r.doc, "b")) != 0 {
			t.Errorf("a field message became markup")
		}
		// The create form comes back so the admin can try again.
		if _, ok := formsByAction(r.doc)["/api/admin/tiers"]; !ok {
			t.Errorf("forms: want the create form again")
		}
	})

	t.Run("admin tier page", func(t *testing.T) {
		r := ts.browse(t, admin, "/api/admin/tiers/Gold")
		r.wantStatus(t, http.StatusOK)
		forms := formsByAction(r.doc)
		patch := forms["/api/admin/tiers/Gold?_method=PATCH"]
		del := forms["/api/admin/tiers/Gold?_method=DELETE"]
		if patch == nil || del == nil || len(forms) != 2 {
			t.Fatalf("forms: got %v, want PATCH and DELETE of /api/admin/tiers/Gold", keys(forms))
		}
		if formCSRF(t, r.doc, "/api/admin/tiers/Gold?_method=PATCH") != adminCSRF {
			t.Errorf("PATCH form: want the admin session's token")
		}
		for _, el := range append(elements(patch, "input"), elements(patch, "select")...) {
			if _, ok := attrOf(el, "required"); ok {
				t.Errorf("PATCH form field %q is required; nothing is on PATCH", attr(el, "name"))
			}
		}
		sel := elements(patch, "select", "name", "original_link")
		if len(sel) != 1 {
			t.Fatalf("PATCH form: want a select for original_link")
		}
		var opts []string
		for _, o := range elements(sel[0], "option") {
			opts = append(opts, attr(o, "value"))
		}
		if !slices.Equal(opts, []string{"", "true", "false"}) {
			t.Errorf("original_link options: got %q, want \"\", true, false", opts)
		}
		// The current values fill the form.
		if sel := elements(sel[0], "option", "selected", ""); len(sel) != 1 || attr(sel[0], "value") != "true" {
			t.Errorf("original_link: want true selected, as the tier is")
		}
		if sel := elements(patch, "select", "name", "expiring_links"); len(sel) != 1 || len(elements(sel[0], "option", "selected", "")) != 1 || attr(elements(sel[0], "option", "selected", "")[0], "value") != "false" {
			t.Errorf("expiring_links: want false selected, as the tier is")
		}
		heights := elements(patch, "input", "name", "thumbnail_heights")
		if len(heights) != 1 || attr(heights[0], "type") != "text" || attr(heights[0], "value") != "200, 400" {
			t.Fatalf("thumbnail_heights: want a text input holding 200, 400")
		}
		if id := attr(heights[0], "id"); len(elements(patch, "label", "for", id)) != 1 {
			t.Errorf("thumbnail_heights: want a label for it")
		}
		if hint := attr(heights[0], "aria-describedby"); hint == "" || !strings.Contains(textOf(findAll(r.doc, func(n *html.Node) bool { return attr(n, "id") == hint })[0]), "Comma-separated") {
			t.Errorf("thumbnail_heights: want a comma-separated hint it is described by")
		}
		if a := elements(r.doc, "a", "href", "/admin"); len(a) == 0 {
			t.Errorf("an admin's page does not link to /admin")
		}
	})

	t.Run("admin forms hidden from users", func(t *testing.T) {
		r := ts.browse(t, alice, "/api/admin/tiers/Gold")
		if forms := formsByAction(r.doc); len(forms) != 0 {
			t.Errorf("alice sees forms %v, want none", keys(forms))
		}
	})

	t.Run("admin user page", func(t *testing.T) {
		r := ts.browse(t, admin, "/api/admin/users/alice")
		forms := formsByAction(r.doc)
		for _, want := range []string{"/api/admin/users/alice?_method=PATCH", "/api/admin/users/alice?_method=DELETE", "/api/admin/users/alice/sessions?_method=DELETE"} {
			if _, ok := forms[want]; !ok {
				t.Errorf("forms: got %v, want %q", keys(forms), want)
			}
		}
		pw := elements(forms["/api/admin/users/alice?_method=PATCH"], "input", "name", "password")
		if len(pw) != 1 || attr(pw[0], "type") != "password" || attr(pw[0], "value") != "" {
			t.Errorf("password: want an empty password input")
		}
	})

	t.Run("admin list links its items", func(t *testing.T) {
		r := ts.browse(t, admin, "/api/admin/tiers")
		for _, href := range []string{"/api/admin/tiers/Basic", "/api/admin/tiers/Gold%20&%20Co"} {
			if len(elements(r.doc, "a", "href", href)) != 1 {
				t.Errorf("want a link to %q", href)
			}
		}
	})

	t.Run("no forms without a session", func(t *testing.T) {
		for _, path := range []string{"/api/images", "/api/images/img1"} {
			r := ts.browse(t, anon, path)
			if n := len(elements(r.doc, "form")); n != 0 {
				t.Errorf("%s: got %d forms, want none", path, n)
			}
			if len(elements(r.doc, "input", "name", "csrf_token")) != 0 {
				t.Errorf("%s: a CSRF field without a session", path)
			}
			if !strings.Contains(textOf(r.doc), "Sign in to use the forms") {
				t.Errorf("%s: want the sign-in hint", path)
			}
		}
	})

	t.Run("Bearer client gets no forms", func(t *testing.T) {
		r := ts.do(t, anon, http.MethodGet, "/api/images", nil, http.Header{"Accept": {browserAccept}, "Authorization": {"Bearer tpx_x"}})
		if n := len(elements(r.doc, "form")); n != 0 {
			t.Errorf("got %d forms, want none", n)
		}
	})

	t.Run("not found keeps its status", func(t *testing.T) {
		r := ts.browse(t, alice, "/api/images/missing")
		r.wantStatus(t, http.StatusNotFound)
		wantPageHeaders(t, r.header)
		if forms := formsByAction(r.doc); len(forms) != 0 {
			t.Errorf("a 404 page offers forms %v", keys(forms))
		}
	})
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestSecurityHeadersOnEveryPage(t *testing.T) {
	ts := browseServer(t, map[string]fakeAnswer{"GET /api/me": {status: 200, ctype: "application/json", body: `{"username":"alice"}`}})
	c, _ := ts.signedIn(t, "alice")
	tests := []struct {
		name, method, path string
		status             int
	}{
		{name: "sign-in form", method: http.MethodGet, path: "/login", status: 303},
		{name: "sign-in refused", method: http.MethodPost, path: "/login", status: 403},
		{name: "root", method: http.MethodGet, path: "/", status: 303},
		{name: "docs", method: http.MethodGet, path: "/api/docs", status: 200},
		{name: "browsable API", method: http.MethodGet, path: "/api/me", status: 200},
		{name: "unknown static file", method: http.MethodGet, path: "/static/nope.css", status: 404},
		{name: "sign-out refused", method: http.MethodPost, path: "/logout", status: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(t, c, tt.method, tt.path, nil, http.Header{"Accept": {browserAccept}})
			r.wantStatus(t, tt.status)
			wantPageHeaders(t, r.header)
			if tt.method == http.MethodGet && tt.status < 300 {
				// And without a session.
				r := ts.do(t, ts.client(t), tt.method, tt.path, nil, http.Header{"Accept": {browserAccept}})
				wantPageHeaders(t, r.header)
			}
		})
	}
	t.Run("sign-in form, signed out", func(t *testing.T) {
		r := ts.do(t, ts.client(t), http.MethodGet, "/login", nil, nil)
		r.wantStatus(t, http.StatusOK)
		wantPageHeaders(t, r.header)
	})
}

func TestStatic(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.client(t)
	page := ts.do(t, c, http.MethodGet, "/login", nil, nil)
	links := elements(page.doc, "link", "rel", "stylesheet")
	if len(links) != 1 || !strings.HasPrefix(attr(links[0], "href"), "/static/style.css?v=") {
		t.Fatalf("stylesheet links: want one to /static/style.css?v=<hash>")
	}
	href := attr(links[0], "href")

	r := ts.do(t, c, http.MethodGet, href, nil, nil)
	r.wantStatus(t, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "text/css; charset=utf-8" {
		t.Errorf("Content-Type: got %q, want text/css; charset=utf-8", ct)
	}
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "max-age=31536000") {
		t.Errorf("Cache-Control: got %q, want a year", cc)
	}
	if r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("X-Content-Type-Options: want nosniff")
	}
	etag := r.header.Get("ETag")
	if len(etag) < 10 || etag[0] != '"' {
		t.Fatalf("ETag: got %q, want a strong validator", etag)
	}
	for _, class := range []string{".field-error", ".button.danger", "table.list", ".pagination", ".thumb", ".token", ".flash", ".muted", ".inline", ":focus-visible", ".skip", "@media"} {
		if !strings.Contains(r.body, class) {
			t.Errorf("stylesheet: want %s in it", class)
		}
	}

	tests := []struct {
		name, inm string
		status    int
	}{
		{name: "same tag", inm: etag, status: 304},
		{name: "weak form", inm: "W/" + etag, status: 304},
		{name: "in a list", inm: `"other", ` + etag, status: 304},
		{name: "star", inm: "*", status: 304},
		{name: "other tag", inm: `"other"`, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(t, c, http.MethodGet, "/static/style.css", nil, http.Header{"If-None-Match": {tt.inm}})
			r.wantStatus(t, tt.status)
			if tt.status == 304 && r.body != "" {
				t.Errorf("304 with a body of %d bytes", len(r.body))
			}
			if r.header.Get("ETag") != etag {
				t.Errorf("ETag: got %q, want %q", r.header.Get("ETag"), etag)
			}
		})
	}

	r = ts.do(t, c, http.MethodGet, "/static/nope.css", nil, nil)
	r.wantStatus(t, http.StatusNotFound)
	r = ts.do(t, c, http.MethodGet, "/static/"+url.PathEscape("../web.go"), nil, nil)
	if r.status == http.StatusOK {
		t.Errorf("a path outside static/ was served")
	}
}

// TestPagesAreAccessible checks what every page shares: a language, a viewport, a skip link
// to the main landmark, and a label for every visible input.
func TestPagesAreAccessible(t *testing.T) {
	ts := browseServer(t, map[string]fakeAnswer{
		"GET /api/admin/tiers/Gold": {status: 200, ctype: "application/json", body: `{"name":"Gold"}`},
		"GET /api/images":           {status: 200, ctype: "application/json", body: `{"results":[],"next":null}`},
		"GET /api/admin/users/bob":  {status: 200, ctype: "application/json", body: `{"username":"bob"}`},
	})
	c, _ := ts.signedIn(t, "admin")
	for _, path := range []string{"/login", "/api/docs", "/api/images", "/api/admin/tiers/Gold", "/api/admin/users/bob"} {
		t.Run(path, func(t *testing.T) {
			client := c
			if path == "/login" {
				client = ts.client(t)
			}
			r := ts.browse(t, client, path)
			if h := elements(r.doc, "html", "lang", "en"); len(h) != 1 {
				t.Errorf("want <html lang=en>")
			}
			if m := elements(r.doc, "meta", "name", "viewport"); len(m) != 1 {
				t.Errorf("want a viewport meta")
			}
			if s := elements(r.doc, "a", "href", "#main"); len(s) != 1 {
				t.Errorf("want a skip link to #main")
			}
			if m := elements(r.doc, "main", "id", "main"); len(m) != 1 {
				t.Errorf("want <main id=main>")
			}
			for _, in := range append(elements(r.doc, "input"), elements(r.doc, "select")...) {
				if attr(in, "type") == "hidden" {
					continue
				}
				if id := attr(in, "id"); id == "" || len(elements(r.doc, "label", "for", id)) != 1 {
					t.Errorf("input %q: want exactly one label for it", attr(in, "name"))
				}
			}
			ids := map[string]bool{}
			for _, el := range findAll(r.doc, func(n *html.Node) bool { return attr(n, "id") != "" }) {
				if id := attr(el, "id"); ids[id] {
					t.Errorf("duplicate id %q", id)
				} else {
					ids[id] = true
				}
			}
		})
	}
}

// TestTierLinkChoices checks the expiring-link form against the tier: heights it grants, and
// a format only when a thumbnail can have one.
func TestTierLinkChoices(t *testing.T) {
	tests := []struct {
		name        string
		tier        tierpix.Tier
		wantOK      bool
		wantHeights []string // the height select's values
		wantFields  []string
	}{
		{name: "thumbnails and the original", tier: tierpix.Tier{ThumbnailHeights: []int{200, 400}, OriginalLink: true, ExpiringLinks: true},
			wantOK: true, wantHeights: []string{"", "200", "400"}, wantFields: []string{"expires_in", "height", "format"}},
		{name: "thumbnails only", tier: tierpix.Tier{ThumbnailHeights: []int{150}, ExpiringLinks: true},
			wantOK: true, wantHeights: []string{"150"}, wantFields: []string{"expires_in", "height", "format"}},
		{name: "the original only", tier: tierpix.Tier{OriginalLink: true, ExpiringLinks: true},
			wantOK: true, wantHeights: []string{""}, wantFields: []string{"expires_in", "height"}},
		{name: "no expiring links", tier: tierpix.Tier{ThumbnailHeights: []int{200}, OriginalLink: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &formView{Fields: []fieldView{{Name: "expires_in"}, {Name: "height", Kind: "number"}, {Name: "format", Kind: "select"}}}
			if ok := tierLinkChoices(f, &tt.tier); ok != tt.wantOK {
				t.Fatalf("got %v, want %v", ok, tt.wantOK)
			}
			if !tt.wantOK {
				return
			}
			var names, heights []string
			for _, fv := range f.Fields {
				names = append(names, fv.Name)
				if fv.Name == "height" {
					for _, o := range fv.Options {
						heights = append(heights, o.Value)
					}
				}
			}
			if !slices.Equal(names, tt.wantFields) {
				t.Errorf("fields: got %v, want %v", names, tt.wantFields)
			}
			if !slices.Equal(heights, tt.wantHeights) {
				t.Errorf("heights: got %q, want %q", heights, tt.wantHeights)
			}
		})
	}
}
