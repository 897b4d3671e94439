package web

// Sessions, CSRF and origin checks.
//
// A signed-in browser holds one cookie, w.cookieName(), whose value is the session's 256-bit
// plaintext token; the store keeps only its SHA-256. The cookie is HttpOnly (no script may
// read it, though no page runs one), SameSite=Lax (cross-site subrequests and cross-site POSTs
// do not carry it; top-level navigations from a link do, so links into the site keep working),
// Path=/ and Max-Age=SessionMaxAge. When the public URL is https it is also Secure and named
// with the __Host- prefix, which makes browsers refuse it unless it is Secure, host-only (no
// Domain) and for path /: a sibling subdomain can neither set nor shadow it.
//
// A session ends SessionIdleTimeout after its last use or SessionMaxAge after sign-in,
// whichever comes first. The store decides both with its own clock, and Identify checks them
// again with the web clock, so neither a store nor a web configured with a shorter limit than
// the other lets a session live longer. Use is recorded at most once a minute (TouchSession),
// so a page view is not a database write.
//
// Every state-changing request from a browser is checked twice:
//
//   - CSRF token: each session has a random CSRF token; every form carries it in the hidden
//     field csrf_token, and CheckCSRF compares it with the session's in constant time. A
//     cross-site page cannot read the token, so it cannot forge the form.
//   - Origin: CheckOrigin refuses a request whose Sec-Fetch-Site header (sent by every current
//     browser) says it came from another site, or whose Origin header is not the public URL's
//     origin. Requests without either header (old browsers, curl, API clients) pass this check
//     and rely on the token alone.
//
// The sign-in form has no session yet; it is protected by a double-submit token instead (see
// login.go).

import (
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/signin"
	"github.com/valyala/fasthttp"
)

// touchInterval is how stale a session's LastSeenAt may get before a request records use.
// Idle expiry is therefore exact to within this interval.
const touchInterval = time.Minute

// maxTokenLength bounds a cookie value worth looking up; the store's tokens are far shorter.
const maxTokenLength = 256

// maxFormBytes caps an urlencoded form body read by readForm. The largest form the UI has (a
// user with a password, a tier with sixteen heights) is well under a kilobyte.
const maxFormBytes = 64 << 10

// sessionKey is the ctx user-value key under which Identify keeps the request's session.
type sessionKey struct{}

// sessionState is what Identify found: the session, its user as they are now, and the
// plaintext token (for sign-out).
type sessionState struct {
	sess  tierpix.Session
	id    tierpix.Identity
	token string
}

// dbContext is the context for the store calls of one request. It is not ctx: fasthttp reuses
// a RequestCtx after its handler returns and cancels it at shutdown, when in-flight requests
// must still finish.
func dbContext() context.Context { return context.Background() }

// Identify returns the user of the request's session cookie: ok is false when the request has
// no cookie or its session is unknown or expired (not an error). It refreshes the session's
// idle expiry, and keeps the session on ctx for CheckCSRF and RenderAPI. A cookie that names
// no live session is cleared on the response, so the browser stops sending it. Calling it
// again on the same request answers from ctx without a query.
func (w *Web) Identify(ctx *fasthttp.RequestCtx) (id tierpix.Identity, ok bool, err error) {
	if s := sessionOf(ctx); s != nil {
		return s.id, true, nil
	}
	token := string(ctx.Request.Header.Cookie(w.cookieName()))
	if token == "" {
		return tierpix.Identity{}, false, nil
	}
	if len(token) > maxTokenLength {
		w.clearSessionCookie(ctx)
		return tierpix.Identity{}, false, nil
	}
	now := w.cfg.Now()
	sess, ident, err := w.st.FindSession(dbContext(), token, now.Add(-w.cfg.SessionIdleTimeout))
	if tierpix.ErrorCode(err) == tierpix.ENOTFOUND {
		w.clearSessionCookie(ctx)
		return tierpix.Identity{}, false, nil
	} else if err != nil {
		return tierpix.Identity{}, false, fmt.Errorf("find session: %w", err)
	}
	if w.expired(sess, now) {
		if err := w.st.DeleteSession(dbContext(), token); err != nil {
			w.logger.Warn("delete expired session", "err", err)
		}
		w.clearSessionCookie(ctx)
		return tierpix.Identity{}, false, nil
	}
	if now.Sub(sess.LastSeenAt) > touchInterval {
		// A failed touch costs the user at most an earlier idle expiry; the request goes on.
		if err := w.st.TouchSession(dbContext(), sess.ID); err != nil {
			w.logger.Warn("touch session", "err", err)
		}
	}
	ctx.SetUserValue(sessionKey{}, &sessionState{sess: sess, id: ident, token: token})
	return ident, true, nil
}

