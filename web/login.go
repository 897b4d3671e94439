package web

// Sign-in and sign-out.
//
// The sign-in form is protected against login CSRF (a cross-site page signing the victim in as
// the attacker) although there is no session yet, by a double-submit token: GET /login puts a
// random value in a short-lived cookie (HttpOnly, SameSite=Strict, Secure and __Host- prefixed
// on https) and the same value in the form; POST /login requires both, equal, compared in
// constant time. A cross-site page can neither read the cookie nor, thanks to SameSite=Strict
// and the prefix, make the browser send one it chose.
//
// Checking the password, and throttling guesses, is package signin's, shared with the API's
// Basic authentication: a lockout applies to both.

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/problem"
	"github.com/valyala/fasthttp"
)

// loginTokenMaxAge is how long a sign-in form stays valid; after it the POST is refused and the
// form is shown again with a fresh token.
const loginTokenMaxAge = time.Hour

// maxUserAgent is how much of the User-Agent a session records.
const maxUserAgent = 256

// Messages of the sign-in page.
const (
	msgBadCredentials = "The username or password is not valid."
	msgLoginExpired   = "The sign-in form has expired or did not come from this site. Please try again."
)

// loginData is the data of templates/login.html.
type loginData struct {
	Page
	Username  string
	Next      string
	LoginCSRF string
	Error     string
}

// loginCookieName names the double-submit cookie; __Host- on https for the reasons given at
// cookieName.
func (w *Web) loginCookieName() string {
	if w.secure() {
		return "__Host-tierpix_login"
	}
	return "tierpix_login"
}

// handleRoot serves GET /: the browsable API for a signed-in user (admins too: the dashboard is
// one link away), the sign-in form for anyone else.
func (w *Web) handleRoot(ctx *fasthttp.RequestCtx) {
	_, ok, err := w.Identify(ctx)
	if err != nil {
		w.logger.Error("identify", "err", err)
	}
	if ok {
		w.redirect(ctx, "/api")
		return
	}
	w.redirect(ctx, "/login")
}

// handleLoginForm serves GET /login. A user already signed in goes straight on to next.
func (w *Web) handleLoginForm(ctx *fasthttp.RequestCtx) {
	next := string(ctx.QueryArgs().Peek("next"))
	id, ok, err := w.Identify(ctx)
	if err != nil {
		w.logger.Error("identify", "err", err)
	}
	if ok {
		w.redirect(ctx, afterLogin(next, id.User.IsAdmin))
		return
	}
	w.loginPage(ctx, fasthttp.StatusOK, loginData{Next: safeNextOrEmpty(next)})
}

// loginPage renders the sign-in form with a login CSRF token: the one the browser already
// holds if it holds a well-formed one (so two open tabs both work), else a new one. Either
// way the cookie's lifetime starts again.
func (w *Web) loginPage(ctx *fasthttp.RequestCtx, status int, d loginData) {
	token := string(ctx.Request.Header.Cookie(w.loginCookieName()))
	if !wellFormedToken(token) {
		token = rand.Text()
	}
	w.setCookie(ctx, w.loginCookieName(), token, int(loginTokenMaxAge/time.Second), fasthttp.CookieSameSiteStrictMode)
	d.Title = "Sign in"
	d.LoginCSRF = token
	d.Path = "/login"
	w.render(ctx, status, "login.html", d)
}

