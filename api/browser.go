package api

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/problem"
	"github.com/valyala/fasthttp"
)

// Browser is what the browsable API needs of the web UI (package web), wired in main:
// sessions, their CSRF rules, and the page that shows an answer.
type Browser interface {
	// Identify returns the user of the request's session cookie, if any.
	Identify(ctx *fasthttp.RequestCtx) (tierpix.Identity, bool, error)
	// CheckOrigin reports whether the request comes from this site.
	CheckOrigin(ctx *fasthttp.RequestCtx) bool
	// CheckCSRF reports whether token is the session's CSRF token.
	CheckCSRF(ctx *fasthttp.RequestCtx, token string) bool
	// WantsHTML reports whether the request prefers a page to JSON.
	WantsHTML(ctx *fasthttp.RequestCtx) bool
	// RenderAPI replaces the answer in ctx.Response with its page.
	RenderAPI(ctx *fasthttp.RequestCtx, p Page)
}

// Page is an answer as the browsable page shows it: besides the response already in ctx
// (status, headers, the JSON body, shown as it is), the typed values the page links and
// fills its forms from.
type Page struct {
	Identity *tierpix.Identity // the caller; nil when not authenticated
	Route    string            // the route template, e.g. /api/images/{id}
	Problem  *problem.Details  // the error answered, if any
	Images   []PageImage       // the images of the answer, with their thumbnail links
	InList   bool              // the images (or Keys) are the results of a list
	Keys     []string          // each result's key in the route one level down (a username, a tier name)
	Next     string            // the next page of a list, or ""
	Prev     string            // the previous page, or ""
	First    string            // the first page, or "" on it
	// Values are the resource's current values by request field name, to fill its PATCH
	// form; never a password.
	Values map[string]string
}

// PageImage is an image with its thumbnail links.
type PageImage struct {
	ID, Name string
	Thumbs   []PageThumb
}

// PageThumb is one thumbnail's links: URL negotiates its format, WebPURL is always WebP.
type PageThumb struct {
	URL     string
	WebPURL string
	Height  int
}

// ctxAnswer holds the value writeJSON answered, for the browsable page.
const ctxAnswer = "tierpix.api.answer"

// pageOf returns the page of the answer v, as writeJSON wrote it.
func pageOf(v any) Page {
	var p Page
	switch v := v.(type) {
	case imageJSON:
		p.Images = []PageImage{pageImage(&v)}
	case seqPage[imageJSON]:
		p.InList = true
		for i := range v.Results {
			p.Images = append(p.Images, pageImage(&v.Results[i]))
		}
	case tierJSON:
		p.Values = map[string]string{
			"name":              v.Name,
			"thumbnail_heights": joinInts(v.ThumbnailHeights),
			"original_link":     strconv.FormatBool(v.OriginalLink),
			"expiring_links":    strconv.FormatBool(v.ExpiringLinks),
		}
	case page[tierJSON]:
		p.InList = true
		for _, t := range v.Results {
			p.Keys = append(p.Keys, t.Name)
		}
	case userJSON:
		p.Values = map[string]string{"username": v.Username, "tier": v.Tier, "is_admin": strconv.FormatBool(v.IsAdmin)}
	case userPage:
		p.InList = true
		for _, u := range v.Results {
			p.Keys = append(p.Keys, u.Username)
		}
	}
	if n, ok := v.(interface{ nextPage() *string }); ok && n.nextPage() != nil {
		p.Next = *n.nextPage()
	}
	if n, ok := v.(interface{ prevPage() (*string, *string) }); ok {
		prev, first := n.prevPage()
		if prev != nil {
			p.Prev = *prev
		}
		if first != nil && prev != nil {
			p.First = *first
		}
	}
	return p
}

func pageImage(img *imageJSON) PageImage {
	pi := PageImage{ID: img.ID, Name: img.Name}
	for _, t := range img.Links.Thumbnails {
		pi.Thumbs = append(pi.Thumbs, PageThumb{URL: t.URL, WebPURL: t.WebPURL, Height: t.Height})
	}
	return pi
}

func joinInts(ns []int) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ", ")
}

// Browsers use the same routes as API clients, the way Django REST Framework's browsable API
// does it:
//
//   - A request without an Authorization header may be authenticated by the web UI's session
//     cookie (Browser.Identify). Bearer and Basic work as before and take precedence.
//   - A request authenticated by the session that changes state (POST, PATCH, PUT, DELETE) must
//     carry the session's CSRF token, in the X-CSRF-Token header or the csrf_token form field,
//     and must not come from another origin (Browser.CheckOrigin). Cookies travel with
//     requests other sites make, so without this any page could act for a signed-in user.
//   - So do Basic credentials a browser remembers: a state-changing request authenticated by
//     Basic that the browser says another site made (signin.FromOtherSite) is refused. A Bearer
//     token needs no check: a browser never adds one on its own.
//   - An upload's CSRF token is a multipart field sent before the image part (an HTML form sends
//     its fields in document order); the image is refused unread if it comes first.
//   - Every JSON body is also taken as an HTML form (application/x-www-form-urlencoded or
//     multipart/form-data), see decodeBody, and a POST with ?_method=PATCH or ?_method=DELETE is
//     that method (MethodOverride): HTML forms can send neither JSON nor those methods.
//   - A browser asking for HTML (Browser.WantsHTML) gets the answer as a page: the same status,
//     the JSON pretty-printed, and forms for the route (Browser.RenderAPI, given the answer's
//     typed values in a Page).

