package web

// The browsable API: every /api route answers a browser with a page, the way Django REST
// Framework does.
//
// The api package stays the only place that answers API requests. It writes its JSON answer
// into ctx.Response as for any client and then, when WantsHTML says the request came from a
// browser's navigation, calls RenderAPI with the answer's typed values (api.Page), which turns
// that answer into a page with the same status: the JSON pretty-printed with its links clickable, thumbnails shown, the next page
// linked, a problem's title and field errors up front, and a form for every other operation
// on the route, generated from the OpenAPI document. So the page shows exactly what an API
// client gets, and a change to the API or its document shows up in the page by itself.
//
// Forms post with the session cookie and carry the session's CSRF token in the field
// csrf_token (first in the form, so a streaming multipart reader meets it before the file).
// HTML forms can only GET or POST, so PATCH and DELETE forms post to the route with
// ?_method=PATCH or ?_method=DELETE; the api package accepts that override only for requests
// authenticated by a session cookie whose CSRF token and origin check out. A request
// authenticated another way (Bearer, Basic) gets the page without forms, since they would not
// work without a session.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/tierpix/tierpix/api"
	"github.com/tierpix/tierpix/api/openapi"
	"github.com/tierpix/tierpix/problem"
	"github.com/valyala/fasthttp"
)

// WantsHTML reports whether a request prefers text/html to JSON by its Accept header, as a
// browser's navigation does (curl's */* and API clients' application/json do not).
//
// The rule: the Accept header must name text/html or application/xhtml+xml itself (a */*
// alone never counts), and the best quality value it gives either of them must be strictly
// higher than the quality it gives application/json and application/problem+json, each judged
// by the most specific range that matches it (as RFC 9110 section 12.5.1 says). Every
// browser's navigation Accept ranks text/html at 1 and */* at 0.8, so it gets HTML; a tie
// gets JSON, the API's native answer.
//
// ?format=json asks for JSON whatever the Accept header says, as DRF's does: a browser can
// open the raw answer of any page.
func WantsHTML(ctx *fasthttp.RequestCtx) bool {
	if string(ctx.QueryArgs().Peek("format")) == "json" {
		return false
	}
	var parts []string
	for _, h := range ctx.Request.Header.PeekAll(fasthttp.HeaderAccept) {
		parts = append(parts, string(h))
	}
	return prefersHTML(strings.Join(parts, ","))
}

// mediaRange is one element of an Accept header.
type mediaRange struct {
	typ, sub string
	q        float64
}

// parseAccept reads an Accept header, skipping malformed elements.
func parseAccept(header string) []mediaRange {
	var ranges []mediaRange
	for elem := range strings.SplitSeq(header, ",") {
		params := strings.Split(elem, ";")
		mt := strings.ToLower(strings.TrimSpace(params[0]))
		typ, sub, ok := strings.Cut(mt, "/")
		if !ok || typ == "" || sub == "" || (typ == "*" && sub != "*") {
			continue
		}
		r := mediaRange{typ: typ, sub: sub, q: 1}
		valid := true
		for _, p := range params[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if !strings.EqualFold(strings.TrimSpace(k), "q") {
				continue
			}
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || q < 0 || q > 1 {
				valid = false
			}
			r.q = q
			break // parameters after q are accept-extensions, not the media type's
		}
		if valid {
			ranges = append(ranges, r)
		}
	}
	return ranges
}

// quality returns the q that ranges give typ/sub by the most specific matching range, and
// whether a range names typ/sub exactly.
func quality(ranges []mediaRange, typ, sub string) (q float64, explicit bool) {
	best := -1 // specificity of the range q comes from: 2 exact, 1 type/*, 0 */*
	for _, r := range ranges {
		spec := -1
		switch {
		case r.typ == typ && r.sub == sub:
			spec = 2
		case r.typ == typ && r.sub == "*":
			spec = 1
		case r.typ == "*":
			spec = 0
		}
		if spec < 0 {
			continue
		}
		if spec > best || (spec == best && r.q > q) {
			best, q = spec, r.q
		}
	}
	return q, best == 2
}

