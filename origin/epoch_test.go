package origin

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/signing"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
)

// testPoll is how often the tests' origins read the change epoch.
const testPoll = 20 * time.Millisecond

// flakyEpoch is a real store whose change epoch cannot be read while failing is set, as when
// the database cannot be reached at the moment of the read; everything else goes through.
type flakyEpoch struct {
	*store.Store
	failing atomic.Bool
}

func (f *flakyEpoch) ChangeEpoch(ctx context.Context) (int64, error) {
	if f.failing.Load() {
		return 0, errors.New("read change epoch: connection refused")
	}
	return f.Store.ChangeEpoch(ctx)
}

// waitForEpochReads waits until o has read the change epoch n more times: with n of 2 or
// more, at least one of those reads began after the call.
func waitForEpochReads(t *testing.T, o *Origin, n uint64) {
	t.Helper()
	want := o.Stats().EpochReads + n
	waitFor(t, "reads of the change epoch", func() bool { return o.Stats().EpochReads >= want })
}

// waitForEpochRead waits for the origin's first read of the change epoch, or one more.
func waitForEpochRead(t *testing.T, o *Origin) { t.Helper(); waitForEpochReads(t, o, 1) }

// metaOf returns the metadata cache's entry of id.
func metaOf(t *testing.T, o *Origin, id string) *metaEntry {
	t.Helper()
	o.metaMu.RLock()
	defer o.metaMu.RUnlock()
	m, ok := o.meta[id]
	if !ok {
		t.Fatalf("metadata of %s: got none cached, want an entry", id)
	}
	return m
}

// wantStatus fetches url and fails unless it answers status.
func wantStatus(t *testing.T, url string, status int) {
	t.Helper()
	if res := get(t, url); res.status != status {
		t.Fatalf("GET: got %d (%s), want %d", res.status, res.body, status)
	}
}

// TestMetaEntryFresh pins the rule of fresh on exact times: the epoch decides, MetadataTTL
// applies when the epoch cannot be read and to not-found answers, maxMetaAge always.
func TestMetaEntryFresh(t *testing.T) {
	const ttl = 2 * time.Second
	now := time.Now()
	tests := []struct {
		name       string
		age        time.Duration // since the lookup began
		epoch      int64         // the entry's; the origin's current one is 7
		trustedFor time.Duration // from now; negative: the last good read is older than the TTL
		notFound   bool
		stale      bool
		want       bool
	}{
		{name: "young", age: time.Second, epoch: 7, trustedFor: time.Second, want: true},
		{name: "young while degraded", age: time.Second, epoch: 7, trustedFor: -time.Second, want: true},
		{name: "young, epoch moved", age: time.Second, epoch: 6, trustedFor: time.Second},
		{name: "young, stale", age: time.Second, epoch: 7, trustedFor: time.Second, stale: true},
		{name: "past the ttl", age: time.Minute, epoch: 7, trustedFor: time.Second, want: true},
		{name: "past the ttl while degraded", age: time.Minute, epoch: 7, trustedFor: -time.Nanosecond},
		{name: "past the ttl, epoch moved", age: time.Minute, epoch: 6, trustedFor: time.Second},
		{name: "past the ttl, stale", age: time.Minute, epoch: 7, trustedFor: time.Second, stale: true},
		{name: "young not found", age: time.Second, epoch: 7, trustedFor: time.Second, notFound: true, want: true},
		{name: "not found past the ttl", age: ttl, epoch: 7, trustedFor: time.Second, notFound: true},
		{name: "just under the age cap", age: maxMetaAge - time.Nanosecond, epoch: 7, trustedFor: time.Second, want: true},
		{name: "at the age cap", age: maxMetaAge, epoch: 7, trustedFor: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cur atomic.Pointer[epochRead]
			cur.Store(&epochRead{epoch: 7, trustedUntil: now.Add(tt.trustedFor)})
			start := now.Add(-tt.age)
			m := &metaEntry{notFound: tt.notFound, epoch: tt.epoch, epochs: &cur, expires: start.Add(ttl), retires: start.Add(maxMetaAge)}
			m.stale.Store(tt.stale)
			if got := m.fresh(now); got != tt.want {
				t.Errorf("fresh: got %v, want %v", got, tt.want)
			}
			if allocs := testing.AllocsPerRun(100, func() { m.fresh(now) }); allocs != 0 {
				t.Errorf("fresh: got %v allocations, want 0", allocs)
			}
		})
	}
}

