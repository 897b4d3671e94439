package api

import (
	"bytes"
	"net/http"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/web"
	"github.com/valyala/fasthttp"
)

// Browsers use the same routes as API clients, the way Django REST Framework's browsable API
// does it:
//
//   - A request without an Authorization header may be authenticated by the web UI's session
//     cookie (web.Web.Identify). Bearer and Basic work as before and take precedence.
//   - A request authenticated by the session that changes state (POST, PATCH, PUT, DELETE) must
//     carry the session's CSRF token, in the X-CSRF-Token header or the csrf_token form field,
//     and must not come from another origin (web.Web.CheckOrigin). Cookies travel with
//     requests other sites make, so without this any page could act for a signed-in user.
//   - So do Basic credentials a browser remembers: a state-changing request authenticated by
//     Basic that the browser says another site made (web.FromOtherSite) is refused. A Bearer
//     token needs no check: a browser never adds one on its own.
//   - An upload's CSRF token is a multipart field sent before the image part (an HTML form sends
//     its fields in document order); the image is refused unread if it comes first.
//   - Every JSON body is also taken as an HTML form (application/x-www-form-urlencoded or
//     multipart/form-data), see decodeBody, and a POST with ?_method=PATCH or ?_method=DELETE is
//     that method (MethodOverride): HTML forms can send neither JSON nor those methods.
//   - A browser asking for HTML (web.WantsHTML) gets the answer as a page: the same status,
//     the JSON pretty-printed, and forms for the route (web.Web.RenderAPI).

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
	if !a.web.CheckOrigin(ctx) {
		return tierpix.Errorf(tierpix.EFORBIDDEN, "The request comes from another site.")
	}
	if token := ctx.Request.Header.Peek(csrfHeader); len(token) > 0 {
		if a.web.CheckCSRF(ctx, string(token)) {
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
		if a.web.CheckCSRF(ctx, string(args.Peek(csrfField))) {
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
		if v := form[csrfField]; len(v) > 0 && a.web.CheckCSRF(ctx, v[0]) {
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
	if !a.web.CheckCSRF(ctx, token) {
		return errCSRF()
	}
	ctx.SetUserValue(ctxCSRFPending, false)
	return nil
}

// wantsHTML reports whether the answer goes to a browser as a page.
func (a *API) wantsHTML(ctx *fasthttp.RequestCtx) bool {
	return a.web != nil && web.WantsHTML(ctx)
}
