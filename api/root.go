package api

import (
	"net/http"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/api/openapi"
	"github.com/valyala/fasthttp"
)

// rootJSON is the API's front door: where everything is, so a browser or a client can start
// from /api and follow links.
type rootJSON struct {
	Me          string `json:"me"`
	Images      string `json:"images"`
	AdminTiers  string `json:"admin_tiers"`
	AdminUsers  string `json:"admin_users"`
	AdminImages string `json:"admin_images"`
	OpenAPI     string `json:"openapi"`
	Docs        string `json:"docs"`
}

// handleRoot serves GET /api.
func (a *API) handleRoot(ctx *fasthttp.RequestCtx, _ *tierpix.Identity) error {
	base := a.cfg.PublicURL + "/api"
	a.writeJSON(ctx, http.StatusOK, rootJSON{
		Me:          base + "/me",
		Images:      base + "/images",
		AdminTiers:  base + "/admin/tiers",
		AdminUsers:  base + "/admin/users",
		AdminImages: base + "/admin/images",
		OpenAPI:     base + "/openapi.json",
		Docs:        base + "/docs",
	})
	return nil
}

// handleOpenAPI serves GET /api/openapi.json: the document the tests check every answer
// against. It changes only with the binary, so clients may cache it briefly.
func (a *API) handleOpenAPI(ctx *fasthttp.RequestCtx, _ *tierpix.Identity) error {
	ctx.SetStatusCode(http.StatusOK)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "public, max-age=300")
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.Response.Header.Set("Access-Control-Allow-Origin", "*")
	ctx.SetBody(openapi.Document())
	return nil
}
