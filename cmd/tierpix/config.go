package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tierpix/tierpix/imaging"
	"github.com/tierpix/tierpix/store"
)

// config is everything tierpix reads from its environment. Only main reads the environment;
// each package receives its part through its own Config.
type config struct {
	Addr              string
	DataDir           string
	DatabaseURL       string
	Originals         string // "", a directory, or s3://BUCKET/PREFIX
	S3                store.S3Config
	OriginalsCache    int64 // bytes of originals fetched from the bucket kept on this node
	PublicURL         string
	publicURLDefault  bool // PublicURL was derived from Addr, so it follows the bound port
	SigningKey        string
	AdminUsername     string
	AdminPassword     string
	MaxUploadBytes    int64
	MaxPixels         int64
	MemoryCacheBytes  int64
	DiskCacheBytes    int64 // -1: unbounded
	RenderWorkers     int
	RenderQueue       int
	CacheMaxAge       time.Duration
	NoNegotiation     bool // TIERPIX_WEBP=off
	Quality           imaging.Quality
	ShutdownTimeout   time.Duration
	SessionIdle       time.Duration
	SessionMaxAge     time.Duration
	AuditRetention    time.Duration // 0: keep the audit log forever
	TrustedProxies    []netip.Prefix
	MaxConns          int // 0: derived from the file limit
	MaxConnsPerIP     int // 0: a quarter of MaxConns
	HeaderTimeout     time.Duration
	DBTimeout         time.Duration
	DecodeBudgetBytes int64
	DecodeQueue       int
	MinFreeBytes      int64
	BodyIdleTimeout   time.Duration
	LogLevel          slog.Level
	LogFormat         string
}

// envVar documents one setting; the README's configuration table mirrors this list.
type envVar struct {
	name, def, doc string
}

