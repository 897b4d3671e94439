package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/store"
	"github.com/valyala/fasthttp"
)

// defaultTier is the tier of a user created without one.
const defaultTier = "Basic"

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

// apply sets the fields present in r on t.
func (r *tierRequest) apply(t *tierpix.Tier) {
	if r.ThumbnailHeights != nil {
		t.ThumbnailHeights = append([]int(nil), (*r.ThumbnailHeights)...)
	}
	if r.OriginalLink != nil {
		t.OriginalLink = *r.OriginalLink
	}
	if r.ExpiringLinks != nil {
		t.ExpiringLinks = *r.ExpiringLinks
	}
}

func errReadOnly(field string) error {
	return tierpix.Invalid(field, "is read-only")
}

func errTierNotFound() error { return tierpix.Errorf(tierpix.ENOTFOUND, "The tier does not exist.") }

func (a *API) findTier(ctx *fasthttp.RequestCtx, name string) (tierpix.Tier, error) {
	t, err := a.st.FindTier(dbContext(ctx), name)
	if tierpix.ErrorCode(err) == tierpix.ENOTFOUND {
		return tierpix.Tier{}, errTierNotFound()
	} else if err != nil {
		return tierpix.Tier{}, fmt.Errorf("find tier %q: %w", name, err)
	}
	return t, nil
}

// handleListTiers serves GET /api/admin/tiers. Tiers are few, so there is one page.
func (a *API) handleListTiers(ctx *fasthttp.RequestCtx, _ *tierpix.Identity) error {
	tiers, err := a.st.ListTiers(dbContext(ctx))
	if err != nil {
		return fmt.Errorf("list tiers: %w", err)
	}
	results := make([]tierJSON, len(tiers))
	for i := range tiers {
		results[i] = newTierJSON(&tiers[i])
	}
	a.writeJSON(ctx, http.StatusOK, page[tierJSON]{Results: results})
	return nil
}

// handleCreateTier serves POST /api/admin/tiers.
func (a *API) handleCreateTier(ctx *fasthttp.RequestCtx, _ *tierpix.Identity) error {
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
	req.apply(&t)
	t.Normalize()
	if err := t.Validate(); err != nil {
		return err
	}
	if err := a.st.CreateTier(dbContext(ctx), &t); err != nil {
		return fmt.Errorf("create tier %q: %w", t.Name, err)
	}
	ctx.Response.Header.Set("Location", a.cfg.PublicURL+"/api/admin/tiers/"+url.PathEscape(t.Name))
	a.writeJSON(ctx, http.StatusCreated, newTierJSON(&t))
	return nil
}

// handleGetTier serves GET /api/admin/tiers/{name}.
func (a *API) handleGetTier(ctx *fasthttp.RequestCtx, _ *tierpix.Identity) error {
	t, err := a.findTier(ctx, pathParam(ctx, "name"))
	if err != nil {
		return err
	}
	a.writeJSON(ctx, http.StatusOK, newTierJSON(&t))
	return nil
}

// handleUpdateTier serves PATCH /api/admin/tiers/{name}: only the fields present change, read
// and written in one transaction so that concurrent PATCHes of one tier keep each other's
// changes. A new height applies to every existing image at once, as the origin renders lazily.
func (a *API) handleUpdateTier(ctx *fasthttp.RequestCtx, _ *tierpix.Identity) error {
	var req tierRequest
	if err := decodeJSON(ctx, &req); err != nil {
		return err
	}
	if req.Builtin != nil {
		return errReadOnly("builtin")
	}
	name := pathParam(ctx, "name")
	t, err := a.st.ModifyTier(dbContext(ctx), name, func(t *tierpix.Tier) error {
		if req.Name != nil && !strings.EqualFold(*req.Name, t.Name) {
			return tierpix.Invalid("name", "cannot be changed; create a new tier and move its users")
		}
		req.apply(t)
		return nil
	})
	if tierpix.ErrorCode(err) == tierpix.ENOTFOUND {
		return errTierNotFound()
	} else if err != nil {
		return fmt.Errorf("update tier %q: %w", name, err)
	}
	a.writeJSON(ctx, http.StatusOK, newTierJSON(&t))
	return nil
}

