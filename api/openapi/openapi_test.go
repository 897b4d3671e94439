package openapi

import (
	"bytes"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

func loadSpec(t *testing.T) *Spec {
	t.Helper()
	s, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return s
}

func TestLoad(t *testing.T) {
	s := loadSpec(t)
	if s.Title != "tierpix" || s.Version == "" || s.Description == "" {
		t.Errorf("info: got title %q version %q and %d bytes of description, want tierpix with a version and a description", s.Title, s.Version, len(s.Description))
	}
	tags := map[string]bool{}
	for _, tag := range s.Tags {
		tags[tag.Name] = true
	}
	ids := map[string]bool{}
	for _, op := range s.Operations {
		name := op.Method + " " + op.Path
		if op.ID == "" || op.Summary == "" || len(op.Responses) == 0 {
			t.Errorf("%s: got id %q, summary %q, %d responses; want an id, a summary and a response", name, op.ID, op.Summary, len(op.Responses))
		}
		if ids[op.ID] {
			t.Errorf("%s: operationId %q is used twice", name, op.ID)
		}
		ids[op.ID] = true
		if len(op.Tags) == 0 {
			t.Errorf("%s: got no tags, want one", name)
		}
		for _, tag := range op.Tags {
			if !tags[tag] {
				t.Errorf("%s: tag %q is not declared in the document's tags", name, tag)
			}
		}
		for _, r := range op.Responses {
			if r.Description == "" {
				t.Errorf("%s: response %s has no description", name, r.Status)
			}
		}
	}
	if got, want := len(s.Operations), 30; got != want {
		t.Errorf("operations: got %d, want %d", got, want)
	}
}

// TestOperations pins the model of a few operations, so that a change to the loader or the
// document that breaks the web package's forms shows here.
func TestOperations(t *testing.T) {
	s := loadSpec(t)
	t.Run("upload is a multipart form with a file", func(t *testing.T) {
		op, ok := s.Lookup("POST", "/api/images")
		if !ok {
			t.Fatal("POST /api/images: not found")
		}
		if op.ID != "uploadImage" || op.Body == nil || !op.Body.Required {
			t.Fatalf("got %+v, want uploadImage with a required body", op)
		}
		if op.Body.FormType != "multipart/form-data" {
			t.Errorf("form type: got %q, want multipart/form-data", op.Body.FormType)
		}
		want := []Field{{Name: "image", Required: true, Description: "A PNG or JPEG file.", Schema: Schema{Type: "string", Format: "binary", Description: "A PNG or JPEG file."}}}
		if !equalJSON(op.Body.Fields, want) {
			t.Errorf("fields: got %+v, want %+v", op.Body.Fields, want)
		}
	})
	t.Run("create tier is a urlencoded form in document order", func(t *testing.T) {
		op, ok := s.Lookup("POST", "/api/admin/tiers")
		if !ok {
			t.Fatal("POST /api/admin/tiers: not found")
		}
		if !op.Admin || op.Public {
			t.Errorf("admin, public: got %v, %v, want true, false", op.Admin, op.Public)
		}
		b := op.Body
		if b.FormType != "application/x-www-form-urlencoded" {
			t.Errorf("form type: got %q, want application/x-www-form-urlencoded", b.FormType)
		}
		if want := []string{"application/json", "application/x-www-form-urlencoded", "multipart/form-data"}; !slices.Equal(b.ContentTypes, want) {
			t.Errorf("content types: got %v, want %v", b.ContentTypes, want)
		}
		var names []string
		for _, f := range b.Fields {
			names = append(names, f.Name)
		}
		if want := []string{"name", "thumbnail_heights", "original_link", "expiring_links"}; !slices.Equal(names, want) {
			t.Errorf("fields: got %v, want %v", names, want)
		}
		if !b.Fields[0].Required || b.Fields[1].Required {
			t.Errorf("required: got name %v, thumbnail_heights %v, want true, false", b.Fields[0].Required, b.Fields[1].Required)
		}
		h := b.Fields[1].Schema
		if h.Type != "array" || h.Items == nil || h.Items.Type != "integer" || h.Items.Maximum == nil || *h.Items.Maximum != 10000 || h.MaxItems == nil || *h.MaxItems != 16 {
			t.Errorf("thumbnail_heights: got %+v (items %+v), want an array of at most 16 integers up to 10000", h, h.Items)
		}
		if d, ok := h.Default.([]any); !ok || len(d) != 0 {
			t.Errorf("thumbnail_heights default: got %#v, want an empty []any", h.Default)
		}
		if b.Fields[2].Schema.Default != false {
			t.Errorf("original_link default: got %#v, want false", b.Fields[2].Schema.Default)
		}
	})
	t.Run("password is write-only", func(t *testing.T) {
		op, _ := s.Lookup("POST", "/api/admin/users")
		i := slices.IndexFunc(op.Body.Fields, func(f Field) bool { return f.Name == "password" })
		if i < 0 {
			t.Fatal("password: not a field")
		}
		p := op.Body.Fields[i].Schema
		if !p.WriteOnly || p.Format != "password" || p.MinLength == nil || *p.MinLength != 8 || p.MaxLength == nil || *p.MaxLength != 72 {
			t.Errorf("password: got %+v, want write-only, format password, 8 to 72", p)
		}
	})
	t.Run("expiring link takes a format, webp only", func(t *testing.T) {
		op, _ := s.Lookup("POST", "/api/images/abc/expiring-links")
		var names []string
		for _, f := range op.Body.Fields {
			names = append(names, f.Name)
		}
		if want := []string{"expires_in", "height", "format"}; !slices.Equal(names, want) {
			t.Fatalf("fields: got %v, want %v", names, want)
		}
		if f := op.Body.Fields[2]; f.Required || f.Schema.Type != "string" || !slices.Equal(f.Schema.Enum, []string{"webp"}) {
			t.Errorf("format: got %+v, want an optional string, webp its only value", f)
		}
	})
	t.Run("image links are documented as WebP or negotiated", func(t *testing.T) {
		for _, path := range []string{"/i/s/i/h200", "/i/s/i/h200.webp/1"} {
			op, _ := s.Lookup("GET", path)
			ok := op.Responses[0]
			if ok.Status != "200" || !slices.Equal(ok.ContentTypes, []string{"image/jpeg", "image/png", "image/webp"}) {
				t.Errorf("GET %s: got %s %v, want 200 as JPEG, PNG or WebP", path, ok.Status, ok.ContentTypes)
			}
			for _, status := range []int{0, 1} {
				r := op.Responses[status]
				i := slices.IndexFunc(r.Headers, func(h Header) bool { return h.Name == "Vary" })
				if i < 0 || r.Headers[i].Required {
					t.Errorf("GET %s %s: got headers %+v, want an optional Vary (a .webp link has none)", path, r.Status, r.Headers)
				}
			}
			for _, want := range []string{"`Accept`", "`Vary: Accept`", "`.webp`", "TIERPIX_WEBP=off", "403"} {
				if !strings.Contains(op.Description, want) {
					t.Errorf("GET %s: the description does not mention %s", path, want)
				}
			}
		}
	})
	t.Run("parameters merge path and operation", func(t *testing.T) {
		op, _ := s.Lookup("GET", "/api/admin/users")
		var names []string
		for _, p := range op.Parameters {
			names = append(names, p.In+":"+p.Name)
		}
		if want := []string{"query:limit", "query:cursor", "query:search", "query:ordering", "query:tier", "query:is_admin"}; !slices.Equal(names, want) {
			t.Errorf("parameters: got %v, want %v", names, want)
		}
		op, _ = s.Lookup("DELETE", "/api/admin/users/bob/tokens/7")
		names = names[:0]
		for _, p := range op.Parameters {
			names = append(names, p.In+":"+p.Name+":"+p.Schema.Type)
		}
		if want := []string{"path:username:string", "path:id:integer"}; !slices.Equal(names, want) {
			t.Errorf("parameters: got %v, want %v", names, want)
		}
	})
	t.Run("responses", func(t *testing.T) {
		op, _ := s.Lookup("GET", "/api/images/abc")
		var statuses []string
		for _, r := range op.Responses {
			statuses = append(statuses, r.Status)
		}
		if want := []string{"200", "401", "404", "429", "500", "503"}; !slices.Equal(statuses, want) {
			t.Errorf("statuses: got %v, want %v", statuses, want)
		}
		ok, unauthorized := op.Responses[0], op.Responses[1]
		if ok.SchemaRef != "Image" || !slices.Equal(ok.ContentTypes, []string{"application/json", "text/html"}) {
			t.Errorf("200: got schema %q, types %v, want Image as JSON and HTML", ok.SchemaRef, ok.ContentTypes)
		}
		if ok.Pointer != "/paths/~1api~1images~1{id}/get/responses/200" {
			t.Errorf("200 pointer: got %q", ok.Pointer)
		}
		if unauthorized.SchemaRef != "Problem" || unauthorized.Pointer != "/components/responses/Unauthorized" {
			t.Errorf("401: got schema %q at %q, want Problem at /components/responses/Unauthorized", unauthorized.SchemaRef, unauthorized.Pointer)
		}
		if len(unauthorized.Headers) != 1 || unauthorized.Headers[0].Name != "WWW-Authenticate" || !unauthorized.Headers[0].Required {
			t.Errorf("401 headers: got %+v, want a required WWW-Authenticate", unauthorized.Headers)
		}
		if nf := op.Responses[2]; nf.Description != "The caller has no image with this id." {
			t.Errorf("404 description: got %q, want the one beside the $ref", nf.Description)
		}
	})
	t.Run("public", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/api", "/api/openapi.json", "/api/docs", "/i/s/i/h200", "/i/s/i/h200/1"} {
			if op, _ := s.Lookup("GET", path); !op.Public {
				t.Errorf("GET %s: got public false, want true", path)
			}
		}
		if op, _ := s.Lookup("GET", "/api/me"); op.Public {
			t.Errorf("GET /api/me: got public true, want false")
		}
	})
}

