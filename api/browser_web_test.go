package api_test

import (
	"log/slog"

	"github.com/fasthttp/router"
	"github.com/tierpix/tierpix/api"
	"github.com/tierpix/tierpix/api/openapi"
	"github.com/tierpix/tierpix/origin"
	"github.com/tierpix/tierpix/signin"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/web"
)

// The API's tests serve the browsable API through the real web UI, as main wires it.
func init() {
	api.NewTestBrowser = func(publicURL string, svc api.Services, st *store.Store, si *signin.Service, o *origin.Origin, spec *openapi.Spec, logger *slog.Logger) (api.Browser, func(*router.Router), error) {
		w, err := web.New(web.Config{PublicURL: publicURL}, svc, st, si, o, spec, logger)
		if err != nil {
			return nil, nil, err
		}
		return w, w.Register, nil
	}
}
