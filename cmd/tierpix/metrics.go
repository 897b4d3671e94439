package main

import (
	"github.com/tierpix/tierpix/api"
	"github.com/tierpix/tierpix/metrics"
	"github.com/tierpix/tierpix/origin"
	"github.com/tierpix/tierpix/signin"
	"github.com/tierpix/tierpix/store"
)

// The metrics read each part's counters through these, at scrape time: the metrics package
// imports none of the parts it reports on.

func originCounts(o *origin.Origin) func() metrics.OriginCounts {
	return func() metrics.OriginCounts {
		s := o.Stats()
		memMisses, diskMisses := o.CacheMisses()
		waiting, running := o.RenderQueue()
		h := o.RenderDurations()
		return metrics.OriginCounts{
			Renders: s.Renders, MemoryHits: s.MemoryHits, DiskHits: s.DiskHits,
			MemoryMisses: memMisses, DiskMisses: diskMisses,
			Shared: s.Shared, Rejected: s.Rejected, Evictions: s.Evictions, DiskBytes: s.DiskBytes,
			QueueWaiting: waiting, QueueRunning: running,
			RenderDurations: metrics.Histogram{Bounds: h.Bounds, Counts: h.Counts, Count: h.Count, Sum: h.Sum},
			Intermediates:   s.Intermediates, IntermediatesDropped: s.IntermediatesDropped,
			IntermediateQueue: s.IntermediateQueue,
		}
	}
}

func uploadCounts(a *api.API) func() metrics.UploadCounts {
	return func() metrics.UploadCounts {
		s := a.Stats()
		return metrics.UploadCounts{Accepted: s.UploadsAccepted, Rejected: s.UploadsRejected, Bytes: s.UploadBytes}
	}
}

func signInCounts(si *signin.Service) func() metrics.SignInCounts {
	return func() metrics.SignInCounts {
		s := si.Stats()
		return metrics.SignInCounts{PasswordChecks: s.PasswordChecks, Throttled: s.Throttled, Busy: s.Busy}
	}
}

func originalsCounts(st *store.Store) func() metrics.OriginalsCounts {
	return func() metrics.OriginalsCounts {
		s, _ := st.OriginalsCacheStats()
		return metrics.OriginalsCounts{
			Hits: s.Hits, Misses: s.Misses, Fetches: s.Fetches, Evictions: s.Evictions,
			BucketFailures: s.BucketFailures, Bytes: s.Bytes, Files: s.Files,
		}
	}
}
