// Package api is the REST API: the user's images, expiring links and /api/me, and the admin
// API for tiers, users and tokens.
//
// Every answer is JSON: application/json for results, application/problem+json (package
// problem) for errors, never cached and never sniffed. Handlers return errors instead of
// writing them, so that one place (API.fail) maps an error to its response and adds the
// WWW-Authenticate challenge to every 401.
//
// The server must run with fasthttp's StreamRequestBody and DisablePreParseMultipartForm so
// that uploads reach the handler as a stream: the upload handler spools the image part to a
// temp file under the size cap and never holds the body in memory. Without
// DisablePreParseMultipartForm fasthttp reads a multipart body of known length in full
// (spilling files over 16 MiB to the system temp dir) before the handler runs; the handler
// still works then, only without the memory and size guarantees.
package api

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/fasthttp/router"
	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/api/openapi"
	"github.com/tierpix/tierpix/problem"
	"github.com/tierpix/tierpix/signin"
	"github.com/tierpix/tierpix/signing"
	"github.com/valyala/fasthttp"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxUploadBytes = 50 << 20
	DefaultBodyIdle       = 60 * time.Second
)

// multipartSlack is what a multipart body may carry on top of the image itself: boundaries,
// part headers and small fields. It keeps MaxRequestBodySize from refusing an image that is
// exactly at the cap.
const multipartSlack = 1 << 20

// maxJSONBytes caps a JSON request body. Every JSON body this API takes is a few fields.
const maxJSONBytes = 1 << 20

// healthTimeout bounds the database ping of /healthz, so that a load balancer's probe gets an
// answer even when the database hangs.
const healthTimeout = 2 * time.Second

// Config holds the API's settings. Zero values take the defaults.
type Config struct {
	PublicURL      string // base of the links handed out, e.g. http://127.0.0.1:8080; required
	MaxUploadBytes int64  // default 50 MiB
	// BodyIdleTimeout is how long an upload's body may send nothing before it is answered
	// 408 and dropped; default 60s.
	BodyIdleTimeout time.Duration
	Now             func() time.Time
}

