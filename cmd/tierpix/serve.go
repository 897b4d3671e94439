package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/fasthttp/router"
	"github.com/tierpix/tierpix/api"
	"github.com/tierpix/tierpix/api/openapi"
	"github.com/tierpix/tierpix/imaging"
	"github.com/tierpix/tierpix/metrics"
	"github.com/tierpix/tierpix/origin"
	"github.com/tierpix/tierpix/service"
	"github.com/tierpix/tierpix/signin"
	"github.com/tierpix/tierpix/signing"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/web"
	"github.com/valyala/fasthttp"
)

// newLogger returns the one logger of the process. Repeated troubles are logged once per
// logDedupEvery with a count (see dedupHandler).
func newLogger(cfg config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(newDedupHandler(h, logDedupEvery, time.Now))
}

// logDedupEvery is how often one kind of trouble is logged at most.
const logDedupEvery = 10 * time.Second

// gcPercent is the Go garbage collector's target unless GOGC says otherwise. Once warm, most
// of the heap is the memory cache's thumbnails, byte slices the collector need not scan, so
// collecting more often costs little, and with Go's default of 100 the heap may grow to twice
// the cache before a collection (docs/BENCHMARKS.md has the figures).
const gcPercent = 50

// serve runs the server until ctx is done, then drains in-flight requests for at most
// cfg.ShutdownTimeout. ln may be nil (listen on cfg.Addr); tests pass their own listener.
func serve(ctx context.Context, cfg config, ln net.Listener, logger *slog.Logger, out io.Writer) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	signer, err := loadSigner(cfg, logger)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := ensureAdmin(ctx, st, cfg, logger, out); err != nil {
		return err
	}
	// Leftovers of a crash: temp files and originals whose row never landed. At start, and
	// then every sweepEvery, so leftovers of another node's crash go too. A bucket's listing
	// may take minutes, so with originals in a bucket the first sweep runs in the background.
	inBucket := st.OriginalsInBucket()
	if !inBucket {
		if err := sweep(ctx, st, cfg, logger); err != nil {
			return err
		}
	}
	go func() {
		t := time.NewTicker(sweepEvery)
		defer t.Stop()
		if inBucket {
			if err := sweep(ctx, st, cfg, logger); err != nil && ctx.Err() == nil {
				logger.Error("sweep", "err", err)
			}
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := sweep(ctx, st, cfg, logger); err != nil && ctx.Err() == nil {
					logger.Error("periodic sweep", "err", err)
				}
			}
		}
	}()

	if ln == nil {
		ln, err = net.Listen("tcp", cfg.Addr)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	defer ln.Close()
	if cfg.publicURLDefault {
		// With port 0 only the listener knows the port the links must name.
		cfg.PublicURL = defaultPublicURL(ln.Addr().String())
	}

	// libvips serves the uploads' validation and the origin's renders: started once, here,
	// before either.
	if err := imaging.Start(imaging.Config{}, logger); err != nil {
		return fmt.Errorf("start imaging: %w", err)
	}
	// One budget of decode memory for the API's validations and the origin's renders.
	decode := imaging.NewBudget(cfg.DecodeBudgetBytes, cfg.DecodeQueue, 0)
	org, err := origin.New(origin.Config{
		CacheDir:         filepath.Join(cfg.DataDir, "cache"),
		MemoryCacheBytes: cfg.MemoryCacheBytes,
		DiskCacheBytes:   cfg.DiskCacheBytes,
		RenderWorkers:    cfg.RenderWorkers,
		RenderQueue:      cfg.RenderQueue,
		MaxAge:           cfg.CacheMaxAge,
		NoNegotiation:    cfg.NoNegotiation,
		Quality:          cfg.Quality,
		DecodeBudget:     decode,
	}, st, signer, logger)
	if err != nil {
		return fmt.Errorf("start origin: %w", err)
	}
	defer org.Close()
	st.OnChange(org.Changed)
	spec, err := openapi.Load()
	if err != nil {
		return fmt.Errorf("load the OpenAPI document: %w", err)
	}
	si, err := signin.New(signin.Config{TrustedProxies: cfg.TrustedProxies}, st, logger)
	if err != nil {
		return fmt.Errorf("start sign-in: %w", err)
	}
	svc, err := service.New(service.Config{MaxPixels: cfg.MaxPixels, DecodeBudget: decode}, st, si, org, logger)
	if err != nil {
		return fmt.Errorf("start services: %w", err)
	}
	w, err := web.New(web.Config{
		PublicURL:          cfg.PublicURL,
		SessionIdleTimeout: cfg.SessionIdle,
		SessionMaxAge:      cfg.SessionMaxAge,
	}, svc, st, si, org, spec, logger)
	if err != nil {
		return fmt.Errorf("start web UI: %w", err)
	}
	a, err := api.New(api.Config{
		PublicURL:       cfg.PublicURL,
		MaxUploadBytes:  cfg.MaxUploadBytes,
		BodyIdleTimeout: cfg.BodyIdleTimeout,
	}, svc, st, si, signer, w, logger)
	if err != nil {
		return fmt.Errorf("start api: %w", err)
	}

	mx, err := metrics.New(originCounts(org), uploadCounts(a), logger)
	if err != nil {
		return fmt.Errorf("start metrics: %w", err)
	}
	if err := mx.AddSignIn(signInCounts(si)); err != nil {
		return fmt.Errorf("start metrics: %w", err)
	}
	if st.OriginalsInBucket() {
		if err := mx.AddOriginals(originalsCounts(st)); err != nil {
			return fmt.Errorf("start metrics: %w", err)
		}
	}

	r := router.New()
	r.SaveMatchedRoutePath = true
	a.Register(r)
	org.Register(r)
	w.Register(r)
	mx.Register(r)

	srv := &fasthttp.Server{
		Handler:           logRequests(mx.Wrap(api.MethodOverride(org.Front(r.Handler))), logger),
		ErrorHandler:      a.ErrorHandler,
		Name:              "tierpix",
		StreamRequestBody: true,
		// Without this fasthttp reads a whole multipart body (to memory and /tmp) before any
		// handler runs, ignoring the size cap and authentication; the API streams it instead.
		DisablePreParseMultipartForm: true,
		MaxRequestBodySize:           a.MaxRequestBodySize(),
		// A client that asks before sending (Expect: 100-continue) an upload over the cap is
		// told 417 at once instead of being invited to send it.
		ContinueHandler: func(h *fasthttp.RequestHeader) bool {
			return h.ContentLength() <= a.MaxRequestBodySize()
		},
		ReadBufferSize: 16 << 10,
		// ReadTimeout bounds the wait for a request's headers (nginx's client_header_timeout);
		// once they are in, HeaderReceived gives the body its own bound, which the upload
		// handler renews on every read (a slow upload that keeps moving is never cut).
		ReadTimeout: cfg.HeaderTimeout,
		HeaderReceived: func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
			if cl := h.ContentLength(); cl == 0 || cl == -2 {
				return fasthttp.RequestConfig{} // no body to read: no deadline to move
			}
			return fasthttp.RequestConfig{ReadTimeout: cfg.BodyIdleTimeout}
		},
		// fasthttp's own error messages (a malformed request, say) leave out the request's
		// bytes: they may hold an Authorization header or a session cookie.
		SecureErrorLogMessage: true,
		WriteTimeout:          5 * time.Minute,
		IdleTimeout:           2 * time.Minute,
		NoDefaultServerHeader: false,
		CloseOnShutdown:       true,
		Logger:                slogPrinter{logger},
	}

	logger.Info("tierpix listening", "addr", ln.Addr().String(), "public_url", cfg.PublicURL,
		"database", st.Dialect(), "data_dir", cfg.DataDir, "originals", st.Originals())

	limits := resolveConnLimits(cfg, fileLimit(), logger)
	logger.Info("connection limits", "max_conns", limits.Total, "max_conns_per_ip", limits.PerIP)
	lim := newLimitListener(ln, limits, logger)
	srv.ConnState = lim.connState
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lim) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down: draining requests", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.ShutdownWithContext(sctx); err != nil {
		logger.Warn("shutdown did not drain every request", "err", err)
	}
	logger.Info("stopped")
	return nil
}