func prefersHTML(accept string) bool {
	ranges := parseAccept(accept)
	html := 0.0
	for _, t := range [][2]string{{"text", "html"}, {"application", "xhtml+xml"}} {
		if q, explicit := quality(ranges, t[0], t[1]); explicit && q > html {
			html = q
		}
	}
	if html == 0 {
		return false
	}
	for _, t := range [][2]string{{"application", "json"}, {"application", "problem+json"}} {
		if q, _ := quality(ranges, t[0], t[1]); q >= html {
			return false
		}
	}
	return true
}

// WantsHTML is WantsHTML, for api.Browser.
func (w *Web) WantsHTML(ctx *fasthttp.RequestCtx) bool { return WantsHTML(ctx) }

// apiData is the data of templates/api.html.
type apiData struct {
	Page
	Method      string
	RequestURI  string
	Summary     string
	Description []block
	Status      int
	StatusText  string
	Headers     []headerLine
	JSON        []segment // the body pretty-printed; empty when it is not JSON
	Raw         string    // the body as text when it is not JSON
	NoContent   bool
	Up          string // the parent collection, linked on a 204
	Problem     *problemView
	Images      []imageView
	Items       []itemLink
	Next        string
	Prev        string
	First       string
	Filters     *formView // a GET form of the list's query parameters (search, owner, ...)
	SignIn      string    // set on a 401: where to come back to after signing in
	Forms       []formView
	FormsHidden bool // there are operations, but no session to post them with
	Crumbs      []itemLink
	Nav         []itemLink
}

type headerLine struct{ Name, Value string }

// segment is a piece of the pretty-printed JSON: text, a class for its colour, and a link
// when the text is a string holding a URL of this site. The template escapes every piece.
type segment struct {
	Text  string
	Class string
	Href  string
}

type problemView struct {
	Title  string
	Detail string
	Errors []headerLine // field, message
}

type imageView struct {
	Name   string
	Href   string // the image's own API page, when the list links to it
	Thumbs []thumbView
}

// thumbView is a thumbnail as a <picture>: its WebP link for browsers that take WebP, its
// negotiated link for the <img> (and the link around it) otherwise.
type thumbView struct {
	URL     string
	WebPURL string // "" when the answer had none on this site: the <img> alone
	Alt     string
	Height  int
}

type itemLink struct {
	Label string
	Href  string
}

// formView is one operation's form.
type formView struct {
	ID          string
	Method      string // the operation's method
	Path        string // its path template
	Summary     string
	Description []block
	Action      string
	Enctype     string
	Submit      string
	Danger      bool // a DELETE without a body: a button behind a confirmation
	Confirm     string
	Fields      []fieldView
	Raw         string // the raw data form's JSON; "" when the operation takes no JSON body
	RawError    bool   // the raw form was the one posted and refused
}

// option is one choice of a select.
type option struct {
	Label, Value string
	Selected     bool
}

// fieldView is one input of a form.
type fieldView struct {
	ID          string
	Name        string
	Label       string
	Kind        string // file, number, select, text, password
	Accept      string
	Min, Max    string
	Step        string
	MinLength   int
	MaxLength   int
	Pattern     string
	InputMode   string
	Placeholder string
	Required    bool
	Value       string // the current value, on a PATCH form of the resource shown
	Options     []option
	Hint        string
	Error       string // the API's message about this field, after a refused post
	HintID      string
}

