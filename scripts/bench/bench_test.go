package main

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// wrkOutput is wrk 4.1's --latency output, as the bench reads it.
const wrkOutput = `Running 10s test @ http://127.0.0.1:41234/thumb.jpg
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.51ms    3.02ms  76.52ms   93.12%
    Req/Sec    18.66k     2.51k   25.10k    70.50%
  Latency Distribution
     50%  823.00us
     75%    1.42ms
     90%    2.81ms
     99%   15.30ms
  371285 requests in 10.00s, 2.76GB read
  Socket errors: connect 0, read 0, write 0, timeout 3
  Non-2xx or 3xx responses: 17
Requests/sec:  37106.34
Transfer/sec:    282.41MB
`

func TestParseWrk(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    wrkResult
		wantErr string
	}{
		{
			name: "full output",
			out:  wrkOutput,
			want: wrkResult{Requests: 371285, Duration: 10 * time.Second, ReqPerSec: 37106.34,
				P50: 823 * time.Microsecond, P99: 15300 * time.Microsecond, Non2xx: 17,
				SockErrs: "connect 0, read 0, write 0, timeout 3"},
		},
		{
			name: "seconds and no errors",
			out: "  Latency Distribution\n     50%    1.41s \n     75%    1.60s\n     90%    1.90s\n     99%    2.08s \n" +
				"  140 requests in 12.02s, 3.1MB read\nRequests/sec:     11.65\n",
			want: wrkResult{Requests: 140, Duration: 12020 * time.Millisecond, ReqPerSec: 11.65,
				P50: 1410 * time.Millisecond, P99: 2080 * time.Millisecond},
		},
		{
			name:    "no latency distribution",
			out:     "  140 requests in 12.02s, 3.1MB read\nRequests/sec:     11.65\n",
			wantErr: "no latency distribution",
		},
		{
			name:    "not wrk output",
			out:     "unable to connect to 127.0.0.1:1 Connection refused\n",
			wantErr: "no request count",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseWrk(tt.out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseWrk: %v", err)
			}
			got.Raw = ""
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name     string
		stat     string
		wantCPU  time.Duration
		wantPPID int
		wantErr  bool
	}{
		{
			name:     "plain name",
			stat:     "4242 (tierpix) S 4200 4242 4200 0 -1 4194560 1200 0 0 0 350 125 0 0 20 0 9 0 1000 900000 5000 18446744073709551615",
			wantCPU:  4750 * time.Millisecond,
			wantPPID: 4200,
		},
		{
			name:     "name with spaces and parentheses",
			stat:     "77 (nginx: (worker) x) S 76 76 76 0 -1 4194624 10 0 0 0 3 1 0 0 20 0 1 0 1000 900000 500 18446744073709551615",
			wantCPU:  40 * time.Millisecond,
			wantPPID: 76,
		},
		{name: "truncated", stat: "77 (x) S 76 76", wantErr: true},
		{name: "no name", stat: "77 x S 76", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cpu, ppid, err := parseStatCPU(tt.stat)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got no error, want one")
				}
				return
			}
			if err != nil {
				t.Fatalf("parseStatCPU: %v", err)
			}
			if cpu != tt.wantCPU || ppid != tt.wantPPID {
				t.Errorf("got cpu %v ppid %d, want %v and %d", cpu, ppid, tt.wantCPU, tt.wantPPID)
			}
		})
	}
}

