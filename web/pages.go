package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"path"
	"strings"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/problem"
	"github.com/valyala/fasthttp"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Page is what every template gets, embedded in the page's own data: templates read
// .Title, .User, .CSRF and .Flash whatever the page.
type Page struct {
	Title string
	User  *tierpix.User // the signed-in user; nil on the sign-in page
	CSRF  string        // the session's CSRF token, for every form that changes state
	Flash string        // a one-line notice at the top ("Tier Gold created.")
	Path  string        // the request path, to mark the current section in the navigation
}

// pages holds one template per page: templates/base.html with the page's file, which defines
// "title" and "content" (and may define "head").
type pages struct {
	byName map[string]*template.Template
}

// funcs are the helpers templates may call.
var funcs = template.FuncMap{
	// asset returns the URL of a file under static/ with its content hash in the query, so
	// that it can be cached for a year and still changes the moment the file does.
	"asset": assetURL,
	// dict passes several values to a shared template: dict "Key" value "Key2" value2.
	"dict": func(kv ...any) (map[string]any, error) {
		if len(kv)%2 != 0 {
			return nil, fmt.Errorf("dict: odd number of arguments")
		}
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			k, ok := kv[i].(string)
			if !ok {
				return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
			}
			m[k] = kv[i+1]
		}
		return m, nil
	},
	"join": func(xs []int) string {
		s := make([]string, len(xs))
		for i, x := range xs {
			s[i] = fmt.Sprint(x)
		}
		return strings.Join(s, ", ")
	},
}

func parsePages() (*pages, error) {
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, f := range files {
		name := path.Base(f)
		if name == "base.html" || strings.HasPrefix(name, "_") {
			continue
		}
		// Files named _*.html hold templates several pages share.
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/base.html", "templates/_*.html", f)
		if err != nil {
			return nil, fmt.Errorf("web: parse template %s: %w", name, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

// render answers with a page. data must embed Page (by value). A template that fails to
// execute is a bug: it is logged and answered with a plain 500, never half a page.
func (w *Web) render(ctx *fasthttp.RequestCtx, status int, name string, data any) {
	t, ok := w.pages.byName[name]
	if !ok {
		w.logger.Error("render: no such template", "template", name)
		ctx.Error("Internal Server Error", fasthttp.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "base", data); err != nil {
		w.logger.Error("render", "template", name, "err", err)
		ctx.ResetBody()
		ctx.Error("Internal Server Error", fasthttp.StatusInternalServerError)
		return
	}
	w.setHTMLHeaders(ctx)
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBody(buf.Bytes())
}

// errorPage answers with a page that says what went wrong in one sentence: a 403 for a form
// that failed its CSRF check, a 404, a 500 whose cause went to the log. Its data is an
// errorData, which templates/error.html renders.
func (w *Web) errorPage(ctx *fasthttp.RequestCtx, status int, title, message string) {
	w.errorPageWith(ctx, status, errorData{Page: Page{Title: title}, Message: message})
}

// failPage answers a page that failed for err: a 503 (with Retry-After) when a dependency is
// unavailable, a 507 when the disk is full, else a 500 whose cause goes to the log. message
// is what the 500 says.
func (w *Web) failPage(ctx *fasthttp.RequestCtx, op string, err error, message string) {
	switch tierpix.ErrorCode(err) {
	case tierpix.EUNAVAILABLE:
		w.logger.Warn(op, "err", err)
		problem.SetRetryAfter(ctx, tierpix.ErrorRetryAfter(err))
		w.errorPage(ctx, fasthttp.StatusServiceUnavailable, "Unavailable", tierpix.ErrorMessage(err))
	case tierpix.ESTORAGE:
		w.logger.Warn(op, "err", err)
		problem.SetRetryAfter(ctx, tierpix.ErrorRetryAfter(err))
		w.errorPage(ctx, fasthttp.StatusInsufficientStorage, "Out of disk space", tierpix.ErrorMessage(err))
	default:
		w.logger.Error(op, "err", err)
		w.errorPage(ctx, fasthttp.StatusInternalServerError, "Something went wrong", message)
	}
}

// errorData is the data of templates/error.html. SignIn adds a "Sign in" link that comes back
// to SignIn (a local path).
type errorData struct {
	Page
	Status  int
	Message string
	SignIn  string
}

func (w *Web) errorPageWith(ctx *fasthttp.RequestCtx, status int, d errorData) {
	d.Status = status
	d.Path = string(ctx.Path())
	if s := sessionOf(ctx); s != nil {
		d.User, d.CSRF = &s.id.User, s.sess.CSRFToken
	}
	ctx.Response.ResetBody()
	w.render(ctx, status, "error.html", d)
}

// redirect answers 303 See Other to a local location, with a small page holding the link for
// the rare client that does not follow it, and the headers of every page.
func (w *Web) redirect(ctx *fasthttp.RequestCtx, location string) {
	w.setHTMLHeaders(ctx)
	ctx.Response.Header.Set("Location", location)
	ctx.SetStatusCode(fasthttp.StatusSeeOther)
	ctx.SetContentType("text/html; charset=utf-8")
	var buf bytes.Buffer
	if err := redirectTemplate.Execute(&buf, location); err != nil {
		w.logger.Error("render redirect", "err", err)
	}
	ctx.SetBody(buf.Bytes())
}

var redirectTemplate = template.Must(template.New("redirect").Parse(
	`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>See other</title></head>` +
		`<body><p>Continue to <a href="{{.}}">{{.}}</a>.</p></body></html>` + "\n"))

// setHTMLHeaders sets the headers every HTML page carries. No page runs a script; styles come
// from /static, images from this origin or the public URL's (the image links).
func (w *Web) setHTMLHeaders(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	img := "'self'"
	if o := w.publicOrigin(); o != "" {
		img += " " + o
	}
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'none'; style-src 'self'; img-src "+img+
		"; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
}

// publicOrigin is scheme://host of the public URL.
func (w *Web) publicOrigin() string {
	scheme, rest, ok := strings.Cut(w.cfg.PublicURL, "://")
	if !ok {
		return ""
	}
	host, _, _ := strings.Cut(rest, "/")
	return scheme + "://" + host
}
