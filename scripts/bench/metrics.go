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
	// Intermediates and IntermediatesDropped are how many intermediates the origin made in
	// the background after first renders, and gave up on (0 where the tierpix has no such
	// counter). A walk run waits for the server to fall idle, so their CPU is in its figure.
	Intermediates, IntermediatesDropped float64
}

func (c originCounts) add(d originCounts) originCounts {
	return originCounts{c.Renders + d.Renders, c.MemoryHits + d.MemoryHits, c.DiskHits + d.DiskHits, c.Requests + d.Requests,
		c.Intermediates + d.Intermediates, c.IntermediatesDropped + d.IntermediatesDropped}
}

func (c originCounts) sub(d originCounts) originCounts {
	return originCounts{c.Renders - d.Renders, c.MemoryHits - d.MemoryHits, c.DiskHits - d.DiskHits, c.Requests - d.Requests,
		c.Intermediates - d.Intermediates, c.IntermediatesDropped - d.IntermediatesDropped}
}

// The origin's metrics of intermediates made off the request path (issue 13): the counters of
// those built and dropped, and the gauge of those waiting to be made; and the counters of
// renders started and ended and the gauge of those waiting, which tell when the last render
// of a run is done.
const (
	metricIntermediatesBuilt   = `tierpix_origin_intermediates_total{result="built"}`
	metricIntermediatesDropped = `tierpix_origin_intermediates_total{result="dropped"}`
	metricIntermediateQueue    = "tierpix_origin_intermediate_queue_depth"
	metricRendersStarted       = "tierpix_origin_renders_total"
	metricRendersEnded         = "tierpix_origin_render_duration_seconds_count"
	metricRenderQueue          = "tierpix_origin_render_queue_depth"
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

		Intermediates:        samples[metricIntermediatesBuilt],
		IntermediatesDropped: samples[metricIntermediatesDropped],
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

// waitIntermediates waits, for at most limit, until a tierpix has made the intermediates its
// first renders queued in the background: its queue is empty and its counters of
// intermediates built and dropped have not moved for intermediatesSettle. Further sizes are
// then measured rendering from intermediates, as they would be some time after a first
// render. It returns a note for the rows measured next: what it waited for, that the wait
// ran out, or that the tierpix has no such metrics (then it does not wait).
func waitIntermediates(ctx context.Context, c *client, limit time.Duration) (string, error) {
	begin := time.Now()
	var first, last originCounts
	changed := begin
	for i := 0; ; i++ {
		samples, ok, err := scrape(ctx, c)
		if err != nil {
			return "", err
		}
		queued, found := samples[metricIntermediateQueue]
		if !ok || !found {
			return "no intermediate metrics in /metrics: measured without waiting for background work", nil
		}
		now := countsFrom(samples)
		if i == 0 {
			first, last = now, now
		} else if now.Intermediates != last.Intermediates || now.IntermediatesDropped != last.IntermediatesDropped {
			last, changed = now, time.Now()
		}
		if queued == 0 && time.Since(changed) >= intermediatesSettle {
			d := now.sub(first)
			note := fmt.Sprintf("measured once no intermediate was queued (waited %.1f s, while %.0f were made", time.Since(begin).Seconds(), d.Intermediates)
			if d.IntermediatesDropped > 0 {
				note += fmt.Sprintf(", **%.0f dropped**", d.IntermediatesDropped)
			}
			return note + ")", nil
		}
		if time.Since(begin) > limit {
			return fmt.Sprintf("**intermediates still being made after %s** (%.0f queued)", limit, queued), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// rendersDone waits, for at most limit, until every render a tierpix has started has ended
// and none waits for a worker, and returns the CPU pids have used by then: after a walk run,
// the moment its renders are all done and before the intermediates they queued are made
// (which starts within a few ms of the renders letting up). It tells renders from
// intermediates by counters, not by the gauge of worker slots in use, which intermediates
// hold too: the renders started (tierpix_origin_renders_total) against the renders ended
// (the count of tierpix_origin_render_duration_seconds), twice in a row, as the two are
// read apart. ok is false when the tierpix has no such metrics.
func rendersDone(ctx context.Context, c *client, pids []int, limit time.Duration) (cpu time.Duration, counts originCounts, ok bool, err error) {
	deadline := time.Now().Add(limit)
	settled := -1.0 // the started count seen done once
	for {
		samples, found, err := scrape(ctx, c)
		if err != nil || !found {
			return 0, counts, false, err
		}
		started, has1 := samples[metricRendersStarted]
		ended, has2 := samples[metricRendersEnded]
		waiting, has3 := samples[metricRenderQueue]
		if !has1 || !has2 || !has3 {
			return 0, counts, false, nil
		}
		if started == ended && waiting == 0 {
			if started == settled {
				cpu, err := cpuOf(pids)
				return cpu, countsFrom(samples), err == nil, err
			}
			settled = started
		} else {
			settled = -1
		}
		if time.Now().After(deadline) {
			return 0, counts, false, fmt.Errorf("renders still running after %s", limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
