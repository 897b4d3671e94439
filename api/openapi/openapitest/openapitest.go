// Package openapitest checks HTTP responses against the OpenAPI document, so that every test
// that talks to the server also proves the document right: a status, a media type, a field or a
// header the document does not describe fails the test that saw it.
//
// Transport wraps a client's RoundTripper; Check does the same for harnesses that read
// responses off a raw connection.
package openapitest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/tierpix/tierpix/api/openapi"
)

// Transport returns a RoundTripper that sends requests through next (http.DefaultTransport
// when nil) and checks every response against the embedded OpenAPI document, reporting each
// mismatch with t.Errorf. The response is returned with its body intact.
func Transport(t testing.TB, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{t: t, next: next}
}

type transport struct {
	t    testing.TB
	next http.RoundTripper
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := tr.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, readErr := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if readErr != nil {
		// The caller would have seen the same failure reading the body; leave it to them.
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{readErr}))
		return resp, nil
	}
	if err := Check(openapi.Document(), req.Method, req.URL.RequestURI(), resp.StatusCode, resp.Header, body); err != nil {
		tr.t.Errorf("openapi: %s %s: %d %s: %v; body: %q",
			req.Method, req.URL.RequestURI(), resp.StatusCode, resp.Header.Get("Content-Type"), err, prefix(body, 300))
	}
	return resp, nil
}

