package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// metricsServer serves /metrics from text(n), n counting the scrapes from 0.
func metricsServer(t *testing.T, text func(n int) string) *client {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, text(int(n.Add(1)-1)))
	}))
	t.Cleanup(srv.Close)
	return newClient(srv.URL)
}

func TestWaitIntermediates(t *testing.T) {
	settle := intermediatesSettle
	intermediatesSettle = 300 * time.Millisecond
	t.Cleanup(func() { intermediatesSettle = settle })

	tests := []struct {
		name     string
		text     func(n int) string
		limit    time.Duration
		want     string
		minScans int // scrapes it must have waited for
	}{
		{
			name: "no such metrics",
			text: func(int) string { return "tierpix_origin_renders_total 5\n" },
			want: "no intermediate metrics",
		},
		{
			name: "queue drains, then the counter stops",
			text: func(n int) string {
				built, queued := min(n, 5)*10, max(0, 5-n)
				return fmt.Sprintf("%s %d\n%s %d\n", metricIntermediatesBuilt, built, metricIntermediateQueue, queued)
			},
			limit:    10 * time.Second,
			want:     "while 50 were made)",
			minScans: 6,
		},
		{
			name: "some dropped",
			text: func(n int) string {
				return fmt.Sprintf("%s 7\n%s %d\n%s 0\n", metricIntermediatesBuilt, metricIntermediatesDropped, min(n, 2), metricIntermediateQueue)
			},
			limit:    10 * time.Second,
			want:     "**2 dropped**",
			minScans: 3,
		},
		{
			name: "never drains",
			text: func(n int) string {
				return fmt.Sprintf("%s %d\n%s 3\n", metricIntermediatesBuilt, n, metricIntermediateQueue)
			},
			limit: 500 * time.Millisecond,
			want:  "**intermediates still being made after 500ms** (3 queued)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var scans atomic.Int64
			c := metricsServer(t, func(n int) string { scans.Add(1); return tt.text(n) })
			got, err := waitIntermediates(context.Background(), c, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("got note %q, want one with %q", got, tt.want)
			}
			if int(scans.Load()) < tt.minScans {
				t.Errorf("got %d scrapes, want at least %d", scans.Load(), tt.minScans)
			}
		})
	}
}

