package web

import (
	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/store"
	"github.com/valyala/fasthttp"
)

// Stubs for the sign-in, browsable API and docs handlers: replaced by their real files.

func (w *Web) handleRoot(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleStatic(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleLoginForm(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleLogin(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleLogout(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleDocs(ctx *fasthttp.RequestCtx) { panic("not implemented") }

// Identify returns the user of the request's session cookie: ok is false when the request has
// no cookie or its session is unknown or expired (not an error). It refreshes the session's
// idle expiry, and keeps the session on ctx for CheckCSRF and RenderAPI.
func (w *Web) Identify(ctx *fasthttp.RequestCtx) (id tierpix.Identity, ok bool, err error) {
	panic("not implemented")
}

// CheckCSRF reports whether token is the CSRF token of the session Identify found on ctx,
// compared in constant time. False when there is no session.
func (w *Web) CheckCSRF(ctx *fasthttp.RequestCtx, token string) bool {
	panic("not implemented")
}

// WantsHTML reports whether a request prefers text/html to JSON by its Accept header, as a
// browser's navigation does (curl's */* and API clients' application/json do not).
func WantsHTML(ctx *fasthttp.RequestCtx) bool {
	panic("not implemented")
}

// APIPage is what RenderAPI needs besides the JSON answer already in ctx.Response.
type APIPage struct {
	Identity *tierpix.Identity // the caller; nil when not authenticated
	Route    string            // the route template, e.g. /api/images/{id}
}

// RenderAPI turns the API's answer in ctx.Response (status, JSON or problem+json body) into
// the browsable page: the same status, the JSON pretty-printed, links in it clickable,
// thumbnails shown inline, pagination links, and a form for every other operation on the
// route (and for POST-only sub-routes such as expiring-links), built from the OpenAPI spec.
func (w *Web) RenderAPI(ctx *fasthttp.RequestCtx, p APIPage) {
	panic("not implemented")
}

// requireUser returns the signed-in user and session of a page request. Not signed in: it
// answers 303 to /login?next=<path> and ok is false. admin set and the user is not an admin:
// it answers a 403 page and ok is false.
func (w *Web) requireUser(ctx *fasthttp.RequestCtx, admin bool) (id *tierpix.Identity, sess *store.Session, ok bool) {
	panic("not implemented")
}

// checkForm verifies a state-changing form post: the request's origin (Origin and
// Sec-Fetch-Site headers) and its csrf_token field against the session. On failure it answers
// a 403 page and returns false.
func (w *Web) checkForm(ctx *fasthttp.RequestCtx) bool {
	panic("not implemented")
}