func TestLookup(t *testing.T) {
	s := loadSpec(t)
	tests := []struct {
		name, method, path string
		wantID             string // "" for not found
	}{
		{name: "health", method: "GET", path: "/healthz", wantID: "getHealth"},
		{name: "root", method: "GET", path: "/api", wantID: "getApiRoot"},
		{name: "document", method: "GET", path: "/api/openapi.json", wantID: "getOpenApiDocument"},
		{name: "docs", method: "GET", path: "/api/docs", wantID: "getApiDocs"},
		{name: "me", method: "GET", path: "/api/me", wantID: "getMe"},
		{name: "lower-case method", method: "get", path: "/api/me", wantID: "getMe"},
		{name: "list images", method: "GET", path: "/api/images", wantID: "listImages"},
		{name: "upload", method: "POST", path: "/api/images", wantID: "uploadImage"},
		{name: "image", method: "GET", path: "/api/images/abc123", wantID: "getImage"},
		{name: "delete image", method: "DELETE", path: "/api/images/abc123", wantID: "deleteImage"},
		{name: "expiring link", method: "POST", path: "/api/images/abc123/expiring-links", wantID: "createExpiringLink"},
		{name: "tiers", method: "GET", path: "/api/admin/tiers", wantID: "listTiers"},
		{name: "create tier", method: "POST", path: "/api/admin/tiers", wantID: "createTier"},
		{name: "tier", method: "GET", path: "/api/admin/tiers/Gold", wantID: "getTier"},
		{name: "patch tier", method: "PATCH", path: "/api/admin/tiers/Gold", wantID: "updateTier"},
		{name: "delete tier", method: "DELETE", path: "/api/admin/tiers/Gold", wantID: "deleteTier"},
		{name: "users", method: "GET", path: "/api/admin/users", wantID: "listUsers"},
		{name: "create user", method: "POST", path: "/api/admin/users", wantID: "createUser"},
		{name: "user", method: "GET", path: "/api/admin/users/bob", wantID: "getUser"},
		{name: "patch user", method: "PATCH", path: "/api/admin/users/bob", wantID: "updateUser"},
		{name: "delete user", method: "DELETE", path: "/api/admin/users/bob", wantID: "deleteUser"},
		{name: "tokens", method: "GET", path: "/api/admin/users/bob/tokens", wantID: "listTokens"},
		{name: "mint token", method: "POST", path: "/api/admin/users/bob/tokens", wantID: "createToken"},
		{name: "revoke token", method: "DELETE", path: "/api/admin/users/bob/tokens/12", wantID: "deleteToken"},
		{name: "sign out everywhere", method: "DELETE", path: "/api/admin/users/bob/sessions", wantID: "deleteUserSessions"},
		{name: "all images", method: "GET", path: "/api/admin/images", wantID: "listAllImages"},
		{name: "delete any image", method: "DELETE", path: "/api/admin/images/abc123", wantID: "deleteAnyImage"},
		{name: "permanent link", method: "GET", path: "/i/c2ln/abc123/h200", wantID: "getImageLink"},
		{name: "permanent webp link", method: "GET", path: "/i/c2ln/abc123/h200.webp", wantID: "getImageLink"},
		{name: "expiring webp link path", method: "GET", path: "/i/c2ln/abc123/h200.webp/1893456000", wantID: "getExpiringImageLink"},
		{name: "expiring link path", method: "GET", path: "/i/c2ln/abc123/original/1893456000", wantID: "getExpiringImageLink"},
		{name: "HEAD falls back to GET", method: "HEAD", path: "/api/images/abc123", wantID: "getImage"},
		{name: "HEAD of a link", method: "HEAD", path: "/i/c2ln/abc123/h200", wantID: "getImageLink"},
		{name: "HEAD without GET", method: "HEAD", path: "/api/admin/users/bob/sessions"},
		{name: "unknown path", method: "GET", path: "/api/nothing-here"},
		{name: "unknown nested path", method: "GET", path: "/api/images/abc/nothing"},
		{name: "empty parameter", method: "GET", path: "/api/images/"},
		{name: "trailing slash", method: "GET", path: "/api/me/"},
		{name: "link with too few segments", method: "GET", path: "/i/c2ln/abc123"},
		{name: "link with too many segments", method: "GET", path: "/i/c2ln/abc123/h200/1/x"},
		{name: "not a path", method: "GET", path: "api/me"},
		{name: "wrong method", method: "PUT", path: "/api/images"},
		{name: "wrong method on a template", method: "POST", path: "/api/images/abc123"},
		{name: "docs take no POST", method: "POST", path: "/api/docs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, ok := s.Lookup(tt.method, tt.path)
			if ok != (tt.wantID != "") || op.ID != tt.wantID {
				t.Errorf("Lookup(%s, %s): got %q, %v; want %q", tt.method, tt.path, op.ID, ok, tt.wantID)
			}
		})
	}
}