// User values this package keeps on a RequestCtx for the length of one request.
const (
	// ctxBody holds a small body already read from the stream (readBody), so that the CSRF
	// check and the handler can both look at a form.
	ctxBody = "tierpix.api.body"
	// ctxCSRFPending marks an upload authenticated by the session whose CSRF token is still to
	// come as a multipart field.
	ctxCSRFPending = "tierpix.api.csrf-pending"
)

// csrfField and csrfHeader carry the session's CSRF token.
const (
	csrfField  = "csrf_token"
	csrfHeader = "X-CSRF-Token"
)

// methodOverrideArg is the query parameter a browser form uses for PATCH and DELETE.
const methodOverrideArg = "_method"

// MethodOverride lets an HTML form, which can only GET or POST, reach PATCH, PUT and DELETE
// routes: a POST whose query has _method=PATCH, PUT or DELETE is routed as that method. Wrap
// the router's handler with it. It never turns a GET into anything else, so a link cannot
// change state, and the CSRF rules apply to the method the request becomes.
func MethodOverride(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if ctx.IsPost() {
			if m := ctx.QueryArgs().Peek(methodOverrideArg); len(m) > 0 {
				switch string(bytes.ToUpper(m)) {
				case http.MethodPatch:
					ctx.Request.Header.SetMethod(http.MethodPatch)
				case http.MethodPut:
					ctx.Request.Header.SetMethod(http.MethodPut)
				case http.MethodDelete:
					ctx.Request.Header.SetMethod(http.MethodDelete)
				}
			}
		}
		next(ctx)
	}
}

// isUnsafe reports whether a request may change state.
func isUnsafe(ctx *fasthttp.RequestCtx) bool {
	return !ctx.IsGet() && !ctx.IsHead() && !ctx.IsOptions()
}

func errCSRF() error {
	return tierpix.Errorf(tierpix.EFORBIDDEN,
		"The CSRF token is missing or not valid: reload the page and send the form again.")
}

// checkCSRF enforces the CSRF rules on a state-changing request authenticated by the session.
// deferMultipart leaves a multipart body's token to the handler that streams it (the upload),
// which calls csrfField checks through csrfPending and passCSRF.
func (a *API) checkCSRF(ctx *fasthttp.RequestCtx, deferMultipart bool) error {
	if !a.browser.CheckOrigin(ctx) {
		return tierpix.Errorf(tierpix.EFORBIDDEN, "The request comes from another site.")
	}
	if token := ctx.Request.Header.Peek(csrfHeader); len(token) > 0 {
		if a.browser.CheckCSRF(ctx, string(token)) {
			return nil
		}
		return errCSRF()
	}
	mt, params := mediaType(ctx)
	switch mt {
	case "application/x-www-form-urlencoded":
		body, err := readBody(ctx, maxJSONBytes)
		if err != nil {
			return err
		}
		var args fasthttp.Args
		args.ParseBytes(body)
		if a.browser.CheckCSRF(ctx, string(args.Peek(csrfField))) {
			return nil
		}
	case "multipart/form-data":
		if deferMultipart {
			ctx.SetUserValue(ctxCSRFPending, true)
			return nil
		}
		form, err := readSmallMultipart(ctx, params["boundary"])
		if err != nil {
			return err
		}
		if v := form[csrfField]; len(v) > 0 && a.browser.CheckCSRF(ctx, v[0]) {
			return nil
		}
	}
	return errCSRF()
}

// csrfPending reports whether the request still owes its CSRF token (see checkCSRF).
func csrfPending(ctx *fasthttp.RequestCtx) bool {
	v, _ := ctx.UserValue(ctxCSRFPending).(bool)
	return v
}

// passCSRF settles a pending CSRF check with the token read from the body.
func (a *API) passCSRF(ctx *fasthttp.RequestCtx, token string) error {
	if !a.browser.CheckCSRF(ctx, token) {
		return errCSRF()
	}
	ctx.SetUserValue(ctxCSRFPending, false)
	return nil
}

// wantsHTML reports whether the answer goes to a browser as a page.
func (a *API) wantsHTML(ctx *fasthttp.RequestCtx) bool {
	return a.browser != nil && a.browser.WantsHTML(ctx)
}