// sweepEvery is how often leftovers are swept while the server runs; orphanAge is how old an
// original without a row must be before it counts as a leftover rather than an upload whose
// row is about to land.
const (
	sweepEvery = 15 * time.Minute
	orphanAge  = time.Hour
)

// sweep removes crash leftovers from the data dir, and sessions that have ended (idle for
// sessionIdle or past their absolute expiry) and failed sign-ins past the throttle's window,
// which count for nothing any more but would pile up in the database.
func sweep(ctx context.Context, st *store.Store, cfg config, logger *slog.Logger) error {
	res, err := st.Sweep(ctx, orphanAge)
	if err != nil {
		return fmt.Errorf("sweep data dir: %w", err)
	}
	if res.TempFiles+res.Orphans > 0 {
		logger.Info("swept leftovers", "temp_files", res.TempFiles, "orphan_originals", res.Orphans)
	}
	n, err := st.DeleteExpiredSessions(ctx, time.Now().Add(-cfg.SessionIdle))
	if err != nil {
		return fmt.Errorf("sweep sessions: %w", err)
	}
	if n > 0 {
		logger.Info("swept ended sessions", "sessions", n)
	}
	// Failed sign-ins older than the throttle's window count for nothing any more, nor do
	// sign-in addresses older than the throttle trusts.
	if _, err := st.DeleteStaleLoginFailures(ctx, signin.DefaultWindow); err != nil {
		return fmt.Errorf("sweep sign-in failures: %w", err)
	}
	if _, err := st.DeleteStaleSignInAddresses(ctx, time.Now().Add(-signin.DefaultKnownAddressAge)); err != nil {
		return fmt.Errorf("sweep sign-in addresses: %w", err)
	}
	return sweepAudit(ctx, st, cfg.AuditRetention, logger)
}