// expired reports whether a session the store still holds is over either limit by the web's
// own clock and settings.
func (w *Web) expired(sess tierpix.Session, now time.Time) bool {
	if !sess.ExpiresAt.IsZero() && !now.Before(sess.ExpiresAt) {
		return true
	}
	if now.Sub(sess.CreatedAt) >= w.cfg.SessionMaxAge {
		return true
	}
	return now.Sub(sess.LastSeenAt) >= w.cfg.SessionIdleTimeout
}

// sessionOf returns the session Identify kept on ctx, or nil.
func sessionOf(ctx *fasthttp.RequestCtx) *sessionState {
	s, _ := ctx.UserValue(sessionKey{}).(*sessionState)
	return s
}

// CheckCSRF reports whether token is the CSRF token of the session Identify found on ctx,
// compared in constant time. False when there is no session or the token is empty.
func (w *Web) CheckCSRF(ctx *fasthttp.RequestCtx, token string) bool {
	s := sessionOf(ctx)
	if s == nil || token == "" || s.sess.CSRFToken == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(token), []byte(s.sess.CSRFToken)) == 1
}

// CheckOrigin reports whether a state-changing request may have come from this site's own
// pages. Sec-Fetch-Site, when present, must be same-origin or none (typed in, or a bookmark);
// Origin, when present, must be the public URL's origin. A request with neither passes: it is
// not from a current browser, and the CSRF token still has to match. The api package calls it
// for every browser form it accepts.
func (w *Web) CheckOrigin(ctx *fasthttp.RequestCtx) bool {
	if signin.FromOtherSite(string(ctx.Request.Header.Peek("Sec-Fetch-Site"))) {
		return false
	}
	if origin := ctx.Request.Header.Peek("Origin"); len(origin) > 0 {
		if !strings.EqualFold(string(origin), w.publicOrigin()) {
			return false
		}
	}
	return true
}

// requireUser returns the signed-in user and session of a page request. Not signed in: it
// answers 303 to /login?next=<path and query> (for GET and HEAD; other methods go to /login
// without next, since the target may have no GET) and ok is false. admin set and the user is
// not an admin: it answers a 403 page and ok is false. A store failure answers a 500 page.
func (w *Web) requireUser(ctx *fasthttp.RequestCtx, admin bool) (id *tierpix.Identity, sess *tierpix.Session, ok bool) {
	_, ok, err := w.Identify(ctx)
	if err != nil {
		w.failPage(ctx, "identify", err, "The page could not be shown. Try again in a moment.")
		return nil, nil, false
	}
	if !ok {
		loc := "/login"
		if ctx.IsGet() || ctx.IsHead() {
			loc += "?next=" + url.QueryEscape(string(ctx.URI().RequestURI()))
		}
		w.redirect(ctx, loc)
		return nil, nil, false
	}
	s := sessionOf(ctx)
	if admin && tierpix.RequireAdmin(&s.id) != nil {
		w.errorPage(ctx, fasthttp.StatusForbidden, "Not allowed", "This page is for administrators only.")
		return nil, nil, false
	}
	return &s.id, &s.sess, true
}

// formExpiredMessage is the 403 page's text when a form's token or origin does not match.
const formExpiredMessage = "The form has expired or did not come from this site; reload it and try again."

