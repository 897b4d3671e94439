// Package metricstest scrapes a /metrics endpoint in tests and reads values out of it, so that
// tests assert on parsed series (and on deltas between two scrapes) rather than on text.
package metricstest

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Scrape is one parsed scrape: metric families by name.
type Scrape map[string]*dto.MetricFamily

// Get scrapes url with a plain GET (no credentials: /metrics needs none), checks that the
// answer is 200 in the Prometheus text format (text/plain, version 0.0.4), and parses it.
func Get(t testing.TB, client *http.Client, url string) Scrape {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: read: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: got status %d, want 200; body %s", url, resp.StatusCode, body)
	}
	ct := resp.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "text/plain" || params["version"] != expfmt.TextVersion {
		t.Fatalf("scrape %s: got Content-Type %q, want text/plain; version=%s", url, ct, expfmt.TextVersion)
	}
	if got := expfmt.ResponseFormat(resp.Header).FormatType(); got != expfmt.TypeTextPlain {
		t.Fatalf("scrape %s: Content-Type %q reads as format %v, want the text format", url, ct, got)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("scrape %s: parse: %v\n%s", url, err, body)
	}
	return fams
}

// Labels selects series by label values; labels not named may take any value.
type Labels map[string]string

// Value returns the value of the counter or gauge name summed over the series that match
// labels (0 when none does, as for a counter not yet incremented). It fails the test if name
// is there but is neither a counter nor a gauge.
func (s Scrape) Value(t testing.TB, name string, labels Labels) float64 {
	t.Helper()
	var sum float64
	for _, m := range s.series(name, labels) {
		switch {
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		case m.GetUntyped() != nil:
			sum += m.GetUntyped().GetValue()
		default:
			t.Fatalf("%s: not a counter or gauge", name)
		}
	}
	return sum
}

// Histogram returns the sample count and sum of histogram name summed over the series that
// match labels, and its cumulative bucket counts by upper bound.
func (s Scrape) Histogram(t testing.TB, name string, labels Labels) (count uint64, sum float64, buckets map[float64]uint64) {
	t.Helper()
	buckets = map[float64]uint64{}
	for _, m := range s.series(name, labels) {
		h := m.GetHistogram()
		if h == nil {
			t.Fatalf("%s: not a histogram", name)
		}
		count += h.GetSampleCount()
		sum += h.GetSampleSum()
		for _, b := range h.GetBucket() {
			buckets[b.GetUpperBound()] += b.GetCumulativeCount()
		}
	}
	return count, sum, buckets
}

// Has reports whether a family name is in the scrape at all.
func (s Scrape) Has(name string) bool {
	_, ok := s[name]
	return ok
}

// LabelValues returns every value label takes in any series of any family, sorted, for
// checks on what labels may carry.
func (s Scrape) LabelValues(label string) []string {
	seen := map[string]bool{}
	for _, f := range s {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					seen[l.GetValue()] = true
				}
			}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// String lists the series of name with their labels and values, for failure messages.
func (s Scrape) String(name string) string {
	var b strings.Builder
	for _, m := range s[name].GetMetric() {
		var labels []string
		for _, l := range m.GetLabel() {
			labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
		fmt.Fprintf(&b, "\n\t%s{%s} %v", name, strings.Join(labels, ","), v)
	}
	return b.String()
}

func (s Scrape) series(name string, labels Labels) []*dto.Metric {
	var out []*dto.Metric
	for _, m := range s[name].GetMetric() {
		got := labelMap(m)
		match := true
		for k, v := range labels {
			if got[k] != v {
				match = false
				break
			}
		}
		if match {
			out = append(out, m)
		}
	}
	return out
}

func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}