// TestMetadataOutlivesTTL checks that while the change epoch stands, an entry answers long
// past MetadataTTL: repeated requests cost no query at all.
func TestMetadataOutlivesTTL(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		const ttl = 200 * time.Millisecond
		e := newEnvOn(t, st, fullTier, Config{MetadataTTL: ttl, MetadataPoll: testPoll})
		img, _ := e.addImage(t, tierpix.FormatJPEG, 400, 300)
		u := e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200)})
		waitForEpochRead(t, e.origin)
		wantStatus(t, u, http.StatusOK)
		m := metaOf(t, e.origin, img.ID)
		lookups, queries := e.origin.Stats().MetadataLookups, st.Queries()

		waitFor(t, "the entry to be twice its TTL old", func() bool { return time.Since(m.expires) > ttl })
		waitForEpochReads(t, e.origin, 2)
		for range 3 {
			wantStatus(t, u, http.StatusOK)
		}
		if got := e.origin.Stats().MetadataLookups - lookups; got != 0 {
			t.Errorf("lookups past the TTL: got %d, want 0", got)
		}
		if got := st.Queries() - queries; got != 0 {
			t.Errorf("store queries past the TTL: got %d, want 0 (epoch reads are not counted)", got)
		}
		if got := metaOf(t, e.origin, img.ID); got != m || m.stale.Load() {
			t.Errorf("entry: got %p (stale %v), want the first lookup's %p, not stale", got, m.stale.Load(), m)
		}
		if s := e.origin.Stats(); s.EpochFailures != 0 || s.EpochReads < 3 {
			t.Errorf("epoch reads: got %d, %d failed; want at least 3, none failed", s.EpochReads, s.EpochFailures)
		}
	})
}

// TestMetadataFollowsOtherNode changes the owner's tier, the owner and the image through a
// second store handle on the same database, as another node would, with no Purge on this
// origin: each change shows within a read or two of the epoch, far sooner than the longest
// MetadataTTL that would otherwise be the bound.
func TestMetadataFollowsOtherNode(t *testing.T) {
	storetest.EachPair(t, func(t *testing.T, a, b *store.Store) {
		const ttl = 5 * time.Second
		ctx := context.Background()
		e := newEnvOn(t, a, tierpix.Tier{Name: "Small", ThumbnailHeights: []int{200, 400}}, Config{MetadataTTL: ttl, MetadataPoll: testPoll})
		if err := b.CreateTier(ctx, &tierpix.Tier{Name: "Large", ThumbnailHeights: []int{200, 400}}); err != nil {
			t.Fatalf("CreateTier: %v", err)
		}
		img, _ := e.addImage(t, tierpix.FormatJPEG, 800, 600)
		h400 := e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(400)})
		waitForEpochRead(t, e.origin)
		wantStatus(t, h400, http.StatusOK)

		steps := []struct {
			name   string
			change func() error
			status int
		}{
			{name: "tier edited", status: http.StatusForbidden, change: func() error {
				return storetest.UpdateTier(ctx, b, &tierpix.Tier{Name: "Small", ThumbnailHeights: []int{200}})
			}},
			{name: "owner moved", status: http.StatusOK, change: func() error {
				_, err := b.ModifyUser(ctx, e.owner.Username, func(u *tierpix.User) error { u.TierName = "Large"; return nil })
				return err
			}},
			{name: "image deleted", status: http.StatusNotFound, change: func() error {
				return b.DeleteImage(ctx, e.owner.ID, img.ID)
			}},
		}
		for _, s := range steps {
			start := time.Now()
			if err := s.change(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			var last int
			waitFor(t, s.name, func() bool {
				last = get(t, h400).status
				return last == s.status
			})
			took := time.Since(start)
			t.Logf("%s on the other handle: answered %d after %v", s.name, last, took.Round(time.Millisecond))
			if took >= ttl/2 {
				t.Errorf("%s: seen after %v, want well under the TTL of %v (a read of the epoch every %v)", s.name, took, ttl, testPoll)
			}
		}
	})
}