// TestLookupPrefersLiterals checks the router's rule on a document made for it: a literal
// segment beats a parameter, and a method missing from the winning template is not found.
func TestLookupPrefersLiterals(t *testing.T) {
	doc := `{"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {
		"/api/{x}": {"get": {"operationId": "param", "responses": {"200": {"description": "ok"}}},
		             "post": {"operationId": "paramPost", "responses": {"200": {"description": "ok"}}}},
		"/api/docs": {"get": {"operationId": "literal", "responses": {"200": {"description": "ok"}}}},
		"/{a}/{b}": {"get": {"operationId": "both", "responses": {"200": {"description": "ok"}}}}
	}}`
	s, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	tests := []struct {
		name, method, path, wantID string
	}{
		{name: "literal wins", method: "GET", path: "/api/docs", wantID: "literal"},
		{name: "parameter elsewhere", method: "GET", path: "/api/other", wantID: "param"},
		{name: "earlier literal wins", method: "GET", path: "/api/x", wantID: "param"},
		{name: "all parameters", method: "GET", path: "/x/y", wantID: "both"},
		{name: "method of the winning template only", method: "POST", path: "/api/docs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, ok := s.Lookup(tt.method, tt.path)
			if ok != (tt.wantID != "") || op.ID != tt.wantID {
				t.Errorf("Lookup(%s, %s): got %q, %v; want %q", tt.method, tt.path, op.ID, ok, tt.wantID)
			}
		})
	}
}

