package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// originCounts are the origin's counters from /metrics that tell what a run really did: a
// "cold" run must render every request, a hit run must render none.
type originCounts struct {
	Renders, MemoryHits, DiskHits float64
	// Requests is every HTTP request the server answered but those to /metrics and /healthz
	// (the bench's own, and what a walk sends once it has run out of links): for a run,
	// exactly the requests the server worked on (wrk may count one it never sent).
	Requests float64
	// Intermediates is how many intermediates the origin built in the background after first
	// renders (0 where the tierpix has no such counter): their CPU is in a run's figure, since
	// a walk run waits for the server to fall idle.
	Intermediates float64
}

func (c originCounts) add(d originCounts) originCounts {
	return originCounts{c.Renders + d.Renders, c.MemoryHits + d.MemoryHits, c.DiskHits + d.DiskHits, c.Requests + d.Requests,
		c.Intermediates + d.Intermediates}
}

func (c originCounts) sub(d originCounts) originCounts {
	return originCounts{c.Renders - d.Renders, c.MemoryHits - d.MemoryHits, c.DiskHits - d.DiskHits, c.Requests - d.Requests,
		c.Intermediates - d.Intermediates}
}

// The origin's metrics of intermediates built off the request path (issue 13): the counter of
// those built, and the gauge of those waiting to be.
const (
	metricIntermediatesBuilt = "tierpix_origin_intermediates_built_total"
	metricIntermediateQueue  = "tierpix_origin_intermediate_queue_depth"
)

// parseMetrics reads the samples of Prometheus' text format, "name{labels} value" per line,
// keyed by everything before the value.
func parseMetrics(text string) map[string]float64 {
	samples := map[string]float64{}
	s := bufio.NewScanner(strings.NewReader(text))
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		// No timestamps: tierpix's exposition (client_golang) writes none.
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			samples[line[:i]] = v
		}
	}
	return samples
}

// countsFrom picks the origin's counters out of the samples of /metrics.
func countsFrom(samples map[string]float64) originCounts {
	c := originCounts{
		Renders:    samples["tierpix_origin_renders_total"],
		MemoryHits: samples[`tierpix_origin_cache_hits_total{layer="memory"}`],
		DiskHits:   samples[`tierpix_origin_cache_hits_total{layer="disk"}`],

		Intermediates: samples[metricIntermediatesBuilt],
	}
	for k, v := range samples {
		if strings.HasPrefix(k, "tierpix_http_requests_total{") &&
			!strings.Contains(k, `route="/metrics"`) && !strings.Contains(k, `route="/healthz"`) {
			c.Requests += v
		}
	}
	return c
}

// scrape reads a tierpix's /metrics into its samples; ok is false when it has none.
func scrape(ctx context.Context, c *client) (samples map[string]float64, ok bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/metrics", nil)
	if err != nil {
		return nil, false, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, false, nil
	}
	var b strings.Builder
	if _, err := bufio.NewReader(resp.Body).WriteTo(&b); err != nil {
		return nil, false, fmt.Errorf("read /metrics: %w", err)
	}
	return parseMetrics(b.String()), true, nil
}

// fetchCounts reads the origin's counters from a tierpix's /metrics; ok is false when the
// tierpix has no /metrics (or it lacks the render counter), and the bench then goes without.
func fetchCounts(ctx context.Context, c *client) (counts originCounts, ok bool, err error) {
	samples, ok, err := scrape(ctx, c)
	if !ok || err != nil {
		return counts, false, err
	}
	if _, ok := samples["tierpix_origin_renders_total"]; !ok {
		return counts, false, nil
	}
	return countsFrom(samples), true, nil
}

// intermediatesSettle is how long the built counter must stay still, with nothing queued,
// before waitIntermediates takes the background work as done.
var intermediatesSettle = time.Second

// waitIntermediates waits, for at most limit, until a tierpix has built the intermediates its
// first renders queued in the background: its queue is empty (where it reports one) and its
// counter of intermediates built has not moved for intermediatesSettle. Further sizes are
// then measured rendering from intermediates, as they would be some time after a first
// render. It returns a note for the rows measured next: what it waited for, that the wait
// ran out, or that the tierpix has no such metrics (then it does not wait).
func waitIntermediates(ctx context.Context, c *client, limit time.Duration) (string, error) {
	begin := time.Now()
	var first, last float64
	changed := begin
	for i := 0; ; i++ {
		samples, ok, err := scrape(ctx, c)
		if err != nil {
			return "", err
		}
		built, found := samples[metricIntermediatesBuilt]
		if !ok || !found {
			return "no intermediate metrics in /metrics: measured without waiting for background work", nil
		}
		queued, hasQueue := samples[metricIntermediateQueue]
		if i == 0 {
			first, last = built, built
		} else if built != last {
			last, changed = built, time.Now()
		}
		if (!hasQueue || queued == 0) && time.Since(changed) >= intermediatesSettle {
			return fmt.Sprintf("measured after %.0f intermediates built in the background (waited %.1f s)",
				built-first, time.Since(begin).Seconds()), nil
		}
		if time.Since(begin) > limit {
			return fmt.Sprintf("**intermediates still being built after %s** (%.0f queued)", limit, queued), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