// RenderAPI turns the API's answer in ctx.Response (status, JSON or problem+json body) into
// the browsable page: the same status, the JSON pretty-printed, links in it clickable,
// thumbnails shown inline, pagination links, and a form for every other operation on the
// route (and for POST-only sub-routes such as expiring-links), built from the OpenAPI spec.
// Headers the API set that mean something to a browser (Allow, Location, WWW-Authenticate,
// Retry-After) stay on the response; the page gets the headers of every page.
func (w *Web) RenderAPI(ctx *fasthttp.RequestCtx, p api.Page) {
	if sessionOf(ctx) == nil && len(ctx.Request.Header.Cookie(w.cookieName())) > 0 {
		if _, _, err := w.Identify(ctx); err != nil {
			w.logger.Error("identify", "err", err)
		}
	}
	sess := sessionOf(ctx)

	status := ctx.Response.StatusCode()
	contentType := string(ctx.Response.Header.ContentType())
	body := slices.Clone(ctx.Response.Body())
	method := effectiveMethod(ctx)
	path := string(ctx.Path())
	route := p.Route
	if route == "" {
		route = path
	}

	d := apiData{
		Method:     method,
		RequestURI: string(ctx.URI().RequestURI()),
		Status:     status,
		StatusText: fasthttp.StatusMessage(status),
	}
	d.Path = path
	d.Title = path
	if op, ok := w.spec.Lookup(method, path); ok && op.Summary != "" {
		d.Title, d.Summary, d.Description = op.Summary, op.Summary, paragraphs(op.Description, 2)
	}
	if sess != nil {
		d.User, d.CSRF = &sess.id.User, sess.sess.CSRFToken
		if method == fasthttp.MethodGet {
			d.Flash = w.takeFlash(ctx).Message
		}
	}
	if len(body) > 0 {
		d.Headers = append(d.Headers, headerLine{"Content-Type", contentType})
	}
	for _, name := range []string{"Allow", "Location", "WWW-Authenticate", "Retry-After"} {
		if v := ctx.Response.Header.Peek(name); len(v) > 0 {
			d.Headers = append(d.Headers, headerLine{name, string(v)})
		}
	}

	// A form that deleted something is sent on to the collection it was in (post, redirect,
	// get), which says so once: answered 204, the browser would stay on the page of what it
	// deleted.
	if status == fasthttp.StatusNoContent && method == fasthttp.MethodDelete {
		if i := strings.LastIndexByte(strings.TrimSuffix(path, "/"), '/'); i > 0 {
			what := "It"
			if op, ok := w.spec.Lookup(method, path); ok && op.Summary != "" {
				what = op.Summary
			}
			w.setFlash(ctx, flash{Message: what + " — done."})
			w.redirect(ctx, path[:i])
			return
		}
	}

	switch {
	case len(body) == 0:
		d.NoContent = true
		if i := strings.LastIndexByte(strings.TrimSuffix(path, "/"), '/'); i > 0 {
			d.Up = path[:i]
		}
	default:
		if segs, ok := prettyJSON(body, w.isSiteURL); ok {
			d.JSON = segs
		} else {
			d.Raw = string(body)
		}
	}
	if p.Problem != nil {
		d.Problem = problemOf(p.Problem)
	}
	if w.isSiteURL(p.Next) {
		d.Next = p.Next
	}
	if w.isSiteURL(p.Prev) {
		d.Prev = p.Prev
	}
	switch {
	case w.isSiteURL(p.First):
		d.First = p.First
	case method == fasthttp.MethodGet && len(ctx.QueryArgs().Peek("cursor")) > 0:
		// Any list a cursor reached has a first page: the same list without it.
		first := ctx.URI()
		args := &fasthttp.Args{}
		ctx.QueryArgs().CopyTo(args)
		args.Del("cursor")
		d.First = string(first.Path())
		if q := args.String(); q != "" {
			d.First += "?" + q
		}
	}
	if method == fasthttp.MethodGet && status == fasthttp.StatusOK {
		d.Filters = w.filtersFor(ctx, route)
	}
	d.Images = w.imagesOf(&p, route, path)
	d.Items = w.itemsOf(&p, route, path)
	if status == fasthttp.StatusUnauthorized {
		d.SignIn = d.RequestURI
	}

	// The resource as shown fills the PATCH forms, when the page shows it.
	var current map[string]string
	if method == fasthttp.MethodGet && status == fasthttp.StatusOK {
		current = p.Values
	}
	showForms := status != fasthttp.StatusUnauthorized && status != fasthttp.StatusNotFound &&
		!(method == fasthttp.MethodDelete && status < 300)
	if showForms {
		ops := w.formOperations(route)
		switch {
		case sess == nil:
			d.FormsHidden = slices.ContainsFunc(ops, func(fo formOp) bool { return !fo.op.Admin })
		default:
			posted := postedForm(ctx, method, status)
			for i, fo := range ops {
				if fo.op.Admin && !sess.id.User.IsAdmin {
					continue
				}
				f := formFor(i, fo, concretePath(route, path), current)
				if fo.op.ID == "createExpiringLink" && !tierLinkChoices(&f, &sess.id.Tier) {
					continue // the tier has no expiring links: the form could only be refused
				}
				if posted != nil && f.Method == method && f.Action == posted.action {
					posted.fill(&f, d.Problem)
				}
				d.Forms = append(d.Forms, f)
			}
		}
	}
	d.Crumbs = w.crumbs(path)
	d.Nav = []itemLink{{"API root", "/api"}, {"Images", "/api/images"}, {"Me", "/api/me"}, {"Docs", "/api/docs"}}
	if sess != nil && sess.id.User.IsAdmin {
		d.Nav = append(d.Nav, itemLink{"Admin", "/admin"})
	}

	h := &ctx.Response.Header
	for _, name := range []string{"ETag", "Last-Modified", "Content-Disposition", "Content-Encoding"} {
		h.Del(name)
	}
	// The same URL answers JSON or HTML by Accept, and the page differs by session.
	h.Set("Vary", "Accept, Cookie")
	ctx.Response.ResetBody()
	w.render(ctx, status, "api.html", d)
}