func TestOperationsAt(t *testing.T) {
	s := loadSpec(t)
	var got []string
	for _, op := range s.OperationsAt("/api/admin/tiers/{name}") {
		got = append(got, op.Method)
	}
	if want := []string{"GET", "PATCH", "DELETE"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if ops := s.OperationsAt("/api/admin/tiers/Gold"); len(ops) != 0 {
		t.Errorf("a concrete path: got %d operations, want none", len(ops))
	}
}

// decodeAny decodes the embedded document as plain JSON.
func decodeAny(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(Document(), &doc); err != nil {
		t.Fatalf("decode document: %v", err)
	}
	return doc
}

// walk calls fn for every value in v with its JSON pointer.
func walk(v any, ptr string, fn func(ptr string, v any)) {
	fn(ptr, v)
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			walk(x, ptr+"/"+escapePointer(k), fn)
		}
	case []any:
		for i, x := range v {
			walk(x, ptr+"/"+jsonIndex(i), fn)
		}
	}
}

func jsonIndex(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func TestRefsResolve(t *testing.T) {
	doc := decodeAny(t)
	n := 0
	walk(doc, "", func(ptr string, v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return
		}
		n++
		if !strings.HasPrefix(ref, "#/components/") {
			t.Errorf("%s: $ref %q is not into #/components/", ptr, ref)
			return
		}
		var target any = doc
		for _, tok := range strings.Split(ref[2:], "/") {
			obj, ok := target.(map[string]any)
			if !ok {
				target = nil
				break
			}
			target = obj[unescapePointer(tok)]
		}
		if target == nil {
			t.Errorf("%s: $ref %q does not resolve", ptr, ref)
		}
	})
	if n < 50 {
		t.Errorf("got %d $refs, want the document's many", n)
	}
}