// withDefaults returns cfg with its zero values replaced by the defaults and the public URL
// without a trailing slash, so links are built by plain concatenation.
func (cfg Config) withDefaults() Config {
	if cfg.MaxUploadBytes == 0 {
		cfg.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if cfg.BodyIdleTimeout == 0 {
		cfg.BodyIdleTimeout = DefaultBodyIdle
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	return cfg
}

// Validate reports the first setting that cannot work. Zero values are valid: they take the
// defaults.
func (cfg Config) Validate() error {
	cfg = cfg.withDefaults()
	if cfg.PublicURL == "" {
		return errors.New("api: public URL is required")
	}
	u, err := url.Parse(cfg.PublicURL)
	if err != nil {
		return fmt.Errorf("api: public URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("api: public URL %q must be an absolute http or https URL", cfg.PublicURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("api: public URL %q must not have a query or fragment", cfg.PublicURL)
	}
	if cfg.MaxUploadBytes < 0 {
		return fmt.Errorf("api: max upload bytes %d must be positive", cfg.MaxUploadBytes)
	}
	// fasthttp takes the body limit as an int; keep MaxRequestBodySize representable.
	if cfg.MaxUploadBytes > int64(maxInt-multipartSlack) {
		return fmt.Errorf("api: max upload bytes %d is too large", cfg.MaxUploadBytes)
	}
	return nil
}

const maxInt = int(^uint(0) >> 1)

// Store is what the API needs of the store besides the services: the spool for uploads,
// token lookups, and the health checks.
type Store interface {
	CreateTemp() (*os.File, error)
	CheckSpace(incoming int64) error
	LowOnSpace() bool
	Ping(ctx context.Context) error
	PingOriginals(ctx context.Context) error
	FindIdentityByToken(ctx context.Context, token string) (tierpix.Identity, error)
}

// API is the REST half of the server.
type API struct {
	cfg    Config
	svc    Services
	st     Store
	signin *signin.Service
	signer *signing.Signer
	// browser, when set, authenticates browsers by their session and renders answers to them
	// as pages (see browser.go). Without it the API speaks JSON to API clients only.
	browser Browser
	logger  *slog.Logger

	// cursors seals image-list cursors (see encodeSeqCursor).
	cursors cipher.Block

	// spec is the OpenAPI document, for OPTIONS; allowed lists each route's methods and
	// allowHeader joins them, for the Allow header of its every answer (both filled by
	// Register, read-only after).
	spec        *openapi.Spec
	allowed     map[string][]string
	allowHeader map[string]string

	uploads uploadStats // see stats.go
}

// Services is what the API's handlers call: the domain's services (package service).
type Services interface {
	tierpix.Services
}

// New returns an API over the services svc. Basic authentication checks passwords with si,
// which the web UI's sign-in shares. browser may be nil: then there are no sessions and no
// HTML pages.
func New(cfg Config, svc Services, st Store, si *signin.Service, signer *signing.Signer, browser Browser, logger *slog.Logger) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if svc == nil || st == nil || si == nil {
		return nil, errors.New("api: services, store and sign-in are required")
	}
	if signer == nil {
		return nil, errors.New("api: signer is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cursors, err := aes.NewCipher(signer.DeriveKey("api image list cursor")[:16])
	if err != nil {
		return nil, fmt.Errorf("api: make cursor cipher: %w", err)
	}
	spec, err := openapi.Load()
	if err != nil {
		return nil, fmt.Errorf("api: load the OpenAPI document: %w", err)
	}
	return &API{
		cursors:     cursors,
		spec:        spec,
		allowed:     map[string][]string{},
		allowHeader: map[string]string{},
		cfg:         cfg,
		svc:         svc,
		st:          st,
		signin:      si,
		signer:      signer,
		browser:     browser,
		logger:      logger,
	}, nil
}

// access is who may call a route.
type access int

const (
	public    access = iota // anyone
	users                   // any authenticated user
	adminOnly               // authenticated admins
)

// Register adds every API route to r, and makes the router's own answers (unknown path, wrong
// method, a panicking handler) problem documents like every other error.
func (a *API) Register(r *router.Router) {
	route := func(method, path string, who access, h handlerFunc) {
		handler := a.handler(path, who, h)
		r.Handle(method, path, handler)
		if _, ok := a.allowed[path]; !ok {
			r.Handle(http.MethodOptions, path, a.handleOptions(path))
			a.allowed[path] = []string{http.MethodOptions}
		}
		a.allowed[path] = append(a.allowed[path], method)
		if method == http.MethodGet {
			// Every GET answers HEAD too: the same handler, and fasthttp sends the headers only.
			r.Handle(http.MethodHead, path, handler)
			a.allowed[path] = append(a.allowed[path], http.MethodHead)
		}
	}
	route("GET", "/healthz", public, a.handleHealth)           // GET /healthz
	route("GET", "/api", public, a.handleRoot)                 // GET /api
	route("GET", "/api/openapi.json", public, a.handleOpenAPI) // GET /api/openapi.json

	route("GET", "/api/me", users, a.handleMe)                       // GET /api/me
	route("POST", "/api/me/password", users, a.handleChangePassword) // POST /api/me/password

	route("GET", "/api/images", users, a.handleListImages)                        // GET /api/images
	route("POST", "/api/images", users, a.handleUpload)                           // POST /api/images
	route("GET", "/api/images/{id}", users, a.handleGetImage)                     // GET /api/images/{id}
	route("DELETE", "/api/images/{id}", users, a.handleDeleteImage)               // DELETE /api/images/{id}
	route("POST", "/api/images/{id}/expiring-links", users, a.handleExpiringLink) // POST /api/images/{id}/expiring-links

	route("GET", "/api/admin/tiers", adminOnly, a.handleListTiers)            // GET /api/admin/tiers
	route("POST", "/api/admin/tiers", adminOnly, a.handleCreateTier)          // POST /api/admin/tiers
	route("GET", "/api/admin/tiers/{name}", adminOnly, a.handleGetTier)       // GET /api/admin/tiers/{name}
	route("PATCH", "/api/admin/tiers/{name}", adminOnly, a.handleUpdateTier)  // PATCH /api/admin/tiers/{name}
	route("DELETE", "/api/admin/tiers/{name}", adminOnly, a.handleDeleteTier) // DELETE /api/admin/tiers/{name}

	route("GET", "/api/admin/users", adminOnly, a.handleListUsers)                             // GET /api/admin/users
	route("POST", "/api/admin/users", adminOnly, a.handleCreateUser)                           // POST /api/admin/users
	route("GET", "/api/admin/users/{username}", adminOnly, a.handleGetUser)                    // GET /api/admin/users/{username}
	route("PATCH", "/api/admin/users/{username}", adminOnly, a.handleUpdateUser)               // PATCH /api/admin/users/{username}
	route("DELETE", "/api/admin/users/{username}", adminOnly, a.handleDeleteUser)              // DELETE /api/admin/users/{username}
	route("GET", "/api/admin/users/{username}/tokens", adminOnly, a.handleListTokens)          // GET /api/admin/users/{username}/tokens
	route("POST", "/api/admin/users/{username}/tokens", adminOnly, a.handleCreateToken)        // POST /api/admin/users/{username}/tokens
	route("DELETE", "/api/admin/users/{username}/tokens/{id}", adminOnly, a.handleDeleteToken) // DELETE /api/admin/users/{username}/tokens/{id}
	route("DELETE", "/api/admin/users/{username}/sessions", adminOnly, a.handleDeleteSessions) // DELETE /api/admin/users/{username}/sessions

	route("GET", "/api/admin/images", adminOnly, a.handleListAllImages)          // GET /api/admin/images
	route("DELETE", "/api/admin/images/{id}", adminOnly, a.handleDeleteAnyImage) // DELETE /api/admin/images/{id}

	route("GET", "/api/admin/audit", adminOnly, a.handleListChanges) // GET /api/admin/audit

	for path, methods := range a.allowed {
		a.allowHeader[path] = strings.Join(methods, ", ")
	}

	r.NotFound = a.handleNotFound
	r.MethodNotAllowed = a.handleMethodNotAllowed
	r.PanicHandler = a.handlePanic
}

// MaxRequestBodySize is the body limit for fasthttp.Server: the upload cap plus room for the
// multipart framing around the image.
func (a *API) MaxRequestBodySize() int {
	return int(a.cfg.MaxUploadBytes) + multipartSlack
}

// ErrorHandler answers requests fasthttp could not parse, for fasthttp.Server.ErrorHandler.
// fasthttp's own answer to a body over MaxRequestBodySize is a plain-text 400; this makes it a
// 413 problem document, and every other parse failure a 400 one.
func (a *API) ErrorHandler(ctx *fasthttp.RequestCtx, err error) {
	var smallBuffer *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		problem.Write(ctx, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("The request body is larger than the %d-byte limit.", a.MaxRequestBodySize()), nil)
	case errors.As(err, &smallBuffer):
		problem.Write(ctx, http.StatusRequestHeaderFieldsTooLarge, "The request headers are too large.", nil)
	case errors.As(err, &netErr) && netErr.Timeout():
		problem.Write(ctx, http.StatusRequestTimeout, "The request was not received in time.", nil)
	default:
		problem.Write(ctx, http.StatusBadRequest, "The request could not be parsed as HTTP.", nil)
	}
	ctx.SetConnectionClose()
}

// handleHealth serves GET /healthz.
func (a *API) handleHealth(ctx *fasthttp.RequestCtx, _ *tierpix.Identity) error {
	pingCtx, cancel := context.WithTimeout(dbContext(ctx), healthTimeout)
	defer cancel()
	if err := a.st.Ping(pingCtx); err != nil {
		a.logger.Warn("health check: database ping failed", "err", err)
		problem.SetRetryAfter(ctx, tierpix.ErrorRetryAfter(err))
		problem.Write(ctx, http.StatusServiceUnavailable, "The database is unavailable.",
			map[string]string{"database": fmt.Sprintf("did not answer a ping within %s", healthTimeout)})
		return nil
	}
	// A data dir below its reserve refuses uploads (507) but serves everything else: said,
	// not failed.
	disk := "ok"
	if a.st.LowOnSpace() {
		disk = "low on space: uploads are refused"
	}
	// Originals in a bucket that does not answer: uploads, first renders and original links
	// get 503, cached thumbnails are served. Said, not failed, since every node shares the
	// bucket and taking them all out of a balancer would serve nothing at all.
	originals := "ok"
	if err := a.st.PingOriginals(pingCtx); err != nil {
		a.logger.Warn("health check: originals storage", "err", err)
		originals = "unavailable: uploads, first renders and original links get 503"
	}
	a.writeJSON(ctx, http.StatusOK, map[string]any{"status": "ok", "checks": map[string]string{"database": "ok", "disk": disk, "originals": originals}})
	return nil
}

// handleNotFound answers paths no route matches.
func (a *API) handleNotFound(ctx *fasthttp.RequestCtx) {
	problem.Write(ctx, http.StatusNotFound, "There is nothing at this path.", nil)
	a.renderForBrowser(ctx, "", nil)
}

// handleMethodNotAllowed answers a known path with a method it does not take. The router has
// set the Allow header already.
func (a *API) handleMethodNotAllowed(ctx *fasthttp.RequestCtx) {
	allow := string(ctx.Response.Header.Peek("Allow"))
	problem.Write(ctx, http.StatusMethodNotAllowed,
		fmt.Sprintf("The method %s is not allowed here; allowed: %s.", ctx.Method(), allow), nil)
	a.renderForBrowser(ctx, "", nil)
}

// handlePanic turns a panicking handler into a logged 500 instead of a dropped connection.
func (a *API) handlePanic(ctx *fasthttp.RequestCtx, v any) {
	problem.Error(ctx, a.logger, fmt.Errorf("panic: %v", v))
}

// handlerFunc is a handler behind authentication: it gets the caller and returns an error
// for a.fail to answer.
type handlerFunc func(ctx *fasthttp.RequestCtx, id *tierpix.Identity) error

// handler wraps h for a route: authentication and authorization as who requires, the
// session's CSRF rules, the error answer, and the page for a browser.
func (a *API) handler(path string, who access, h handlerFunc) fasthttp.RequestHandler {
	// Only the upload streams a multipart body; its CSRF token is checked as the body is read.
	deferMultipart := path == "/api/images"
	return func(ctx *fasthttp.RequestCtx) {
		var id *tierpix.Identity
		var err error
		if who != public {
			var ident tierpix.Identity
			var by credential
			ident, by, err = a.authenticate(ctx)
			if err == nil {
				id = &ident
				switch {
				case who == adminOnly && tierpix.RequireAdmin(&ident) != nil:
					err = tierpix.RequireAdmin(&ident)
				case by == bySession && isUnsafe(ctx):
					err = a.checkCSRF(ctx, deferMultipart)
				case by == byBasic && isUnsafe(ctx) && signin.FromOtherSite(string(ctx.Request.Header.Peek("Sec-Fetch-Site"))):
					// Browsers send remembered Basic credentials with any site's form post, as
					// they send cookies; a token is never sent unasked.
					err = tierpix.Errorf(tierpix.EFORBIDDEN, "A request from another site cannot change anything with Basic credentials.")
				}
			}
		} else if a.wantsHTML(ctx) {
			// A public page still shows who is signed in.
			if ident, ok, werr := a.browser.Identify(ctx); werr == nil && ok {
				id = &ident
			}
		}
		ctx.Response.Header.Set("Allow", a.allowHeader[path])
		if err == nil {
			err = h(ctx, id)
		}
		if err != nil {
			a.fail(ctx, err)
			a.drainRefused(ctx)
		}
		if path != "/healthz" && path != "/api/openapi.json" {
			a.renderForBrowser(ctx, path, id)
		}
	}
}

// drainIdle is how long drainRefused waits for more of a refused body before it gives up on
// the client and closes the connection after the answer; drainMax bounds the whole drain, so
// a client that dribbles its body cannot hold the connection for long.
const (
	drainIdle = 2 * time.Second
	drainMax  = 5 * time.Second
)

// drainRefused reads and drops what is left of a refused request's body, when the request
// declared a body within the limit (or sent it chunked), before the answer goes out. Left
// unread, fasthttp discards at most 256 KiB and then closes the connection under a client
// still sending: a client then sees a reset instead of its 4xx, and nginx, streaming the body
// to us (proxy_request_buffering off), answers 502. A body declared over the limit is not
// read, nor is one whose client stops sending for drainIdle (it may be waiting for the answer
// before it sends more): the connection is closed after the answer instead.
func (a *API) drainRefused(ctx *fasthttp.RequestCtx) {
	stream := ctx.RequestBodyStream()
	if stream == nil {
		return
	}
	limit := int64(a.MaxRequestBodySize())
	if cl := ctx.Request.Header.ContentLength(); cl > int(limit) {
		ctx.SetConnectionClose()
		return
	}
	if ctx.Response.StatusCode() == http.StatusRequestTimeout {
		// The body stopped coming; there is nothing to wait for.
		ctx.SetConnectionClose()
		return
	}
	conn := ctx.Conn()
	buf := make([]byte, 32<<10)
	var read int64
	end := time.Now().Add(drainMax)
	for read <= limit {
		deadline := time.Now().Add(drainIdle)
		if deadline.After(end) {
			deadline = end
		}
		conn.SetReadDeadline(deadline) //nolint:errcheck // a failed deadline only makes the read below fail sooner
		n, err := stream.Read(buf)
		read += int64(n)
		if errors.Is(err, io.EOF) {
			// fasthttp sets its own deadline before it reads the next request, when it has one.
			conn.SetReadDeadline(time.Time{}) //nolint:errcheck
			return
		}
		if err != nil {
			break
		}
	}
	ctx.SetConnectionClose()
}

// renderForBrowser turns the answer into the browsable API's page when a browser asked for
// HTML. A browser is not offered Basic authentication: its login dialog would stand in the
// way of the sign-in page the page links to.
func (a *API) renderForBrowser(ctx *fasthttp.RequestCtx, path string, id *tierpix.Identity) {
	if !a.wantsHTML(ctx) {
		return
	}
	if ctx.Response.StatusCode() == http.StatusUnauthorized {
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="tierpix"`)
	}
	var p Page
	if v := ctx.UserValue(ctxAnswer); v != nil {
		p = pageOf(v)
	}
	p.Identity, p.Route, p.Problem = id, path, problem.Written(ctx)
	a.browser.RenderAPI(ctx, p)
}

// wwwAuthenticate offers both schemes the API accepts.
const wwwAuthenticate = `Bearer realm="tierpix", Basic realm="tierpix", charset="UTF-8"`

// fail answers with the problem err stands for.
func (a *API) fail(ctx *fasthttp.RequestCtx, err error) {
	problem.Error(ctx, a.logger, err)
	if ctx.Response.StatusCode() == http.StatusUnauthorized {
		ctx.Response.Header.Set("WWW-Authenticate", wwwAuthenticate)
	}
}

// writeJSON answers with v as JSON. The headers keep responses that carry signed links and
// account data out of shared caches and stop browsers from sniffing them as anything else.
func (a *API) writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	body, err := jsonMarshal(v)
	if err != nil {
		// Only a bug can get here: every value written is a plain struct or map.
		a.fail(ctx, fmt.Errorf("encode response: %w", err))
		return
	}
	if a.wantsHTML(ctx) {
		ctx.SetUserValue(ctxAnswer, v)
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.SetBody(body)
}

// noContent answers 204 when err is nil, and returns err for the handler wrapper otherwise:
// the end of every handler whose success has no body.
func noContent(ctx *fasthttp.RequestCtx, err error) error {
	if err != nil {
		return err
	}
	writeNoContent(ctx)
	return nil
}

// writeNoContent answers 204 with the same caching headers as writeJSON.
func writeNoContent(ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(http.StatusNoContent)
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.Response.ResetBody()
}

// pathParam returns a route parameter such as {id}.
func pathParam(ctx *fasthttp.RequestCtx, name string) string {
	v, _ := ctx.UserValue(name).(string)
	return v
}

// dbContext is the context for a request's database work, deliberately not derived from the
// RequestCtx, for two reasons. fasthttp cancels a RequestCtx when the server starts shutting
// down, but a request in flight then is one the drain promises to finish: an upload
// half-received must still get its row. And fasthttp reuses a RequestCtx for the next request
// once the handler returns, so a context derived from it that outlives the handler (a driver's
// watcher goroutine reading its values or Done) would race with that reuse.
func dbContext(*fasthttp.RequestCtx) context.Context {
	return context.Background()
}