// TestMetadataDegraded makes the change epoch unreadable: entries then live MetadataTTL after
// their lookup as if there were no epoch, so a change that the origin cannot learn of still
// applies within MetadataTTL, and once the epoch reads again, entries outlive the TTL again.
func TestMetadataDegraded(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		const ttl = 300 * time.Millisecond
		ctx := context.Background()
		flaky := &flakyEpoch{Store: st}
		tier := tierpix.Tier{Name: "Shifting", ThumbnailHeights: []int{200, 400}}
		e := newEnvServing(t, st, flaky, tier, Config{MetadataTTL: ttl, MetadataPoll: testPoll})
		img, _ := e.addImage(t, tierpix.FormatJPEG, 800, 600)
		h400 := e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(400)})
		waitForEpochRead(t, e.origin)
		wantStatus(t, h400, http.StatusOK)
		m := metaOf(t, e.origin, img.ID)

		flaky.failing.Store(true)
		failures := e.origin.Stats().EpochFailures
		waitFor(t, "the last good read of the epoch to be older than the TTL", func() bool {
			now := time.Now()
			return e.origin.Stats().EpochFailures > failures && !now.Before(e.origin.epoch.Load().trustedUntil) &&
				!now.Before(m.expires) // a lookup after the last good read has its own TTL
		})
		if m.fresh(time.Now()) {
			t.Fatal("entry older than the TTL, epoch unreadable for longer: got fresh, want not")
		}
		lookups := e.origin.Stats().MetadataLookups
		wantStatus(t, h400, http.StatusOK)
		if got := e.origin.Stats().MetadataLookups - lookups; got != 1 {
			t.Fatalf("lookups once the entry passed its TTL while degraded: got %d, want 1", got)
		}

		// A change the epoch cannot tell: it shows as soon as the entry just looked up, before
		// the change, is MetadataTTL old.
		reads := e.origin.Stats().EpochReads
		m = metaOf(t, e.origin, img.ID)
		tier.ThumbnailHeights = []int{200}
		if err := storetest.UpdateTier(ctx, st, &tier); err != nil {
			t.Fatalf("UpdateTier: %v", err)
		}
		waitFor(t, "the entry to pass its TTL", func() bool { return !time.Now().Before(m.expires) })
		wantProblem(t, get(t, h400), http.StatusForbidden, "400 px")
		if got := e.origin.Stats().EpochReads; got != reads {
			t.Fatalf("epoch reads while failing: got %d more, want none", got-reads)
		}

		// The epoch reads again: an entry looked up now outlives the TTL once more. (A granted
		// variant is asked: refusals are re-checked against the store whatever the cache says.)
		h200 := e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200)})
		flaky.failing.Store(false)
		waitForEpochReads(t, e.origin, 2)
		wantStatus(t, h400, http.StatusForbidden)
		m = metaOf(t, e.origin, img.ID)
		lookups = e.origin.Stats().MetadataLookups
		waitFor(t, "the entry to be twice its TTL old", func() bool { return time.Since(m.expires) > ttl })
		waitForEpochReads(t, e.origin, 2)
		wantStatus(t, h200, http.StatusOK)
		if got := e.origin.Stats().MetadataLookups - lookups; got != 0 {
			t.Errorf("lookups past the TTL after the epoch read again: got %d, want 0", got)
		}
	})
}

// TestMetadataDatabaseGone closes the origin's database: past MetadataTTL it answers with an
// error rather than with the metadata it had.
func TestMetadataDatabaseGone(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		const ttl = 200 * time.Millisecond
		e := newEnvOn(t, st, fullTier, Config{MetadataTTL: ttl, MetadataPoll: testPoll})
		img, _ := e.addImage(t, tierpix.FormatJPEG, 400, 300)
		u := e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200)})
		waitForEpochRead(t, e.origin)
		wantStatus(t, u, http.StatusOK)

		if err := st.Close(); err != nil {
			t.Fatalf("close the store: %v", err)
		}
		failures := e.origin.Stats().EpochFailures
		waitFor(t, "the last good read of the epoch to be older than the TTL", func() bool {
			return e.origin.Stats().EpochFailures > failures && !time.Now().Before(e.origin.epoch.Load().trustedUntil)
		})
		waitFor(t, "the entry to pass its TTL", func() bool { return !time.Now().Before(metaOf(t, e.origin, img.ID).expires) })
		wantStatus(t, u, http.StatusInternalServerError)
	})
}