// wellFormedToken reports whether s looks like a token from rand.Text (26 base32 characters,
// 130 bits).
func wellFormedToken(s string) bool {
	if len(s) != 26 {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// handleLogin serves POST /login: the double-submit check, the throttle, the password, then a
// new session and a 303 to next.
func (w *Web) handleLogin(ctx *fasthttp.RequestCtx) {
	if !w.CheckOrigin(ctx) {
		w.loginPage(ctx, fasthttp.StatusForbidden, loginData{Error: msgLoginExpired})
		return
	}
	form, ok := w.readForm(ctx)
	if !ok {
		return
	}
	username := string(form.Peek("username"))
	password := string(form.Peek("password"))
	next := safeNextOrEmpty(string(form.Peek("next")))
	d := loginData{Username: username, Next: next}

	cookie := ctx.Request.Header.Cookie(w.loginCookieName())
	sent := form.Peek("csrf_token")
	if len(cookie) == 0 || len(sent) == 0 || subtle.ConstantTimeCompare(cookie, sent) != 1 {
		d.Error = msgLoginExpired
		w.loginPage(ctx, fasthttp.StatusForbidden, d)
		return
	}

	id, err := w.signin.SignIn(dbContext(), username, password, w.clientAddr(ctx))
	switch tierpix.ErrorCode(err) {
	case "":
	case tierpix.EUNAUTHORIZED:
		d.Error = msgBadCredentials
		w.loginPage(ctx, fasthttp.StatusBadRequest, d)
		return
	case tierpix.ETOOMANY:
		w.throttled(ctx, d, tierpix.ErrorRetryAfter(err))
		return
	case tierpix.EUNAVAILABLE:
		w.logger.Warn("sign in", "err", err)
		problem.SetRetryAfter(ctx, tierpix.ErrorRetryAfter(err))
		w.errorPage(ctx, fasthttp.StatusServiceUnavailable, "Busy", "Signing in is busy. Try again in a moment.")
		return
	default:
		w.loginFailed(ctx, err)
		return
	}

	token, _, err := w.newSession(ctx, id.User.ID)
	if err != nil {
		w.loginFailed(ctx, fmt.Errorf("create session: %w", err))
		return
	}
	// A session the browser held before (another user's, say) ends here rather than lingering.
	if old := string(ctx.Request.Header.Cookie(w.cookieName())); old != "" && len(old) <= maxTokenLength {
		if err := w.st.DeleteSession(dbContext(), old); err != nil {
			w.logger.Warn("delete previous session", "err", err)
		}
	}
	w.setSessionCookie(ctx, token)
	w.setCookie(ctx, w.loginCookieName(), "", -1, fasthttp.CookieSameSiteStrictMode)
	w.logger.Info("signed in", "user", id.User.Username, "addr", w.clientAddr(ctx))
	w.redirect(ctx, afterLogin(next, id.User.IsAdmin))
}

// throttled answers 429 with the sign-in form, saying how long to wait.
func (w *Web) throttled(ctx *fasthttp.RequestCtx, d loginData, retryAfter time.Duration) {
	problem.SetRetryAfter(ctx, retryAfter)
	mins := int((retryAfter + time.Minute - 1) / time.Minute)
	unit := "minutes"
	if mins == 1 {
		unit = "minute"
	}
	d.Error = fmt.Sprintf("Too many failed sign-ins. Try again in %d %s.", mins, unit)
	w.logger.Warn("sign-in throttled", "user", d.Username, "addr", w.clientAddr(ctx))
	w.loginPage(ctx, fasthttp.StatusTooManyRequests, d)
}

// loginFailed answers a store failure during sign-in (see failPage).
func (w *Web) loginFailed(ctx *fasthttp.RequestCtx, err error) {
	w.failPage(ctx, "sign in", err, "Signing in failed. Try again in a moment.")
}

// handleLogout serves POST /logout: the session ends in the store, so its cookie stops working
// everywhere, not only in this browser. Without a live session there is nothing to end and no
// token to check: it just goes to the sign-in page.
func (w *Web) handleLogout(ctx *fasthttp.RequestCtx) {
	_, ok, err := w.Identify(ctx)
	if err != nil {
		w.failPage(ctx, "identify", err, "Signing out failed. Try again in a moment.")
		return
	}
	if !ok {
		w.redirect(ctx, "/login")
		return
	}
	if !w.checkForm(ctx) {
		return
	}
	if err := w.st.DeleteSession(dbContext(), sessionOf(ctx).token); err != nil {
		w.failPage(ctx, "delete session", err, "Signing out failed. Try again in a moment.")
		return
	}
	ctx.RemoveUserValue(sessionKey{})
	w.clearSessionCookie(ctx)
	w.redirect(ctx, "/login")
}

// afterLogin is where a sign-in goes: next when it is a safe local path, else the admin
// dashboard for admins and the browsable API for everyone else.
func afterLogin(next string, admin bool) string {
	if safeNext(next) {
		return next
	}
	if admin {
		return "/admin"
	}
	return "/api"
}

func safeNextOrEmpty(next string) string {
	if safeNext(next) {
		return next
	}
	return ""
}

// safeNext reports whether next is a path on this site, so that redirecting to it cannot send
// the user elsewhere: a single leading "/" (not "//", which browsers read as another host), no
// backslash (browsers read "/\" as "//"), no control characters, and no scheme or host once
// parsed.
func safeNext(next string) bool {
	if next == "" || len(next) > 2048 || next[0] != '/' || strings.HasPrefix(next, "//") {
		return false
	}
	for _, c := range next {
		if c == '\\' || c < 0x20 || c == 0x7f {
			return false
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	return strings.HasPrefix(u.Path, "/") && !strings.HasPrefix(u.Path, "//")
}

// newSession creates a session for the browser of ctx, signed in as the user userID.
func (w *Web) newSession(ctx *fasthttp.RequestCtx, userID int64) (string, tierpix.Session, error) {
	ua := string(ctx.UserAgent())
	if len(ua) > maxUserAgent {
		ua = ua[:maxUserAgent]
	}
	return w.st.CreateSession(dbContext(), userID, w.cfg.SessionMaxAge, ua, w.clientAddr(ctx))
}
