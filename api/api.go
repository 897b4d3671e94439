// Package api is the REST API: the user's images, expiring links and /api/me, and the admin
// API for tiers, users and tokens.
//
// SKELETON: the exported API below is fixed; the bodies are to be written.
package api

import (
	"log/slog"
	"time"

	"github.com/fasthttp/router"
	"github.com/tierpix/tierpix/signing"
	"github.com/tierpix/tierpix/store"
)

// Purger drops cached renders of an image; the origin implements it.
type Purger interface {
	Purge(id string)
}

// Config holds the API's settings. Zero values take the defaults.
type Config struct {
	PublicURL          string        // base of the links handed out, e.g. http://127.0.0.1:8080; required
	MaxUploadBytes     int64         // default 50 MiB
	MaxPixels          int64         // default 50 000 000
	CredentialCacheTTL time.Duration // how long a verified Basic password is remembered; default 5m
	BcryptCost         int           // default bcrypt.DefaultCost
	Now                func() time.Time
}

// API is the REST half of the server.
type API struct{}

// New returns an API.
func New(cfg Config, st *store.Store, signer *signing.Signer, purger Purger, logger *slog.Logger) (*API, error) {
	panic("unimplemented")
}

// Register adds every API route to r.
func (a *API) Register(r *router.Router) { panic("unimplemented") }
