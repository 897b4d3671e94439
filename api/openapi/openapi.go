// Package openapi holds the OpenAPI 3.1 description of the HTTP API (openapi.json, embedded)
// and a small model of it: the web package renders the browsable API's forms and the /api/docs
// page from it, and the tests check every response they see against it, so the document, the
// forms and the code cannot drift apart.
package openapi

import (
	_ "embed"
)

//go:embed openapi.json
var document []byte

// Document returns the OpenAPI document as served at /api/openapi.json. Callers must not
// modify it.
func Document() []byte { return document }

// Spec is the part of the document that pages are rendered from.
type Spec struct {
	Title       string
	Version     string
	Description string      // CommonMark in the document; rendered as plain paragraphs
	Operations  []Operation // in document order of paths, then GET, HEAD, POST, PUT, PATCH, DELETE
}

// Operation is one method on one path template.
type Operation struct {
	Method      string // upper case: GET, POST, PATCH, DELETE, HEAD
	Path        string // template, e.g. /api/images/{id}
	ID          string // operationId
	Summary     string
	Description string
	Tags        []string
	Admin       bool // only admins may call it (x-admin: true)
	Public      bool // no authentication (security: [])
	Parameters  []Parameter
	Body        *Body // nil without a request body
	Responses   []Response
}

// Parameter is a path or query parameter.
type Parameter struct {
	Name        string
	In          string // "path" or "query"
	Required    bool
	Description string
	Schema      Schema
}

// Body is a request body. Fields come from its form content type (multipart/form-data or
// application/x-www-form-urlencoded) when it has one, otherwise from its JSON schema: the
// browsable API renders them as an HTML form.
type Body struct {
	Required     bool
	ContentTypes []string // e.g. application/json, application/x-www-form-urlencoded
	FormType     string   // the form content type a browser form should use; "" if none
	Fields       []Field
}

// Field is one property of a request body, $refs resolved.
type Field struct {
	Name        string
	Required    bool
	Description string
	Schema      Schema
}

// Schema is the little of a JSON Schema a form needs.
type Schema struct {
	Type      string   // string, integer, boolean, array, object; "" if the schema has none
	Format    string   // e.g. binary (a file), password, date-time, uri
	Enum      []string // allowed values, as strings
	Items     *Schema  // for arrays
	Minimum   *float64
	Maximum   *float64
	MinLength *int
	MaxLength *int
	Default   any
	Nullable  bool // type includes "null"
}

// Response is one documented answer of an operation.
type Response struct {
	Status       string // "200", "4XX" or "default"
	Description  string
	ContentTypes []string
	SchemaRef    string // name under components/schemas of its main content's schema, if a $ref
}

// Load parses the embedded document.
func Load() (*Spec, error) {
	panic("not implemented")
}

// Lookup returns the operation for a method and a concrete path such as /api/images/abc (HEAD
// matches GET when the path documents no HEAD).
func (s *Spec) Lookup(method, path string) (Operation, bool) {
	panic("not implemented")
}

// OperationsAt returns every operation on a path template, in document order.
func (s *Spec) OperationsAt(template string) []Operation {
	panic("not implemented")
}