func TestParseRejects(t *testing.T) {
	const head = `{"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, `
	tests := []struct {
		name, doc, want string
	}{
		{name: "not JSON", doc: `{"openapi": `, want: "parse document"},
		{name: "old version", doc: `{"openapi": "3.0.3", "paths": {}}`, want: "3.1"},
		{name: "remote ref", doc: head + `"paths": {"/a": {"get": {"responses": {"200": {"$ref": "other.json#/x"}}}}}}`, want: "only local refs"},
		{name: "missing ref", doc: head + `"paths": {"/a": {"get": {"responses": {"200": {"$ref": "#/components/responses/Nope"}}}}}}`, want: "does not resolve"},
		{name: "ref cycle", doc: head + `"paths": {}, "components": {"schemas": {"A": {"$ref": "#/components/schemas/B"}, "B": {"$ref": "#/components/schemas/A"}}}}`, want: "cycle"},
		{name: "schema containing itself", doc: head + `"paths": {"/a": {"get": {"parameters": [{"name": "p", "in": "query", "schema": {"$ref": "#/components/schemas/L"}}], "responses": {}}}},
			"components": {"schemas": {"L": {"type": "array", "items": {"$ref": "#/components/schemas/L"}}}}}`, want: "contains itself"},
		{name: "relative path", doc: head + `"paths": {"a": {}}}`, want: "does not start with /"},
		{name: "duplicate key", doc: head + `"paths": {}, "paths": {}}`, want: "duplicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// schemaPointers returns the pointer of every schema in the document: each of
// components/schemas, and every "schema" of a parameter, a media type or a header.
func schemaPointers(t *testing.T) []string {
	t.Helper()
	doc := decodeAny(t)
	var ptrs []string
	walk(doc, "", func(ptr string, v any) {
		if strings.HasPrefix(ptr, "/components/schemas/") && strings.Count(ptr, "/") == 3 {
			ptrs = append(ptrs, ptr)
			return
		}
		if strings.HasPrefix(ptr, "/components/schemas/") {
			return // inside a schema: a property named "schema" would be a schema's part, not one
		}
		if strings.HasSuffix(ptr, "/schema") {
			ptrs = append(ptrs, ptr)
		}
	})
	slices.Sort(ptrs)
	return ptrs
}

func newCompiler(t *testing.T, doc []byte) *jsonschema.Compiler {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("unmarshal document: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource("https://tierpix.invalid/openapi.json", v); err != nil {
		t.Fatalf("add document: %v", err)
	}
	return c
}

func compileAt(c *jsonschema.Compiler, ptr string) (*jsonschema.Schema, error) {
	return c.Compile("https://tierpix.invalid/openapi.json#" + (&url.URL{Fragment: ptr}).EscapedFragment())
}

func TestSchemasCompile(t *testing.T) {
	c := newCompiler(t, Document())
	ptrs := schemaPointers(t)
	if len(ptrs) < 100 {
		t.Errorf("got %d schemas, want the document's many", len(ptrs))
	}
	for _, ptr := range ptrs {
		if _, err := compileAt(c, ptr); err != nil {
			t.Errorf("%s: %v", ptr, err)
		}
	}

	// The same compilation refuses a schema that is not valid JSON Schema 2020-12.
	bad := newCompiler(t, []byte(`{"components": {"schemas": {"Bad": {"type": 5}}}}`))
	if _, err := compileAt(bad, "/components/schemas/Bad"); err == nil {
		t.Errorf("a schema with type 5: compiled, want an error")
	}
}

// TestSchemasAreStrict checks that the response schemas reject what the code must not send:
// an extra field, a missing one, a wrong type or format.
func TestSchemasAreStrict(t *testing.T) {
	c := newCompiler(t, Document())
	image := `{"id": "abc", "name": "a.png", "content_type": "image/png", "width": 3, "height": 2, "size_bytes": 10,
		"created_at": "2030-01-02T03:04:05Z", "links": {"thumbnails": [{"height": 200, "url": "http://127.0.0.1:1/i/s/abc/h200", "webp_url": "http://127.0.0.1:1/i/t/abc/h200.webp"}]}}`
	tests := []struct {
		name, schema, body string
		valid              bool
	}{
		{name: "image", schema: "Image", body: image, valid: true},
		{name: "image with an extra field", schema: "Image", body: strings.Replace(image, `"id"`, `"extra": 1, "id"`, 1)},
		{name: "image without links", schema: "Image", body: image[:strings.Index(image, `, "links"`)] + "}"},
		{name: "thumbnail without its webp_url", schema: "Image", body: strings.Replace(image, `, "webp_url": "http://127.0.0.1:1/i/t/abc/h200.webp"`, "", 1)},
		{name: "thumbnail with a relative webp_url", schema: "Image", body: strings.Replace(image, `"http://127.0.0.1:1/i/t/abc/h200.webp"`, `"/i/t/abc/h200.webp"`, 1)},
		{name: "image with a string width", schema: "Image", body: strings.Replace(image, `"width": 3`, `"width": "3"`, 1)},
		{name: "image with a bad time", schema: "Image", body: strings.Replace(image, `2030-01-02T03:04:05Z`, `yesterday`, 1)},
		{name: "image with a null original", schema: "Image", body: strings.Replace(image, `}]}}`, `}], "original": null}}`, 1)},
		{name: "page", schema: "ImagePage", body: `{"results": [], "first": null, "previous": null, "next": null}`, valid: true},
		{name: "page with a next URL", schema: "ImagePage", body: `{"results": [], "first": null, "previous": null, "next": "http://127.0.0.1:1/api/images?limit=1&cursor=x"}`, valid: true},
		{name: "page with a relative next", schema: "ImagePage", body: `{"results": [], "first": null, "previous": null, "next": "/api/images"}`},
		{name: "page without its previous", schema: "ImagePage", body: `{"results": [], "next": null}`},
		{name: "user page", schema: "UserPage", body: `{"count": 10000, "count_capped": true, "first": null, "previous": null, "next": "http://127.0.0.1:1/api/admin/users?cursor=x&limit=1", "results": []}`, valid: true},
		{name: "user page counted past the cap", schema: "UserPage", body: `{"count": 12000, "count_capped": true, "first": null, "previous": null, "next": null, "results": []}`},
		{name: "user page without a count", schema: "UserPage", body: `{"first": null, "previous": null, "next": null, "results": []}`},
		{name: "problem", schema: "Problem", body: `{"type": "about:blank", "title": "Bad Request", "status": 400, "detail": "x", "errors": {"a": "b"}}`, valid: true},
		{name: "problem with a non-string error", schema: "Problem", body: `{"type": "about:blank", "title": "Bad Request", "status": 400, "errors": {"a": 1}}`},
		{name: "tier", schema: "Tier", body: `{"name": "Basic", "thumbnail_heights": [200], "original_link": false, "expiring_links": false, "builtin": true}`, valid: true},
		{name: "tier with a zero height", schema: "Tier", body: `{"name": "Basic", "thumbnail_heights": [0], "original_link": false, "expiring_links": false, "builtin": true}`},
		{name: "new token", schema: "NewToken", body: `{"id": 1, "token": "tpx_` + strings.Repeat("A", 43) + `", "hint": "tpx_AAAA", "created_at": "2030-01-02T03:04:05Z"}`, valid: true},
		{name: "expiring webp link request", schema: "ExpiringLinkRequest", body: `{"expires_in": 600, "height": 200, "format": "webp"}`, valid: true},
		{name: "expiring link request in another format", schema: "ExpiringLinkRequest", body: `{"expires_in": 600, "height": 200, "format": "png"}`},
		{name: "token listing with its secret", schema: "Token", body: `{"id": 1, "token": "tpx_x", "hint": "tpx_AAAA", "created_at": "2030-01-02T03:04:05Z"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := compileAt(c, "/components/schemas/"+tt.schema)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			v, err := jsonschema.UnmarshalJSON(strings.NewReader(tt.body))
			if err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if err := s.Validate(v); (err == nil) != tt.valid {
				t.Errorf("got %v, want valid %v", err, tt.valid)
			}
		})
	}
}

// TestConventions checks the rules every operation follows, so that a new operation cannot
// forget one: errors are problem documents, 401s challenge, admin operations may answer 403,
// and every /api operation but the document itself also answers HTML.
func TestConventions(t *testing.T) {
	s := loadSpec(t)
	for _, op := range s.Operations {
		name := op.Method + " " + op.Path
		browsable := strings.HasPrefix(op.Path, "/api") && op.Path != "/api/openapi.json" && op.Path != "/api/docs"
		statuses := map[string]bool{}
		for _, r := range op.Responses {
			statuses[r.Status] = true
			if r.Status >= "400" && r.Status != "default" && r.SchemaRef != "Problem" && len(r.ContentTypes) > 0 {
				t.Errorf("%s %s: got schema %q, want Problem", name, r.Status, r.SchemaRef)
			}
			if r.Status >= "400" && r.Status != "417" && (len(r.ContentTypes) == 0 || r.ContentTypes[0] != "application/problem+json") {
				t.Errorf("%s %s: got types %v, want application/problem+json first", name, r.Status, r.ContentTypes)
			}
			if r.Status == "401" && !slices.ContainsFunc(r.Headers, func(h Header) bool { return h.Name == "WWW-Authenticate" && h.Required }) {
				t.Errorf("%s 401: got headers %+v, want a required WWW-Authenticate", name, r.Headers)
			}
			hasHTML := slices.Contains(r.ContentTypes, "text/html")
			if browsable && len(r.ContentTypes) > 0 && !hasHTML {
				t.Errorf("%s %s: got %v, want text/html among them", name, r.Status, r.ContentTypes)
			}
			if !browsable && op.Path != "/api/docs" && hasHTML {
				t.Errorf("%s %s: got text/html, want none outside the browsable API", name, r.Status)
			}
		}
		if !op.Public && !statuses["401"] {
			t.Errorf("%s: needs credentials but documents no 401", name)
		}
		if op.Public && statuses["401"] {
			t.Errorf("%s: is public but documents a 401", name)
		}
		if op.Admin && !statuses["403"] {
			t.Errorf("%s: is admin-only but documents no 403", name)
		}
		if op.Admin != strings.HasPrefix(op.Path, "/api/admin/") {
			t.Errorf("%s: got admin %v, want it exactly for /api/admin/", name, op.Admin)
		}
		if !op.Public && op.Method != "GET" && !statuses["403"] {
			t.Errorf("%s: changes state but documents no 403 for a missing CSRF token", name)
		}
		if op.Body != nil && op.Path != "/api/images" && !slices.Contains(op.Body.ContentTypes, "application/x-www-form-urlencoded") {
			t.Errorf("%s: a JSON body must also be accepted as a form, got %v", name, op.Body.ContentTypes)
		}
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
