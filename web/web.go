// Package web is everything tierpix serves to a browser: sign-in and sessions, the admin UI at
// /admin (the counterpart of django-admin), the browsable API's pages and the /api/docs page.
//
// Pages are rendered on the server from html/template and work without JavaScript. Every HTML
// answer carries a strict Content-Security-Policy (no scripts at all, styles and images from
// this origin and the image origin only), frame-ancestors 'none', nosniff and Referrer-Policy.
// Every form that changes state carries the session's CSRF token, compared in constant time.
//
// Sessions are rows in the store, so they survive restarts, are shared by every node and can
// be revoked. The cookie holds a 256-bit random token; the store keeps its SHA-256.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/fasthttp/router"
	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/api/openapi"
	"github.com/tierpix/tierpix/signin"
	"github.com/valyala/fasthttp"
)

// Defaults for the zero values of Config.
const (
	DefaultSessionIdleTimeout = 2 * time.Hour
	DefaultSessionMaxAge      = 12 * time.Hour
)

// Config holds the web UI's settings. Zero values take the defaults.
type Config struct {
	PublicURL          string        // required; https makes the cookie Secure and __Host- prefixed
	SessionIdleTimeout time.Duration // a session unused this long ends; default 2h
	SessionMaxAge      time.Duration // a session ends this long after sign-in whatever its use; default 12h
	Now                func() time.Time
}

func (cfg Config) withDefaults() Config {
	if cfg.SessionIdleTimeout == 0 {
		cfg.SessionIdleTimeout = DefaultSessionIdleTimeout
	}
	if cfg.SessionMaxAge == 0 {
		cfg.SessionMaxAge = DefaultSessionMaxAge
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	return cfg
}

// Validate reports the first setting that cannot work.
func (cfg Config) Validate() error {
	cfg = cfg.withDefaults()
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("web: public URL %q must be an absolute http or https URL", cfg.PublicURL)
	}
	if cfg.SessionIdleTimeout < time.Minute || cfg.SessionMaxAge < time.Minute {
		return errors.New("web: session timeouts must be at least a minute")
	}
	if cfg.SessionIdleTimeout > cfg.SessionMaxAge {
		return fmt.Errorf("web: session idle timeout %s is longer than the session max age %s", cfg.SessionIdleTimeout, cfg.SessionMaxAge)
	}
	return nil
}

// Store is what the pages need of the store besides the services: the sessions behind the
// cookie, and the dashboard's count of admins.
type Store interface {
	CreateSession(ctx context.Context, userID int64, maxAge time.Duration, userAgent, address string) (string, tierpix.Session, error)
	FindSession(ctx context.Context, token string, idleSince time.Time) (tierpix.Session, tierpix.Identity, error)
	TouchSession(ctx context.Context, id int64) error
	DeleteSession(ctx context.Context, token string) error
	SetSessionFlash(ctx context.Context, id int64, flash string) error
	ClearSessionFlash(ctx context.Context, id int64, shown string) error
	CountAdmins(ctx context.Context) (int, error)
}

// Previewer serves a thumbnail of an image whatever its owner's tier allows: the admin's image
// list shows every image at 200 px. The origin implements it.
type Previewer interface {
	ServePreview(ctx *fasthttp.RequestCtx, id string, height int)
}

// Web serves the browser's pages.
type Web struct {
	cfg      Config
	svc      tierpix.Services
	st       Store
	signin   *signin.Service
	previews Previewer
	spec     *openapi.Spec
	logger   *slog.Logger
	pages    *pages // parsed templates
}

