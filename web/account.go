package web

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/tierpix/tierpix"
	"github.com/valyala/fasthttp"
)

// accountPassword is the data of templates/account_password.html.
type accountPassword struct {
	Page
	adminForm
}

// handlePasswordForm serves GET /account/password: any signed-in user's own password form.
func (w *Web) handlePasswordForm(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, false)
	if !ok {
		return
	}
	d := accountPassword{Page: w.userPage(ctx, id, sess, "Change your password")}
	w.render(ctx, http.StatusOK, "account_password.html", d)
}

// handlePasswordChange serves POST /account/password. The service checks the current
// password (as a throttled sign-in) and ends every session of the user, as an admin's change
// does; this browser is then signed in afresh, so it alone stays signed in.
func (w *Web) handlePasswordChange(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, false)
	if !ok || !w.checkForm(ctx) {
		return
	}
	current, next := adminPost(ctx, "current_password"), adminPost(ctx, "new_password")
	err := w.svc.ChangePassword(dbContext(), id, current, next, w.clientAddr(ctx))
	switch tierpix.ErrorCode(err) {
	case "":
	case tierpix.EINVALID:
		d := accountPassword{Page: w.userPage(ctx, id, sess, "Change your password"), adminForm: adminFormFrom(err)}
		w.render(ctx, http.StatusBadRequest, "account_password.html", d)
		return
	case tierpix.ETOOMANY:
		w.errorPage(ctx, http.StatusTooManyRequests, "Too many attempts",
			fmt.Sprintf("Too many wrong passwords. Try again in %d seconds.", int(tierpix.ErrorRetryAfter(err).Seconds())))
		return
	default:
		w.failPage(ctx, "change password", err, "The password could not be changed. Try again in a moment.")
		return
	}
	token, fresh, err := w.newSession(ctx, id.User.ID)
	if err != nil {
		// The password changed; only this browser has to sign in again.
		w.logger.Warn("sign in after a password change", "err", err)
		w.redirect(ctx, "/login")
		return
	}
	w.setSessionCookie(ctx, token)
	if f, err := json.Marshal(flash{Message: "Your password is changed. Every other browser is signed out; your API tokens still work."}); err == nil {
		if err := w.st.SetSessionFlash(dbContext(), fresh.ID, string(f)); err != nil {
			w.logger.Warn("set session flash", "err", err)
		}
	}
	w.redirect(ctx, "/account/password")
}

// userPage is the Page of a signed-in user's own page, with the session's flash.
func (w *Web) userPage(ctx *fasthttp.RequestCtx, id *tierpix.Identity, sess *tierpix.Session, title string) Page {
	return Page{Title: title, User: &id.User, CSRF: sess.CSRFToken, Path: string(ctx.Path()), Flash: w.takeFlash(ctx).Message}
}