// effectiveMethod is the method the API answered: a browser form's POST with ?_method=PATCH
// or DELETE stands for that method.
func effectiveMethod(ctx *fasthttp.RequestCtx) string {
	m := string(ctx.Method())
	if m == fasthttp.MethodPost {
		switch o := strings.ToUpper(string(ctx.QueryArgs().Peek("_method"))); o {
		case fasthttp.MethodPatch, fasthttp.MethodDelete, fasthttp.MethodPut:
			return o
		}
	}
	return m
}

// isSiteURL reports whether s is an absolute URL under the public URL: the only strings the
// page turns into links and images.
func (w *Web) isSiteURL(s string) bool {
	if s != w.cfg.PublicURL && !strings.HasPrefix(s, w.cfg.PublicURL+"/") && !strings.HasPrefix(s, w.cfg.PublicURL+"?") {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https")
}

// prettyJSON lays out a JSON document with two-space indents, as json.Indent would, but as
// segments, so that strings that are URLs of this site can be links. Object keys keep their
// order. ok is false when body is not one JSON value.
func prettyJSON(body []byte, isLink func(string) bool) (segs []segment, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	p := &printer{dec: dec, isLink: isLink}
	if err := p.value(0); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return p.segs, true
}

type printer struct {
	dec    *json.Decoder
	isLink func(string) bool
	segs   []segment
}

// punct adds uncoloured text, merged into the previous piece when that is uncoloured too.
func (p *printer) punct(s string) {
	if n := len(p.segs); n > 0 && p.segs[n-1].Class == "" && p.segs[n-1].Href == "" {
		p.segs[n-1].Text += s
		return
	}
	p.segs = append(p.segs, segment{Text: s})
}

func (p *printer) value(depth int) error {
	tok, err := p.dec.Token()
	if err != nil {
		return err
	}
	switch v := tok.(type) {
	case json.Delim:
		closing, isObj := "]", v == '{'
		if isObj {
			closing = "}"
		}
		if v == '}' || v == ']' {
			return fmt.Errorf("unexpected %v", v)
		}
		if !p.dec.More() {
			if _, err := p.dec.Token(); err != nil {
				return err
			}
			p.punct(string(v) + closing)
			return nil
		}
		p.punct(string(v))
		for first := true; p.dec.More(); first = false {
			if !first {
				p.punct(",")
			}
			p.punct("\n" + strings.Repeat("  ", depth+1))
			if isObj {
				k, err := p.dec.Token()
				if err != nil {
					return err
				}
				key, _ := k.(string)
				p.segs = append(p.segs, segment{Text: quoteJSON(key), Class: "k"})
				p.punct(": ")
			}
			if err := p.value(depth + 1); err != nil {
				return err
			}
		}
		if _, err := p.dec.Token(); err != nil {
			return err
		}
		p.punct("\n" + strings.Repeat("  ", depth) + closing)
	case string:
		seg := segment{Text: quoteJSON(v), Class: "s"}
		if p.isLink(v) {
			seg.Href = v
		}
		p.segs = append(p.segs, seg)
	case json.Number:
		p.segs = append(p.segs, segment{Text: v.String(), Class: "n"})
	case bool:
		p.segs = append(p.segs, segment{Text: strconv.FormatBool(v), Class: "b"})
	case nil:
		p.segs = append(p.segs, segment{Text: "null", Class: "b"})
	}
	return nil
}

// quoteJSON writes s as a JSON string without HTML escapes: the template escapes the page,
// and \u003c in the display would not be what the API sent.
func quoteJSON(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(buf.String(), "\n")
}

// problemOf is the view of a problem document.
func problemOf(doc *problem.Details) *problemView {
	pv := &problemView{Title: doc.Title, Detail: doc.Detail}
	for field, msg := range doc.Errors {
		pv.Errors = append(pv.Errors, headerLine{field, msg})
	}
	sort.Slice(pv.Errors, func(i, j int) bool { return pv.Errors[i].Name < pv.Errors[j].Name })
	return pv
}

// imagesOf shows the images of an answer with their thumbnails. In a list, each links to its
// own page when the route has one.
func (w *Web) imagesOf(p *api.Page, route, path string) []imageView {
	var images []imageView
	for _, img := range p.Images {
		iv := imageView{Name: img.Name}
		if iv.Name == "" {
			iv.Name = img.ID
		}
		if p.InList {
			iv.Href = w.itemHref(route, path, "id", img.ID)
		}
		for _, t := range img.Thumbs {
			if !w.isSiteURL(t.URL) {
				continue
			}
			tv := thumbView{URL: t.URL, Height: t.Height, Alt: fmt.Sprintf("%s at %d px", iv.Name, t.Height)}
			if w.isSiteURL(t.WebPURL) {
				tv.WebPURL = t.WebPURL
			}
			iv.Thumbs = append(iv.Thumbs, tv)
		}
		if len(iv.Thumbs) > 0 {
			images = append(images, iv)
		}
	}
	return images
}

// itemsOf links each result of a list to its own page, when the route has a GET one level
// deeper (/api/admin/tiers/{name}). Images have their own cards, so they are left to imagesOf.
func (w *Web) itemsOf(p *api.Page, route, path string) []itemLink {
	if !p.InList || len(p.Keys) == 0 {
		return nil
	}
	param := w.itemParam(route)
	if param == "" {
		return nil
	}
	var items []itemLink
	for _, v := range p.Keys {
		if href := w.itemHref(route, path, param, v); href != "" {
			items = append(items, itemLink{Label: v, Href: href})
		}
	}
	return items
}

// itemParam returns the name of the path parameter of the GET route one level below route
// ("name" for /api/admin/tiers/{name}), or "".
func (w *Web) itemParam(route string) string {
	for _, op := range w.spec.Operations {
		rest, ok := strings.CutPrefix(op.Path, route+"/")
		if ok && op.Method == fasthttp.MethodGet && strings.HasPrefix(rest, "{") && strings.HasSuffix(rest, "}") && !strings.Contains(rest, "/") {
			return rest[1 : len(rest)-1]
		}
	}
	return ""
}

// itemHref is the page of one result of the list at path, when its route has one for param.
func (w *Web) itemHref(route, path, param, value string) string {
	if w.itemParam(route) != param {
		return ""
	}
	return strings.TrimSuffix(concretePath(route, path), "/") + "/" + url.PathEscape(value)
}

// formOp is an operation a page has a form for; sub is the fixed segment a sub-route's
// action appends to the page's path ("expiring-links"), or "".
type formOp struct {
	op  openapi.Operation
	sub string
}

// formOperations lists the operations a page offers forms for: every operation on the route
// but GET and HEAD, then those of each route one fixed segment deeper that has no GET of its
// own, and so no page to hold them (POST /api/images/{id}/expiring-links on an image's page,
// DELETE /api/admin/users/{username}/sessions on a user's).
func (w *Web) formOperations(route string) []formOp {
	var ops []formOp
	for _, op := range w.spec.OperationsAt(route) {
		if op.Method != fasthttp.MethodGet && op.Method != fasthttp.MethodHead {
			ops = append(ops, formOp{op: op})
		}
	}
	for _, op := range w.spec.Operations {
		rest, ok := strings.CutPrefix(op.Path, route+"/")
		if !ok || op.Method == fasthttp.MethodGet || op.Method == fasthttp.MethodHead || rest == "" || strings.ContainsAny(rest, "/{") {
			continue
		}
		hasGet := slices.ContainsFunc(w.spec.OperationsAt(op.Path), func(o openapi.Operation) bool {
			return o.Method == fasthttp.MethodGet
		})
		if !hasGet {
			ops = append(ops, formOp{op: op, sub: rest})
		}
	}
	return ops
}

// concretePath fills a route template's parameters from a concrete path that matched it, each
// escaped as a path segment. A path that does not fit the template is returned as it is.
func concretePath(route, path string) string {
	rs, ps := strings.Split(route, "/"), strings.Split(path, "/")
	if len(rs) != len(ps) {
		return path
	}
	for i, seg := range rs {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			rs[i] = url.PathEscape(ps[i])
		}
	}
	return strings.Join(rs, "/")
}