// TestNotFoundExpires checks that a not-found answer is kept MetadataTTL, not longer, while the
// epoch stands (creating an image does not move it).
func TestNotFoundExpires(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		const ttl = 200 * time.Millisecond
		e := newEnvOn(t, st, fullTier, Config{MetadataTTL: ttl, MetadataPoll: testPoll})
		id := strings.Repeat("a", tierpix.ImageIDLength)
		u := e.url(signing.Link{ImageID: id, Variant: signing.Thumbnail(200)})
		waitForEpochRead(t, e.origin)
		wantProblem(t, get(t, u), http.StatusNotFound, "No such image.")
		m := metaOf(t, e.origin, id)
		if !m.notFound {
			t.Fatal("entry of an unknown id: got found, want notFound")
		}
		// A cached refusal is checked against the store once (the image may exist by now),
		// and the entry that check fetched answers refusals for recheckEvery without another.
		lookups := e.origin.Stats().MetadataLookups
		wantProblem(t, get(t, u), http.StatusNotFound, "No such image.")
		wantProblem(t, get(t, u), http.StatusNotFound, "No such image.")
		if got := e.origin.Stats().MetadataLookups - lookups; got != 1 {
			t.Errorf("lookups within the TTL: got %d, want 1 (one re-check of the refusal)", got)
		}

		m = metaOf(t, e.origin, id)
		waitFor(t, "the entry to pass its TTL", func() bool { return !time.Now().Before(m.expires) })
		waitForEpochReads(t, e.origin, 2)
		wantProblem(t, get(t, u), http.StatusNotFound, "No such image.")
		if got := e.origin.Stats().MetadataLookups - lookups; got != 2 {
			t.Errorf("lookups past the TTL, epoch unchanged: got %d, want 2 (one lookup, no re-check of its own answer)", got)
		}
		if got := e.origin.Stats().EpochFailures; got != 0 {
			t.Errorf("epoch read failures: got %d, want 0", got)
		}
	})
}

// blockingEpoch is a real store whose change epoch reads wait until their context ends.
type blockingEpoch struct {
	*store.Store
	entered  chan struct{}
	canceled chan error
}

func (b *blockingEpoch) ChangeEpoch(ctx context.Context) (int64, error) {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-ctx.Done()
	select {
	case b.canceled <- ctx.Err():
	default:
	}
	return 0, ctx.Err()
}

