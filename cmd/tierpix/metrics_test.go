package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tierpix/tierpix/metrics/metricstest"
)

// TestMetrics scrapes /metrics of the real server around an upload, a rejected upload, a
// thumbnail fetched twice (a render, then a memory hit), a delete through the method override
// and a few 404s, and checks what each moved: requests under their route templates, the
// origin's renders and cache layers, the render histogram, the upload counters. No label may
// carry an image id or a link.
func TestMetrics(t *testing.T) {
	s := startServer(t, nil)
	scraper := &http.Client{}
	t.Cleanup(scraper.CloseIdleConnections)
	scrape := func() metricstest.Scrape { return metricstest.Get(t, scraper, s.URL+"/metrics") }

	admin := s.basic(t, testAdmin, testAdminPW)
	resp, body := admin.json("POST", "/api/admin/users", map[string]any{"username": "carol", "password": testUserPW, "tier": "Premium"}, nil)
	wantStatus(t, "create user", resp, body, http.StatusCreated)
	carol := s.basic(t, "carol", testUserPW)

	before := scrape()
	orig := gradientJPEG(t, 600, 400)
	var img imageJSON
	resp, body = carol.upload("m.jpg", orig, &img)
	wantStatus(t, "upload", resp, body, http.StatusCreated)
	resp, body = carol.upload("notes.txt", []byte(strings.Repeat("not an image\n", 50)), nil)
	wantStatus(t, "upload of text", resp, body, http.StatusUnsupportedMediaType)
	afterUpload := scrape()

	var h200 string
	for _, th := range img.Links.Thumbnails {
		if th.Height == 200 {
			h200 = th.URL
		}
	}
	if h200 == "" {
		t.Fatalf("links: got %+v, want a 200 px thumbnail", img.Links)
	}
	for range 2 {
		resp, b := getLink(t, h200)
		wantStatus(t, "thumbnail", resp, b, http.StatusOK)
	}
	afterThumbs := scrape()

	resp, body = carol.do("POST", "/api/images/"+img.ID+"?_method=DELETE", nil, "", nil)
	wantStatus(t, "delete through the override", resp, body, http.StatusNoContent)
	resp, b := getLink(t, h200)
	wantStatus(t, "deleted image's link", resp, b, http.StatusNotFound)
	resp, body = carol.do("GET", "/api/images/"+img.ID, nil, "", nil)
	wantStatus(t, "deleted image", resp, body, http.StatusNotFound)
	if resp, err := scraper.Get(s.URL + "/no/such/page-" + img.ID); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("unrouted path: got status %d, want 404", resp.StatusCode)
		}
	}
	after := scrape()

	type series struct {
		name   string
		labels metricstest.Labels
	}
	req := func(route, method, status string) series {
		return series{"tierpix_http_requests_total", metricstest.Labels{"route": route, "method": method, "status": status}}
	}
	tests := []struct {
		name     string
		s        series
		from, to metricstest.Scrape
		want     float64
	}{
		{name: "upload request", s: req("/api/images", "POST", "201"), from: before, to: afterUpload, want: 1},
		{name: "rejected upload request", s: req("/api/images", "POST", "415"), from: before, to: afterUpload, want: 1},
		{name: "uploads accepted", s: series{"tierpix_uploads_total", metricstest.Labels{"outcome": "accepted"}}, from: before, to: afterUpload, want: 1},
		{name: "uploads rejected", s: series{"tierpix_uploads_total", metricstest.Labels{"outcome": "rejected"}}, from: before, to: afterUpload, want: 1},
		{name: "upload bytes", s: series{"tierpix_upload_bytes_total", nil}, from: before, to: afterUpload, want: float64(len(orig))},

		{name: "thumbnail requests", s: req("/i/{path:*}", "GET", "200"), from: afterUpload, to: afterThumbs, want: 2},
		{name: "renders", s: series{"tierpix_origin_renders_total", nil}, from: afterUpload, to: afterThumbs, want: 1},
		{name: "memory hits", s: series{"tierpix_origin_cache_hits_total", metricstest.Labels{"layer": "memory"}}, from: afterUpload, to: afterThumbs, want: 1},
		{name: "memory misses", s: series{"tierpix_origin_cache_misses_total", metricstest.Labels{"layer": "memory"}}, from: afterUpload, to: afterThumbs, want: 1},
		{name: "disk hits", s: series{"tierpix_origin_cache_hits_total", metricstest.Labels{"layer": "disk"}}, from: afterUpload, to: afterThumbs, want: 0},
		{name: "disk misses", s: series{"tierpix_origin_cache_misses_total", metricstest.Labels{"layer": "disk"}}, from: afterUpload, to: afterThumbs, want: 1},
		{name: "scrapes", s: req("/metrics", "GET", "200"), from: afterUpload, to: afterThumbs, want: 1},

		{name: "delete through the override, as DELETE", s: req("/api/images/{id}", "DELETE", "204"), from: afterThumbs, to: after, want: 1},
		{name: "no POST left of the override", s: req("/api/images/{id}", "POST", "204"), from: afterThumbs, to: after, want: 0},
		{name: "link of a deleted image", s: req("/i/{path:*}", "GET", "404"), from: afterThumbs, to: after, want: 1},
		{name: "deleted image", s: req("/api/images/{id}", "GET", "404"), from: afterThumbs, to: after, want: 1},
		{name: "unrouted path", s: req("unmatched", "GET", "404"), from: afterThumbs, to: after, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.to.Value(t, tt.s.name, tt.s.labels) - tt.from.Value(t, tt.s.name, tt.s.labels)
			if got != tt.want {
				t.Errorf("%s%v: got +%v, want +%v; now: %s", tt.s.name, tt.s.labels, got, tt.want, tt.to.String(tt.s.name))
			}
		})
	}

	c0, _, _ := afterUpload.Histogram(t, "tierpix_origin_render_duration_seconds", nil)
	c1, sum, buckets := afterThumbs.Histogram(t, "tierpix_origin_render_duration_seconds", nil)
	if c1-c0 != 1 || sum <= 0 || buckets[5] != c1 {
		t.Errorf("render durations: got count +%d, sum %v, le=5 bucket %d of %d; want +1, a positive sum, all within 5 s", c1-c0, sum, buckets[5], c1)
	}
	r0, _, _ := afterUpload.Histogram(t, "tierpix_http_request_duration_seconds", metricstest.Labels{"route": "/i/{path:*}"})
	r1, _, _ := afterThumbs.Histogram(t, "tierpix_http_request_duration_seconds", metricstest.Labels{"route": "/i/{path:*}"})
	if r1-r0 != 2 {
		t.Errorf("request durations of /i/{path:*}: got count +%d, want +2", r1-r0)
	}
	for _, name := range []string{"tierpix_origin_render_queue_depth", "tierpix_origin_renders_in_progress", "tierpix_origin_disk_cache_bytes", "go_goroutines", "process_resident_memory_bytes"} {
		if !after.Has(name) {
			t.Errorf("%s is not in the scrape", name)
		}
	}
	if got := after.Value(t, "tierpix_origin_render_queue_depth", nil); got != 0 {
		t.Errorf("render queue depth at rest: got %v, want 0", got)
	}

	// Nothing of a request's path may become a label: every image link is unique.
	link, err := url.Parse(h200)
	if err != nil {
		t.Fatal(err)
	}
	for _, label := range []string{"route", "method", "status", "layer", "outcome"} {
		for _, v := range after.LabelValues(label) {
			if strings.Contains(v, img.ID) || strings.Contains(v, link.Path) || strings.Contains(v, "page-") {
				t.Errorf("label %s: got value %q, which carries a request's path", label, v)
			}
		}
	}
}
