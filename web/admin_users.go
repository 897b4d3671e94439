package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/store"
	"github.com/valyala/fasthttp"
)

// adminDefaultTier is the tier a new user's form starts on, as the admin API's default.
const adminDefaultTier = "Basic"

// adminUserRow is a user in the list.
type adminUserRow struct {
	Username string
	Tier     string
	IsAdmin  bool
	Created  adminTime
	EditURL  string
}

// adminUserList is the data of GET /admin/users.
type adminUserList struct {
	adminLayout
	Q        string
	Users    []adminUserRow
	NextURL  string // empty on the last page
	FirstURL string // empty on the first page
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

// adminUserDelete is the data of the user's delete confirmation.
type adminUserDelete struct {
	adminLayout
	Username string
	URL      string
	Refusal  string
}

// adminTokenMinted is the page that shows a new token, once.
type adminTokenMinted struct {
	adminLayout
	Username string
	Token    string
	URL      string
}

func adminUserURL(username string) string { return "/admin/users/" + url.PathEscape(username) }

// adminSelfDelete is the API's rule: an admin cannot delete their own account.
const adminSelfDelete = "You cannot delete your own account."

// adminTierOptions lists every tier for a select, with selected chosen (case-insensitively).
func (w *Web) adminTierOptions(selected string) ([]adminTierOption, error) {
	tiers, err := w.st.ListTiers(dbContext())
	if err != nil {
		return nil, fmt.Errorf("list tiers: %w", err)
	}
	opts := make([]adminTierOption, len(tiers))
	for i, t := range tiers {
		opts[i] = adminTierOption{Name: t.Name, Selected: strings.EqualFold(t.Name, selected)}
	}
	return opts, nil
}

// handleUserList serves GET /admin/users?q=&after=: users by username, 50 a page, filtered
// by a case-insensitive substring of the username.
func (w *Web) handleUserList(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	l := adminLayoutFor(ctx, id, sess, "Users")
	q := strings.TrimSpace(adminQuery(ctx, "q"))
	after := adminQuery(ctx, "after")
	users, err := w.st.ListUsers(dbContext(), q, after, adminPageSize+1)
	if err != nil {
		w.adminFail(ctx, l, "/admin", "list users", err)
		return
	}
	for _, f := range []struct{ key, verb string }{{"created", "created"}, {"updated", "saved"}, {"deleted", "deleted"}} {
		if v := adminQuery(ctx, f.key); v != "" && tierpix.ValidateUsername(v) == nil {
			l.Flash = fmt.Sprintf("User %s %s.", v, f.verb)
		}
	}
	d := adminUserList{adminLayout: l, Q: q}
	if q != "" {
		d.Title = fmt.Sprintf("Users matching %q", q)
	}
	if len(users) > adminPageSize {
		users = users[:adminPageSize]
		v := url.Values{"after": {users[len(users)-1].Username}}
		if q != "" {
			v.Set("q", q)
		}
		d.NextURL = "/admin/users?" + v.Encode()
	}
	if after != "" {
		d.FirstURL = "/admin/users"
		if q != "" {
			d.FirstURL += "?" + url.Values{"q": {q}}.Encode()
		}
	}
	d.Users = make([]adminUserRow, len(users))
	for i, u := range users {
		d.Users[i] = adminUserRow{Username: u.Username, Tier: u.TierName, IsAdmin: u.IsAdmin, Created: adminTimeOf(u.CreatedAt), EditURL: adminUserURL(u.Username)}
	}
	w.render(ctx, http.StatusOK, "admin_users.html", d)
}

// handleUserNew serves GET /admin/users/new: the empty form, on the default tier.
func (w *Web) handleUserNew(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	l := adminLayoutFor(ctx, id, sess, "Add user")
	tiers, err := w.adminTierOptions(adminDefaultTier)
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
		adminLayout: adminLayoutFor(ctx, id, sess, "Add user"),
		Username:    strings.TrimSpace(adminPost(ctx, "username")),
		IsAdmin:     adminChecked(ctx, "is_admin"),
	}
	password := adminPost(ctx, "password")
	tier := adminPost(ctx, "tier")
	if tier == "" {
		tier = adminDefaultTier
	}
	var err error
	if d.Tiers, err = w.adminTierOptions(tier); err != nil {
		w.adminFail(ctx, d.adminLayout, "/admin/users", "create user", err)
		return
	}

	fields := map[string]string{}
	if err := tierpix.ValidateUsername(d.Username); err != nil {
		fields["username"] = tierpix.ErrorFields(err)["username"]
	}
	if err := tierpix.ValidatePassword(password); err != nil {
		fields["password"] = tierpix.ErrorFields(err)["password"]
	}
	if len(fields) > 0 {
		d.adminForm = adminFormFrom(&tierpix.Error{Code: tierpix.EINVALID, Fields: fields})
		w.render(ctx, http.StatusBadRequest, "admin_user_new.html", d)
		return
	}
	hash, err := w.signin.HashPassword(dbContext(), password, w.cfg.BcryptCost)
	if err == nil {
		u := tierpix.User{Username: d.Username, PasswordHash: hash, TierName: tier, IsAdmin: d.IsAdmin}
		if err = w.st.CreateUser(dbContext(), &u); err == nil {
			w.adminRedirect(ctx, "/admin/users", url.Values{"created": {u.Username}})
			return
		}
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
func (w *Web) adminUserPage(l adminLayout, caller *tierpix.Identity, sess *store.Session, target tierpix.User) (adminUserEdit, error) {
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
	tokens, err := w.st.ListTokens(dbctx, target.ID)
	if err != nil {
		return d, fmt.Errorf("list tokens: %w", err)
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
	sessions, err := w.st.ListUserSessions(dbctx, target.ID, w.cfg.Now().Add(-w.cfg.SessionIdleTimeout))
	if err != nil {
		return d, fmt.Errorf("list sessions: %w", err)
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
	l := adminLayoutFor(ctx, id, sess, "User "+username)
	target, err := w.st.FindUser(dbContext(), username)
	if err != nil {
		w.adminFail(ctx, l, "/admin/users", "find user", err)
		return
	}
	if adminQuery(ctx, "revoked") != "" {
		l.Flash = "Token revoked."
	} else if n, err := strconv.Atoi(adminQuery(ctx, "signedout")); err == nil && n >= 0 {
		l.Flash = fmt.Sprintf("Signed out everywhere: %d %s ended.", n, adminPlural(n, "session", "sessions"))
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
	l := adminLayoutFor(ctx, id, sess, "User "+username)
	tier := adminPost(ctx, "tier")
	isAdmin := adminChecked(ctx, "is_admin")
	password := adminPost(ctx, "password")

	// Hash before the transaction: bcrypt is slow, and the store holds its users lock while
	// the change is applied.
	var hash string
	var err error
	if password != "" {
		hash, err = w.signin.HashPassword(dbContext(), password, w.cfg.BcryptCost)
	}
	if err == nil {
		var u tierpix.User
		u, err = w.st.ModifyUser(dbContext(), username, func(u *tierpix.User) error {
			if u.ID == id.User.ID && u.IsAdmin && !isAdmin {
				return tierpix.Errorf(tierpix.ECONFLICT, "You cannot demote yourself.")
			}
			u.TierName = tier
			u.IsAdmin = isAdmin
			if hash != "" {
				u.PasswordHash = hash
			}
			return nil
		})
		if err == nil {
			if hash != "" {
				w.signin.Forget(u.Username)
			}
			w.adminRedirect(ctx, "/admin/users", url.Values{"updated": {u.Username}})
			return
		}
	}
	code := tierpix.ErrorCode(err)
	if code != tierpix.EINVALID && code != tierpix.ECONFLICT {
		w.adminFail(ctx, l, "/admin/users", "update user", err)
		return
	}
	target, ferr := w.st.FindUser(dbContext(), username)
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
	l := adminLayoutFor(ctx, id, sess, "Delete user "+username)
	target, err := w.st.FindUser(dbContext(), username)
	if err != nil {
		w.adminFail(ctx, l, "/admin/users", "find user", err)
		return
	}
	d := adminUserDelete{adminLayout: l, Username: target.User.Username, URL: adminUserURL(target.User.Username)}
	if target.User.ID == id.User.ID {
		d.Refusal = adminSelfDelete
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
	l := adminLayoutFor(ctx, id, sess, "Delete user "+username)
	dbctx := dbContext()
	target, err := w.st.FindUser(dbctx, username)
	if err != nil {
		w.adminFail(ctx, l, "/admin/users", "find user", err)
		return
	}
	d := adminUserDelete{adminLayout: l, Username: target.User.Username, URL: adminUserURL(target.User.Username)}
	if target.User.ID == id.User.ID {
		d.Refusal = adminSelfDelete
		w.render(ctx, http.StatusConflict, "admin_user_delete.html", d)
		return
	}
	ids, err := w.st.DeleteUser(dbctx, target.User.Username)
	// The images of ids are gone even when originals were left on disk: purge them either way.
	for _, imageID := range ids {
		w.purger.Purge(imageID)
	}
	err = w.adminLogKept("delete user "+target.User.Username, err)
	switch tierpix.ErrorCode(err) {
	case "":
		w.signin.Forget(target.User.Username)
		w.adminRedirect(ctx, "/admin/users", url.Values{"deleted": {target.User.Username}})
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
	l := adminLayoutFor(ctx, id, sess, "New token for "+username)
	dbctx := dbContext()
	target, err := w.st.FindUser(dbctx, username)
	if err != nil {
		w.adminFail(ctx, l, "/admin/users", "find user", err)
		return
	}
	_, token, err := w.st.CreateToken(dbctx, target.User.ID)
	if err != nil {
		w.adminFail(ctx, l, adminUserURL(target.User.Username), "create token", err)
		return
	}
	w.render(ctx, http.StatusCreated, "admin_token.html", adminTokenMinted{
		adminLayout: l,
		Username:    target.User.Username,
		Token:       token,
		URL:         adminUserURL(target.User.Username),
	})
}

// handleTokenDelete serves POST /admin/users/{username}/tokens/{id}/delete: the token stops
// authenticating at once.
func (w *Web) handleTokenDelete(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok || !w.checkForm(ctx) {
		return
	}
	username := adminParam(ctx, "username")
	l := adminLayoutFor(ctx, id, sess, "Revoke token")
	dbctx := dbContext()
	target, err := w.st.FindUser(dbctx, username)
	if err != nil {
		w.adminFail(ctx, l, "/admin/users", "find user", err)
		return
	}
	back := adminUserURL(target.User.Username)
	tokenID, perr := strconv.ParseInt(adminParam(ctx, "id"), 10, 64)
	if perr != nil {
		err = tierpix.Errorf(tierpix.ENOTFOUND, "The token was not found.")
	} else {
		err = w.st.DeleteToken(dbctx, target.User.ID, tokenID)
	}
	if err != nil {
		w.adminFail(ctx, l, back, "revoke token", err)
		return
	}
	w.adminRedirect(ctx, back, url.Values{"revoked": {"1"}})
}

// handleSessionsDelete serves POST /admin/users/{username}/sessions/delete: sign the user out
// of every browser. For the admin's own account that includes this one.
func (w *Web) handleSessionsDelete(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok || !w.checkForm(ctx) {
		return
	}
	username := adminParam(ctx, "username")
	l := adminLayoutFor(ctx, id, sess, "Sign out everywhere")
	dbctx := dbContext()
	target, err := w.st.FindUser(dbctx, username)
	if err != nil {
		w.adminFail(ctx, l, "/admin/users", "find user", err)
		return
	}
	n, err := w.st.DeleteUserSessions(dbctx, target.User.ID)
	if err != nil {
		w.adminFail(ctx, l, adminUserURL(target.User.Username), "delete sessions", err)
		return
	}
	w.adminRedirect(ctx, adminUserURL(target.User.Username), url.Values{"signedout": {strconv.Itoa(n)}})
}
