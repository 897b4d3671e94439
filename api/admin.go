package api

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"

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

// userPage is the body of GET /api/admin/users: the page shape of Django REST Framework's
// lists (count, next, previous, results) with a link to the first page, and count_capped
// when the count stopped at tierpix.UserCountCap.
type userPage struct {
	Count       int        `json:"count"`
	CountCapped bool       `json:"count_capped"`
	First       *string    `json:"first"`
	Previous    *string    `json:"previous"`
	Next        *string    `json:"next"`
	Results     []userJSON `json:"results"`
}

func (p userPage) nextPage() *string            { return p.Next }
func (p userPage) prevPage() (*string, *string) { return p.Previous, p.First }

// handleListUsers serves GET /api/admin/users?ordering=&tier=&is_admin=&search=&cursor=&limit=:
// a page of users, filtered and ordered (DRF's ordering: a column, "-" before it for
// descending), with links to the first, previous and next pages that keep the filters.
func (a *API) handleListUsers(ctx *fasthttp.RequestCtx, caller *tierpix.Identity) error {
	limit, err := parseLimit(ctx)
	if err != nil {
		return err
	}
	q := tierpix.UserQuery{Limit: limit}
	// keep holds the parameters every link repeats.
	keep := url.Values{"limit": {fmt.Sprint(limit)}}
	if o, _ := queryArg(ctx, "ordering"); o != "" {
		keep.Set("ordering", o)
		if col, ok := strings.CutPrefix(o, "-"); ok && col != "" {
			o, q.Desc = col, true
		}
		q.Sort = tierpix.UserSort(o)
	}
	if q.Tier, _ = queryArg(ctx, "tier"); q.Tier != "" {
		keep.Set("tier", q.Tier)
	}
	switch v, _ := queryArg(ctx, "is_admin"); v {
	case "":
	case "true", "false":
		q.Admin = new(v == "true")
		keep.Set("is_admin", v)
	default:
		return tierpix.Invalid("is_admin", "must be true or false")
	}
	if q.Search, _ = queryArg(ctx, "search"); q.Search != "" {
		keep.Set("search", q.Search)
	}
	q.Cursor, _ = queryArg(ctx, "cursor")
	p, err := a.svc.ListUsers(dbContext(ctx), caller, q)
	if err != nil {
		return err
	}
	link := func(cursor string) *string {
		v := maps.Clone(keep)
		if cursor != "" {
			v.Set("cursor", cursor)
		}
		u := a.cfg.PublicURL + "/api/admin/users?" + v.Encode()
		return &u
	}
	body := userPage{Count: p.Total, CountCapped: p.TotalCapped, Results: make([]userJSON, len(p.Users))}
	if !p.First {
		body.First = link("")
	}
	if p.Prev != "" {
		body.Previous = link(p.Prev)
	}
	if p.Next != "" {
		body.Next = link(p.Next)
	}
	for i := range p.Users {
		body.Results[i] = newUserJSON(&p.Users[i])
	}
	a.writeJSON(ctx, http.StatusOK, body)
	return nil
}

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