// formFor builds the form of one operation. page is the concrete path of the page's route;
// a sub-route's fixed last segment is appended to it.
func formFor(n int, fo formOp, page string, current map[string]string) formView {
	op, action := fo.op, page
	if fo.sub != "" {
		action = strings.TrimSuffix(page, "/") + "/" + url.PathEscape(fo.sub)
	}
	if op.Method != fasthttp.MethodPost {
		action += "?_method=" + op.Method
	}
	id := op.ID
	if id == "" {
		id = fmt.Sprintf("op%d", n)
	}
	f := formView{
		ID:          "form-" + id,
		Method:      op.Method,
		Path:        op.Path,
		Summary:     op.Summary,
		Description: paragraphs(op.Description, 4),
		Action:      action,
		Submit:      op.Summary,
	}
	if f.Submit == "" {
		f.Submit = op.Method
	}
	if op.Body == nil || len(op.Body.Fields) == 0 {
		if op.Method == fasthttp.MethodDelete {
			f.Danger, f.Submit = true, "Delete"
			f.Confirm = "Yes, " + strings.ToLower(op.Summary[:1]) + op.Summary[1:] + ". This cannot be undone."
			if op.Summary == "" {
				f.Confirm = "Yes, delete it. This cannot be undone."
			}
		}
		return f
	}
	if slices.Contains(op.Body.ContentTypes, "application/json") {
		f.Raw = rawTemplate(op.Body.Fields, current, op.Method == fasthttp.MethodPatch && fo.sub == "")
	}
	if op.Body.FormType == "multipart/form-data" {
		f.Enctype = "multipart/form-data"
	}
	patch := op.Method == fasthttp.MethodPatch
	for _, field := range op.Body.Fields {
		if field.Schema.ReadOnly {
			continue
		}
		fv := fieldFor(f.ID, field, patch)
		if patch && fo.sub == "" {
			cur, ok := current[field.Name]
			fv.setValue(cur, ok)
		}
		f.Fields = append(f.Fields, fv)
	}
	return f
}