func TestProcReadersOnSelf(t *testing.T) {
	pid := os.Getpid()
	// Burn some CPU so that the count moves by at least a tick.
	before, err := procCPU(pid)
	if err != nil {
		t.Fatalf("procCPU: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	x := 0.0
	for after := before; after == before && time.Now().Before(deadline); after, _ = procCPU(pid) {
		for i := range 1_000_000 {
			x += math.Sqrt(float64(i))
		}
	}
	if after, _ := procCPU(pid); after <= before {
		t.Errorf("got CPU %v after burning, want more than %v (x=%v)", after, before, x)
	}
	if err := resetPeak([]int{pid}); err != nil {
		t.Fatalf("resetPeak: %v", err)
	}
	hwm, err := peakRSS([]int{pid})
	if err != nil {
		t.Fatalf("peakRSS: %v", err)
	}
	if hwm < 1<<20 || hwm > 4<<30 {
		t.Errorf("got peak RSS %d bytes, want a test binary's (1 MiB to 4 GiB)", hwm)
	}
}

func TestParseStatusKB(t *testing.T) {
	status := "Name:\ttierpix\nVmPeak:\t 2000000 kB\nVmHWM:\t   91136 kB\nVmRSS:\t   80000 kB\n"
	got, err := parseStatusKB(status, "VmHWM")
	if err != nil {
		t.Fatalf("parseStatusKB: %v", err)
	}
	if want := int64(91136 << 10); got != want {
		t.Errorf("got %d, want %d", got, want)
	}
	if _, err := parseStatusKB(status, "VmSwap"); err == nil {
		t.Errorf("got no error for a missing field, want one")
	}
}

func TestParseMachineBusy(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	got, err := parseMachineBusy("cpu  100 5 50 10000 300 7 8 2 40 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
	if err != nil {
		t.Fatalf("parseMachineBusy: %v", err)
	}
	if want := 172 * 10 * time.Millisecond; got != want {
		t.Errorf("got %v, want %v (idle, iowait and guest left out)", got, want)
	}
	if _, err := parseMachineBusy("intr 1 2 3\n"); err == nil {
		t.Errorf("got no error for a file without a cpu line, want one")
	}
}

func TestWalked(t *testing.T) {
	list := []string{"a", "b", "c", "d", "e", "f", "g"}
	tests := []struct {
		name    string
		threads int
		sent    map[int]int
		want    []string
	}{
		{name: "two threads", threads: 2, sent: map[int]int{0: 2, 1: 3}, want: []string{"a", "c", "b", "d", "f"}},
		{name: "more sent than the share", threads: 2, sent: map[int]int{0: 9, 1: 0}, want: []string{"a", "c", "e", "g"}},
		{name: "one thread", threads: 1, sent: map[int]int{0: 3}, want: []string{"a", "b", "c"}},
		{name: "nothing sent", threads: 2, sent: map[int]int{}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := walked(list, tt.threads, tt.sent); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWalkCounts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "walk.out")
	if err := os.WriteFile(path, []byte("0 120 0\n1 118 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sent, exhausted, err := walkCounts(path)
	if err != nil {
		t.Fatalf("walkCounts: %v", err)
	}
	if sent[0] != 120 || sent[1] != 118 || !exhausted {
		t.Errorf("got %v exhausted=%v, want map[0:120 1:118] exhausted=true", sent, exhausted)
	}
}

func TestThumbnailShrink(t *testing.T) {
	// The factors libvips 8.14 reports (VIPS_INFO=1 vips thumbnail) for the anchors' sources.
	tests := []struct {
		name       string
		w, h, want int
	}{
		{name: "24 MP", w: 6000, h: 4000, want: 8},
		{name: "12 MP", w: 4000, h: 3000, want: 4},
		{name: "0.75 MP", w: 1000, h: 750, want: 1},
		{name: "1000 px high", w: 1500, h: 1000, want: 2},
		{name: "smaller than the output", w: 150, h: 100, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := thumbnailShrink(tt.w, tt.h, 200); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func encode(t *testing.T, img image.Image, asPNG bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	var err error
	if asPNG {
		err = png.Encode(&buf, img)
	} else {
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95})
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPSNR(t *testing.T) {
	a := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for y := range 48 {
		for x := range 64 {
			a.Set(x, y, color.RGBA{uint8(x * 4), uint8(y * 5), 128, 255})
		}
	}
	off := image.NewRGBA(a.Bounds())
	copy(off.Pix, a.Pix)
	for i := 0; i < len(off.Pix); i += 4 {
		off.Pix[i]++ // every red sample off by one: MSE 1/3
	}
	tests := []struct {
		name    string
		a, b    []byte
		want    float64
		wantErr bool
	}{
		{name: "identical", a: encode(t, a, true), b: encode(t, a, true), want: math.Inf(1)},
		{name: "off by one in one channel", a: encode(t, a, true), b: encode(t, off, true), want: 10 * math.Log10(255*255*3)},
		{name: "other size", a: encode(t, a, true), b: encode(t, image.NewRGBA(image.Rect(0, 0, 10, 10)), true), wantErr: true},
		{name: "not an image", a: encode(t, a, true), b: []byte("nope"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := psnrBytes(tt.a, tt.b)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %v and no error, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("psnrBytes: %v", err)
			}
			if got != tt.want && math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("got %v dB, want %v", got, tt.want)
			}
		})
	}
	// A JPEG at quality 95 of a smooth picture is close, but not identical.
	p, err := psnrBytes(encode(t, a, true), encode(t, a, false))
	if err != nil {
		t.Fatal(err)
	}
	if p < 30 || math.IsInf(p, 1) {
		t.Errorf("got %v dB for a Q95 JPEG of a gradient, want a finite figure above 30", p)
	}
}

func TestFormatting(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"microseconds", fmtDur(23800 * time.Nanosecond), "23.8 µs"},
		{"milliseconds", fmtDur(111400 * time.Microsecond), "111 ms"},
		{"seconds", fmtDur(1410 * time.Millisecond), "1.41 s"},
		{"no duration", fmtDur(0), "–"},
		{"ratio", fmtRatio(0.804), "0.80x"},
		{"tiny ratio", fmtRatio(0.0002), "<0.01x"},
		{"no ratio", fmtRatio(math.NaN()), "–"},
		{"MiB", fmtMiB(91 << 20), "91.0 MiB"},
		{"req/s", fmtRPS(37106.34), "37106"},
		{"holds", verdict(nil), "yes"},
		{"fails", verdict([]string{"a", "b"}), "**no**: a; b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestMarkdownTable(t *testing.T) {
	md := markdown([]row{
		{Scenario: "nginx", Conns: 64, RPS: 40000, P50: time.Millisecond, P99: 5 * time.Millisecond, CPU: 20 * time.Microsecond, RSS: 15 << 20, VsNginx: 1, Target: "reference", ref: true},
		{Scenario: "upload", Conns: 1, P50: time.Second, RSS: 60 << 20, Target: "peak RSS < 100 MiB", Holds: "yes", Notes: []string{"x", "y"}},
	})
	lines := strings.Split(strings.TrimSpace(md), "\n")
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want a header, a rule and 2 rows:\n%s", len(lines), md)
	}
	for i, l := range lines {
		if got := strings.Count(l, "|"); got != 13 {
			t.Errorf("line %d has %d pipes, want 13 (12 columns): %s", i, got, l)
		}
	}
	if !strings.Contains(lines[3], "| – |") || !strings.Contains(lines[3], "x; y") {
		t.Errorf("got upload row %q, want dashes for what was not measured and the notes joined", lines[3])
	}
}

func TestCountsFromMetrics(t *testing.T) {
	text := `# HELP tierpix_origin_renders_total Thumbnails rendered.
# TYPE tierpix_origin_renders_total counter
tierpix_origin_renders_total 1520
tierpix_origin_cache_hits_total{layer="disk"} 35420
tierpix_origin_cache_hits_total{layer="memory"} 7
tierpix_origin_cache_misses_total{layer="memory"} 36940
tierpix_http_requests_total{method="GET",route="/i/{path:*}",status="200"} 3.694e+04
tierpix_http_requests_total{method="GET",route="/i/{path:*}",status="404"} 6
tierpix_http_requests_total{method="GET",route="/metrics",status="200"} 12
tierpix_http_requests_total{method="GET",route="/healthz",status="200"} 2
`
	samples := parseMetrics(text)
	if got := samples[`tierpix_http_requests_total{method="GET",route="/i/{path:*}",status="200"}`]; got != 36940 {
		t.Errorf("got request count %v, want 36940 (exponent form)", got)
	}
	before := originCounts{Renders: 20, MemoryHits: 2, DiskHits: 420, Requests: 940}
	got := countsFrom(samples).sub(before)
	if want := (originCounts{Renders: 1500, MemoryHits: 5, DiskHits: 35000, Requests: 36006}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if len(parseMetrics("# only comments\n\n")) != 0 {
		t.Errorf("got samples from a text without any")
	}
}

func TestCombine(t *testing.T) {
	runs := []measured{
		{wrk: wrkResult{ReqPerSec: 20000, P50: 2 * time.Millisecond, P99: 10 * time.Millisecond}, cpu: 30 * time.Microsecond,
			rss: 70 << 20, other: 0.5, counts: originCounts{MemoryHits: 200000}, hasCounts: true},
		{wrk: wrkResult{ReqPerSec: 22000, P50: 4 * time.Millisecond, P99: 20 * time.Millisecond, Non2xx: 3}, cpu: 40 * time.Microsecond,
			rss: 60 << 20, other: 0.1, counts: originCounts{MemoryHits: 220000}, hasCounts: true},
	}
	r := combine("hits", 64, runs)
	if r.RPS != 21000 || r.P50 != 3*time.Millisecond || r.P99 != 15*time.Millisecond || r.CPU != 35*time.Microsecond || r.RSS != 70<<20 {
		t.Errorf("got %+v, want the means of req/s, latencies and CPU and the larger RSS", r)
	}
	want := []string{
		"mean of 2 runs (20000, 22000 req/s)",
		"**3 non-2xx answers**",
		"other processes used 0.3 cores meanwhile",
		"/metrics: 420000 memory hits, 0 disk hits, 0 renders",
	}
	if !slices.Equal(r.Notes, want) {
		t.Errorf("got notes %q, want %q", r.Notes, want)
	}
	if one := combine("list", 4, runs[:1]); slices.ContainsFunc(one.Notes, func(n string) bool { return strings.HasPrefix(n, "mean of") }) {
		t.Errorf("got notes %q for one run, want no mean", one.Notes)
	}
}