var envVars = []envVar{
	{"TIERPIX_ADDR", "127.0.0.1:8080", "address to listen on"},
	{"TIERPIX_DATA_DIR", "./data", "SQLite database, originals, render cache, signing key"},
	{"DATABASE_URL", "", "empty: SQLite in the data dir; postgres://... : PostgreSQL"},
	{"TIERPIX_ORIGINALS", "<data dir>/originals", "where uploaded originals live: a directory, or s3://BUCKET/PREFIX for an S3 bucket (then every node can run without a shared directory)"},
	{"TIERPIX_S3_ENDPOINT", "AWS", "the S3 server, e.g. http://127.0.0.1:7070 or https://<account>.r2.cloudflarestorage.com; empty: AWS"},
	{"TIERPIX_S3_REGION", "us-east-1", "the bucket's region"},
	{"TIERPIX_S3_PATH_STYLE", "false", "true: address the bucket in the path (most servers other than AWS want it)"},
	{"TIERPIX_S3_TIMEOUT", "10", "seconds a request to the bucket may take, plus one per MiB it carries; past it, 503 with Retry-After"},
	{"AWS_ACCESS_KEY_ID", "", "with AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN): the bucket's credentials; empty: the shared credentials file, then the instance's or container's role"},
	{"TIERPIX_ORIGINALS_CACHE_BYTES", "4294967296", "with originals in a bucket: originals kept on this node's disk for renders (4 GiB), least recently used evicted"},
	{"TIERPIX_PUBLIC_URL", "http://<TIERPIX_ADDR>", "base of the links handed out"},
	{"TIERPIX_SIGNING_KEY", "", "comma-separated keys (>= 32 bytes each); the first signs, all verify. Empty: generated once into <data dir>/signing.key"},
	{"TIERPIX_ADMIN_USERNAME", "", "an admin created, or updated, at start"},
	{"TIERPIX_ADMIN_PASSWORD", "", "that admin's password"},
	{"TIERPIX_MAX_UPLOAD_BYTES", "52428800", "largest accepted upload (50 MiB)"},
	{"TIERPIX_MAX_PIXELS", "50000000", "largest accepted width x height"},
	{"TIERPIX_MEMORY_CACHE_BYTES", "268435456", "in-memory render cache budget (256 MiB)"},
	{"TIERPIX_DISK_CACHE_BYTES", "10737418240", "on-disk render cache budget (10 GiB); -1: unbounded"},
	{"TIERPIX_RENDER_WORKERS", "number of CPUs", "renders at once"},
	{"TIERPIX_RENDER_QUEUE", "64", "renders waiting before 503"},
	{"TIERPIX_CACHE_MAX_AGE", "3600", "Cache-Control max-age of permanent links, seconds"},
	{"TIERPIX_WEBP", "on", "on: thumbnail links answer WebP to clients whose Accept lists image/webp (with Vary: Accept); off: the original's format always, for caches that cannot vary on Accept (the .webp links still answer WebP)"},
	{"TIERPIX_QUALITY", "auto", "auto: each JPEG and WebP thumbnail at the lowest quality meeting TIERPIX_QUALITY_SSIM (never below what quality 80 gives a JPEG original); 1 to 100: every one at that quality (80 was the fixed quality before)"},
	{"TIERPIX_QUALITY_SSIM", "0.95", "with TIERPIX_QUALITY=auto: the luma SSIM a thumbnail keeps against its own pixels before encoding, 0.5 to 0.999"},
	{"TIERPIX_SHUTDOWN_TIMEOUT", "30", "seconds to drain requests on SIGTERM"},
	{"TIERPIX_SESSION_IDLE_TIMEOUT", "7200", "a browser session unused this many seconds ends"},
	{"TIERPIX_SESSION_MAX_AGE", "43200", "a browser session ends this many seconds after sign-in"},
	{"TIERPIX_AUDIT_RETENTION_DAYS", "365", "audit log entries older than this many days are deleted; 0: keep them forever"},
	{"TIERPIX_TRUSTED_PROXIES", "", "comma-separated addresses or CIDRs (nginx) whose X-Forwarded-For names the client, for sign-in and Basic throttling"},
	{"TIERPIX_MAX_CONNS", "from the file limit", "open client connections at most; beyond, 503 and close. Default: (file limit - a quarter for the open-file cache - 64) / 2"},
	{"TIERPIX_MAX_CONNS_PER_IP", "TIERPIX_MAX_CONNS / 4", "open connections from one client address at most (TIERPIX_TRUSTED_PROXIES are exempt)"},
	{"TIERPIX_HEADER_TIMEOUT", "10", "seconds a client has to send a request's headers"},
	{"TIERPIX_BODY_IDLE_TIMEOUT", "60", "seconds an upload body may send nothing before it gets 408"},
	{"TIERPIX_DECODE_BUDGET_BYTES", "805306368", "memory the decodes of uploads and renders may take at once (768 MiB), estimated from each image's header; an image needing more is refused (422)"},
	{"TIERPIX_DECODE_QUEUE", "64", "decodes waiting for budget (each at most 20 s); beyond, 503 with Retry-After"},
	{"TIERPIX_DB_TIMEOUT", "5", "seconds a database call (and the wait for a connection) may take; past it, 503 with Retry-After"},
	{"TIERPIX_MIN_FREE_BYTES", "536870912", "free space uploads must leave in the data dir (512 MiB); below it uploads get 507 and the render cache stops writing. 0: none"},
	{"TIERPIX_LOG_LEVEL", "info", "debug, info, warn or error"},
	{"TIERPIX_LOG_FORMAT", "text", "text or json"},
}

