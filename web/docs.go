package web

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
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
	Intro       []block // the description's first paragraph, above the contents
	Description []block // the rest, its headings linked from the contents
	Tags        []docsTag
}

type docsTag struct {
	Name        string
	ID          string
	Description []block
	Operations  []docsOperation
}

type docsOperation struct {
	Anchor      string
	Method      string
	Path        string
	Summary     string
	Description []block
	Auth        string // public, user or admin
	Parameters  []docsParam
	Body        *docsBody
	Responses   []docsResponse
}

type docsParam struct {
	Name, In, Type, Constraints string
	Description                 []inline
	Required                    bool
}

type docsBody struct {
	ContentTypes string
	Required     bool
	Fields       []docsParam
}

type docsResponse struct {
	Status, ContentTypes, Headers string
	Description                   []inline
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
		Description: paragraphs(w.spec.Description, 3),
	}
	if len(d.Description) > 0 && d.Description[0].Kind == "p" {
		d.Intro, d.Description = d.Description[:1], d.Description[1:]
	}
	for i, b := range d.Description {
		if b.Kind == "h" {
			d.Description[i].ID = "overview-" + anchor(plainText(b.Parts))
		}
	}
	d.Title = "API documentation"
	d.Path = "/api/docs"
	if s := sessionOf(ctx); s != nil {
		d.User, d.CSRF = &s.id.User, s.sess.CSRFToken
	}
	byTag := map[string]int{}
	for _, t := range w.spec.Tags {
		byTag[t.Name] = len(d.Tags)
		d.Tags = append(d.Tags, docsTag{Name: humanize(t.Name), ID: "tag-" + anchor(t.Name), Description: paragraphs(t.Description, 4)})
	}
	for _, op := range w.spec.Operations {
		tag := "Other"
		if len(op.Tags) > 0 {
			tag = op.Tags[0]
		}
		i, ok := byTag[tag]
		if !ok {
			i = len(d.Tags)
			byTag[tag] = i
			d.Tags = append(d.Tags, docsTag{Name: humanize(tag), ID: "tag-" + anchor(tag)})
		}
		d.Tags[i].Operations = append(d.Tags[i].Operations, docsOperationOf(op))
	}
	d.Tags = slices.DeleteFunc(d.Tags, func(t docsTag) bool { return len(t.Operations) == 0 })
	w.render(ctx, fasthttp.StatusOK, "docs.html", d)
}

func docsOperationOf(op openapi.Operation) docsOperation {
	o := docsOperation{
		Anchor:      "op-" + anchor(op.ID),
		Method:      op.Method,
		Path:        op.Path,
		Summary:     op.Summary,
		Description: paragraphs(op.Description, 4),
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
			Name: p.Name, In: p.In, Type: typeName(p.Schema), Description: inlines(p.Description),
			Constraints: constraints(p.Schema), Required: p.Required,
		})
	}
	if op.Body != nil {
		b := &docsBody{ContentTypes: strings.Join(op.Body.ContentTypes, ", "), Required: op.Body.Required}
		for _, f := range op.Body.Fields {
			b.Fields = append(b.Fields, docsParam{
				Name: f.Name, Type: typeName(f.Schema), Description: inlines(f.Description),
				Constraints: constraints(f.Schema), Required: f.Required,
			})
		}
		o.Body = b
	}
	for _, r := range op.Responses {
		var headers []string
		for _, h := range r.Headers {
			headers = append(headers, h.Name)
		}
		o.Responses = append(o.Responses, docsResponse{
			Status: r.Status, Description: inlines(r.Description),
			ContentTypes: strings.Join(r.ContentTypes, ", "), Headers: strings.Join(headers, ", "),
		})
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
		cs = append(cs, "at least "+count(*s.MinLength, "character"))
	}
	if s.MaxLength != nil {
		cs = append(cs, "at most "+count(*s.MaxLength, "character"))
	}
	if s.MaxItems != nil {
		cs = append(cs, "at most "+count(*s.MaxItems, "item"))
	}
	if s.Pattern != "" {
		cs = append(cs, "pattern "+s.Pattern)
	}
	if s.ReadOnly {
		cs = append(cs, "read-only")
	}
	if s.WriteOnly {
		cs = append(cs, "write-only")
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
		if b, err := json.Marshal(s.Default); err == nil {
			cs = append(cs, "default "+string(b))
		}
	}
	return strings.Join(cs, "; ")
}

// count says n of a noun, in the plural unless n is 1: "1 character", "16 items".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// block is a piece of the document's CommonMark, reduced to what the page shows: a heading, a
// paragraph or a bulleted list, with `code` spans. The rest of the markup is left as text; the
// document's text is never rendered as HTML.
type block struct {
	Kind  string // "h", "p" or "ul"
	Level int    // a heading's level on the page: 3 in the document's description, 4 below
	ID    string // a heading's fragment id, when the page links to it
	Parts []inline
	Items [][]inline
}

// inline is a run of text, or a code span.
type inline struct {
	Text string
	Code bool
}

// paragraphs splits CommonMark into blocks at blank lines. A block starting with #s is a
// heading; one whose lines start with "- " or "* " is a list (continuation lines join the
// item above).
func paragraphs(s string, headingLevel int) []block {
	var out []block
	for p := range strings.SplitSeq(strings.ReplaceAll(s, "\r\n", "\n"), "\n\n") {
		lines := strings.Split(strings.TrimSpace(p), "\n")
		switch first := strings.TrimSpace(lines[0]); {
		case first == "":
			continue
		case strings.HasPrefix(first, "#"):
			out = append(out, block{Kind: "h", Level: headingLevel, Parts: inlines(strings.TrimLeft(first, "# "))})
			if rest := strings.Join(lines[1:], " "); strings.TrimSpace(rest) != "" {
				out = append(out, block{Kind: "p", Parts: inlines(rest)})
			}
		case strings.HasPrefix(first, "- ") || strings.HasPrefix(first, "* "):
			var items []string
			for _, l := range lines {
				t := strings.TrimSpace(l)
				if strings.HasPrefix(t, "- ") || strings.HasPrefix(t, "* ") {
					items = append(items, t[2:])
				} else if len(items) > 0 {
					items[len(items)-1] += " " + t
				}
			}
			b := block{Kind: "ul"}
			for _, it := range items {
				b.Items = append(b.Items, inlines(it))
			}
			out = append(out, b)
		default:
			out = append(out, block{Kind: "p", Parts: inlines(strings.Join(lines, " "))})
		}
	}
	return out
}

// inlines splits text at backticks into text and code spans, whitespace collapsed.
func inlines(s string) []inline {
	s = strings.Join(strings.Fields(s), " ")
	var out []inline
	for i, part := range strings.Split(s, "`") {
		if part != "" {
			out = append(out, inline{Text: part, Code: i%2 == 1})
		}
	}
	return out
}

// plainText is the text of inlines without their markup.
func plainText(parts []inline) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String()
}

var nonAnchor = regexp.MustCompile(`[^a-z0-9]+`)

// anchor makes a fragment id from a name.
func anchor(s string) string {
	return strings.Trim(nonAnchor.ReplaceAllString(strings.ToLower(s), "-"), "-")
}
