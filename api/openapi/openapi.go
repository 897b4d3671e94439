// Package openapi holds the OpenAPI 3.1 description of the HTTP API (openapi.json, embedded)
// and a small model of it: the web package renders the browsable API's forms and the /api/docs
// page from it, and the tests check every response they see against it, so the document, the
// forms and the code cannot drift apart.
//
// The document is the source of truth and is written by hand. The model keeps the document's
// order (paths, methods, properties), because forms and the docs page read best in the order
// the document was written in; encoding/json's maps would lose it, so the document is read
// token by token.
package openapi

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
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
	Tags        []Tag       // in document order
	Operations  []Operation // in document order of paths, then GET, HEAD, POST, PUT, PATCH, DELETE

	routes []route // Operations grouped by path template, for Lookup
}

// Tag groups operations on the docs page.
type Tag struct {
	Name        string
	Description string
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

// Parameter is a path, query or header parameter.
type Parameter struct {
	Name        string
	In          string // "path", "query" or "header"
	Required    bool
	Description string
	Schema      Schema
}

// Body is a request body. Fields come from its form content type (multipart/form-data or
// application/x-www-form-urlencoded) when it has one, otherwise from its JSON schema: the
// browsable API renders them as an HTML form.
type Body struct {
	Required     bool
	Description  string
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
	Type        string   // string, integer, boolean, array, object; "" if the schema has none
	Format      string   // e.g. binary (a file), password, date-time, uri
	Enum        []string // allowed values, as strings
	Items       *Schema  // for arrays
	Minimum     *float64
	Maximum     *float64
	MinLength   *int
	MaxLength   *int
	MaxItems    *int
	Pattern     string
	Default     any  // as encoding/json decodes it into an any: float64, string, bool, []any, ...
	Nullable    bool // type includes "null"
	ReadOnly    bool
	WriteOnly   bool
	Description string
}

// Response is one documented answer of an operation.
type Response struct {
	Status       string // "200", "4XX" or "default"
	Description  string
	ContentTypes []string
	SchemaRef    string // name under components/schemas of its main content's schema, if a $ref
	Headers      []Header
	// Pointer is the JSON pointer of the response object in the document, $ref followed: a
	// content's schema is at Pointer + "/content/" + escaped media type + "/schema".
	Pointer string
}

// Header is a documented response header.
type Header struct {
	Name        string
	Required    bool
	Description string
	Schema      Schema
}

// route is a path template split into segments; a segment "{x}" is a parameter.
type route struct {
	template string
	segments []string
	ops      []int // indexes into Spec.Operations
}

// Load parses the embedded document.
func Load() (*Spec, error) {
	return Parse(document)
}

// methods are the operation keys of a path item, in the order Operations lists them.
var methods = []string{"get", "head", "post", "put", "patch", "delete"}

// Parse parses an OpenAPI 3.1 document. Every $ref in it must be local, point into
// #/components/ and resolve, without cycles.
func Parse(doc []byte) (*Spec, error) {
	root, err := decodeOrdered(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi: parse document: %w", err)
	}
	top, ok := root.(*object)
	if !ok {
		return nil, errors.New("openapi: the document is not a JSON object")
	}
	if v, _ := top.get("openapi").(string); !strings.HasPrefix(v, "3.1.") {
		return nil, fmt.Errorf("openapi: version %q is not 3.1.x", v)
	}
	r := &resolver{root: root}
	if err := r.checkRefs(root, ""); err != nil {
		return nil, err
	}

	s := &Spec{}
	if info, ok := top.get("info").(*object); ok {
		s.Title = str(info.get("title"))
		s.Version = str(info.get("version"))
		s.Description = str(info.get("description"))
	}
	for _, t := range arr(top.get("tags")) {
		if t, ok := t.(*object); ok {
			s.Tags = append(s.Tags, Tag{Name: str(t.get("name")), Description: str(t.get("description"))})
		}
	}
	paths, _ := top.get("paths").(*object)
	if paths == nil {
		return s, nil
	}
	for _, tmpl := range paths.keys {
		if !strings.HasPrefix(tmpl, "/") {
			return nil, fmt.Errorf("openapi: path %q does not start with /", tmpl)
		}
		item, _, err := r.deref(paths.vals[tmpl], "/paths/"+escapePointer(tmpl))
		if err != nil {
			return nil, err
		}
		itemObj, ok := item.(*object)
		if !ok {
			return nil, fmt.Errorf("openapi: path %s is not an object", tmpl)
		}
		rt := route{template: tmpl, segments: strings.Split(tmpl, "/")[1:]}
		for _, m := range methods {
			raw, ok := itemObj.vals[m].(*object)
			if !ok {
				continue
			}
			op, err := r.operation(tmpl, m, itemObj, raw)
			if err != nil {
				return nil, err
			}
			rt.ops = append(rt.ops, len(s.Operations))
			s.Operations = append(s.Operations, op)
		}
		s.routes = append(s.routes, rt)
	}
	return s, nil
}

// Lookup returns the operation for a method and a concrete path such as /api/images/abc (HEAD
// matches GET when the path documents no HEAD).
//
// As with the router, the path picks a template first and the method an operation of it: when
// several templates match, the one with a literal segment where the others have a parameter
// wins (so /api/docs beats a hypothetical /api/{x}), and a method the winning template does not
// document is not found even if a less specific template has it.
func (s *Spec) Lookup(method, path string) (Operation, bool) {
	if !strings.HasPrefix(path, "/") {
		return Operation{}, false
	}
	segs := strings.Split(path, "/")[1:]
	var best *route
	for i := range s.routes {
		rt := &s.routes[i]
		if !rt.matches(segs) {
			continue
		}
		if best == nil || rt.moreSpecific(best) {
			best = rt
		}
	}
	if best == nil {
		return Operation{}, false
	}
	method = strings.ToUpper(method)
	find := func(m string) (Operation, bool) {
		for _, i := range best.ops {
			if s.Operations[i].Method == m {
				return s.Operations[i], true
			}
		}
		return Operation{}, false
	}
	if op, ok := find(method); ok {
		return op, true
	}
	if method == "HEAD" {
		return find("GET")
	}
	return Operation{}, false
}

// OperationsAt returns every operation on a path template, in document order.
func (s *Spec) OperationsAt(template string) []Operation {
	var ops []Operation
	for _, op := range s.Operations {
		if op.Path == template {
			ops = append(ops, op)
		}
	}
	return ops
}

func (rt *route) matches(segs []string) bool {
	if len(segs) != len(rt.segments) {
		return false
	}
	for i, t := range rt.segments {
		if isParam(t) {
			if segs[i] == "" {
				return false
			}
		} else if segs[i] != t {
			return false
		}
	}
	return true
}

// moreSpecific reports whether rt has a literal at the first segment where rt and other
// differ in kind.
func (rt *route) moreSpecific(other *route) bool {
	for i := range rt.segments {
		a, b := isParam(rt.segments[i]), isParam(other.segments[i])
		if a != b {
			return !a
		}
	}
	return false
}

func isParam(seg string) bool {
	return len(seg) > 2 && seg[0] == '{' && seg[len(seg)-1] == '}'
}

// operation builds the model of one operation; item is its path item, for shared parameters.
func (r *resolver) operation(tmpl, method string, item, raw *object) (Operation, error) {
	ptr := "/paths/" + escapePointer(tmpl) + "/" + method
	op := Operation{
		Method:      strings.ToUpper(method),
		Path:        tmpl,
		ID:          str(raw.get("operationId")),
		Summary:     str(raw.get("summary")),
		Description: str(raw.get("description")),
		Admin:       raw.get("x-admin") == true,
	}
	for _, t := range arr(raw.get("tags")) {
		op.Tags = append(op.Tags, str(t))
	}
	if sec, ok := raw.vals["security"]; ok {
		op.Public = len(arr(sec)) == 0
	}

	params, err := r.parameters(arr(item.get("parameters")), "/paths/"+escapePointer(tmpl)+"/parameters")
	if err != nil {
		return Operation{}, err
	}
	own, err := r.parameters(arr(raw.get("parameters")), ptr+"/parameters")
	if err != nil {
		return Operation{}, err
	}
	// An operation's parameter replaces the path item's of the same name and location.
	for _, p := range own {
		i := slices.IndexFunc(params, func(q Parameter) bool { return q.Name == p.Name && q.In == p.In })
		if i >= 0 {
			params[i] = p
		} else {
			params = append(params, p)
		}
	}
	op.Parameters = params

	if b, ok := raw.vals["requestBody"]; ok {
		body, err := r.body(b, ptr+"/requestBody")
		if err != nil {
			return Operation{}, err
		}
		op.Body = body
	}

	responses, _ := raw.get("responses").(*object)
	if responses != nil {
		for _, status := range responses.keys {
			resp, err := r.response(status, responses.vals[status], ptr+"/responses/"+escapePointer(status))
			if err != nil {
				return Operation{}, fmt.Errorf("openapi: %s %s: %w", op.Method, tmpl, err)
			}
			op.Responses = append(op.Responses, resp)
		}
	}
	return op, nil
}

func (r *resolver) parameters(list []any, ptr string) ([]Parameter, error) {
	var params []Parameter
	for i, v := range list {
		desc := refDescription(v)
		p, _, err := r.deref(v, ptr+"/"+strconv.Itoa(i))
		if err != nil {
			return nil, err
		}
		po, ok := p.(*object)
		if !ok {
			return nil, fmt.Errorf("openapi: parameter at %s is not an object", ptr)
		}
		s, err := r.schema(po.get("schema"), nil)
		if err != nil {
			return nil, err
		}
		if desc == "" {
			desc = str(po.get("description"))
		}
		params = append(params, Parameter{
			Name:        str(po.get("name")),
			In:          str(po.get("in")),
			Required:    po.get("required") == true,
			Description: desc,
			Schema:      s,
		})
	}
	return params, nil
}

// Form content types, in the order a form prefers them when the body has no file.
const (
	formURLEncoded = "application/x-www-form-urlencoded"
	formMultipart  = "multipart/form-data"
)

func (r *resolver) body(v any, ptr string) (*Body, error) {
	desc := refDescription(v)
	b, _, err := r.deref(v, ptr)
	if err != nil {
		return nil, err
	}
	bo, ok := b.(*object)
	if !ok {
		return nil, fmt.Errorf("openapi: request body at %s is not an object", ptr)
	}
	if desc == "" {
		desc = str(bo.get("description"))
	}
	body := &Body{Required: bo.get("required") == true, Description: desc}
	content, _ := bo.get("content").(*object)
	if content == nil {
		return body, nil
	}
	body.ContentTypes = slices.Clone(content.keys)
	fieldsOf := func(ct string) ([]Field, error) {
		mt, _ := content.get(ct).(*object)
		if mt == nil {
			return nil, nil
		}
		return r.fields(mt.get("schema"))
	}

	hasURL, hasMultipart := content.has(formURLEncoded), content.has(formMultipart)
	if hasMultipart {
		fields, err := fieldsOf(formMultipart)
		if err != nil {
			return nil, err
		}
		binary := slices.ContainsFunc(fields, func(f Field) bool { return f.Schema.Format == "binary" })
		if binary || !hasURL {
			body.FormType, body.Fields = formMultipart, fields
			return body, nil
		}
	}
	if hasURL {
		fields, err := fieldsOf(formURLEncoded)
		if err != nil {
			return nil, err
		}
		body.FormType, body.Fields = formURLEncoded, fields
		return body, nil
	}
	ct := "application/json"
	if !content.has(ct) && len(content.keys) > 0 {
		ct = content.keys[0]
	}
	fields, err := fieldsOf(ct)
	if err != nil {
		return nil, err
	}
	body.Fields = fields
	return body, nil
}

// fields lists the properties of an object schema.
func (r *resolver) fields(v any) ([]Field, error) {
	if v == nil {
		return nil, nil
	}
	s, _, err := r.deref(v, "")
	if err != nil {
		return nil, err
	}
	so, ok := s.(*object)
	if !ok {
		return nil, nil
	}
	required := map[string]bool{}
	for _, n := range arr(so.get("required")) {
		required[str(n)] = true
	}
	props, _ := so.get("properties").(*object)
	if props == nil {
		return nil, nil
	}
	fields := make([]Field, 0, len(props.keys))
	for _, name := range props.keys {
		schema, err := r.schema(props.vals[name], nil)
		if err != nil {
			return nil, fmt.Errorf("openapi: property %s: %w", name, err)
		}
		fields = append(fields, Field{Name: name, Required: required[name], Description: schema.Description, Schema: schema})
	}
	return fields, nil
}

func (r *resolver) response(status string, v any, ptr string) (Response, error) {
	desc := refDescription(v)
	resp, at, err := r.deref(v, ptr)
	if err != nil {
		return Response{}, err
	}
	ro, ok := resp.(*object)
	if !ok {
		return Response{}, fmt.Errorf("response %s is not an object", status)
	}
	if desc == "" {
		desc = str(ro.get("description"))
	}
	out := Response{Status: status, Description: desc, Pointer: at}
	if content, ok := ro.get("content").(*object); ok {
		out.ContentTypes = slices.Clone(content.keys)
		if len(content.keys) > 0 {
			if mt, ok := content.get(content.keys[0]).(*object); ok {
				if so, ok := mt.get("schema").(*object); ok {
					if ref, ok := so.get("$ref").(string); ok {
						out.SchemaRef = strings.TrimPrefix(ref, "#/components/schemas/")
					}
				}
			}
		}
	}
	if headers, ok := ro.get("headers").(*object); ok {
		for _, name := range headers.keys {
			hd := refDescription(headers.vals[name])
			h, _, err := r.deref(headers.vals[name], "")
			if err != nil {
				return Response{}, err
			}
			ho, ok := h.(*object)
			if !ok {
				return Response{}, fmt.Errorf("header %s of response %s is not an object", name, status)
			}
			s, err := r.schema(ho.get("schema"), nil)
			if err != nil {
				return Response{}, err
			}
			if hd == "" {
				hd = str(ho.get("description"))
			}
			out.Headers = append(out.Headers, Header{Name: name, Required: ho.get("required") == true, Description: hd, Schema: s})
		}
	}
	return out, nil
}

// schema converts a JSON Schema to the model. stack holds the $refs being converted, so that a
// schema that contains itself is an error rather than an endless recursion.
func (r *resolver) schema(v any, stack []string) (Schema, error) {
	if v == nil {
		return Schema{}, nil
	}
	desc := refDescription(v)
	if o, ok := v.(*object); ok {
		if ref, ok := o.get("$ref").(string); ok {
			if slices.Contains(stack, ref) {
				return Schema{}, fmt.Errorf("openapi: schema %s contains itself", ref)
			}
			stack = append(stack, ref)
		}
	}
	res, _, err := r.deref(v, "")
	if err != nil {
		return Schema{}, err
	}
	o, ok := res.(*object)
	if !ok {
		return Schema{}, nil // true or false: nothing a form can use
	}
	s := Schema{
		Format:      str(o.get("format")),
		Pattern:     str(o.get("pattern")),
		ReadOnly:    o.get("readOnly") == true,
		WriteOnly:   o.get("writeOnly") == true,
		Description: desc,
	}
	if s.Description == "" {
		s.Description = str(o.get("description"))
	}
	switch t := o.get("type").(type) {
	case string:
		s.Type = t
		s.Nullable = t == "null"
	case []any:
		for _, x := range t {
			if x == "null" {
				s.Nullable = true
			} else if s.Type == "" {
				s.Type = str(x)
			}
		}
	}
	for _, e := range arr(o.get("enum")) {
		s.Enum = append(s.Enum, scalarString(e))
	}
	if c, ok := o.vals["const"]; ok && s.Enum == nil {
		s.Enum = []string{scalarString(c)}
	}
	s.Minimum, s.Maximum = number(o.get("minimum")), number(o.get("maximum"))
	s.MinLength, s.MaxLength, s.MaxItems = integer(o.get("minLength")), integer(o.get("maxLength")), integer(o.get("maxItems"))
	if d, ok := o.vals["default"]; ok {
		s.Default = plain(d)
	}
	if items := o.get("items"); items != nil {
		is, err := r.schema(items, stack)
		if err != nil {
			return Schema{}, err
		}
		s.Items = &is
	}
	return s, nil
}

// resolver follows $refs within one document.
type resolver struct {
	root any
}

// deref follows v's $ref chain, if any, and returns what it ends at and that value's JSON
// pointer (at, when v is not a reference). Only refs into #/components/ are allowed, and a chain
// that comes back on itself is an error.
func (r *resolver) deref(v any, at string) (any, string, error) {
	var seen []string
	for {
		o, ok := v.(*object)
		if !ok {
			return v, at, nil
		}
		ref, ok := o.get("$ref").(string)
		if !ok {
			return v, at, nil
		}
		if slices.Contains(seen, ref) {
			return nil, "", fmt.Errorf("openapi: $ref cycle: %s -> %s", strings.Join(seen, " -> "), ref)
		}
		seen = append(seen, ref)
		target, ptr, err := r.follow(ref)
		if err != nil {
			return nil, "", err
		}
		v, at = target, ptr
	}
}

// follow resolves one $ref and returns its target and JSON pointer.
func (r *resolver) follow(ref string) (any, string, error) {
	if !strings.HasPrefix(ref, "#/components/") {
		return nil, "", fmt.Errorf("openapi: $ref %q: only local refs into #/components/ are supported", ref)
	}
	ptr := ref[1:]
	v, ok := pointer(r.root, ptr)
	if !ok {
		return nil, "", fmt.Errorf("openapi: $ref %q does not resolve", ref)
	}
	return v, ptr, nil
}

// checkRefs checks that every $ref under v resolves (without cycles); at is v's pointer, for
// messages.
func (r *resolver) checkRefs(v any, at string) error {
	switch v := v.(type) {
	case *object:
		if v.has("$ref") {
			if _, _, err := r.deref(v, at); err != nil {
				return fmt.Errorf("%w (at %s)", err, at)
			}
		}
		for _, k := range v.keys {
			if err := r.checkRefs(v.vals[k], at+"/"+escapePointer(k)); err != nil {
				return err
			}
		}
	case []any:
		for i, x := range v {
			if err := r.checkRefs(x, at+"/"+strconv.Itoa(i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// refDescription returns the description beside a $ref, which OpenAPI 3.1 lets override the
// target's.
func refDescription(v any) string {
	if o, ok := v.(*object); ok && o.has("$ref") {
		return str(o.get("description"))
	}
	return ""
}

// escapePointer escapes a JSON pointer token (RFC 6901): ~ as ~0, / as ~1.
func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func unescapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
}

// pointer resolves a JSON pointer such as /components/schemas/Image in an ordered document.
func pointer(root any, ptr string) (any, bool) {
	if ptr == "" {
		return root, true
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, false
	}
	v := root
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = unescapePointer(tok)
		switch c := v.(type) {
		case *object:
			next, ok := c.vals[tok]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// object is a JSON object that remembers the order of its keys.
type object struct {
	keys []string
	vals map[string]any
}

func (o *object) get(k string) any { return o.vals[k] }

func (o *object) has(k string) bool {
	_, ok := o.vals[k]
	return ok
}

// decodeOrdered decodes JSON into nil, bool, json.Number, string, []any and *object values.
func decodeOrdered(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the top-level value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := &object{vals: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k := kt.(string) // the decoder guarantees a string key here
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				if _, dup := o.vals[k]; dup {
					return nil, fmt.Errorf("duplicate key %q", k)
				}
				o.keys = append(o.keys, k)
				o.vals[k] = v
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, err
			}
			return o, nil
		case '[':
			a := []any{}
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, err
			}
			return a, nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		return t, nil
	}
}

// plain turns an ordered value into what encoding/json would have decoded into an any.
func plain(v any) any {
	switch v := v.(type) {
	case *object:
		m := make(map[string]any, len(v.keys))
		for _, k := range v.keys {
			m[k] = plain(v.vals[k])
		}
		return m
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = plain(x)
		}
		return out
	case json.Number:
		f, _ := v.Float64()
		return f
	}
	return v
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func arr(v any) []any {
	a, _ := v.([]any)
	return a
}

func scalarString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return "null"
	}
	return fmt.Sprint(plain(v))
}

func number(v any) *float64 {
	n, ok := v.(json.Number)
	if !ok {
		return nil
	}
	f, err := n.Float64()
	if err != nil {
		return nil
	}
	return &f
}

func integer(v any) *int {
	n, ok := v.(json.Number)
	if !ok {
		return nil
	}
	i, err := strconv.Atoi(n.String())
	if err != nil {
		return nil
	}
	return &i
}
