package metrics

import (
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/tierpix/tierpix/metrics/metricstest"
	"github.com/valyala/fasthttp"
)

// fakeOrigin and fakeAPI stand in for the origin and the API, whose counters are exercised
// end to end in cmd/tierpix; here they pin every value so each series can be checked exactly.
type fakeOrigin struct{ counts OriginCounts }

func (f *fakeOrigin) get() OriginCounts { return f.counts }

type fakeAPI struct{ counts UploadCounts }

func (f *fakeAPI) get() UploadCounts { return f.counts }

// testServer serves a router with a few routes like the real ones, wrapped by m, on
// 127.0.0.1, and returns its base URL.
func testServer(t *testing.T, m *Metrics) string {
	t.Helper()
	r := router.New()
	r.SaveMatchedRoutePath = true
	ok := func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") }
	r.GET("/i/{path:*}", ok)
	r.POST("/api/images", func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(fasthttp.StatusCreated) })
	r.GET("/api/images/{id}", func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(fasthttp.StatusNotFound) })
	r.Handle("BREW", "/coffee", ok)
	m.Register(r)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: m.Wrap(r.Handler)}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func newMetrics(t *testing.T, o *fakeOrigin, a *fakeAPI) *Metrics {
	t.Helper()
	m, err := New(o.get, a.get, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func httpClient(t *testing.T) *http.Client {
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 30 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func send(t *testing.T, c *http.Client, method, url string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestRequestLabels checks that requests are counted under their route template, their
// method (or "other") and their status, and that no raw path becomes a label value.
func TestRequestLabels(t *testing.T) {
	m := newMetrics(t, &fakeOrigin{}, &fakeAPI{})
	base := testServer(t, m)
	c := httpClient(t)

	before := metricstest.Get(t, c, base+"/metrics")
	requests := []struct {
		method, path string
		status       int
	}{
		{"GET", "/i/AbCdEf0123/h200/sigsigsig", 200},
		{"GET", "/i/ZyXwVu9876/o/othersig", 200},
		{"HEAD", "/i/AbCdEf0123/h200/sigsigsig", 405}, // no HEAD route here: the router's 405
		{"POST", "/api/images", 201},
		{"GET", "/api/images/img-secret-id", 404},
		{"GET", "/no/such/route/raw-path-xyz", 404},
		{"BREW", "/coffee", 200},
	}
	for _, r := range requests {
		if got := send(t, c, r.method, base+r.path); got != r.status {
			t.Fatalf("%s %s: got status %d, want %d", r.method, r.path, got, r.status)
		}
	}
	after := metricstest.Get(t, c, base+"/metrics")

	tests := []struct {
		name                  string
		route, method, status string
		want                  float64
	}{
		{name: "image links under their template", route: "/i/{path:*}", method: "GET", status: "200", want: 2},
		{name: "no route for the method", route: Unmatched, method: "HEAD", status: "405", want: 1},
		{name: "upload", route: "/api/images", method: "POST", status: "201", want: 1},
		{name: "route with a parameter", route: "/api/images/{id}", method: "GET", status: "404", want: 1},
		{name: "no route at all", route: Unmatched, method: "GET", status: "404", want: 1},
		{name: "unknown method", route: "/coffee", method: "other", status: "200", want: 1},
		{name: "the scrape before", route: "/metrics", method: "GET", status: "200", want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			labels := metricstest.Labels{"route": tt.route, "method": tt.method, "status": tt.status}
			got := after.Value(t, "tierpix_http_requests_total", labels) - before.Value(t, "tierpix_http_requests_total", labels)
			if got != tt.want {
				t.Errorf("requests%v: got +%v, want +%v; series: %s", labels, got, tt.want, after.String("tierpix_http_requests_total"))
			}
		})
	}

	count, _, _ := after.Histogram(t, "tierpix_http_request_duration_seconds", metricstest.Labels{"route": "/i/{path:*}"})
	if count != 2 {
		t.Errorf("duration histogram of /i/{path:*}: got count %d, want 2", count)
	}
	for _, label := range []string{"route", "method", "status"} {
		for _, v := range after.LabelValues(label) {
			for _, raw := range []string{"AbCdEf0123", "ZyXwVu9876", "img-secret-id", "raw-path-xyz", "BREW"} {
				if strings.Contains(v, raw) {
					t.Errorf("label %s: got value %q, which carries the raw request %q", label, v, raw)
				}
			}
		}
	}
}

// TestConcurrentRequests counts requests from many goroutines at once (run with -race): the
// series cache is filled and read concurrently, and no increment is lost.
func TestConcurrentRequests(t *testing.T) {
	m := newMetrics(t, &fakeOrigin{}, &fakeAPI{})
	const goroutines, each = 8, 50
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m.ObserveRequest("/i/{path:*}", "GET", 200+(g+i)%3, time.Millisecond)
			}
		}()
	}
	wg.Wait()
	c := httpClient(t)
	s := metricstest.Get(t, c, testServer(t, m)+"/metrics")
	if got := s.Value(t, "tierpix_http_requests_total", metricstest.Labels{"route": "/i/{path:*}"}); got != goroutines*each {
		t.Errorf("requests: got %v, want %d", got, goroutines*each)
	}
}