// CloseIdleConnections passes on to next, so that http.Client.CloseIdleConnections keeps
// working through the wrapper.
func (tr *transport) CloseIdleConnections() {
	if c, ok := tr.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func prefix(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// Check checks one response against the OpenAPI document doc. target is the request target:
// the path, with the query when there is one (it carries the browsable API's _method
// override). Only the API's paths are checked: /healthz, /api, /api/... and /i/...; any other
// path (the web UI's pages) is not API and passes.
//
// The rules: a path or method the document does not describe must be answered 404 or 405
// with a problem document (or, to a browser, its HTML page), or be the router's redirect (301,
// 308) of another spelling of a documented path, such as one with a trailing slash. Otherwise the status must be documented (exactly, else as 4XX or
// 5XX, else as default), every required header of that response must be present (and a 401
// must carry WWW-Authenticate), the media type must be one the response documents, and a JSON
// body must validate against its schema. A HEAD answer is checked against the GET operation,
// without a body; 204 and 304 answers may have none.
func Check(doc []byte, method, target string, status int, header http.Header, body []byte) error {
	path, query, _ := strings.Cut(target, "?")
	if p, err := url.PathUnescape(path); err == nil {
		path = p
	}
	if !isAPIPath(path) {
		return nil
	}
	c, err := checkerFor(doc)
	if err != nil {
		return err
	}
	method = strings.ToUpper(method)
	if method == http.MethodPost && query != "" {
		// As api.MethodOverride: only the methods an HTML form cannot send.
		if q, err := url.ParseQuery(query); err == nil {
			switch m := strings.ToUpper(q.Get("_method")); m {
			case http.MethodPatch, http.MethodPut, http.MethodDelete:
				method = m
			}
		}
	}
	return c.check(method, path, status, header, body)
}

func isAPIPath(path string) bool {
	return path == "/healthz" || path == "/api" || strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/i/")
}

// docURL is the base URL the document is known by inside the schema compiler. It is never
// fetched: the document is added as a resource under it.
const docURL = "https://tierpix.invalid/openapi.json"

// checker is a parsed document with its compiled schemas.
type checker struct {
	spec     *openapi.Spec
	compiler *jsonschema.Compiler

	mu      sync.Mutex
	schemas map[string]*jsonschema.Schema // by JSON pointer
}

var (
	checkersMu sync.Mutex
	checkers   = map[[sha256.Size]byte]*checker{}
)

// checkerFor returns the checker of doc, made once per process per document.
func checkerFor(doc []byte) (*checker, error) {
	key := sha256.Sum256(doc)
	checkersMu.Lock()
	defer checkersMu.Unlock()
	if c, ok := checkers[key]; ok {
		return c, nil
	}
	spec, err := openapi.Parse(doc)
	if err != nil {
		return nil, err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("openapitest: parse document: %w", err)
	}
	comp := jsonschema.NewCompiler()
	comp.DefaultDraft(jsonschema.Draft2020)
	comp.AssertFormat()
	if err := comp.AddResource(docURL, v); err != nil {
		return nil, fmt.Errorf("openapitest: add document: %w", err)
	}
	c := &checker{spec: spec, compiler: comp, schemas: map[string]*jsonschema.Schema{}}
	checkers[key] = c
	return c, nil
}

// schema compiles the schema at a JSON pointer of the document, once.
func (c *checker) schema(ptr string) (*jsonschema.Schema, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.schemas[ptr]; ok {
		return s, nil
	}
	s, err := c.compiler.Compile(docURL + "#" + (&url.URL{Fragment: ptr}).EscapedFragment())
	if err != nil {
		return nil, fmt.Errorf("compile schema %s: %w", ptr, err)
	}
	c.schemas[ptr] = s
	return s, nil
}

const problemType = "application/problem+json"

func (c *checker) check(method, path string, status int, header http.Header, body []byte) error {
	head := method == http.MethodHead
	op, ok := c.spec.Lookup(method, path)
	if !ok {
		if status == http.StatusMovedPermanently || status == http.StatusPermanentRedirect {
			return c.checkRedirect(method, path, header)
		}
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			return fmt.Errorf("%s %s is not documented, so the answer must be 404 or 405, got %d", method, path, status)
		}
		if status == http.StatusMethodNotAllowed && header.Get("Allow") == "" {
			return errors.New("a 405 must carry Allow")
		}
		switch mediaType(header) {
		case problemType:
		case "text/html":
			return nil // the browsable API's page of the problem, for a browser
		default:
			return fmt.Errorf("an undocumented path or method must answer %s, got %q", problemType, header.Get("Content-Type"))
		}
		if head && len(body) == 0 {
			return nil
		}
		return c.validate("/components/schemas/Problem", body)
	}

	resp, ok := findResponse(op, status)
	if !ok {
		var documented []string
		for _, r := range op.Responses {
			documented = append(documented, r.Status)
		}
		return fmt.Errorf("status %d is not documented for %s %s (documented: %s)", status, op.Method, op.Path, strings.Join(documented, ", "))
	}

	for _, h := range resp.Headers {
		if h.Required && header.Get(h.Name) == "" {
			return fmt.Errorf("%d %s %s must carry the header %s", status, op.Method, op.Path, h.Name)
		}
	}
	if status == http.StatusUnauthorized && header.Get("WWW-Authenticate") == "" {
		return errors.New("a 401 must carry WWW-Authenticate")
	}

	ct := mediaType(header)
	if len(body) == 0 {
		switch {
		case status == http.StatusNoContent || status == http.StatusNotModified || status < 200:
			return nil
		case head, len(resp.ContentTypes) == 0:
			if ct != "" && len(resp.ContentTypes) > 0 && !slices.Contains(resp.ContentTypes, ct) {
				return fmt.Errorf("the Content-Type %q is not documented for %d (documented: %s)", ct, status, strings.Join(resp.ContentTypes, ", "))
			}
			return nil
		}
		return fmt.Errorf("the body is empty; want one of %s", strings.Join(resp.ContentTypes, ", "))
	}
	if len(resp.ContentTypes) == 0 {
		return fmt.Errorf("%d %s %s documents no body, got %d bytes of %q", status, op.Method, op.Path, len(body), ct)
	}
	if !slices.Contains(resp.ContentTypes, ct) {
		return fmt.Errorf("the Content-Type %q is not documented for %d (documented: %s)", ct, status, strings.Join(resp.ContentTypes, ", "))
	}
	if ct != "application/json" && !strings.HasSuffix(ct, "+json") {
		return nil
	}
	return c.validate(resp.Pointer+"/content/"+escapePointer(ct)+"/schema", body)
}

// checkRedirect checks the router's redirect of an undocumented spelling of a path (a
// trailing slash, other letter case, //): it must lead to a documented path.
func (c *checker) checkRedirect(method, path string, header http.Header) error {
	loc, err := url.Parse(header.Get("Location"))
	if err != nil || loc.Path == "" {
		return fmt.Errorf("a redirect of %s must carry a Location, got %q", path, header.Get("Location"))
	}
	if _, ok := c.spec.Lookup(method, loc.Path); !ok {
		return fmt.Errorf("%s %s redirects to %s, which is not documented either", method, path, loc.Path)
	}
	return nil
}

// validate checks a JSON body against the schema at ptr.
func (c *checker) validate(ptr string, body []byte) error {
	s, err := c.schema(ptr)
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("the body is not JSON: %w", err)
	}
	if err := s.Validate(v); err != nil {
		return fmt.Errorf("the body does not match the schema: %w", err)
	}
	return nil
}

// findResponse picks the documented response for status: the exact code, else its range
// (4XX), else default.
func findResponse(op openapi.Operation, status int) (openapi.Response, bool) {
	code := strconv.Itoa(status)
	for _, key := range []string{code, code[:1] + "XX", "default"} {
		for _, r := range op.Responses {
			if strings.EqualFold(r.Status, key) {
				return r, true
			}
		}
	}
	return openapi.Response{}, false
}

// mediaType returns the response's media type without parameters, lower case; "" if none.
func mediaType(h http.Header) string {
	ct := h.Get("Content-Type")
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(ct))
	}
	return mt
}

// escapePointer escapes a JSON pointer token (RFC 6901).
func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
