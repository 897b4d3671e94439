package origin

import (
	"sync/atomic"
	"time"
)

// RenderDurationBounds are the upper bounds, in seconds, of the render duration histogram.
// They span what renders take on the machines this runs on: a few milliseconds for a small
// original shrunk on load, seconds for a 24 MP PNG on a busy core.
var RenderDurationBounds = [...]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// DurationHistogram is a snapshot of a duration histogram in the shape Prometheus exposes it.
type DurationHistogram struct {
	Bounds []float64 // bucket upper bounds in seconds, ascending; +Inf is implicit
	Counts []uint64  // cumulative: Counts[i] observations took at most Bounds[i]
	Count  uint64    // observations in all, the +Inf bucket
	Sum    float64   // seconds, all observations together
}

// durationHistogram counts durations into RenderDurationBounds with one atomic add per
// observation and no lock, so that a render pays next to nothing for being measured. The
// origin keeps it itself, rather than taking a Prometheus type, so that it depends on no
// metrics library and the metrics package only reads it at scrape time.
type durationHistogram struct {
	buckets [len(RenderDurationBounds) + 1]atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sumNS   atomic.Int64
}

// since records the time from start to now; `defer h.since(time.Now())` times a function.
func (h *durationHistogram) since(start time.Time) {
	h.observe(time.Since(start))
}

func (h *durationHistogram) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(RenderDurationBounds) && s > RenderDurationBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sumNS.Add(int64(d))
}

// snapshot reads the histogram. Observations landing during the read may be counted in the
// buckets and not yet in the sum, never the reverse of a bucket against the count: the count
// is the sum of the buckets read.
func (h *durationHistogram) snapshot() DurationHistogram {
	s := DurationHistogram{
		Bounds: RenderDurationBounds[:],
		Counts: make([]uint64, len(RenderDurationBounds)),
	}
	var cum uint64
	for i := range RenderDurationBounds {
		cum += h.buckets[i].Load()
		s.Counts[i] = cum
	}
	s.Count = cum + h.buckets[len(RenderDurationBounds)].Load()
	s.Sum = float64(h.sumNS.Load()) / float64(time.Second)
	return s
}

// CacheMisses returns the thumbnail lookups that missed each cache layer since New: memory
// misses found the variant neither in memory nor in another request's flight, so went to
// disk; disk misses, of those, did not find it on disk either, so went to render. A request
// that waits on another's flight counts in Stats.Shared, neither hit nor miss. They are kept
// apart from Stats so that Stats keeps comparing as before.
func (o *Origin) CacheMisses() (memory, disk uint64) {
	return o.memoryMisses.Load(), o.diskMisses.Load()
}

// RenderDurations returns the histogram of render durations since New: every render that
// got a worker slot, failed ones included, from the slot to the end of libvips' work.
func (o *Origin) RenderDurations() DurationHistogram {
	return o.renderTimes.snapshot()
}

// RenderQueue returns how many renders wait for a worker slot and how many hold one now. The
// two are read apart, so under load they are a moment's estimate, never negative.
func (o *Origin) RenderQueue() (waiting, running int) {
	running = len(o.workers)
	pending := o.pending.Load()
	// pending passes the pool's bound for an instant before a refused render takes itself off.
	pending = min(pending, int64(o.cfg.RenderWorkers+o.cfg.RenderQueue))
	waiting = int(max(pending-int64(running), 0))
	return waiting, running
}
