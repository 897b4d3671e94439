package web

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/api/openapi"
	"github.com/valyala/fasthttp"
)

// filtersFor builds the browsable page's filter form of a list: a GET form of the route's
// query parameters but the page's own (limit, cursor), filled from the request, as DRF's
// filter panel does.
func (w *Web) filtersFor(ctx *fasthttp.RequestCtx, route string) *formView {
	op, ok := w.spec.Lookup(fasthttp.MethodGet, route)
	if !ok {
		return nil
	}
	f := &formView{ID: "filters", Method: fasthttp.MethodGet, Action: string(ctx.Path()), Submit: "Filter"}
	for _, p := range op.Parameters {
		if p.In != "query" || p.Name == "limit" || p.Name == "cursor" {
			continue
		}
		fv := fieldFor(f.ID, openapi.Field{Name: p.Name, Description: p.Description, Schema: p.Schema}, true)
		fv.Required, fv.MinLength = false, 0
		fv.Hint, fv.HintID = p.Description, ""
		if fv.Hint != "" {
			fv.HintID = fv.ID + "-hint"
		}
		if len(fv.Options) > 0 {
			fv.Options[0].Label = "(any)"
		}
		v := string(ctx.QueryArgs().Peek(p.Name))
		fv.setValue(v, v != "")
		f.Fields = append(f.Fields, fv)
	}
	if len(f.Fields) == 0 {
		return nil
	}
	return f
}

// posted is the form a refused request came from, to fill it again: what was typed, and the
// API's message at each field.
type posted struct {
	action string
	values *fasthttp.Args
}

// postedForm returns the form fields of a refused form post (a 4xx to a POST, or a PATCH by
// ?_method), or nil. Only URL-encoded forms are read again; a multipart upload streamed its
// body and a file is never filled back anyway.
func postedForm(ctx *fasthttp.RequestCtx, method string, status int) *posted {
	if method == fasthttp.MethodGet || status < 400 || status >= 500 {
		return nil
	}
	if !bytes.HasPrefix(ctx.Request.Header.ContentType(), []byte("application/x-www-form-urlencoded")) {
		return nil
	}
	args := &fasthttp.Args{}
	args.ParseBytes(ctx.Request.Body())
	return &posted{action: string(ctx.URI().RequestURI()), values: args}
}

// fill puts what was typed back into f (never a password or a file) with each field's
// error next to it, and takes those errors out of the problem's list, so each shows once.
func (p *posted) fill(f *formView, prob *problemView) {
	errs := map[string]string{}
	if prob != nil {
		for _, e := range prob.Errors {
			errs[e.Name] = e.Value
		}
	}
	if raw := p.values.Peek("_content"); raw != nil {
		f.Raw, f.RawError = string(raw), true
		return
	}
	shown := map[string]bool{}
	for i := range f.Fields {
		fv := &f.Fields[i]
		if v := p.values.Peek(fv.Name); v != nil {
			for j := range fv.Options {
				fv.Options[j].Selected = false
			}
			fv.setValue(string(v), true)
		}
		if msg, ok := errs[fv.Name]; ok {
			fv.Error, shown[fv.Name] = msg, true
		}
	}
	if prob != nil {
		prob.Errors = slices.DeleteFunc(prob.Errors, func(e headerLine) bool { return shown[e.Name] })
	}
}

// tierLinkChoices makes the expiring-link form offer what the tier grants: a choice of its
// heights (and the original, if it grants that), never a free number the API would refuse,
// and a format only when there is a thumbnail to have it (originals are never converted).
// It reports false when the tier grants no expiring link at all, and the form should go.
func tierLinkChoices(f *formView, t *tierpix.Tier) bool {
	var opts []option
	if t.Grants(0, true) == tierpix.LinkGranted {
		opts = append(opts, option{Label: "the original", Value: ""})
	}
	thumbnails := false
	for _, h := range t.ThumbnailHeights {
		if t.Grants(h, true) == tierpix.LinkGranted {
			opts = append(opts, option{Label: strconv.Itoa(h) + " px thumbnail", Value: strconv.Itoa(h)})
			thumbnails = true
		}
	}
	if len(opts) == 0 {
		return false
	}
	for i := range f.Fields {
		if fv := &f.Fields[i]; fv.Name == "height" {
			fv.Kind, fv.Options, fv.Min, fv.Max, fv.Step = "select", opts, "", "", ""
			fv.Required = t.Grants(0, true) != tierpix.LinkGranted
			fv.Hint, fv.HintID = "What the link serves: the sizes your tier allows.", fv.ID+"-hint"
		}
	}
	if !thumbnails {
		f.Fields = slices.DeleteFunc(f.Fields, func(fv fieldView) bool { return fv.Name == "format" })
	}
	f.Raw = ""
	return true
}

// rawTemplate is the raw data form's starting JSON: the resource's current values on a PATCH
// of the resource shown, else each field empty, by its type.
func rawTemplate(fields []openapi.Field, current map[string]string, patch bool) string {
	var buf bytes.Buffer
	buf.WriteString("{\n")
	n := 0
	for _, f := range fields {
		if f.Schema.ReadOnly || f.Schema.Format == "binary" {
			continue
		}
		cur, ok := current[f.Name]
		if patch && (!ok || f.Schema.Format == "password") {
			continue // a PATCH sends only what changes; a password is typed in when it does
		}
		var v any
		switch {
		case f.Schema.Type == "boolean":
			v = ok && cur == "true"
		case f.Schema.Type == "integer" || f.Schema.Type == "number":
			if n, err := strconv.ParseFloat(cur, 64); ok && err == nil {
				v = n
			}
		case f.Schema.Type == "array":
			nums := []int{}
			for _, p := range strings.Split(cur, ",") {
				if n, err := strconv.Atoi(strings.TrimSpace(p)); err == nil {
					nums = append(nums, n)
				}
			}
			v = nums
		default:
			v = cur // a password's field starts empty: current never holds one
		}
		k, _ := json.Marshal(f.Name)
		val, _ := json.Marshal(v)
		if n > 0 {
			buf.WriteString(",\n")
		}
		buf.WriteString("  " + string(k) + ": " + string(val))
		n++
	}
	buf.WriteString("\n}")
	return buf.String()
}
