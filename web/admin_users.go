package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tierpix/tierpix"
	"github.com/valyala/fasthttp"
)

// adminUserRow is a user in the list.
type adminUserRow struct {
	Username string
	Tier     string
	IsAdmin  bool
	Created  adminTime
	EditURL  string
	Self     bool // the admin's own row: no checkbox, an admin cannot delete themselves
}

// adminUserList is the data of GET /admin/users: a page of users, sorted by a column and
// filtered like django-admin's change list, with checkboxes for the bulk delete.
type adminUserList struct {
	adminLayout
	Q        string
	Tier     string
	Admin    string // "", "yes" or "no"
	Tiers    []adminOption
	Columns  []adminSortColumn
	Users    []adminUserRow
	Count    string // "51–100 of 1 234"
	Filtered bool
	FirstURL string // empty on the first page
	PrevURL  string
	NextURL  string // empty on the last page
	Ordering string // the current ordering, kept by the search and filter forms
}

// adminSortColumn is a sortable column heading: a link that sorts by it, ascending, or
// descending when it is the ascending sort already.
type adminSortColumn struct {
	Label string
	URL   string
	Sort  string // aria-sort: "ascending", "descending" or "" when not sorted by it
}

// adminTierOption is a tier in a select.
type adminTierOption struct {
	Name     string
	Selected bool
}

// adminUserNew is the data of the new user form.
type adminUserNew struct {
	adminLayout
	adminForm
	Username string
	IsAdmin  bool
	Tiers    []adminTierOption
}

// adminTokenRow is an API token on the user's page: never the secret, only its hint.
type adminTokenRow struct {
	Hint      string
	Created   adminTime
	RevokeURL string
}

// adminSessionRow is a signed-in browser of the user.
type adminSessionRow struct {
	Created   adminTime
	LastSeen  adminTime
	UserAgent string
	Address   string
	Current   bool // the session viewing the page
}

// adminUserEdit is the data of the user's page: the edit form, tokens and sessions.
type adminUserEdit struct {
	adminLayout
	adminForm
	Username string
	IsAdmin  bool
	Self     bool // the admin is looking at their own account
	Created  adminTime
	Tiers    []adminTierOption
	Tokens   []adminTokenRow
	Sessions []adminSessionRow
	URL      string // /admin/users/{username}
}

// adminUserDelete is the data of the user's delete confirmation: what goes with them.
type adminUserDelete struct {
	adminLayout
	Username string
	URL      string
	Refusal  string
	Images   string // "3 images"
	Tokens   string
	Sessions string
}

// adminConfirm is the data of templates/admin_confirm.html: one destructive action, what it
// takes along, and its button.
type adminConfirm struct {
	adminLayout
	Heading string
	Message string
	Items   []string // what goes; without items there is nothing to confirm
	Refused []string // what was asked for but cannot go, and why
	Refusal string   // the whole action is refused
	Action  string   // where the form posts
	Hidden  []adminHidden
	Button  string
	Back    string
}

// adminHidden is a hidden field of a confirmation's form.
type adminHidden struct{ Name, Value string }

// adminTokenMinted is the page that shows a new token, once; Token is empty when it was
// shown already (a reload).
type adminTokenMinted struct {
	adminLayout
	Username string
	Token    string
	URL      string
}

func adminUserURL(username string) string { return "/admin/users/" + url.PathEscape(username) }

// adminTierOptions lists every tier for a select, with selected chosen (case-insensitively).
func (w *Web) adminTierOptions(selected string) ([]adminTierOption, error) {
	tiers, err := w.svc.ListTiers(dbContext())
	if err != nil {
		return nil, fmt.Errorf("list tiers: %w", err)
	}
	opts := make([]adminTierOption, len(tiers))
	for i, t := range tiers {
		opts[i] = adminTierOption{Name: t.Name, Selected: strings.EqualFold(t.Name, selected)}
	}
	return opts, nil
}

// adminUserColumns are the user list's sortable columns, in table order.
var adminUserColumns = []struct {
	Label string
	Sort  tierpix.UserSort
}{
	{"Username", tierpix.SortUsername},
	{"Tier", tierpix.SortTier},
	{"Admin", tierpix.SortIsAdmin},
	{"Created", tierpix.SortCreatedAt},
}

