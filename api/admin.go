package api

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"

	"github.com/tierpix/tierpix"
	"github.com/valyala/fasthttp"
)

type tierJSON struct {
	Name             string `json:"name"`
	ThumbnailHeights []int  `json:"thumbnail_heights"`
	OriginalLink     bool   `json:"original_link"`
	ExpiringLinks    bool   `json:"expiring_links"`
	Builtin          bool   `json:"builtin"`
}

func newTierJSON(t *tierpix.Tier) tierJSON {
	heights := t.ThumbnailHeights
	if heights == nil {
		heights = []int{}
	}
	return tierJSON{
		Name:             t.Name,
		ThumbnailHeights: heights,
		OriginalLink:     t.OriginalLink,
		ExpiringLinks:    t.ExpiringLinks,
		Builtin:          t.Builtin,
	}
}

// tierRequest is the body of POST and PATCH on tiers. Builtin is there to be refused with a
// clear message rather than as an unknown field.
type tierRequest struct {
	Name             *string `json:"name"`
	ThumbnailHeights *[]int  `json:"thumbnail_heights"`
	OriginalLink     *bool   `json:"original_link"`
	ExpiringLinks    *bool   `json:"expiring_links"`
	Builtin          *bool   `json:"builtin"`
}

func (r *tierRequest) update() tierpix.TierUpdate {
	return tierpix.TierUpdate{Name: r.Name, ThumbnailHeights: r.ThumbnailHeights, OriginalLink: r.OriginalLink, ExpiringLinks: r.ExpiringLinks}
}

func errReadOnly(field string) error {
	return tierpix.Invalid(field, "is read-only")
}

// handleListTiers serves GET /api/admin/tiers. Tiers are few, so there is one page.
func (a *API) handleListTiers(ctx *fasthttp.RequestCtx, _ *tierpix.Identity) error {
	tiers, err := a.svc.ListTiers(dbContext(ctx))
	if err != nil {
		return err
	}
	results := make([]tierJSON, len(tiers))
	for i := range tiers {
		results[i] = newTierJSON(&tiers[i])
	}
	a.writeJSON(ctx, http.StatusOK, page[tierJSON]{Results: results})
	return nil
}

// handleCreateTier serves POST /api/admin/tiers.
func (a *API) handleCreateTier(ctx *fasthttp.RequestCtx, caller *tierpix.Identity) error {
	var req tierRequest
	if err := decodeJSON(ctx, &req); err != nil {
		return err
	}
	if req.Builtin != nil {
		return errReadOnly("builtin")
	}
	if req.Name == nil {
		return tierpix.Invalid("name", "This field is required.")
	}
	t := tierpix.Tier{Name: *req.Name}
	if req.ThumbnailHeights != nil {
		t.ThumbnailHeights = *req.ThumbnailHeights
	}
	t.OriginalLink = req.OriginalLink != nil && *req.OriginalLink
	t.ExpiringLinks = req.ExpiringLinks != nil && *req.ExpiringLinks
	t, err := a.svc.CreateTier(dbContext(ctx), caller, t)
	if err != nil {
		return err
	}
	ctx.Response.Header.Set("Location", a.cfg.PublicURL+"/api/admin/tiers/"+url.PathEscape(t.Name))
	a.writeJSON(ctx, http.StatusCreated, newTierJSON(&t))
	return nil
}

// handleGetTier serves GET /api/admin/tiers/{name}.
func (a *API) handleGetTier(ctx *fasthttp.RequestCtx, _ *tierpix.Identity) error {
	t, err := a.svc.FindTier(dbContext(ctx), pathParam(ctx, "name"))
	if err != nil {
		return err
	}
	a.writeJSON(ctx, http.StatusOK, newTierJSON(&t))
	return nil
}

// handleUpdateTier serves PATCH /api/admin/tiers/{name}: only the fields present change.
func (a *API) handleUpdateTier(ctx *fasthttp.RequestCtx, caller *tierpix.Identity) error {
	var req tierRequest
	if err := decodeJSON(ctx, &req); err != nil {
		return err
	}
	if req.Builtin != nil {
		return errReadOnly("builtin")
	}
	t, err := a.svc.UpdateTier(dbContext(ctx), caller, pathParam(ctx, "name"), req.update())
	if err != nil {
		return err
	}
	a.writeJSON(ctx, http.StatusOK, newTierJSON(&t))
	return nil
}

// handleDeleteTier serves DELETE /api/admin/tiers/{name}.
func (a *API) handleDeleteTier(ctx *fasthttp.RequestCtx, caller *tierpix.Identity) error {
	return noContent(ctx, a.svc.DeleteTier(dbContext(ctx), caller, pathParam(ctx, "name")))
}

type userJSON struct {
	Username  string `json:"username"`
	Tier      string `json:"tier"`
	IsAdmin   bool   `json:"is_admin"`
	CreatedAt string `json:"created_at"`
}

func newUserJSON(u *tierpix.User) userJSON {
	return userJSON{Username: u.Username, Tier: u.TierName, IsAdmin: u.IsAdmin, CreatedAt: formatTime(u.CreatedAt)}
}