func TestObserveRequestBoundsLabels(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		status     int
		wantMethod string
		wantStatus string
	}{
		{name: "standard", method: "PATCH", status: 204, wantMethod: "PATCH", wantStatus: "204"},
		{name: "lowercase method", method: "get", status: 200, wantMethod: "other", wantStatus: "200"},
		{name: "made-up method", method: "PROPFIND", status: 207, wantMethod: "other", wantStatus: "207"},
		{name: "status out of range", method: "GET", status: 999, wantMethod: "GET", wantStatus: "other"},
		{name: "no status", method: "GET", status: 0, wantMethod: "GET", wantStatus: "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMetrics(t, &fakeOrigin{}, &fakeAPI{})
			m.ObserveRequest("/r", tt.method, tt.status, time.Millisecond)
			fams, err := m.Registry().Gather()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range fams {
				if f.GetName() != "tierpix_http_requests_total" {
					continue
				}
				for _, s := range f.GetMetric() {
					labels := map[string]string{}
					for _, l := range s.GetLabel() {
						labels[l.GetName()] = l.GetValue()
					}
					got = append(got, labels["method"]+" "+labels["status"])
				}
			}
			if want := tt.wantMethod + " " + tt.wantStatus; len(got) != 1 || got[0] != want {
				t.Errorf("got series %q, want one %q", got, want)
			}
		})
	}
}

// TestOriginAndUploadSeries checks every origin and upload series against the values the
// stand-ins report, including the render histogram rebuilt from the origin's buckets.
func TestOriginAndUploadSeries(t *testing.T) {
	o := &fakeOrigin{OriginCounts{
		Renders: 7, MemoryHits: 100, DiskHits: 5, Shared: 3, Rejected: 2, Evictions: 11,
		DiskBytes:    123456,
		MemoryMisses: 12, DiskMisses: 7,
		QueueWaiting: 4, QueueRunning: 2,
		RenderDurations: Histogram{
			Bounds: []float64{0.005, 0.05, 0.5},
			Counts: []uint64{1, 4, 6},
			Count:  7,
			Sum:    2.75,
		},
	}}
	a := &fakeAPI{UploadCounts{Accepted: 3, Bytes: 4096, Rejected: 9}}
	m := newMetrics(t, o, a)
	s := metricstest.Get(t, httpClient(t), testServer(t, m)+"/metrics")

	tests := []struct {
		name   string
		labels metricstest.Labels
		want   float64
	}{
		{name: "tierpix_origin_renders_total", want: 7},
		{name: "tierpix_origin_cache_hits_total", labels: metricstest.Labels{"layer": "memory"}, want: 100},
		{name: "tierpix_origin_cache_hits_total", labels: metricstest.Labels{"layer": "disk"}, want: 5},
		{name: "tierpix_origin_cache_misses_total", labels: metricstest.Labels{"layer": "memory"}, want: 12},
		{name: "tierpix_origin_cache_misses_total", labels: metricstest.Labels{"layer": "disk"}, want: 7},
		{name: "tierpix_origin_renders_shared_total", want: 3},
		{name: "tierpix_origin_renders_rejected_total", want: 2},
		{name: "tierpix_origin_disk_cache_evictions_total", want: 11},
		{name: "tierpix_origin_disk_cache_bytes", want: 123456},
		{name: "tierpix_origin_render_queue_depth", want: 4},
		{name: "tierpix_origin_renders_in_progress", want: 2},
		{name: "tierpix_uploads_total", labels: metricstest.Labels{"outcome": "accepted"}, want: 3},
		{name: "tierpix_uploads_total", labels: metricstest.Labels{"outcome": "rejected"}, want: 9},
		{name: "tierpix_upload_bytes_total", want: 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !s.Has(tt.name) {
				t.Fatalf("%s is not in the scrape", tt.name)
			}
			if got := s.Value(t, tt.name, tt.labels); got != tt.want {
				t.Errorf("%s%v: got %v, want %v", tt.name, tt.labels, got, tt.want)
			}
		})
	}

	count, sum, buckets := s.Histogram(t, "tierpix_origin_render_duration_seconds", nil)
	if count != 7 || sum != 2.75 {
		t.Errorf("render durations: got count %d sum %v, want 7 and 2.75", count, sum)
	}
	for bound, want := range map[float64]uint64{0.005: 1, 0.05: 4, 0.5: 6} {
		if buckets[bound] != want {
			t.Errorf("render durations: bucket le=%v got %d, want %d", bound, buckets[bound], want)
		}
	}
}

// TestRuntimeCollectors checks that the Go runtime and the process are on the registry.
func TestRuntimeCollectors(t *testing.T) {
	s := metricstest.Get(t, httpClient(t), testServer(t, newMetrics(t, &fakeOrigin{}, &fakeAPI{}))+"/metrics")
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes", "process_cpu_seconds_total"} {
		if !s.Has(name) {
			t.Errorf("%s is not in the scrape", name)
		}
	}
	if got := s.Value(t, "process_resident_memory_bytes", nil); got <= 0 {
		t.Errorf("process_resident_memory_bytes: got %v, want > 0", got)
	}
}

