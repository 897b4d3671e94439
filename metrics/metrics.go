// Package metrics serves GET /metrics in the Prometheus text format: requests by route and
// status, the origin's renders and cache layers, uploads, and the Go runtime and process.
//
// Hot paths stay as they were. The origin and the API keep their own atomic counters (and the
// origin its render-time histogram), which this package reads only when Prometheus scrapes;
// the one thing measured here per request is the request itself (Wrap), a counter and a
// histogram observation on series looked up once per route, method and status and then kept.
//
// Labels are bounded: a request's route is the router's template (/i/{path:*}, never the
// signed path, since every image link is unique), "unmatched" when no route matched; methods
// outside the standard ones are "other", and so are status codes outside 100-599.
//
// The series live in a registry of their own, not client_golang's global one, so that two
// servers in one process (tests) never share or collide, and nothing else can add to them.
package metrics

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/router"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// The metrics read the counters of the parts they report on through functions called at
// scrape time, wired in main, so that this package depends on none of those parts.

// OriginCounts is what the metrics read from the origin at scrape time.
type OriginCounts struct {
	Renders, MemoryHits, DiskHits, MemoryMisses, DiskMisses uint64
	Shared, Rejected, Evictions                             uint64
	DiskBytes                                               int64
	QueueWaiting, QueueRunning                              int
	RenderDurations                                         Histogram
	// Intermediates made in the background, dropped unmade, and waiting to be made.
	Intermediates, IntermediatesDropped uint64
	IntermediateQueue                   int
}

// Histogram is a histogram of durations in seconds, counted by its owner.
type Histogram struct {
	Bounds []float64 // bucket upper bounds, ascending; +Inf is implicit
	Counts []uint64  // cumulative: Counts[i] observations were at most Bounds[i]
	Count  uint64    // observations in all
	Sum    float64   // seconds, all observations together
}

// UploadCounts is what the metrics read from the API at scrape time.
type UploadCounts struct {
	Accepted, Rejected, Bytes uint64
}

// SignInCounts is what the metrics read from the sign-in service at scrape time.
type SignInCounts struct {
	PasswordChecks, Throttled, Busy uint64
}

// Unmatched is the route label of requests no route matched: 404s, 405s, trailing-slash
// redirects and OPTIONS answered by the router itself.
const Unmatched = "unmatched"

// requestDurationBuckets run from memory-cache hits (well under a millisecond) to uploads
// and renders under load (seconds).
var requestDurationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// maxScrapesInFlight bounds concurrent scrapes; more get 503. One Prometheus or two is the
// expected load, and a scrape gathers the whole registry.
const maxScrapesInFlight = 4

// Metrics holds the registry and the request series.
type Metrics struct {
	reg       *prometheus.Registry
	handler   fasthttp.RequestHandler
	requests  *prometheus.CounterVec
	durations *prometheus.HistogramVec

	// series caches the children of requests and durations by label values, so that a request
	// costs one map lookup rather than hashing its labels into the vectors. The map is never
	// changed once published: a new series copies it (under mu) and publishes the copy, so a
	// request reads it without a lock. A read lock's shared counter was written by every
	// request, bouncing its cache line between the cores.
	mu     sync.Mutex
	series atomic.Pointer[map[seriesKey]requestSeries]
}

type seriesKey struct {
	route  string
	method string
	status int
}

type requestSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

// New builds the registry over the origin's and the API's counters, plus the Go runtime and
// process collectors. logger receives errors met while serving a scrape; it may be nil.
func New(org func() OriginCounts, uploads func() UploadCounts, logger *slog.Logger) (*Metrics, error) {
	if org == nil || uploads == nil {
		return nil, errors.New("metrics: the origin and the API are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tierpix_http_requests_total",
			Help: "HTTP requests answered, by route template, method and status.",
		}, []string{"route", "method", "status"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tierpix_http_request_duration_seconds",
			Help:    "Time in the handler per request, by route template; a streamed body (an original) is sent after it.",
			Buckets: requestDurationBuckets,
		}, []string{"route"}),
	}
	m.series.Store(&map[seriesKey]requestSeries{})
	for _, c := range []prometheus.Collector{
		m.requests,
		m.durations,
		newOriginCollector(org),
		newAPICollector(uploads),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register collector: %w", err)
		}
	}
	m.handler = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            slogPrinter{logger},
		ErrorHandling:       promhttp.ContinueOnError, // a partial scrape beats none
		Registry:            m.reg,                    // promhttp_metric_handler_errors_total
		MaxRequestsInFlight: maxScrapesInFlight,
	}))
	return m, nil
}

