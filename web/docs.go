package web

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/tierpix/tierpix/api/openapi"
	"github.com/valyala/fasthttp"
)

// docsData is the data of templates/docs.html: the OpenAPI document laid out for reading.
type docsData struct {
	Page
	SpecTitle   string
	Version     string
	Description []string // paragraphs
	Tags        []docsTag
}

type docsTag struct {
	Name       string
	ID         string
	Operations []docsOperation
}

type docsOperation struct {
	Anchor      string
	Method      string
	Path        string
	Summary     string
	Description []string
	Auth        string // public, user or admin
	Parameters  []docsParam
	Body        *docsBody
	Responses   []docsResponse
}

type docsParam struct {
	Name, In, Type, Description, Constraints string
	Required                                 bool
}

type docsBody struct {
	ContentTypes string
	Required     bool
	Fields       []docsParam
}

type docsResponse struct {
	Status, Description, ContentTypes string
}

// handleDocs serves GET /api/docs: the OpenAPI document as a page, public like the document
// itself (the top bar shows the user when there is a session).
func (w *Web) handleDocs(ctx *fasthttp.RequestCtx) {
	if _, _, err := w.Identify(ctx); err != nil {
		w.logger.Error("identify", "err", err)
	}
	d := docsData{
		SpecTitle:   w.spec.Title,
		Version:     w.spec.Version,
		Description: paragraphs(w.spec.Description),
	}
	d.Title = "API documentation"
	d.Path = "/api/docs"
	if s := sessionOf(ctx); s != nil {
		d.User, d.CSRF = &s.id.User, s.sess.CSRFToken
	}
	byTag := map[string]int{}
	for _, op := range w.spec.Operations {
		tag := "Other"
		if len(op.Tags) > 0 {
			tag = op.Tags[0]
		}
		i, ok := byTag[tag]
		if !ok {
			i = len(d.Tags)
			byTag[tag] = i
			d.Tags = append(d.Tags, docsTag{Name: tag, ID: "tag-" + anchor(tag)})
		}
		d.Tags[i].Operations = append(d.Tags[i].Operations, docsOperationOf(op))
	}
	w.render(ctx, fasthttp.StatusOK, "docs.html", d)
}

func docsOperationOf(op openapi.Operation) docsOperation {
	o := docsOperation{
		Anchor:      "op-" + anchor(op.ID),
		Method:      op.Method,
		Path:        op.Path,
		Summary:     op.Summary,
		Description: paragraphs(op.Description),
		Auth:        "user",
	}
	if op.ID == "" {
		o.Anchor = "op-" + anchor(op.Method+" "+op.Path)
	}
	switch {
	case op.Public:
		o.Auth = "public"
	case op.Admin:
		o.Auth = "admin"
	}
	for _, p := range op.Parameters {
		o.Parameters = append(o.Parameters, docsParam{
			Name: p.Name, In: p.In, Type: typeName(p.Schema), Description: p.Description,
			Constraints: constraints(p.Schema), Required: p.Required,
		})
	}
	if op.Body != nil {
		b := &docsBody{ContentTypes: strings.Join(op.Body.ContentTypes, ", "), Required: op.Body.Required}
		for _, f := range op.Body.Fields {
			b.Fields = append(b.Fields, docsParam{
				Name: f.Name, Type: typeName(f.Schema), Description: f.Description,
				Constraints: constraints(f.Schema), Required: f.Required,
			})
		}
		o.Body = b
	}
	for _, r := range op.Responses {
		o.Responses = append(o.Responses, docsResponse{Status: r.Status, Description: r.Description, ContentTypes: strings.Join(r.ContentTypes, ", ")})
	}
	return o
}

// typeName describes a schema's type in a few words: "integer", "array of integer",
// "string (binary)", "boolean or null".
func typeName(s openapi.Schema) string {
	t := s.Type
	if t == "" {
		t = "any"
	}
	if t == "array" && s.Items != nil {
		t = "array of " + typeName(*s.Items)
	}
	if s.Format != "" {
		t += " (" + s.Format + ")"
	}
	if s.Nullable {
		t += " or null"
	}
	return t
}

// constraints lists a schema's bounds, allowed values and default.
func constraints(s openapi.Schema) string {
	var cs []string
	num := func(f *float64) string { return strconv.FormatFloat(*f, 'f', -1, 64) }
	if s.Minimum != nil {
		cs = append(cs, "minimum "+num(s.Minimum))
	}
	if s.Maximum != nil {
		cs = append(cs, "maximum "+num(s.Maximum))
	}
	if s.MinLength != nil {
		cs = append(cs, fmt.Sprintf("at least %d characters", *s.MinLength))
	}
	if s.MaxLength != nil {
		cs = append(cs, fmt.Sprintf("at most %d characters", *s.MaxLength))
	}
	if len(s.Enum) > 0 {
		cs = append(cs, "one of "+strings.Join(s.Enum, ", "))
	}
	if s.Items != nil {
		if c := constraints(*s.Items); c != "" {
			cs = append(cs, "each "+c)
		}
	}
	if s.Default != nil {
		cs = append(cs, fmt.Sprintf("default %v", s.Default))
	}
	return strings.Join(cs, "; ")
}

// paragraphs splits CommonMark into its paragraphs as plain text: the page shows the words, not
// the markup, and never renders the document's text as HTML.
func paragraphs(s string) []string {
	var out []string
	for p := range strings.SplitSeq(strings.ReplaceAll(s, "\r\n", "\n"), "\n\n") {
		p = strings.Join(strings.Fields(p), " ")
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

var nonAnchor = regexp.MustCompile(`[^a-z0-9]+`)

// anchor makes a fragment id from a name.
func anchor(s string) string {
	return strings.Trim(nonAnchor.ReplaceAllString(strings.ToLower(s), "-"), "-")
}
