package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/tierpix/tierpix"
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

func newTokenJSONOf(t *tierpix.Token) tokenJSON {
	return tokenJSON{ID: t.ID, Hint: t.Hint, CreatedAt: formatTime(t.CreatedAt)}
}

// handleListTokens serves GET /api/admin/users/{username}/tokens. A user has few tokens, so
// there is one page.
func (a *API) handleListTokens(ctx *fasthttp.RequestCtx, caller *tierpix.Identity) error {
	_, tokens, err := a.svc.ListTokens(dbContext(ctx), caller, pathParam(ctx, "username"))
	if err != nil {
		return err
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
func (a *API) handleCreateToken(ctx *fasthttp.RequestCtx, caller *tierpix.Identity) error {
	target, t, secret, err := a.svc.CreateToken(dbContext(ctx), caller, pathParam(ctx, "username"))
	if err != nil {
		return err
	}
	ctx.Response.Header.Set("Location", fmt.Sprintf("%s/api/admin/users/%s/tokens", a.cfg.PublicURL, url.PathEscape(target.Username)))
	a.writeJSON(ctx, http.StatusCreated, newTokenJSON{ID: t.ID, Token: secret, Hint: t.Hint, CreatedAt: formatTime(t.CreatedAt)})
	return nil
}

// handleDeleteToken serves DELETE /api/admin/users/{username}/tokens/{id}.
func (a *API) handleDeleteToken(ctx *fasthttp.RequestCtx, caller *tierpix.Identity) error {
	username := pathParam(ctx, "username")
	tokenID, err := strconv.ParseInt(pathParam(ctx, "id"), 10, 64)
	if err != nil || tokenID < 1 {
		// The user's absence is the better answer, when they are absent.
		if _, err := a.svc.FindUser(dbContext(ctx), caller, username); err != nil {
			return err
		}
		return tierpix.Errorf(tierpix.ENOTFOUND, "The token does not exist.")
	}
	return noContent(ctx, a.svc.DeleteToken(dbContext(ctx), caller, username, tokenID))
}

// handleDeleteSessions serves DELETE /api/admin/users/{username}/sessions: the user is signed
// out of every browser. Their API tokens and password are untouched.
func (a *API) handleDeleteSessions(ctx *fasthttp.RequestCtx, caller *tierpix.Identity) error {
	_, err := a.svc.EndSessions(dbContext(ctx), caller, pathParam(ctx, "username"))
	return noContent(ctx, err)
}