// Registry returns the registry, for tests and for adding series elsewhere.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Register adds GET /metrics to r.
func (m *Metrics) Register(r *router.Router) {
	r.GET("/metrics", m.handleMetrics) // GET /metrics
}

// handleMetrics serves GET /metrics. It needs no authentication: the nginx front refuses it
// from outside. The net/http adaptor reads a request body in full before the handler runs,
// so a body, which a scrape never has, is refused first rather than buffered.
func (m *Metrics) handleMetrics(ctx *fasthttp.RequestCtx) {
	// -1 is a chunked body; a request without Content-Length has none (-2).
	if cl := ctx.Request.Header.ContentLength(); cl > 0 || cl == -1 {
		ctx.Error("GET /metrics takes no body", fasthttp.StatusBadRequest)
		return
	}
	m.handler(ctx)
}

// Wrap counts each request handled by next under its route template, method and status, and
// observes its duration. It must wrap the router's handler: the matched route is known only
// once the router has run (with SaveMatchedRoutePath set), so it is read after next returns.
func (m *Metrics) Wrap(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		// The server reads the clock for each request anyway; Time hands that reading over
		// (or reads it now under LazyRequestTime, so before next either way).
		start := ctx.Time()
		if start.IsZero() {
			start = time.Now() // a ctx not from a server
		}
		next(ctx)
		route, ok := ctx.UserValue(router.MatchedRoutePathParam).(string)
		if !ok {
			route = Unmatched
		}
		m.ObserveRequest(route, methodLabel(string(ctx.Method())), ctx.Response.StatusCode(), time.Since(start))
	}
}

// ObserveRequest counts one request. route must come from a bounded set (a route template),
// and method should be one of the standard methods, anything else being counted as "other".
func (m *Metrics) ObserveRequest(route, method string, status int, d time.Duration) {
	if status < 100 || status > 599 {
		status = 0
	}
	k := seriesKey{route: route, method: methodLabel(method), status: status}
	s, ok := (*m.series.Load())[k]
	if !ok {
		s = m.newSeries(k)
	}
	s.count.Inc()
	s.duration.Observe(d.Seconds())
}

// newSeries resolves and caches the series of k. The cache holds one entry per route,
// method and status seen, as bounded as the labels are.
func (m *Metrics) newSeries(k seriesKey) requestSeries {
	s := requestSeries{
		count:    m.requests.WithLabelValues(k.route, k.method, statusLabel(k.status)),
		duration: m.durations.WithLabelValues(k.route),
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.series.Load()
	if got, ok := old[k]; ok {
		return got
	}
	next := make(map[seriesKey]requestSeries, len(old)+1)
	maps.Copy(next, old)
	next[k] = s
	m.series.Store(&next)
	return s
}

// methodLabel returns the label of a request method: the method for the standard ones,
// "other" for the rest. It returns constants, so that the label never holds on to a request's
// bytes; Wrap calls it as methodLabel(string(ctx.Method())), which the compiler does without
// a copy.
func methodLabel(m string) string {
	switch m {
	case fasthttp.MethodGet:
		return fasthttp.MethodGet
	case fasthttp.MethodHead:
		return fasthttp.MethodHead
	case fasthttp.MethodPost:
		return fasthttp.MethodPost
	case fasthttp.MethodPut:
		return fasthttp.MethodPut
	case fasthttp.MethodPatch:
		return fasthttp.MethodPatch
	case fasthttp.MethodDelete:
		return fasthttp.MethodDelete
	case fasthttp.MethodOptions:
		return fasthttp.MethodOptions
	}
	return "other"
}

// statusLabel is the status code in decimal, or "other" outside 100-599 (0 in the cache key).
func statusLabel(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code)
}

// originCollector exposes the origin's counts, cache misses, render queue and render-time
// histogram as they are at scrape time.
type originCollector struct {
	o                                                    func() OriginCounts
	renders, hits, misses, shared, rejected, evictions   *prometheus.Desc
	diskBytes, queueDepth, inProgress, renderDurationsDs *prometheus.Desc
	inters, interQueue                                   *prometheus.Desc
}