// handleUserList serves GET /admin/users?q=&tier=&admin=&o=&cursor=: users sorted by a column
// (o, DRF's ordering: "-created_at" is newest first), filtered by a substring of the
// username, a tier and the admin flag, 50 a page by keyset, with the count of those that
// match.
func (w *Web) handleUserList(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	l := w.layoutFor(ctx, id, sess, "Users")
	d := adminUserList{
		adminLayout: l,
		Q:           strings.TrimSpace(adminQuery(ctx, "q")),
		Tier:        adminQuery(ctx, "tier"),
		Admin:       adminQuery(ctx, "admin"),
		Ordering:    adminQuery(ctx, "o"),
	}
	q := tierpix.UserQuery{Search: d.Q, Tier: d.Tier, Cursor: adminQuery(ctx, "cursor"), Limit: adminPageSize}
	q.Sort = tierpix.UserSort(strings.TrimPrefix(d.Ordering, "-"))
	q.Desc = strings.HasPrefix(d.Ordering, "-")
	switch d.Admin {
	case "yes":
		q.Admin = ptrTo(true)
	case "no":
		q.Admin = ptrTo(false)
	default:
		d.Admin = ""
	}
	d.Filtered = d.Q != "" || d.Tier != "" || d.Admin != ""
	p, err := w.svc.ListUsers(dbContext(), id, q)
	if tierpix.ErrorCode(err) == tierpix.EINVALID {
		// A hand-edited ordering or cursor: the first page, in the default order, says so.
		d.Flash = tierpix.ErrorMessage(err)
		for k, v := range tierpix.ErrorFields(err) {
			d.Flash = adminSentence(k, v) + " Showing the first page by username."
		}
		d.Ordering, q.Sort, q.Desc, q.Cursor = "", "", false, ""
		p, err = w.svc.ListUsers(dbContext(), id, q)
	}
	if err != nil {
		w.adminFail(ctx, l, "/admin", "list users", err)
		return
	}
	if d.Tiers, err = w.adminFilterTiers(d.Tier); err != nil {
		w.adminFail(ctx, l, "/admin", "list tiers", err)
		return
	}
	link := func(ordering, cursor string) string {
		v := url.Values{}
		for k, val := range map[string]string{"q": d.Q, "tier": d.Tier, "admin": d.Admin, "o": ordering, "cursor": cursor} {
			if val != "" {
				v.Set(k, val)
			}
		}
		if len(v) == 0 {
			return "/admin/users"
		}
		return "/admin/users?" + v.Encode()
	}
	for _, c := range adminUserColumns {
		col := adminSortColumn{Label: c.Label, URL: link(string(c.Sort), "")}
		if q.SortBy() == c.Sort {
			col.Sort = "ascending"
			if q.Desc {
				col.Sort = "descending"
			} else {
				col.URL = link("-"+string(c.Sort), "")
			}
		}
		d.Columns = append(d.Columns, col)
	}
	if !p.First {
		d.FirstURL = link(d.Ordering, "")
		if p.Prev != "" {
			d.PrevURL = link(d.Ordering, p.Prev)
		}
	}
	if p.Next != "" {
		d.NextURL = link(d.Ordering, p.Next)
	}
	d.Count = adminRange(p)
	if d.Filtered {
		d.Title = "Users (filtered)"
	}
	d.Users = make([]adminUserRow, len(p.Users))
	for i, u := range p.Users {
		d.Users[i] = adminUserRow{Username: u.Username, Tier: u.TierName, IsAdmin: u.IsAdmin, Created: adminTimeOf(u.CreatedAt),
			EditURL: adminUserURL(u.Username), Self: u.ID == id.User.ID}
	}
	w.render(ctx, http.StatusOK, "admin_users.html", d)
}

func ptrTo[T any](v T) *T { return &v }