// checkForm verifies a state-changing form post: the request's origin (Origin and
// Sec-Fetch-Site headers) and its csrf_token field against the session. On failure it answers
// a 403 page and returns false. It reads the body with readForm, so afterwards
// ctx.PostArgs() holds the form's fields. The caller must have called requireUser (or
// Identify) first; without a session the form is refused.
func (w *Web) checkForm(ctx *fasthttp.RequestCtx) bool {
	if !ctx.IsPost() || !w.CheckOrigin(ctx) {
		w.errorPage(ctx, fasthttp.StatusForbidden, "Form refused", formExpiredMessage)
		return false
	}
	form, ok := w.readForm(ctx)
	if !ok {
		return false
	}
	if !w.CheckCSRF(ctx, string(form.Peek("csrf_token"))) {
		w.errorPage(ctx, fasthttp.StatusForbidden, "Form refused", formExpiredMessage)
		return false
	}
	return true
}

// readForm returns the urlencoded fields of a POST body of at most maxFormBytes, reading a
// streamed body through a limit (the server streams request bodies for uploads, and
// ctx.PostArgs alone would read any length). The body is put back on the request, so
// ctx.PostArgs() works afterwards. Another content type is an empty form. On a body over the
// limit it answers 413 and returns false.
func (w *Web) readForm(ctx *fasthttp.RequestCtx) (*fasthttp.Args, bool) {
	ct := strings.ToLower(string(ctx.Request.Header.ContentType()))
	if !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return &fasthttp.Args{}, true
	}
	if stream := ctx.RequestBodyStream(); stream != nil {
		body, err := io.ReadAll(io.LimitReader(stream, maxFormBytes+1))
		if err != nil {
			w.errorPage(ctx, fasthttp.StatusBadRequest, "Form refused", "The form could not be read in full; try again.")
			return nil, false
		}
		if len(body) > maxFormBytes {
			w.errorPage(ctx, fasthttp.StatusRequestEntityTooLarge, "Form refused", "The form is too large.")
			return nil, false
		}
		ctx.Request.SetBody(body)
	} else if len(ctx.Request.Body()) > maxFormBytes {
		w.errorPage(ctx, fasthttp.StatusRequestEntityTooLarge, "Form refused", "The form is too large.")
		return nil, false
	}
	return ctx.PostArgs(), true
}

// setSessionCookie hands the browser a new session's token.
func (w *Web) setSessionCookie(ctx *fasthttp.RequestCtx, token string) {
	w.setCookie(ctx, w.cookieName(), token, int(w.cfg.SessionMaxAge/time.Second), fasthttp.CookieSameSiteLaxMode)
}

// clearSessionCookie tells the browser to drop its session cookie.
func (w *Web) clearSessionCookie(ctx *fasthttp.RequestCtx) {
	w.setCookie(ctx, w.cookieName(), "", -1, fasthttp.CookieSameSiteLaxMode)
}

// setCookie sets a host-only cookie for path / with this site's attributes: HttpOnly always,
// Secure when the public URL is https. maxAge < 0 deletes the cookie.
func (w *Web) setCookie(ctx *fasthttp.RequestCtx, name, value string, maxAge int, sameSite fasthttp.CookieSameSite) {
	c := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(c)
	c.SetKey(name)
	c.SetValue(value)
	c.SetPath("/")
	c.SetHTTPOnly(true)
	c.SetSecure(w.secure())
	c.SetSameSite(sameSite)
	if maxAge < 0 {
		c.SetExpire(fasthttp.CookieExpireDelete)
	} else {
		c.SetMaxAge(maxAge)
	}
	ctx.Response.Header.SetCookie(c)
}

// secure reports whether the site is served over https, so cookies must be Secure.
func (w *Web) secure() bool { return strings.HasPrefix(w.cfg.PublicURL, "https://") }

// clientAddr is the client's address, as sign-in counts failures against it (see
// signin.Service.ClientAddr); sessions record it.
func (w *Web) clientAddr(ctx *fasthttp.RequestCtx) string {
	return w.signin.ClientAddr(ctx.RemoteIP(), ctx.Request.Header.PeekAll("X-Forwarded-For"))
}