func newOriginCollector(o func() OriginCounts) *originCollector {
	layer := []string{"layer"}
	return &originCollector{
		o:          o,
		renders:    prometheus.NewDesc("tierpix_origin_renders_total", "Thumbnails rendered by libvips, failed renders included.", nil, nil),
		hits:       prometheus.NewDesc("tierpix_origin_cache_hits_total", "Thumbnail lookups answered by a cache layer (memory or disk).", layer, nil),
		misses:     prometheus.NewDesc("tierpix_origin_cache_misses_total", "Thumbnail lookups a cache layer could not answer: memory misses went to disk, disk misses to a render. Requests that waited on another's lookup count as shared instead.", layer, nil),
		shared:     prometheus.NewDesc("tierpix_origin_renders_shared_total", "Requests that waited on another request's lookup, disk read or render of the same image or variant.", nil, nil),
		rejected:   prometheus.NewDesc("tierpix_origin_renders_rejected_total", "Renders refused with 503 because the render queue was full.", nil, nil),
		evictions:  prometheus.NewDesc("tierpix_origin_disk_cache_evictions_total", "Files deleted from the disk cache to keep it within its budget.", nil, nil),
		diskBytes:  prometheus.NewDesc("tierpix_origin_disk_cache_bytes", "Bytes of rendered files in the disk cache, as counted.", nil, nil),
		queueDepth: prometheus.NewDesc("tierpix_origin_render_queue_depth", "Renders waiting for a worker slot.", nil, nil),
		inProgress: prometheus.NewDesc("tierpix_origin_renders_in_progress", "Renders holding a worker slot.", nil, nil),
		renderDurationsDs: prometheus.NewDesc("tierpix_origin_render_duration_seconds",
			"Time of each render in its worker slot, failed renders included.", nil, nil),
		inters: prometheus.NewDesc("tierpix_origin_intermediates_total",
			"Intermediates for further sizes, made after a first render answered (built) or not made (dropped: the queue was full or renders never let up).", []string{"result"}, nil),
		interQueue: prometheus.NewDesc("tierpix_origin_intermediate_queue_depth", "Intermediates waiting to be made.", nil, nil),
	}
}

func (c *originCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.renders, c.hits, c.misses, c.shared, c.rejected, c.evictions,
		c.diskBytes, c.queueDepth, c.inProgress, c.renderDurationsDs, c.inters, c.interQueue} {
		ch <- d
	}
}

func (c *originCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.o()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(c.renders, s.Renders)
	counter(c.hits, s.MemoryHits, "memory")
	counter(c.hits, s.DiskHits, "disk")
	counter(c.misses, s.MemoryMisses, "memory")
	counter(c.misses, s.DiskMisses, "disk")
	counter(c.shared, s.Shared)
	counter(c.rejected, s.Rejected)
	counter(c.evictions, s.Evictions)
	ch <- prometheus.MustNewConstMetric(c.diskBytes, prometheus.GaugeValue, float64(s.DiskBytes))

	ch <- prometheus.MustNewConstMetric(c.queueDepth, prometheus.GaugeValue, float64(s.QueueWaiting))
	ch <- prometheus.MustNewConstMetric(c.inProgress, prometheus.GaugeValue, float64(s.QueueRunning))
	counter(c.inters, s.Intermediates, "built")
	counter(c.inters, s.IntermediatesDropped, "dropped")
	ch <- prometheus.MustNewConstMetric(c.interQueue, prometheus.GaugeValue, float64(s.IntermediateQueue))

	h := s.RenderDurations
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		buckets[b] = h.Counts[i]
	}
	ch <- prometheus.MustNewConstHistogram(c.renderDurationsDs, h.Count, h.Sum, buckets)
}

// apiCollector exposes the API's upload counts at scrape time.
type apiCollector struct {
	a                func() UploadCounts
	uploads, upBytes *prometheus.Desc
}

func newAPICollector(a func() UploadCounts) *apiCollector {
	return &apiCollector{
		a:       a,
		uploads: prometheus.NewDesc("tierpix_uploads_total", "Upload requests past authentication, by outcome: accepted (stored) or rejected (anything else).", []string{"outcome"}, nil),
		upBytes: prometheus.NewDesc("tierpix_upload_bytes_total", "Bytes of the images of accepted uploads.", nil, nil),
	}
}