// TestScrapeEncodings checks gzip when asked for and plain text otherwise, and that a body
// (which the net/http adaptor would buffer in full) is refused.
func TestScrapeEncodings(t *testing.T) {
	base := testServer(t, newMetrics(t, &fakeOrigin{}, &fakeAPI{}))
	c := httpClient(t)
	tests := []struct {
		name         string
		method       string
		body         string
		chunked      bool
		gzip         bool
		wantStatus   int
		wantEncoding string
	}{
		{name: "plain", method: "GET", wantStatus: 200},
		{name: "gzip", method: "GET", gzip: true, wantStatus: 200, wantEncoding: "gzip"},
		{name: "with a body", method: "GET", body: strings.Repeat("x", 1000), wantStatus: 400},
		{name: "with a chunked body", method: "GET", body: "x", chunked: true, wantStatus: 400},
		{name: "POST", method: "POST", wantStatus: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(body) // of unknown length: sent chunked
			}
			req, err := http.NewRequest(tt.method, base+"/metrics", body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.gzip {
				req.Header.Set("Accept-Encoding", "gzip")
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("got status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got := resp.Header.Get("Content-Encoding"); got != tt.wantEncoding {
				t.Fatalf("got Content-Encoding %q, want %q", got, tt.wantEncoding)
			}
			if tt.wantStatus != 200 {
				return
			}
			if tt.gzip {
				zr, err := gzip.NewReader(bytes.NewReader(b))
				if err != nil {
					t.Fatal(err)
				}
				if b, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Contains(b, []byte("# TYPE tierpix_origin_renders_total counter")) {
				t.Errorf("body does not declare tierpix_origin_renders_total; got %.300s", b)
			}
		})
	}
}

func TestNewRequiresSources(t *testing.T) {
	if _, err := New(nil, (&fakeAPI{}).get, nil); err == nil {
		t.Error("New without an origin: got no error, want one")
	}
	if _, err := New((&fakeOrigin{}).get, nil, nil); err == nil {
		t.Error("New without an API: got no error, want one")
	}
}

// BenchmarkWrap measures what Wrap adds to a request whose series is cached, the case of every
// memory-cache hit: compare "wrapped" with "bare", run side by side.
func BenchmarkWrap(b *testing.B) {
	m, err := New((&fakeOrigin{}).get, (&fakeAPI{}).get, nil)
	if err != nil {
		b.Fatal(err)
	}
	handler := func(ctx *fasthttp.RequestCtx) {
		ctx.SetUserValue(router.MatchedRoutePathParam, "/i/{path:*}")
		ctx.SetStatusCode(fasthttp.StatusOK)
	}
	for _, bb := range []struct {
		name string
		h    fasthttp.RequestHandler
	}{{"bare", handler}, {"wrapped", m.Wrap(handler)}} {
		b.Run(bb.name, func(b *testing.B) {
			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetMethod("GET")
			b.ReportAllocs()
			for b.Loop() {
				bb.h(&ctx)
			}
		})
	}
}

// TestSignInSeries checks the sign-in service's series against the values it reports.
func TestSignInSeries(t *testing.T) {
	m := newMetrics(t, &fakeOrigin{}, &fakeAPI{})
	if err := m.AddSignIn(func() SignInCounts { return SignInCounts{PasswordChecks: 5, Throttled: 7, Busy: 2} }); err != nil {
		t.Fatalf("AddSignIn: %v", err)
	}
	s := metricstest.Get(t, httpClient(t), testServer(t, m)+"/metrics")
	tests := []struct {
		name   string
		labels metricstest.Labels
		want   float64
	}{
		{name: "tierpix_signin_password_checks_total", want: 5},
		{name: "tierpix_signin_refused_total", labels: metricstest.Labels{"reason": "throttled"}, want: 7},
		{name: "tierpix_signin_refused_total", labels: metricstest.Labels{"reason": "busy"}, want: 2},
	}
	for _, tt := range tests {
		if got := s.Value(t, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v: got %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}

// TestOriginalsSeries checks the series of the cache of originals against the values it reports.
func TestOriginalsSeries(t *testing.T) {
	m := newMetrics(t, &fakeOrigin{}, &fakeAPI{})
	if err := m.AddOriginals(func() OriginalsCounts {
		return OriginalsCounts{Hits: 11, Misses: 4, Fetches: 3, Evictions: 2, BucketFailures: 9, Bytes: 12345, Files: 6}
	}); err != nil {
		t.Fatalf("AddOriginals: %v", err)
	}
	s := metricstest.Get(t, httpClient(t), testServer(t, m)+"/metrics")
	for name, want := range map[string]float64{
		"tierpix_originals_cache_hits_total":      11,
		"tierpix_originals_cache_misses_total":    4,
		"tierpix_originals_fetches_total":         3,
		"tierpix_originals_cache_evictions_total": 2,
		"tierpix_originals_bucket_failures_total": 9,
		"tierpix_originals_cache_bytes":           12345,
		"tierpix_originals_cache_files":           6,
	} {
		if got := s.Value(t, name, nil); got != want {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
}