// adminRange says where a page is: "51–100 of 1 234", "1–50 of more than 10 000".
func adminRange(p tierpix.UserPage) string {
	if len(p.Users) == 0 {
		return "0 users"
	}
	total := adminThousands(p.Total) + " users"
	if p.TotalCapped {
		total = "more than " + total
	}
	if p.StartCapped {
		return fmt.Sprintf("%d users of %s", len(p.Users), total)
	}
	return fmt.Sprintf("%s–%s of %s", adminThousands(p.Start+1), adminThousands(p.Start+len(p.Users)), total)
}

// adminThousands writes n with thin spaces between thousands: 1 234 567.
func adminThousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "\u202f" + s[i:]
	}
	return s
}

// adminFilterTiers lists the tiers for a filter's select, "any tier" first.
func (w *Web) adminFilterTiers(selected string) ([]adminOption, error) {
	tiers, err := w.svc.ListTiers(dbContext())
	if err != nil {
		return nil, err
	}
	opts := []adminOption{{Value: "", Label: "Any tier", Selected: selected == ""}}
	for _, t := range tiers {
		opts = append(opts, adminOption{Value: t.Name, Label: t.Name, Selected: strings.EqualFold(t.Name, selected)})
	}
	return opts, nil
}

// handleUserNew serves GET /admin/users/new: the empty form, on the default tier.
func (w *Web) handleUserNew(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	l := w.layoutFor(ctx, id, sess, "Add user")
	tiers, err := w.adminTierOptions(tierpix.DefaultTier)
	if err != nil {
		w.adminFail(ctx, l, "/admin/users", "new user", err)
		return
	}
	w.render(ctx, http.StatusOK, "admin_user_new.html", adminUserNew{adminLayout: l, Tiers: tiers})
}

// handleUserCreate serves POST /admin/users/new.
func (w *Web) handleUserCreate(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok || !w.checkForm(ctx) {
		return
	}
	d := adminUserNew{
		adminLayout: w.layoutFor(ctx, id, sess, "Add user"),
		Username:    strings.TrimSpace(adminPost(ctx, "username")),
		IsAdmin:     adminChecked(ctx, "is_admin"),
	}
	password := adminPost(ctx, "password")
	tier := adminPost(ctx, "tier")
	if tier == "" {
		tier = tierpix.DefaultTier
	}
	var err error
	if d.Tiers, err = w.adminTierOptions(tier); err != nil {
		w.adminFail(ctx, d.adminLayout, "/admin/users", "create user", err)
		return
	}

	u, err := w.svc.CreateUser(dbContext(), id, tierpix.NewUser{Username: d.Username, Password: password, Tier: tier, IsAdmin: d.IsAdmin})
	if err == nil {
		w.adminRedirect(ctx, "/admin/users", fmt.Sprintf("User %s created.", u.Username))
		return
	}
	switch tierpix.ErrorCode(err) {
	case tierpix.ECONFLICT:
		// The one conflict a new user can meet is its username.
		d.adminForm = adminForm{Error: "Please correct the marked fields.", Fields: map[string]string{"username": tierpix.ErrorMessage(err)}}
		w.render(ctx, http.StatusConflict, "admin_user_new.html", d)
	case tierpix.EINVALID:
		d.adminForm = adminFormFrom(err)
		w.render(ctx, http.StatusBadRequest, "admin_user_new.html", d)
	default:
		w.adminFail(ctx, d.adminLayout, "/admin/users", "create user", err)
	}
}

// adminUserPage loads everything the user's page shows besides the form's own values.
func (w *Web) adminUserPage(l adminLayout, caller *tierpix.Identity, sess *tierpix.Session, target tierpix.User) (adminUserEdit, error) {
	dbctx := dbContext()
	d := adminUserEdit{
		adminLayout: l,
		Username:    target.Username,
		IsAdmin:     target.IsAdmin,
		Self:        target.ID == caller.User.ID,
		Created:     adminTimeOf(target.CreatedAt),
		URL:         adminUserURL(target.Username),
	}
	var err error
	if d.Tiers, err = w.adminTierOptions(target.TierName); err != nil {
		return d, err
	}
	_, tokens, err := w.svc.ListTokens(dbctx, caller, target.Username)
	if err != nil {
		return d, err
	}
	for _, t := range tokens {
		hint := t.Hint
		if hint == "" {
			hint = fmt.Sprintf("token %d", t.ID) // minted before tokens had hints
		}
		d.Tokens = append(d.Tokens, adminTokenRow{
			Hint:      hint,
			Created:   adminTimeOf(t.CreatedAt),
			RevokeURL: fmt.Sprintf("%s/tokens/%d/delete", d.URL, t.ID),
		})
	}
	sessions, err := w.svc.ListSessions(dbctx, caller, target.Username, w.cfg.Now().Add(-w.cfg.SessionIdleTimeout))
	if err != nil {
		return d, err
	}
	for _, s := range sessions {
		d.Sessions = append(d.Sessions, adminSessionRow{
			Created:   adminTimeOf(s.CreatedAt),
			LastSeen:  adminTimeOf(s.LastSeenAt),
			UserAgent: s.UserAgent,
			Address:   s.Address,
			Current:   s.ID == sess.ID,
		})
	}
	return d, nil
}