// TestCloseStopsEpochReads closes an origin while its read of the epoch waits: Close cancels
// the read and returns without waiting out its timeout, and the read counts as no failure.
func TestCloseStopsEpochReads(t *testing.T) {
	st := &blockingEpoch{Store: storetest.SQLite(t), entered: make(chan struct{}, 1), canceled: make(chan error, 1)}
	signer, err := signing.New([][]byte{[]byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatalf("signing.New: %v", err)
	}
	o, err := New(Config{CacheDir: t.TempDir()}, st, signer, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	select {
	case <-st.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the first read of the epoch")
	}
	start := time.Now()
	o.Close()
	if took := time.Since(start); took >= closeWait {
		t.Errorf("Close: took %v, want less than %v", took, closeWait)
	}
	select {
	case err := <-st.canceled:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the read's context: got %v, want canceled", err)
		}
	default:
		t.Error("the read in flight: got it still waiting after Close, want it canceled")
	}
	if got := o.Stats().EpochFailures; got != 0 {
		t.Errorf("failures: got %d, want 0 for a read cut short by Close", got)
	}
}

// logRecorder is a slog.Handler that keeps every record's level and message.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}

// count returns how many records at level have a message starting with prefix.
func (h *logRecorder) count(level slog.Level, prefix string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.records {
		if r.Level == level && strings.HasPrefix(r.Message, prefix) {
			n++
		}
	}
	return n
}

// TestEpochReadFailuresLogged checks that failing reads of the epoch warn once a minute, not
// once a read, and that the first good read after a warning says so.
func TestEpochReadFailuresLogged(t *testing.T) {
	flaky := &flakyEpoch{Store: storetest.SQLite(t)}
	flaky.failing.Store(true)
	signer, err := signing.New([][]byte{[]byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatalf("signing.New: %v", err)
	}
	logs := &logRecorder{}
	o, err := New(Config{CacheDir: t.TempDir(), MetadataTTL: 100 * time.Millisecond, MetadataPoll: 5 * time.Millisecond}, flaky, signer, slog.New(logs))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(o.Close)

	waitFor(t, "5 failed reads", func() bool { return o.Stats().EpochFailures >= 5 })
	if got := logs.count(slog.LevelWarn, "read change epoch"); got != 1 {
		t.Errorf("warnings after %d failed reads: got %d, want 1", o.Stats().EpochFailures, got)
	}
	flaky.failing.Store(false)
	waitForEpochRead(t, o)
	if got := logs.count(slog.LevelInfo, "change epoch read again"); got != 1 {
		t.Errorf("notes of the recovery: got %d, want 1", got)
	}
	flaky.failing.Store(true)
	failures := o.Stats().EpochFailures
	waitFor(t, "3 more failed reads", func() bool { return o.Stats().EpochFailures >= failures+3 })
	if got := logs.count(slog.LevelWarn, "read change epoch"); got != 1 {
		t.Errorf("warnings within a minute of the first: got %d, want still 1", got)
	}
}

// BenchmarkMetaEntryFresh measures the check every request makes of its metadata.
func BenchmarkMetaEntryFresh(b *testing.B) {
	var cur atomic.Pointer[epochRead]
	now := time.Now()
	cur.Store(&epochRead{epoch: 1, trustedUntil: now.Add(time.Hour)})
	m := &metaEntry{epoch: 1, epochs: &cur, expires: now.Add(-time.Second), retires: now.Add(time.Hour)}
	b.ReportAllocs()
	for b.Loop() {
		if !m.fresh(now) {
			b.Fatal("not fresh")
		}
	}
}

// TestMetadataFollowsOwnNode makes changes through the origin's own store with the change
// epoch read only every 4.9 s (the longest the configuration allows), in well under that: unwired, a revoked height keeps being served from the cached grant;
// with Changed wired to the store's OnChange, as main does, each change shows on the very
// next request.
func TestMetadataFollowsOwnNode(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		e := newEnvOn(t, st, tierpix.Tier{Name: "Small", ThumbnailHeights: []int{200, 400}}, Config{MetadataTTL: 5 * time.Second, MetadataPoll: 4900 * time.Millisecond})
		img, _ := e.addImage(t, tierpix.FormatJPEG, 800, 600)
		h400 := e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(400)})
		waitForEpochRead(t, e.origin)
		wantStatus(t, h400, http.StatusOK)
		heights := func(hs ...int) {
			t.Helper()
			if _, err := st.ModifyTier(ctx, "Small", func(t *tierpix.Tier) error { t.ThumbnailHeights = hs; return nil }); err != nil {
				t.Fatalf("ModifyTier: %v", err)
			}
		}

		heights(200)
		wantStatus(t, h400, http.StatusOK) // the cached grant, for want of a read of the epoch
		heights(200, 400)

		// The read a wired change asks for runs in the background; it is awaited for at most
		// 2 s, well under the 4.9 s poll, so that it is the change's and not the tick's.
		readAfter := func(reads uint64) {
			t.Helper()
			deadline := time.Now().Add(2 * time.Second)
			for e.origin.Stats().EpochReads <= reads {
				if time.Now().After(deadline) {
					t.Errorf("no epoch read within 2 s of a wired change (reads still %d)", reads)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		st.OnChange(e.origin.Changed)
		reads := e.origin.Stats().EpochReads
		heights(200)
		wantStatus(t, h400, http.StatusForbidden)
		readAfter(reads)
		reads = e.origin.Stats().EpochReads
		heights(200, 400)
		wantStatus(t, h400, http.StatusOK)
		readAfter(reads)
		reads = e.origin.Stats().EpochReads
		if _, err := st.ModifyUser(ctx, e.owner.Username, func(u *tierpix.User) error { u.TierName = "Basic"; return nil }); err != nil {
			t.Fatalf("ModifyUser: %v", err)
		}
		wantStatus(t, h400, http.StatusForbidden)
		readAfter(reads)
		if s := e.origin.Stats(); s.EpochReads < 4 {
			t.Errorf("epoch reads: got %d, want one more after each wired change", s.EpochReads)
		}
	})
}
