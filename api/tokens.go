package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/store"
	"github.com/valyala/fasthttp"
)

// tokenJSON is a token as listed: never its secret.
type tokenJSON struct {
	ID        int64  `json:"id"`
	Hint      string `json:"hint"`
	CreatedAt string `json:"created_at"`
}

// newTokenJSON is a token just minted: the only time its secret is shown.
type newTokenJSON struct {
	ID        int64  `json:"id"`
	Token     string `json:"token"`
	Hint      string `json:"hint"`
	CreatedAt string `json:"created_at"`
}

func newTokenJSONOf(t *store.Token) tokenJSON {
	return tokenJSON{ID: t.ID, Hint: t.Hint, CreatedAt: formatTime(t.CreatedAt)}
}

// handleListTokens serves GET /api/admin/users/{username}/tokens. A user has few tokens, so
// there is one page.
func (a *API) handleListTokens(ctx *fasthttp.RequestCtx, _ *tierpix.Identity) error {
	target, err := a.findUser(ctx, pathParam(ctx, "username"))
	if err != nil {
		return err
	}
	tokens, err := a.st.ListTokens(dbContext(ctx), target.User.ID)
	if err != nil {
		return fmt.Errorf("list tokens of %q: %w", target.User.Username, err)
	}
	results := make([]tokenJSON, len(tokens))
	for i := range tokens {
		results[i] = newTokenJSONOf(&tokens[i])
	}
	a.writeJSON(ctx, http.StatusOK, page[tokenJSON]{Results: results})
	return nil
}

// handleCreateToken serves POST /api/admin/users/{username}/tokens. The token is shown once;
// only its hash is kept.
func (a *API) handleCreateToken(ctx *fasthttp.RequestCtx, _ *tierpix.Identity) error {
	target, err := a.findUser(ctx, pathParam(ctx, "username"))
	if err != nil {
		return err
	}
	t, secret, err := a.st.CreateToken(dbContext(ctx), target.User.ID)
	if err != nil {
		return fmt.Errorf("create token for %q: %w", target.User.Username, err)
	}
	ctx.Response.Header.Set("Location", fmt.Sprintf("%s/api/admin/users/%s/tokens", a.cfg.PublicURL, url.PathEscape(target.User.Username)))
	a.writeJSON(ctx, http.StatusCreated, newTokenJSON{ID: t.ID, Token: secret, Hint: t.Hint, CreatedAt: formatTime(t.CreatedAt)})
	return nil
}

// handleDeleteToken serves DELETE /api/admin/users/{username}/tokens/{id}: the token stops
// authenticating at once, on every node (tokens are looked up on every request).
func (a *API) handleDeleteToken(ctx *fasthttp.RequestCtx, _ *tierpix.Identity) error {
	target, err := a.findUser(ctx, pathParam(ctx, "username"))
	if err != nil {
		return err
	}
	tokenID, err := strconv.ParseInt(pathParam(ctx, "id"), 10, 64)
	if err != nil || tokenID < 1 {
		return tierpix.Errorf(tierpix.ENOTFOUND, "The token does not exist.")
	}
	err = a.st.DeleteToken(dbContext(ctx), target.User.ID, tokenID)
	if tierpix.ErrorCode(err) == tierpix.ENOTFOUND {
		return tierpix.Errorf(tierpix.ENOTFOUND, "The user has no token %d.", tokenID)
	} else if err != nil {
		return fmt.Errorf("delete token %d of %q: %w", tokenID, target.User.Username, err)
	}
	writeNoContent(ctx)
	return nil
}

// handleDeleteSessions serves DELETE /api/admin/users/{username}/sessions: the user is signed
// out of every browser. Their API tokens and password are untouched.
func (a *API) handleDeleteSessions(ctx *fasthttp.RequestCtx, _ *tierpix.Identity) error {
	target, err := a.findUser(ctx, pathParam(ctx, "username"))
	if err != nil {
		return err
	}
	if _, err := a.st.DeleteUserSessions(dbContext(ctx), target.User.ID); err != nil {
		return fmt.Errorf("delete sessions of %q: %w", target.User.Username, err)
	}
	writeNoContent(ctx)
	return nil
}