// loadConfig reads the environment through getenv and checks every value, reporting all
// problems at once.
func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		Addr:        or(getenv("TIERPIX_ADDR"), "127.0.0.1:8080"),
		DataDir:     or(getenv("TIERPIX_DATA_DIR"), "./data"),
		DatabaseURL: getenv("DATABASE_URL"),
		Originals:   strings.TrimSpace(getenv("TIERPIX_ORIGINALS")),
		S3: store.S3Config{
			Endpoint:     strings.TrimSpace(getenv("TIERPIX_S3_ENDPOINT")),
			Region:       strings.TrimSpace(getenv("TIERPIX_S3_REGION")),
			AccessKey:    getenv("AWS_ACCESS_KEY_ID"),
			SecretKey:    getenv("AWS_SECRET_ACCESS_KEY"),
			SessionToken: getenv("AWS_SESSION_TOKEN"),
		},
		PublicURL:     getenv("TIERPIX_PUBLIC_URL"),
		SigningKey:    getenv("TIERPIX_SIGNING_KEY"),
		AdminUsername: getenv("TIERPIX_ADMIN_USERNAME"),
		AdminPassword: getenv("TIERPIX_ADMIN_PASSWORD"),
		LogFormat:     or(getenv("TIERPIX_LOG_FORMAT"), "text"),
	}
	var problems []string
	bad := func(name, why string) { problems = append(problems, name+": "+why) }

	c.MaxUploadBytes = intVar(getenv, "TIERPIX_MAX_UPLOAD_BYTES", 50<<20, 1, 1<<40, bad)
	c.MaxPixels = intVar(getenv, "TIERPIX_MAX_PIXELS", 50_000_000, 1, 1<<40, bad)
	c.MemoryCacheBytes = intVar(getenv, "TIERPIX_MEMORY_CACHE_BYTES", 256<<20, 0, 1<<40, bad)
	c.DiskCacheBytes = intVar(getenv, "TIERPIX_DISK_CACHE_BYTES", 10<<30, -1, 1<<50, bad)
	if c.DiskCacheBytes == 0 {
		// The origin would read 0 as its default, not as no disk cache; refuse the surprise.
		bad("TIERPIX_DISK_CACHE_BYTES", "want -1 (unbounded) or a positive number of bytes")
	}
	c.RenderWorkers = int(intVar(getenv, "TIERPIX_RENDER_WORKERS", 0, 0, 4096, bad))
	c.RenderQueue = int(intVar(getenv, "TIERPIX_RENDER_QUEUE", 64, 0, 1<<20, bad))
	c.CacheMaxAge = time.Duration(intVar(getenv, "TIERPIX_CACHE_MAX_AGE", 3600, 0, 365*24*3600, bad)) * time.Second
	switch strings.ToLower(strings.TrimSpace(getenv("TIERPIX_WEBP"))) {
	case "", "on", "true", "1", "yes":
	case "off", "false", "0", "no":
		c.NoNegotiation = true
	default:
		bad("TIERPIX_WEBP", "want on or off")
	}
	if q := strings.ToLower(strings.TrimSpace(getenv("TIERPIX_QUALITY"))); q != "" && q != "auto" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > 100 {
			bad("TIERPIX_QUALITY", "want auto or a quality from 1 to 100")
		}
		c.Quality.Fixed = n
	}
	c.Quality.Floor = imaging.DefaultSSIMFloor
	if f := strings.TrimSpace(getenv("TIERPIX_QUALITY_SSIM")); f != "" {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v < 0.5 || v > 0.999 {
			bad("TIERPIX_QUALITY_SSIM", "want a number from 0.5 to 0.999")
		}
		c.Quality.Floor = v
	}
	c.ShutdownTimeout = time.Duration(intVar(getenv, "TIERPIX_SHUTDOWN_TIMEOUT", 30, 1, 3600, bad)) * time.Second
	c.SessionIdle = time.Duration(intVar(getenv, "TIERPIX_SESSION_IDLE_TIMEOUT", 7200, 60, 30*24*3600, bad)) * time.Second
	c.SessionMaxAge = time.Duration(intVar(getenv, "TIERPIX_SESSION_MAX_AGE", 43200, 60, 365*24*3600, bad)) * time.Second
	if c.SessionIdle > c.SessionMaxAge {
		bad("TIERPIX_SESSION_IDLE_TIMEOUT", "must not be longer than TIERPIX_SESSION_MAX_AGE")
	}
	c.AuditRetention = time.Duration(intVar(getenv, "TIERPIX_AUDIT_RETENTION_DAYS", 365, 0, 100*365, bad)) * 24 * time.Hour
	c.MaxConns = int(intVar(getenv, "TIERPIX_MAX_CONNS", 0, 0, 1<<20, bad))
	c.MaxConnsPerIP = int(intVar(getenv, "TIERPIX_MAX_CONNS_PER_IP", 0, 0, 1<<20, bad))
	c.DecodeBudgetBytes = intVar(getenv, "TIERPIX_DECODE_BUDGET_BYTES", 768<<20, 16<<20, 1<<40, bad)
	c.DecodeQueue = int(intVar(getenv, "TIERPIX_DECODE_QUEUE", 64, 1, 1<<16, bad))
	c.DBTimeout = time.Duration(intVar(getenv, "TIERPIX_DB_TIMEOUT", 5, 1, 600, bad)) * time.Second
	c.MinFreeBytes = intVar(getenv, "TIERPIX_MIN_FREE_BYTES", 512<<20, 0, 1<<50, bad)
	if c.MinFreeBytes == 0 {
		c.MinFreeBytes = -1 // the store reads 0 as its default
	}
	c.S3.Timeout = time.Duration(intVar(getenv, "TIERPIX_S3_TIMEOUT", 10, 1, 600, bad)) * time.Second
	c.OriginalsCache = intVar(getenv, "TIERPIX_ORIGINALS_CACHE_BYTES", store.DefaultOriginalsCacheBytes, 16<<20, 1<<50, bad)
	switch strings.ToLower(strings.TrimSpace(getenv("TIERPIX_S3_PATH_STYLE"))) {
	case "", "false", "0", "no":
	case "true", "1", "yes":
		c.S3.PathStyle = true
	default:
		bad("TIERPIX_S3_PATH_STYLE", "want true or false")
	}
	if _, _, isBucket, err := store.ParseOriginals(c.Originals); err != nil {
		bad("TIERPIX_ORIGINALS", "want a directory or s3://BUCKET/PREFIX")
	} else if isBucket {
		if (c.S3.AccessKey == "") != (c.S3.SecretKey == "") {
			bad("AWS_ACCESS_KEY_ID", "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither")
		}
	} else if c.Originals != "" {
		if strings.Contains(c.Originals, "://") {
			bad("TIERPIX_ORIGINALS", "want a directory or s3://BUCKET/PREFIX")
		} else if abs, err := filepath.Abs(c.Originals); err == nil {
			c.Originals = abs
		}
	}
	c.HeaderTimeout = time.Duration(intVar(getenv, "TIERPIX_HEADER_TIMEOUT", 10, 1, 3600, bad)) * time.Second
	c.BodyIdleTimeout = time.Duration(intVar(getenv, "TIERPIX_BODY_IDLE_TIMEOUT", 60, 1, 3600, bad)) * time.Second
	for _, p := range strings.Split(getenv("TIERPIX_TRUSTED_PROXIES"), ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			addr, aerr := netip.ParseAddr(p)
			if aerr != nil {
				bad("TIERPIX_TRUSTED_PROXIES", fmt.Sprintf("%q is not an address or CIDR", p))
				continue
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		c.TrustedProxies = append(c.TrustedProxies, prefix.Masked())
	}

	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("TIERPIX_ADDR", "want host:port")
	}
	if c.PublicURL == "" {
		c.PublicURL, c.publicURLDefault = defaultPublicURL(c.Addr), true
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		bad("TIERPIX_PUBLIC_URL", "want an absolute http or https URL without a query")
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		bad("DATABASE_URL", "want empty (SQLite) or a postgres:// URL")
	}
	if (c.AdminUsername == "") != (c.AdminPassword == "") {
		bad("TIERPIX_ADMIN_USERNAME", "set both TIERPIX_ADMIN_USERNAME and TIERPIX_ADMIN_PASSWORD, or neither")
	}
	switch strings.ToLower(or(getenv("TIERPIX_LOG_LEVEL"), "info")) {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "info":
		c.LogLevel = slog.LevelInfo
	case "warn":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		bad("TIERPIX_LOG_LEVEL", "want debug, info, warn or error")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("TIERPIX_LOG_FORMAT", "want text or json")
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("configuration: %s", strings.Join(problems, "; "))
	}
	return c, nil
}

// defaultPublicURL turns the listen address into a URL a local client can use: a wildcard
// host becomes localhost.
func defaultPublicURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func intVar(getenv func(string) string, name string, def, min, max int64, bad func(string, string)) int64 {
	s := strings.TrimSpace(getenv(name))
	if s == "" {
		return def
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < min || v > max {
		bad(name, fmt.Sprintf("want a whole number from %d to %d", min, max))
		return def
	}
	return v
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