// writeVipsFloat writes a 3-band float vips image file as vips resize does.
func writeVipsFloat(t *testing.T, w, h int, pix []float32) string {
	t.Helper()
	head := make([]byte, 64)
	copy(head, vipsMagic)
	for off, v := range map[int]int{4: w, 8: h, 12: 3, 16: 32, 20: 6, 24: 0, 28: 22} {
		binary.LittleEndian.PutUint32(head[off:], uint32(v))
	}
	data := head
	for _, v := range pix {
		data = binary.LittleEndian.AppendUint32(data, math.Float32bits(v))
	}
	data = append(data, "<?xml version=\"1.0\"?>"...)
	path := filepath.Join(t.TempDir(), "ref.v")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReadVipsLuma(t *testing.T) {
	path := writeVipsFloat(t, 2, 1, []float32{100, 50, 10, 300, -20, 128.5})
	l, err := readVipsLuma(path)
	if err != nil {
		t.Fatal(err)
	}
	// The second pixel's overshoots are clamped to 0..255, as an 8-bit picture holds them.
	want := []float64{0.299*100 + 0.587*50 + 0.114*10, 0.299*255 + 0.114*128.5}
	if l.w != 2 || l.h != 1 || math.Abs(l.y[0]-want[0]) > 1e-9 || math.Abs(l.y[1]-want[1]) > 1e-9 {
		t.Errorf("got %dx%d %v, want 2x1 %v", l.w, l.h, l.y, want)
	}

	short := writeVipsFloat(t, 4, 4, []float32{1, 2, 3})
	if _, err := readVipsLuma(short); err == nil {
		t.Errorf("a truncated file: got no error, want one")
	}
	notVips := filepath.Join(t.TempDir(), "x.v")
	os.WriteFile(notVips, make([]byte, 100), 0o644)
	if _, err := readVipsLuma(notVips); err == nil {
		t.Errorf("a file without the magic: got no error, want one")
	}
}

func TestVaries(t *testing.T) {
	tests := []struct {
		name string
		vary []string
		want bool
	}{
		{name: "alone", vary: []string{"Accept"}, want: true},
		{name: "in a list", vary: []string{"Accept-Encoding, accept"}, want: true},
		{name: "second header", vary: []string{"Origin", "Accept"}, want: true},
		{name: "only Accept-Encoding", vary: []string{"Accept-Encoding"}, want: false},
		{name: "none", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Vary": tt.vary}
			if got := varies(h, "Accept"); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWithinNoise(t *testing.T) {
	tests := []struct {
		name   string
		rounds []float64
		want   string
	}{
		{name: "median under", rounds: []float64{0.9, 1.1, 0.95}, want: "yes"},
		{name: "median over, a round under", rounds: []float64{0.98, 1.04, 1.1}, want: "within noise: median 1.04x, rounds 0.98x to 1.10x"},
		{name: "every round over", rounds: []float64{1.2, 1.3, 1.25}, want: "**no**: median 1.25x > 1.00x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := withinNoise(tt.rounds, 1.0); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFormatTable(t *testing.T) {
	cells := map[cellKey][]thumbSample{}
	for _, s := range formatSources() {
		for _, h := range formatHeights {
			cells[cellKey{s.key, "base", h}] = []thumbSample{{10000, 0.95}, {12000, 0.93}}
			cells[cellKey{s.key, "auto", h}] = []thumbSample{{8000, 0.94}, {9600, 0.92}}
			cells[cellKey{s.key, "webp", h}] = []thumbSample{{6600, 0.96}, {7920, 0.90}}
		}
	}
	got := formatTable(cells, []string{"a note"})
	for _, want := range []string{
		"| 12 MP JPEG | 200 | JPEG auto quality | 2 | 8800 | 0.80x | 0.9200 | 0.9300 |",
		"| 2 MP PNG screenshot | 400 | WebP | 2 | 7260 | 0.66x | 0.9000 | 0.9300 |",
		"| 2 MP PNG | 200 | PNG (baseline) | 2 | 11000 | 1.00x | 0.9300 | 0.9400 |",
		"WebP 0.66x and JPEG auto quality 0.80x the baseline's bytes; worst SSIM WebP 0.9000, JPEG auto quality 0.9200, baseline 0.9300.",
		"- a note",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

func TestVTBatch(t *testing.T) {
	for _, s := range formatSources() {
		if n := vtBatch(s); n < 4 || n > 40 {
			t.Errorf("%s: got a batch of %d, want 4 to 40", s.key, n)
		}
	}
}

func TestRendersDone(t *testing.T) {
	tests := []struct {
		name     string
		text     func(n int) string
		wantOK   bool
		minScans int
	}{
		{
			name: "no such metrics",
			text: func(int) string { return "tierpix_origin_renders_total 5\n" },
		},
		{
			// Four renders in flight end one per scrape; a worker slot stays in use (an
			// intermediate) throughout, which must not hold the wait up.
			name: "renders end, an intermediate holds a slot",
			text: func(n int) string {
				return fmt.Sprintf("%s 104\n%s %d\n%s 0\ntierpix_origin_renders_in_progress 1\n",
					metricRendersStarted, metricRendersEnded, 100+min(n, 4), metricRenderQueue)
			},
			wantOK:   true,
			minScans: 6,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var scans atomic.Int64
			c := metricsServer(t, func(n int) string { scans.Add(1); return tt.text(n) })
			cpu, _, ok, err := rendersDone(context.Background(), c, []int{os.Getpid()}, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.wantOK || (ok && cpu <= 0) {
				t.Errorf("got ok %v and CPU %s, want ok %v with the CPU of this process", ok, cpu, tt.wantOK)
			}
			if int(scans.Load()) < tt.minScans {
				t.Errorf("got %d scrapes, want at least %d", scans.Load(), tt.minScans)
			}
		})
	}
}
