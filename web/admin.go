package web

// The admin UI: tiers, users (with their tokens and sessions) and everyone's images, as plain
// server-rendered forms. It reads and writes through the store on every request and caches
// nothing, so a change made here takes effect at once on the API and, within the origin's
// metadata TTL, on image links.
//
// Every handler starts with requireUser(ctx, true); every POST then calls checkForm before it
// reads a field. A successful change answers 303 to a page (post, redirect, get), with its
// outcome kept in the session's flash for that page only: a reload does not repeat it, and
// no link can make a page say anything.

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/problem"
	"github.com/valyala/fasthttp"
)

// adminPageSize is how many rows a page of users or images shows.
const adminPageSize = 50

// adminNavLink is one entry of the admin's section navigation.
type adminNavLink struct {
	Href    string
	Label   string
	Current bool
}

// adminLayout is embedded in every admin page's data: the Page every template reads and the
// section navigation.
type adminLayout struct {
	Page
	Nav []adminNavLink
}

// adminLayoutFor returns the layout of an admin page for the signed-in admin.
func adminLayoutFor(ctx *fasthttp.RequestCtx, id *tierpix.Identity, sess *tierpix.Session, title string) adminLayout {
	path := string(ctx.Path())
	l := adminLayout{Page: Page{Title: title, User: &id.User, CSRF: sess.CSRFToken, Path: path}}
	for _, s := range []struct{ href, label string }{
		{"/admin", "Dashboard"},
		{"/admin/tiers", "Tiers"},
		{"/admin/users", "Users"},
		{"/admin/images", "Images"},
		{"/admin/audit", "Recent actions"},
	} {
		// The bulk deletes' confirmations belong to their lists.
		section := strings.Replace(strings.Replace(path, "/admin/delete-users", "/admin/users/", 1), "/admin/delete-images", "/admin/images/", 1)
		cur := section == s.href || (s.href != "/admin" && strings.HasPrefix(section, s.href+"/"))
		l.Nav = append(l.Nav, adminNavLink{Href: s.href, Label: s.label, Current: cur})
	}
	return l
}

// adminForm is the outcome of a form post shown on the re-rendered form: a message for the
// whole form and messages next to fields, keyed by the input's name (which is also its id).
type adminForm struct {
	Error  string
	Fields map[string]string
}

// adminFieldLabels are the labels field messages start with when the store's message is a
// bare predicate ("must be ...").
var adminFieldLabels = map[string]string{
	"name":              "The name",
	"thumbnail_heights": "Thumbnail heights",
	"username":          "The username",
	"password":          "The password",
	"tier":              "The tier",
	"current_password":  "The current password",
	"new_password":      "The new password",
}

// adminFormFrom turns a store or validation error into form messages: per-field messages go
// next to their fields, anything else is the form's message.
func adminFormFrom(err error) adminForm {
	f := adminForm{Fields: map[string]string{}}
	for k, v := range tierpix.ErrorFields(err) {
		f.Fields[k] = adminSentence(k, v)
	}
	if len(f.Fields) == 0 {
		f.Error = tierpix.ErrorMessage(err)
	} else {
		f.Error = "Please correct the marked fields."
	}
	return f
}

// adminSentence makes a field message a sentence: a bare predicate gets the field's label
// ("must be ..." becomes "The name must be ..."), anything else a capital letter.
func adminSentence(field, msg string) string {
	r, size := utf8.DecodeRuneInString(msg)
	switch {
	case strings.HasPrefix(msg, "must ") || strings.HasPrefix(msg, "is ") || strings.HasPrefix(msg, "cannot "):
		label, ok := adminFieldLabels[field]
		if !ok {
			label = field
		}
		msg = label + " " + msg
	case unicode.IsLower(r):
		msg = string(unicode.ToUpper(r)) + msg[size:]
	}
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}

// adminStatusOf is the status of a re-rendered form or refused action.
func adminStatusOf(err error) int {
	switch tierpix.ErrorCode(err) {
	case tierpix.EINVALID:
		return http.StatusBadRequest
	case tierpix.ECONFLICT:
		return http.StatusConflict
	case tierpix.ENOTFOUND:
		return http.StatusNotFound
	case tierpix.EFORBIDDEN:
		return http.StatusForbidden
	case tierpix.EUNAVAILABLE, tierpix.ESTORAGE:
		return problem.Status(tierpix.ErrorCode(err))
	}
	return http.StatusInternalServerError
}

// adminMessagePage is a page that only says something: not found, refused, or our fault.
type adminMessagePage struct {
	adminLayout
	Heading string
	Message string
	Back    string // a link back to where the admin came from
}