// setValue fills a PATCH form's field with the resource's current value, as the page shows
// it, so that changing one field does not mean typing the others. Files and passwords are
// never filled; a value of a shape the field cannot hold is left out.
func (v *fieldView) setValue(cur string, ok bool) {
	if !ok || v.Kind == "file" || v.Kind == "password" {
		return
	}
	if v.Kind != "select" {
		v.Value = cur
		return
	}
	for i := range v.Options {
		if v.Options[i].Value == cur {
			v.Options[i].Selected = true
		}
	}
}

// fieldFor picks an input for a body field by its schema. On a PATCH form nothing is required
// and an empty field means "leave unchanged".
func fieldFor(formID string, f openapi.Field, patch bool) fieldView {
	s := f.Schema
	v := fieldView{
		ID:       formID + "-" + f.Name,
		Name:     f.Name,
		Label:    humanize(f.Name),
		Kind:     "text",
		Required: f.Required && !patch,
	}
	var hints []string
	if f.Description != "" {
		hints = append(hints, f.Description)
	}
	emptyOption := func() {
		if !v.Required {
			label := "(not set)"
			if patch {
				label = "(unchanged)"
			}
			v.Options = append(v.Options, option{Label: label})
		}
	}
	switch {
	case s.Format == "binary":
		v.Kind = "file"
		if mentionsImage(f.Description, s.Enum) {
			v.Accept = "image/png,image/jpeg"
		}
	case len(s.Enum) > 0:
		v.Kind = "select"
		emptyOption()
		for _, e := range s.Enum {
			v.Options = append(v.Options, option{Label: e, Value: e})
		}
	case s.Type == "boolean":
		v.Kind = "select"
		if patch {
			v.Options = append(v.Options, option{Label: "(unchanged)"})
		} else {
			v.Options = append(v.Options, option{Label: "(not set)"})
		}
		v.Options = append(v.Options, option{Label: "true", Value: "true"}, option{Label: "false", Value: "false"})
	case s.Type == "integer" || s.Type == "number":
		v.Kind = "number"
		v.Step = "any"
		if s.Type == "integer" {
			v.Step = "1"
		}
		if s.Minimum != nil {
			v.Min = strconv.FormatFloat(*s.Minimum, 'f', -1, 64)
		}
		if s.Maximum != nil {
			v.Max = strconv.FormatFloat(*s.Maximum, 'f', -1, 64)
		}
		if r := rangeHint(s.Minimum, s.Maximum); r != "" {
			hints = append(hints, r)
		}
	case s.Type == "array" && s.Items != nil && s.Items.Type == "integer":
		v.InputMode = "numeric"
		v.Pattern = `[0-9, ]*`
		v.Placeholder = "e.g. 200, 400"
		hints = append(hints, "Comma-separated whole numbers.")
		if s.MaxItems != nil {
			hints = append(hints, fmt.Sprintf("At most %d.", *s.MaxItems))
		}
	case s.Format == "password":
		v.Kind = "password"
	}
	if v.Kind == "text" || v.Kind == "password" {
		if s.MinLength != nil && !patch {
			v.MinLength = *s.MinLength
		}
		if s.MaxLength != nil {
			v.MaxLength = *s.MaxLength
		}
	}
	if s.Default != nil && v.Placeholder == "" && v.Kind != "select" && v.Kind != "file" {
		if b, err := json.Marshal(s.Default); err == nil {
			v.Placeholder = strings.Trim(string(b), `"`)
		}
	}
	if patch {
		hints = append(hints, "Leave empty to keep the current value.")
	}
	if len(hints) > 0 {
		v.Hint = strings.Join(hints, " ")
		v.HintID = v.ID + "-hint"
	}
	return v
}