// handleUserEdit serves GET /admin/users/{username}: the edit form, the user's API tokens and
// sessions.
func (w *Web) handleUserEdit(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	username := adminParam(ctx, "username")
	l := w.layoutFor(ctx, id, sess, "User "+username)
	target, err := w.svc.FindUser(dbContext(), id, username)
	if err != nil {
		w.adminFail(ctx, l, "/admin/users", "find user", err)
		return
	}
	d, err := w.adminUserPage(l, id, sess, target.User)
	if err != nil {
		w.adminFail(ctx, l, "/admin/users", "user page", err)
		return
	}
	w.render(ctx, http.StatusOK, "admin_user_edit.html", d)
}

func adminPlural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// handleUserUpdate serves POST /admin/users/{username}: tier, admin flag and, when one is
// typed, a new password, which ends the user's sessions. The user is read and written in one
// transaction. An admin cannot demote themselves, and the store refuses to demote the last
// admin.
func (w *Web) handleUserUpdate(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok || !w.checkForm(ctx) {
		return
	}
	username := adminParam(ctx, "username")
	l := w.layoutFor(ctx, id, sess, "User "+username)
	tier := adminPost(ctx, "tier")
	isAdmin := adminChecked(ctx, "is_admin")
	password := adminPost(ctx, "password")

	upd := tierpix.UserUpdate{Tier: &tier, IsAdmin: &isAdmin}
	if password != "" {
		upd.Password = &password
	}
	u, err := w.svc.UpdateUser(dbContext(), id, username, upd)
	if err == nil {
		w.adminRedirect(ctx, "/admin/users", fmt.Sprintf("User %s saved.", u.Username))
		return
	}
	code := tierpix.ErrorCode(err)
	if code != tierpix.EINVALID && code != tierpix.ECONFLICT {
		w.adminFail(ctx, l, "/admin/users", "update user", err)
		return
	}
	target, ferr := w.svc.FindUser(dbContext(), id, username)
	if ferr != nil {
		w.adminFail(ctx, l, "/admin/users", "find user", ferr)
		return
	}
	d, ferr := w.adminUserPage(l, id, sess, target.User)
	if ferr != nil {
		w.adminFail(ctx, l, "/admin/users", "user page", ferr)
		return
	}
	// Show what was typed, except the password.
	d.IsAdmin = isAdmin
	for i := range d.Tiers {
		d.Tiers[i].Selected = strings.EqualFold(d.Tiers[i].Name, tier)
	}
	d.adminForm = adminFormFrom(err)
	w.render(ctx, adminStatusOf(err), "admin_user_edit.html", d)
}

// handleUserConfirm serves GET /admin/users/{username}/delete: the confirmation, or why the
// account cannot be deleted.
func (w *Web) handleUserConfirm(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	username := adminParam(ctx, "username")
	l := w.layoutFor(ctx, id, sess, "Delete user "+username)
	target, err := w.svc.FindUser(dbContext(), id, username)
	if err != nil {
		w.adminFail(ctx, l, "/admin/users", "find user", err)
		return
	}
	plan, err := w.svc.PlanDeleteUser(dbContext(), id, target.User.Username)
	if err != nil {
		w.adminFail(ctx, l, "/admin/users", "plan user delete", err)
		return
	}
	d := adminUserDelete{
		adminLayout: l, Username: target.User.Username, URL: adminUserURL(target.User.Username),
		Images:   adminCount(plan.Images, "image", "images"),
		Tokens:   adminCount(plan.Tokens, "API token", "API tokens"),
		Sessions: adminCount(plan.Sessions, "session", "sessions"),
	}
	if plan.Refusal != nil {
		d.Refusal = tierpix.ErrorMessage(plan.Refusal)
	}
	w.render(ctx, http.StatusOK, "admin_user_delete.html", d)
}