// auditSweepBatch is how many audit entries one statement of the retention sweep deletes, so
// that a first sweep over years of entries holds no lock for long.
const auditSweepBatch = 5000

// sweepAudit deletes the audit entries older than retention (0 keeps them all), a batch at a
// time, for at most a minute per sweep; the next sweep goes on.
func sweepAudit(ctx context.Context, st *store.Store, retention time.Duration, logger *slog.Logger) error {
	if retention <= 0 {
		return nil
	}
	cutoff, total := time.Now().Add(-retention), 0
	for stop := time.Now().Add(time.Minute); time.Now().Before(stop); {
		n, err := st.DeleteChangesBefore(ctx, cutoff, auditSweepBatch)
		if err != nil {
			return fmt.Errorf("sweep audit log: %w", err)
		}
		total += n
		if n < auditSweepBatch {
			break
		}
	}
	if total > 0 {
		logger.Info("swept old audit entries", "entries", total, "retention_days", int(retention/(24*time.Hour)))
	}
	return nil
}

// loadSigner uses the configured keys, or the key file in the data dir, creating it (mode
// 0600) on first start. O_EXCL makes two nodes starting at once over a shared data dir agree
// on one key.
func loadSigner(cfg config, logger *slog.Logger) (*signing.Signer, error) {
	if cfg.SigningKey != "" {
		keys, err := signing.ParseKeys(cfg.SigningKey)
		if err != nil {
			return nil, fmt.Errorf("TIERPIX_SIGNING_KEY: %w", err)
		}
		return signing.New(keys)
	}
	path := filepath.Join(cfg.DataDir, "signing.key")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err := signing.GenerateKey()
		if err != nil {
			return nil, err
		}
		if err := writeKeyFile(path, key); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		logger.Info("generated a signing key", "path", path)
		b, err = os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read signing key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		logger.Warn("the signing key file is readable by others; chmod 600 it", "path", path)
	}
	keys, err := signing.ParseKeys(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("signing key file %s: %w", path, err)
	}
	return signing.New(keys)
}

// writeKeyFile writes the key to a temp file, syncs it and links it into place, so the key
// file is either absent or complete, and an existing key is never replaced.
func writeKeyFile(path, key string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".signing.key-*")
	if err != nil {
		return fmt.Errorf("create signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("chmod signing key: %w", err)
	}
	if _, err := tmp.WriteString(key + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("write signing key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync signing key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close signing key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("install signing key: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// logRequests is the one place requests are logged: 5xx at Error, 4xx at Warn, the rest at
// Debug (image hits are far too many to log at Info). A 503 is the render queue shedding load
// by design, so it is a Warn too. Paths are cut short: a 4xx may carry a junk path of many KiB.
func logRequests(next fasthttp.RequestHandler, logger *slog.Logger) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		// The server read the clock when the request arrived; reading it again here would
		// cost every request, logged or not.
		start := ctx.Time()
		if start.IsZero() {
			start = time.Now() // a ctx not from a server
		}
		next(ctx)
		status := ctx.Response.StatusCode()
		level := slog.LevelDebug
		switch {
		case status == fasthttp.StatusServiceUnavailable:
			level = slog.LevelWarn
		case status >= 500:
			level = slog.LevelError
		case status >= 400:
			level = slog.LevelWarn
		}
		if !logger.Enabled(context.Background(), level) {
			return
		}
		path := ctx.Path()
		if len(path) > maxLoggedPath {
			path = append(path[:maxLoggedPath:maxLoggedPath], "..."...)
		}
		logger.Log(context.Background(), level, "request",
			"method", string(ctx.Method()), "path", string(path), "status", status,
			"duration", time.Since(start), "remote", ctx.RemoteIP().String())
	}
}

// maxLoggedPath is the longest path a request log line carries.
const maxLoggedPath = 256

// slogPrinter routes fasthttp's own log lines (connection errors and the like) to slog.
// Their quoted parts, except addresses, are redacted: SecureErrorLogMessage keeps the raw
// headers out, but a parse error still quotes the offending line, which may be a mistyped
// Authorization or Cookie header.
type slogPrinter struct{ logger *slog.Logger }

func (p slogPrinter) Printf(format string, args ...any) {
	p.logger.Warn(redactQuoted(fmt.Sprintf(format, args...)), "component", "fasthttp")
}

// quotedRE matches a Go-quoted string, as fasthttp's %q puts request bytes in its messages.
var quotedRE = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// redactQuoted replaces each quoted part of msg that is not an IP address and port.
func redactQuoted(msg string) string {
	return quotedRE.ReplaceAllStringFunc(msg, func(q string) string {
		if s, err := strconv.Unquote(q); err == nil {
			if _, err := netip.ParseAddrPort(s); err == nil {
				return q
			}
		}
		return `"[redacted]"`
	})
}