// adminFail answers an error no form can show: a page with its message and status. Internal
// errors are logged with their detail and shown as a generic message.
func (w *Web) adminFail(ctx *fasthttp.RequestCtx, l adminLayout, back, op string, err error) {
	status := adminStatusOf(err)
	p := adminMessagePage{adminLayout: l, Back: back, Message: tierpix.ErrorMessage(err)}
	switch status {
	case http.StatusNotFound:
		p.Heading = "Not found"
	case http.StatusServiceUnavailable, http.StatusInsufficientStorage:
		w.logger.Warn("admin: "+op, "path", string(ctx.Path()), "err", err)
		problem.SetRetryAfter(ctx, tierpix.ErrorRetryAfter(err))
		p.Heading = "Unavailable"
	case http.StatusInternalServerError:
		w.logger.Error("admin: "+op, "path", string(ctx.Path()), "err", err)
		p.Heading = "Something went wrong"
		p.Message = "The server could not do this. The error has been logged; try again later."
	default:
		p.Heading = "Not done"
	}
	p.Title = p.Heading
	w.render(ctx, status, "admin_message.html", p)
}

// adminRedirect answers 303 to path with the query q (nil for none).
func (w *Web) adminRedirect(ctx *fasthttp.RequestCtx, path, notice string) {
	if notice != "" {
		w.setFlash(ctx, flash{Message: notice})
	}
	w.redirect(ctx, path)
}

// layoutFor is adminLayoutFor with the session's flash, which it takes: a notice shows once.
func (w *Web) layoutFor(ctx *fasthttp.RequestCtx, id *tierpix.Identity, sess *tierpix.Session, title string) adminLayout {
	l := adminLayoutFor(ctx, id, sess, title)
	l.Flash = w.takeFlash(ctx).Message
	return l
}

// adminParam returns a route parameter such as {name}.
func adminParam(ctx *fasthttp.RequestCtx, name string) string {
	v, _ := ctx.UserValue(name).(string)
	return v
}

// adminQuery returns a query parameter.
func adminQuery(ctx *fasthttp.RequestCtx, name string) string {
	return string(ctx.QueryArgs().Peek(name))
}

// adminPost returns a form field of a POST.
func adminPost(ctx *fasthttp.RequestCtx, name string) string {
	return string(ctx.PostArgs().Peek(name))
}

// adminChecked reports whether a checkbox was ticked: browsers send nothing for one that is not.
func adminChecked(ctx *fasthttp.RequestCtx, name string) bool {
	return ctx.PostArgs().Has(name)
}

// adminTime is a time as pages show it: readable text and a machine-readable datetime.
type adminTime struct {
	ISO  string
	Text string
}

func adminTimeOf(t time.Time) adminTime {
	if t.IsZero() {
		return adminTime{Text: "never"}
	}
	t = t.UTC()
	return adminTime{ISO: t.Format(time.RFC3339), Text: t.Format("2006-01-02 15:04 UTC")}
}

// adminBytes formats a byte count with thousands separators: 1234567 is "1,234,567 bytes".
func adminBytes(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if n == 1 {
		return "1 byte"
	}
	return b.String() + " bytes"
}

// adminDashboard is the data of GET /admin.
type adminDashboard struct {
	adminLayout
	Tiers  int
	Users  string // "12", or "more than 10000" (see tierpix.UserCountCap)
	Admins int
	Recent []adminChangeRow
}

// handleAdminIndex serves GET /admin: counts and the way to each section.
func (w *Web) handleAdminIndex(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	l := w.layoutFor(ctx, id, sess, "Admin")
	dbctx := dbContext()
	tiers, err := w.svc.ListTiers(dbctx)
	if err != nil {
		w.adminFail(ctx, l, "/", "list tiers", err)
		return
	}
	users, err := w.svc.ListUsers(dbctx, id, tierpix.UserQuery{Limit: 1})
	if err != nil {
		w.adminFail(ctx, l, "/", "list users", err)
		return
	}
	admins, err := w.st.CountAdmins(dbctx)
	if err != nil {
		w.adminFail(ctx, l, "/", "count admins", err)
		return
	}
	recent, err := w.svc.ListChanges(dbctx, id, tierpix.ChangeQuery{Limit: adminRecentActions})
	if err != nil {
		w.adminFail(ctx, l, "/", "recent actions", err)
		return
	}
	d := adminDashboard{adminLayout: l, Tiers: len(tiers), Admins: admins, Users: strconv.Itoa(users.Total)}
	d.Recent = adminChangeRows(recent.Changes)
	if users.TotalCapped {
		d.Users = fmt.Sprintf("more than %d", users.Total)
	}
	w.render(ctx, http.StatusOK, "admin_index.html", d)
}