// handleUserDelete serves POST /admin/users/{username}/delete: the user goes with their
// tokens, sessions, images and originals, and every cached render of those images is purged.
func (w *Web) handleUserDelete(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok || !w.checkForm(ctx) {
		return
	}
	username := adminParam(ctx, "username")
	l := w.layoutFor(ctx, id, sess, "Delete user "+username)
	dbctx := dbContext()
	target, err := w.svc.FindUser(dbctx, id, username)
	if err != nil {
		w.adminFail(ctx, l, "/admin/users", "find user", err)
		return
	}
	d := adminUserDelete{adminLayout: l, Username: target.User.Username, URL: adminUserURL(target.User.Username)}
	err = w.svc.DeleteUser(dbctx, id, target.User.Username)
	switch tierpix.ErrorCode(err) {
	case "":
		w.adminRedirect(ctx, "/admin/users", fmt.Sprintf("User %s deleted.", target.User.Username))
	case tierpix.ECONFLICT:
		d.Refusal = tierpix.ErrorMessage(err)
		w.render(ctx, http.StatusConflict, "admin_user_delete.html", d)
	default:
		w.adminFail(ctx, l, "/admin/users", "delete user", err)
	}
}

// handleTokenCreate serves POST /admin/users/{username}/tokens: a new API token, shown once
// on the answer itself (201), never in a URL, and kept only as a hash.
func (w *Web) handleTokenCreate(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok || !w.checkForm(ctx) {
		return
	}
	username := adminParam(ctx, "username")
	l := w.layoutFor(ctx, id, sess, "New token for "+username)
	dbctx := dbContext()
	target, err := w.svc.FindUser(dbctx, id, username)
	if err != nil {
		w.adminFail(ctx, l, "/admin/users", "find user", err)
		return
	}
	_, _, token, err := w.svc.CreateToken(dbctx, id, target.User.Username)
	if err != nil {
		w.adminFail(ctx, l, adminUserURL(target.User.Username), "create token", err)
		return
	}
	// Post, redirect, get: the token waits in the session, sealed, for the one page that
	// shows it, so reloading that page neither mints another nor shows this one again.
	w.setFlash(ctx, flash{Token: token, For: target.User.Username})
	w.redirect(ctx, adminUserURL(target.User.Username)+"/token")
}

// handleTokenShow serves GET /admin/users/{username}/token: the token just minted, once.
func (w *Web) handleTokenShow(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	username := adminParam(ctx, "username")
	f := w.takeFlash(ctx)
	l := adminLayoutFor(ctx, id, sess, "New token for "+username)
	l.Flash = f.Message
	target, err := w.svc.FindUser(dbContext(), id, username)
	if err != nil {
		w.adminFail(ctx, l, "/admin/users", "find user", err)
		return
	}
	d := adminTokenMinted{adminLayout: l, Username: target.User.Username, URL: adminUserURL(target.User.Username)}
	if f.For == target.User.Username {
		d.Token = f.Token
	}
	w.render(ctx, http.StatusOK, "admin_token.html", d)
}