// userRequest is the body of POST and PATCH on users. Password is write-only.
type userRequest struct {
	Username *string `json:"username"`
	Password *string `json:"password"`
	Tier     *string `json:"tier"`
	IsAdmin  *bool   `json:"is_admin"`
}

// handleListUsers serves GET /api/admin/users, a page at a time by username; ?search= keeps
// the usernames that contain it, case-insensitively.
func (a *API) handleListUsers(ctx *fasthttp.RequestCtx, caller *tierpix.Identity) error {
	limit, err := parseLimit(ctx)
	if err != nil {
		return err
	}
	search, _ := queryArg(ctx, "search")
	if len(search) > maxSearchBytes {
		return tierpix.Invalid("search", fmt.Sprintf("must be at most %d bytes", maxSearchBytes))
	}
	var after string
	if c, ok := queryArg(ctx, "cursor"); ok {
		if after, err = decodeStringCursor(c); err != nil {
			return err
		}
	}
	users, err := a.svc.ListUsers(dbContext(ctx), caller, search, after, limit+1)
	if err != nil {
		return err
	}
	var next *string
	if len(users) > limit {
		users = users[:limit]
		q := url.Values{"limit": {fmt.Sprint(limit)}, "cursor": {encodeStringCursor(users[limit-1].Username)}}
		if search != "" {
			q.Set("search", search)
		}
		u := a.cfg.PublicURL + "/api/admin/users?" + q.Encode()
		next = &u
	}
	results := make([]userJSON, len(users))
	for i := range users {
		results[i] = newUserJSON(&users[i])
	}
	a.writeJSON(ctx, http.StatusOK, page[userJSON]{Results: results, Next: next})
	return nil
}

// maxSearchBytes bounds a user search: usernames are at most 150 bytes.
const maxSearchBytes = 150

// handleCreateUser serves POST /api/admin/users.
func (a *API) handleCreateUser(ctx *fasthttp.RequestCtx, caller *tierpix.Identity) error {
	var req userRequest
	if err := decodeJSON(ctx, &req); err != nil {
		return err
	}
	var nu tierpix.NewUser
	required := map[string]string{}
	if req.Username == nil {
		required["username"] = "This field is required."
	} else {
		nu.Username = *req.Username
	}
	if req.Password == nil {
		required["password"] = "This field is required."
	} else {
		nu.Password = *req.Password
	}
	if req.Tier != nil {
		nu.Tier = *req.Tier
	}
	nu.IsAdmin = req.IsAdmin != nil && *req.IsAdmin
	u, err := a.svc.CreateUser(dbContext(ctx), caller, nu)
	if len(required) > 0 && (err == nil || tierpix.ErrorCode(err) == tierpix.EINVALID) {
		// A missing field is reported as missing, with whatever else the service found.
		maps.Copy(required, withoutFields(tierpix.ErrorFields(err), required))
		return &tierpix.Error{Code: tierpix.EINVALID, Message: "The request has invalid fields.", Fields: required}
	}
	if err != nil {
		return err
	}
	ctx.Response.Header.Set("Location", a.cfg.PublicURL+"/api/admin/users/"+url.PathEscape(u.Username))
	a.writeJSON(ctx, http.StatusCreated, newUserJSON(&u))
	return nil
}

// withoutFields returns the entries of fields whose keys are not in drop.
func withoutFields(fields, drop map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range fields {
		if _, ok := drop[k]; !ok {
			out[k] = v
		}
	}
	return out
}

// handleGetUser serves GET /api/admin/users/{username}.
func (a *API) handleGetUser(ctx *fasthttp.RequestCtx, caller *tierpix.Identity) error {
	target, err := a.svc.FindUser(dbContext(ctx), caller, pathParam(ctx, "username"))
	if err != nil {
		return err
	}
	a.writeJSON(ctx, http.StatusOK, newUserJSON(&target.User))
	return nil
}

// handleUpdateUser serves PATCH /api/admin/users/{username}: only the fields present change.
func (a *API) handleUpdateUser(ctx *fasthttp.RequestCtx, caller *tierpix.Identity) error {
	var req userRequest
	if err := decodeJSON(ctx, &req); err != nil {
		return err
	}
	u, err := a.svc.UpdateUser(dbContext(ctx), caller, pathParam(ctx, "username"), tierpix.UserUpdate{
		Username: req.Username, Password: req.Password, Tier: req.Tier, IsAdmin: req.IsAdmin,
	})
	if err != nil {
		return err
	}
	a.writeJSON(ctx, http.StatusOK, newUserJSON(&u))
	return nil
}

// handleDeleteUser serves DELETE /api/admin/users/{username}: the user, their tokens, images
// and originals go, and every cached render of those images is purged.
func (a *API) handleDeleteUser(ctx *fasthttp.RequestCtx, caller *tierpix.Identity) error {
	return noContent(ctx, a.svc.DeleteUser(dbContext(ctx), caller, pathParam(ctx, "username")))
}
