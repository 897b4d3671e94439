package api

import (
	"net/http"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/tierpix/tierpix/api/openapi"
)

// optionsJSON answers OPTIONS on an API route, as DRF's metadata does: what the route is,
// the methods it takes, the media types it speaks, and the fields each write takes, all
// from the OpenAPI document.
type optionsJSON struct {
	Name        string                          `json:"name"`
	Description string                          `json:"description"`
	Allow       []string                        `json:"allow"`
	Renders     []string                        `json:"renders"`
	Parses      []string                        `json:"parses"`
	Actions     map[string]map[string]fieldMeta `json:"actions"`
}

// fieldMeta describes one field of a request body.
type fieldMeta struct {
	Type      string   `json:"type"`
	Required  bool     `json:"required"`
	WriteOnly bool     `json:"write_only,omitempty"`
	HelpText  string   `json:"help_text,omitempty"`
	MinLength *int     `json:"min_length,omitempty"`
	MaxLength *int     `json:"max_length,omitempty"`
	MinValue  *float64 `json:"min_value,omitempty"`
	MaxValue  *float64 `json:"max_value,omitempty"`
	Choices   []string `json:"choices,omitempty"`
}

// optionsFor builds the OPTIONS answer of a path template from the document.
func optionsFor(spec *openapi.Spec, template string, allow []string) optionsJSON {
	o := optionsJSON{Allow: allow, Renders: []string{"application/json", "text/html"}, Actions: map[string]map[string]fieldMeta{}}
	for _, op := range spec.OperationsAt(template) {
		if o.Name == "" || op.Method == http.MethodGet {
			o.Name, o.Description = op.Summary, op.Description
		}
		if op.Body == nil {
			continue
		}
		for _, ct := range op.Body.ContentTypes {
			if !slices.Contains(o.Parses, ct) {
				o.Parses = append(o.Parses, ct)
			}
		}
		fields := map[string]fieldMeta{}
		for _, f := range op.Body.Fields {
			typ := f.Schema.Type
			if f.Schema.Format == "binary" {
				typ = "file"
			}
			fields[f.Name] = fieldMeta{
				Type: typ, Required: f.Required, WriteOnly: f.Schema.WriteOnly,
				HelpText:  strings.TrimSpace(f.Description + " " + f.Schema.Description),
				MinLength: f.Schema.MinLength, MaxLength: f.Schema.MaxLength,
				MinValue: f.Schema.Minimum, MaxValue: f.Schema.Maximum, Choices: f.Schema.Enum,
			}
		}
		o.Actions[op.Method] = fields
	}
	if o.Parses == nil {
		o.Parses = []string{}
	}
	return o
}

// handleOptions answers OPTIONS on a route with its metadata; anyone may ask, as anyone may
// read the OpenAPI document.
func (a *API) handleOptions(template string) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		body, err := jsonMarshal(optionsFor(a.spec, template, a.allowed[template]))
		if err != nil {
			a.fail(ctx, err)
			return
		}
		ctx.Response.Header.Set("Allow", a.allowHeader[template])
		ctx.SetStatusCode(http.StatusOK)
		ctx.SetContentType("application/json")
		ctx.Response.Header.Set("Cache-Control", "no-store")
		ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
		ctx.SetBody(body)
	}
}