// New returns the web UI over the services svc. Sign-in checks passwords with si, which the
// API shares.
func New(cfg Config, svc tierpix.Services, st Store, si *signin.Service, previews Previewer, spec *openapi.Spec, logger *slog.Logger) (*Web, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if svc == nil || st == nil || si == nil || previews == nil || spec == nil {
		return nil, errors.New("web: services, store, sign-in, previewer and spec are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	return &Web{cfg: cfg, svc: svc, st: st, signin: si, previews: previews, spec: spec, logger: logger, pages: p}, nil
}

// Register adds every browser route to r. The API's routes stay the api package's: it calls
// Identify, CheckCSRF and RenderAPI for browsers.
func (w *Web) Register(r *router.Router) {
	r.GET("/", w.handleRoot)                // GET /: the browsable API root, or sign-in
	r.GET("/static/{file}", w.handleStatic) // GET /static/{file}: the stylesheet and icon
	r.GET("/favicon.ico", w.handleFavicon)  // GET /favicon.ico: the icon browsers ask for unprompted
	r.HEAD("/favicon.ico", w.handleFavicon) // HEAD /favicon.ico
	r.GET("/login", w.handleLoginForm)      // GET /login
	r.POST("/login", w.handleLogin)         // POST /login
	r.POST("/logout", w.handleLogout)       // POST /logout
	r.GET("/api/docs", w.handleDocs)        // GET /api/docs: the OpenAPI document as a page
	r.HEAD("/api/docs", w.handleDocs)       // HEAD /api/docs: like every GET of the API

	r.GET("/account/password", w.handlePasswordForm)    // GET: your own password form
	r.POST("/account/password", w.handlePasswordChange) // POST: change it
	r.GET("/admin", w.handleAdminIndex)                 // GET /admin: the dashboard

	r.GET("/admin/tiers", w.handleTierList)                  // GET /admin/tiers
	r.GET("/admin/tiers/new", w.handleTierNew)               // GET /admin/tiers/new: the empty form
	r.POST("/admin/tiers/new", w.handleTierCreate)           // POST /admin/tiers/new
	r.GET("/admin/tiers/{name}", w.handleTierEdit)           // GET /admin/tiers/{name}: the edit form
	r.POST("/admin/tiers/{name}", w.handleTierUpdate)        // POST /admin/tiers/{name}
	r.GET("/admin/tiers/{name}/delete", w.handleTierConfirm) // GET /admin/tiers/{name}/delete: confirm
	r.POST("/admin/tiers/{name}/delete", w.handleTierDelete) // POST /admin/tiers/{name}/delete

	r.GET("/admin/users", w.handleUserList)                                   // GET /admin/users?q=&after=
	r.GET("/admin/users/new", w.handleUserNew)                                // GET /admin/users/new
	r.POST("/admin/users/new", w.handleUserCreate)                            // POST /admin/users/new
	r.GET("/admin/users/{username}", w.handleUserEdit)                        // GET /admin/users/{username}
	r.POST("/admin/users/{username}", w.handleUserUpdate)                     // POST /admin/users/{username}
	r.GET("/admin/users/{username}/delete", w.handleUserConfirm)              // GET: confirm
	r.POST("/admin/users/{username}/delete", w.handleUserDelete)              // POST
	r.POST("/admin/users/{username}/tokens", w.handleTokenCreate)             // POST: mint, then to /token
	r.GET("/admin/users/{username}/token", w.handleTokenShow)                 // GET: the new token, once
	r.GET("/admin/users/{username}/tokens/{id}/delete", w.handleTokenConfirm) // GET: confirm revoke
	r.POST("/admin/users/{username}/tokens/{id}/delete", w.handleTokenDelete) // POST: revoke
	r.GET("/admin/users/{username}/sessions/delete", w.handleSessionsConfirm) // GET: confirm
	r.POST("/admin/users/{username}/sessions/delete", w.handleSessionsDelete) // POST: sign out everywhere

	r.GET("/admin/delete-users", w.handleUsersConfirm)            // GET ?user=a&user=b: confirm a bulk delete
	r.POST("/admin/delete-users", w.handleUsersDelete)            // POST: delete the confirmed users
	r.GET("/admin/delete-images", w.handleImagesConfirm)          // GET ?id=a&id=b: confirm a bulk delete
	r.POST("/admin/delete-images", w.handleImagesDelete)          // POST: delete the confirmed images
	r.GET("/admin/images/{id}", w.handleImageDetail)              // GET: one image, its details and history
	r.GET("/admin/audit", w.handleAudit)                          // GET /admin/audit?actor=&action=&object_type=&cursor=
	r.GET("/admin/users/{username}/history", w.handleUserHistory) // GET: one user's history
	r.GET("/admin/tiers/{name}/history", w.handleTierHistory)     // GET: one tier's history
	r.GET("/admin/images/{id}/history", w.handleImageHistory)     // GET: one image's history
	r.GET("/admin/images", w.handleImageList)                     // GET /admin/images?owner=&before=
	r.GET("/admin/images/{id}/preview", w.handleImagePreview)     // GET: the 200 px thumbnail
	r.GET("/admin/images/{id}/delete", w.handleImageConfirm)      // GET: confirm
	r.POST("/admin/images/{id}/delete", w.handleImageDelete)      // POST
}

// cookieName is the session cookie's name: with https, the __Host- prefix makes browsers
// refuse it unless it is Secure, host-only and for path /, so a sibling subdomain cannot plant
// or shadow it.
func (w *Web) cookieName() string {
	if strings.HasPrefix(w.cfg.PublicURL, "https://") {
		return "__Host-tierpix_session"
	}
	return "tierpix_session"
}