// handleTokenConfirm serves GET /admin/users/{username}/tokens/{id}/delete: the revoke
// confirmation.
func (w *Web) handleTokenConfirm(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	username := adminParam(ctx, "username")
	l := w.layoutFor(ctx, id, sess, "Revoke token")
	_, tokens, err := w.svc.ListTokens(dbContext(), id, username)
	if err != nil {
		w.adminFail(ctx, l, "/admin/users", "list tokens", err)
		return
	}
	back := adminUserURL(username)
	d := adminConfirm{adminLayout: l, Heading: "Revoke token", Back: back, Button: "Revoke token",
		Action: string(ctx.Path())}
	for _, t := range tokens {
		if strconv.FormatInt(t.ID, 10) == adminParam(ctx, "id") {
			hint := t.Hint
			if hint == "" {
				hint = fmt.Sprintf("token %d", t.ID)
			}
			d.Message = fmt.Sprintf("Revoke this API token of %s? Programs using it stop working at once. This cannot be undone.", username)
			d.Items = []string{fmt.Sprintf("%s, created %s", hint, adminTimeOf(t.CreatedAt).Text)}
		}
	}
	if d.Items == nil {
		d.Refusal = "The user has no such token."
		w.render(ctx, http.StatusNotFound, "admin_confirm.html", d)
		return
	}
	w.render(ctx, http.StatusOK, "admin_confirm.html", d)
}

// handleSessionsConfirm serves GET /admin/users/{username}/sessions/delete: the sign out
// everywhere confirmation.
func (w *Web) handleSessionsConfirm(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	username := adminParam(ctx, "username")
	l := w.layoutFor(ctx, id, sess, "Sign out everywhere")
	plan, err := w.svc.PlanDeleteUser(dbContext(), id, username)
	if err != nil {
		w.adminFail(ctx, l, "/admin/users", "count sessions", err)
		return
	}
	d := adminConfirm{adminLayout: l, Heading: "Sign " + plan.User.Username + " out everywhere",
		Back: adminUserURL(plan.User.Username), Button: "Sign out everywhere", Action: string(ctx.Path()),
		Message: fmt.Sprintf("End every browser session of %s? Their password and API tokens keep working.", plan.User.Username),
		Items:   []string{adminCount(plan.Sessions, "session", "sessions") + " (expired ones included)"}}
	if plan.User.ID == id.User.ID {
		d.Items = append(d.Items, "This browser too: you will have to sign in again.")
	}
	w.render(ctx, http.StatusOK, "admin_confirm.html", d)
}

// adminCount says "1 image", "3 images".
func adminCount(n int, one, many string) string {
	return fmt.Sprintf("%d %s", n, adminPlural(n, one, many))
}

// handleTokenDelete serves POST /admin/users/{username}/tokens/{id}/delete: the token stops
// authenticating at once.
func (w *Web) handleTokenDelete(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok || !w.checkForm(ctx) {
		return
	}
	username := adminParam(ctx, "username")
	l := w.layoutFor(ctx, id, sess, "Revoke token")
	dbctx := dbContext()
	target, err := w.svc.FindUser(dbctx, id, username)
	if err != nil {
		w.adminFail(ctx, l, "/admin/users", "find user", err)
		return
	}
	back := adminUserURL(target.User.Username)
	tokenID, perr := strconv.ParseInt(adminParam(ctx, "id"), 10, 64)
	if perr != nil {
		err = tierpix.Errorf(tierpix.ENOTFOUND, "The token was not found.")
	} else {
		err = w.svc.DeleteToken(dbctx, id, target.User.Username, tokenID)
	}
	if err != nil {
		w.adminFail(ctx, l, back, "revoke token", err)
		return
	}
	w.adminRedirect(ctx, back, "Token revoked.")
}

// handleSessionsDelete serves POST /admin/users/{username}/sessions/delete: sign the user out
// of every browser. For the admin's own account that includes this one.
func (w *Web) handleSessionsDelete(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok || !w.checkForm(ctx) {
		return
	}
	username := adminParam(ctx, "username")
	l := w.layoutFor(ctx, id, sess, "Sign out everywhere")
	dbctx := dbContext()
	target, err := w.svc.FindUser(dbctx, id, username)
	if err != nil {
		w.adminFail(ctx, l, "/admin/users", "find user", err)
		return
	}
	n, err := w.svc.EndSessions(dbctx, id, target.User.Username)
	if err != nil {
		w.adminFail(ctx, l, adminUserURL(target.User.Username), "delete sessions", err)
		return
	}
	w.adminRedirect(ctx, adminUserURL(target.User.Username), fmt.Sprintf("Signed out everywhere: %d %s ended.", n, adminPlural(n, "session", "sessions")))
}
