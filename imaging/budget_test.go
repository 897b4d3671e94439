package imaging

import (
	"context"
	"testing"
	"time"

	"github.com/tierpix/tierpix"
)

func TestBudget(t *testing.T) {
	t.Run("admits within the total", func(t *testing.T) {
		b := NewBudget(100, 4, time.Second)
		r1, err1 := b.Acquire(t.Context(), 60)
		r2, err2 := b.Acquire(t.Context(), 40)
		if err1 != nil || err2 != nil {
			t.Fatalf("got %v, %v; want both admitted", err1, err2)
		}
		if st := b.Stats(); st.Used != 100 {
			t.Fatalf("used: got %d, want 100", st.Used)
		}
		r1()
		r1() // a second release gives nothing back twice
		r2()
		if st := b.Stats(); st.Used != 0 {
			t.Fatalf("used after release: got %d, want 0", st.Used)
		}
	})
	t.Run("over the whole budget is 422", func(t *testing.T) {
		b := NewBudget(100, 4, time.Second)
		_, err := b.Acquire(t.Context(), 101)
		if tierpix.ErrorCode(err) != tierpix.EUNPROCESSABLE {
			t.Fatalf("got %v, want %q", err, tierpix.EUNPROCESSABLE)
		}
	})
	t.Run("a full queue is 503 at once", func(t *testing.T) {
		b := NewBudget(100, 1, time.Minute)
		release, _ := b.Acquire(t.Context(), 100)
		defer release()
		go b.Acquire(context.Background(), 10) //nolint:errcheck // waits in the one place
		waitUntil(t, func() bool { return b.Stats().Waiting == 1 })
		start := time.Now()
		_, err := b.Acquire(t.Context(), 10)
		if tierpix.ErrorCode(err) != tierpix.EUNAVAILABLE || tierpix.ErrorRetryAfter(err) <= 0 {
			t.Fatalf("got %v, want %q with Retry-After", err, tierpix.EUNAVAILABLE)
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("refused after %v, want at once", took)
		}
	})
	t.Run("a wait that runs out is 503", func(t *testing.T) {
		b := NewBudget(100, 4, 50*time.Millisecond)
		release, _ := b.Acquire(t.Context(), 100)
		defer release()
		_, err := b.Acquire(t.Context(), 10)
		if tierpix.ErrorCode(err) != tierpix.EUNAVAILABLE {
			t.Fatalf("got %v, want %q", err, tierpix.EUNAVAILABLE)
		}
		if st := b.Stats(); st.Waiting != 0 || st.Refused != 1 {
			t.Fatalf("stats: got %+v, want nobody waiting and 1 refused", st)
		}
	})
	t.Run("first come, first served", func(t *testing.T) {
		b := NewBudget(100, 4, time.Minute)
		release, _ := b.Acquire(t.Context(), 60)
		big := make(chan func(), 1)
		go func() { r, _ := b.Acquire(context.Background(), 100); big <- r }()
		waitUntil(t, func() bool { return b.Stats().Waiting == 1 })
		small := make(chan func(), 1)
		go func() { r, _ := b.Acquire(context.Background(), 10); small <- r }()
		waitUntil(t, func() bool { return b.Stats().Waiting == 2 })
		// 10 would fit beside 60, but the big job came first: it goes first.
		release()
		rb := <-big
		select {
		case <-small:
			t.Fatal("the small job went while the big one held the budget")
		case <-time.After(50 * time.Millisecond):
		}
		rb()
		(<-small)()
		if st := b.Stats(); st.Used != 0 || st.Waiting != 0 {
			t.Fatalf("stats: got %+v, want all given back", st)
		}
	})
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}