func (c *apiCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.uploads
	ch <- c.upBytes
}

func (c *apiCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.a()
	ch <- prometheus.MustNewConstMetric(c.uploads, prometheus.CounterValue, float64(s.Accepted), "accepted")
	ch <- prometheus.MustNewConstMetric(c.uploads, prometheus.CounterValue, float64(s.Rejected), "rejected")
	ch <- prometheus.MustNewConstMetric(c.upBytes, prometheus.CounterValue, float64(s.Bytes))
}

// AddSignIn adds the sign-in service's counters: password checks (bcrypt runs) and attempts
// refused by the throttle or for want of a bcrypt slot.
func (m *Metrics) AddSignIn(s func() SignInCounts) error {
	if err := m.reg.Register(&signInCollector{
		s:       s,
		checks:  prometheus.NewDesc("tierpix_signin_password_checks_total", "bcrypt comparisons run by sign-in and Basic authentication.", nil, nil),
		refused: prometheus.NewDesc("tierpix_signin_refused_total", "Sign-in and Basic attempts refused before bcrypt, by reason: throttled (429) or busy (503, no bcrypt slot).", []string{"reason"}, nil),
	}); err != nil {
		return fmt.Errorf("metrics: register sign-in collector: %w", err)
	}
	return nil
}

type signInCollector struct {
	s               func() SignInCounts
	checks, refused *prometheus.Desc
}

func (c *signInCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.checks
	ch <- c.refused
}

func (c *signInCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s()
	ch <- prometheus.MustNewConstMetric(c.checks, prometheus.CounterValue, float64(s.PasswordChecks))
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(s.Throttled), "throttled")
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(s.Busy), "busy")
}

// OriginalsCounts is what the metrics read, at scrape time, from the node's cache of originals
// fetched from a bucket.
type OriginalsCounts struct {
	Hits, Misses, Fetches, Evictions, BucketFailures uint64
	Bytes, Files                                     int64
}

// AddOriginals adds the counters of the node's cache of originals in a bucket (only when the
// originals live in one): hits, misses, fetches (fewer than misses when readers share one),
// evictions, its size, and requests to the bucket that failed.
func (m *Metrics) AddOriginals(o func() OriginalsCounts) error {
	c := &originalsCollector{
		o:         o,
		hits:      prometheus.NewDesc("tierpix_originals_cache_hits_total", "Originals read from this node's cache of the bucket.", nil, nil),
		misses:    prometheus.NewDesc("tierpix_originals_cache_misses_total", "Originals wanted that were not in this node's cache.", nil, nil),
		fetches:   prometheus.NewDesc("tierpix_originals_fetches_total", "Originals fetched from the bucket (concurrent misses for one original share a fetch).", nil, nil),
		evictions: prometheus.NewDesc("tierpix_originals_cache_evictions_total", "Originals evicted from this node's cache, least recently used first.", nil, nil),
		failures:  prometheus.NewDesc("tierpix_originals_bucket_failures_total", "Requests to the bucket that failed: unreachable, slow, refused or erroring (each answered 503 where a client waited).", nil, nil),
		bytes:     prometheus.NewDesc("tierpix_originals_cache_bytes", "Bytes of originals in this node's cache.", nil, nil),
		files:     prometheus.NewDesc("tierpix_originals_cache_files", "Originals in this node's cache.", nil, nil),
	}
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("metrics: register originals collector: %w", err)
	}
	return nil
}

type originalsCollector struct {
	o                                                        func() OriginalsCounts
	hits, misses, fetches, evictions, failures, bytes, files *prometheus.Desc
}

func (c *originalsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.hits, c.misses, c.fetches, c.evictions, c.failures, c.bytes, c.files} {
		ch <- d
	}
}

func (c *originalsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.o()
	ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(s.Misses))
	ch <- prometheus.MustNewConstMetric(c.fetches, prometheus.CounterValue, float64(s.Fetches))
	ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(s.Evictions))
	ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(s.BucketFailures))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.Bytes))
	ch <- prometheus.MustNewConstMetric(c.files, prometheus.GaugeValue, float64(s.Files))
}

// slogPrinter routes promhttp's error log to slog.
type slogPrinter struct{ logger *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	p.logger.Error(fmt.Sprint(v...), "component", "metrics")
}