// handleDeleteTier serves DELETE /api/admin/tiers/{name}.
func (a *API) handleDeleteTier(ctx *fasthttp.RequestCtx, _ *tierpix.Identity) error {
	t, err := a.findTier(ctx, pathParam(ctx, "name"))
	if err != nil {
		return err
	}
	if t.Builtin {
		return tierpix.Errorf(tierpix.ECONFLICT, "The %s tier is builtin and cannot be deleted.", t.Name)
	}
	if err := a.st.DeleteTier(dbContext(ctx), t.Name); err != nil {
		return fmt.Errorf("delete tier %q: %w", t.Name, err)
	}
	writeNoContent(ctx)
	return nil
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

func errUserNotFound() error { return tierpix.Errorf(tierpix.ENOTFOUND, "The user does not exist.") }

func (a *API) findUser(ctx *fasthttp.RequestCtx, username string) (tierpix.Identity, error) {
	id, err := a.st.FindUser(dbContext(ctx), username)
	if tierpix.ErrorCode(err) == tierpix.ENOTFOUND {
		return tierpix.Identity{}, errUserNotFound()
	} else if err != nil {
		return tierpix.Identity{}, fmt.Errorf("find user %q: %w", username, err)
	}
	return id, nil
}

// handleListUsers serves GET /api/admin/users, a page at a time by username; ?search= keeps
// the usernames that contain it, case-insensitively.
func (a *API) handleListUsers(ctx *fasthttp.RequestCtx, _ *tierpix.Identity) error {
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
	users, err := a.st.ListUsers(dbContext(ctx), search, after, limit+1)
	if err != nil {
		return fmt.Errorf("list users: %w", err)
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
func (a *API) handleCreateUser(ctx *fasthttp.RequestCtx, _ *tierpix.Identity) error {
	var req userRequest
	if err := decodeJSON(ctx, &req); err != nil {
		return err
	}
	fields := map[string]string{}
	if req.Username == nil {
		fields["username"] = "This field is required."
	} else if err := tierpix.ValidateUsername(*req.Username); err != nil {
		fields["username"] = tierpix.ErrorFields(err)["username"]
	}
	if req.Password == nil {
		fields["password"] = "This field is required."
	} else if err := tierpix.ValidatePassword(*req.Password); err != nil {
		fields["password"] = tierpix.ErrorFields(err)["password"]
	}
	if len(fields) > 0 {
		return &tierpix.Error{Code: tierpix.EINVALID, Message: "The request has invalid fields.", Fields: fields}
	}

	u := tierpix.User{Username: *req.Username, TierName: defaultTier}
	if req.Tier != nil {
		u.TierName = *req.Tier
	}
	if req.IsAdmin != nil {
		u.IsAdmin = *req.IsAdmin
	}
	hash, err := a.signin.HashPassword(dbContext(ctx), *req.Password, a.cfg.BcryptCost)
	if err != nil {
		return err
	}
	u.PasswordHash = hash
	if err := a.st.CreateUser(dbContext(ctx), &u); err != nil {
		return fmt.Errorf("create user %q: %w", u.Username, err)
	}
	ctx.Response.Header.Set("Location", a.cfg.PublicURL+"/api/admin/users/"+url.PathEscape(u.Username))
	a.writeJSON(ctx, http.StatusCreated, newUserJSON(&u))
	return nil
}

// handleGetUser serves GET /api/admin/users/{username}.
func (a *API) handleGetUser(ctx *fasthttp.RequestCtx, _ *tierpix.Identity) error {
	target, err := a.findUser(ctx, pathParam(ctx, "username"))
	if err != nil {
		return err
	}
	a.writeJSON(ctx, http.StatusOK, newUserJSON(&target.User))
	return nil
}

// handleUpdateUser serves PATCH /api/admin/users/{username}: only the fields present change,
// read and written in one transaction so that concurrent PATCHes of one user (a new password,
// a new tier) keep each other's changes. A new password or tier applies to the user's next
// request, since every request reads the user afresh. An admin cannot demote themselves, and
// the store refuses to demote the last admin.
func (a *API) handleUpdateUser(ctx *fasthttp.RequestCtx, caller *tierpix.Identity) error {
	var req userRequest
	if err := decodeJSON(ctx, &req); err != nil {
		return err
	}
	// Hash first: bcrypt is slow, and the store holds its users lock while the change is
	// applied.
	var hash string
	if req.Password != nil {
		var err error
		if hash, err = a.signin.HashPassword(dbContext(ctx), *req.Password, a.cfg.BcryptCost); err != nil {
			return err
		}
	}
	username := pathParam(ctx, "username")
	u, err := a.st.ModifyUser(dbContext(ctx), username, func(u *tierpix.User) error {
		if req.Username != nil && *req.Username != u.Username {
			return tierpix.Invalid("username", "cannot be changed")
		}
		if req.IsAdmin != nil && !*req.IsAdmin && u.ID == caller.User.ID {
			return tierpix.Errorf(tierpix.ECONFLICT, "You cannot demote yourself.")
		}
		if req.Tier != nil {
			u.TierName = *req.Tier
		}
		if req.IsAdmin != nil {
			u.IsAdmin = *req.IsAdmin
		}
		if req.Password != nil {
			u.PasswordHash = hash
		}
		return nil
	})
	if tierpix.ErrorCode(err) == tierpix.ENOTFOUND {
		return errUserNotFound()
	} else if err != nil {
		return fmt.Errorf("update user %q: %w", username, err)
	}
	a.signin.Forget(u.Username)
	a.writeJSON(ctx, http.StatusOK, newUserJSON(&u))
	return nil
}

// handleDeleteUser serves DELETE /api/admin/users/{username}: the user, their tokens, images
// and originals go, and every cached render of those images is purged. An admin cannot delete
// themselves, and the store refuses to delete the last admin.
func (a *API) handleDeleteUser(ctx *fasthttp.RequestCtx, caller *tierpix.Identity) error {
	target, err := a.findUser(ctx, pathParam(ctx, "username"))
	if err != nil {
		return err
	}
	if target.User.ID == caller.User.ID {
		return tierpix.Errorf(tierpix.ECONFLICT, "You cannot delete your own account.")
	}
	ids, err := a.st.DeleteUser(dbContext(ctx), target.User.Username)
	if errors.Is(err, store.ErrOriginalKept) {
		// The user and their images are deleted; only files are left, for the sweep.
		a.logger.Warn("delete user: originals left on disk", "username", target.User.Username, "err", err)
	} else if err != nil {
		return fmt.Errorf("delete user %q: %w", target.User.Username, err)
	}
	a.signin.Forget(target.User.Username)
	for _, id := range ids {
		a.purger.Purge(id)
	}
	writeNoContent(ctx)
	return nil
}