// mentionsImage reports whether a file field takes PNG or JPEG images, by its description or
// enum, so the file picker can offer only those.
func mentionsImage(desc string, enum []string) bool {
	s := strings.ToLower(desc + " " + strings.Join(enum, " "))
	return strings.Contains(s, "png") || strings.Contains(s, "jpeg") || strings.Contains(s, "jpg")
}

// rangeHint says a number's bounds in words.
func rangeHint(min, max *float64) string {
	f := func(x *float64) string { return strconv.FormatFloat(*x, 'f', -1, 64) }
	switch {
	case min != nil && max != nil:
		return fmt.Sprintf("From %s to %s.", f(min), f(max))
	case min != nil:
		return fmt.Sprintf("At least %s.", f(min))
	case max != nil:
		return fmt.Sprintf("At most %s.", f(max))
	}
	return ""
}

// humanize turns a field name into a label: expires_in → Expires in.
func humanize(name string) string {
	s := strings.ReplaceAll(name, "_", " ")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// crumbs names each ancestor of path (/api › images › abc), linked where the API has a GET
// for it.
func (w *Web) crumbs(path string) []itemLink {
	var out []itemLink
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i := range parts {
		if parts[i] == "" {
			continue
		}
		c := itemLink{Label: parts[i]}
		if href := "/" + strings.Join(escapeAll(parts[:i+1]), "/"); i < len(parts)-1 {
			if _, ok := w.spec.Lookup(fasthttp.MethodGet, "/"+strings.Join(parts[:i+1], "/")); ok {
				c.Href = href
			}
		}
		out = append(out, c)
	}
	return out
}

func escapeAll(parts []string) []string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = url.PathEscape(p)
	}
	return out
}
