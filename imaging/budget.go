package imaging

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tierpix/tierpix"
)

// Defaults of a decode budget.
const (
	// DefaultDecodeBudget keeps the decodes of one process within 768 MiB, so that with its
	// caches and runtime the whole process stays under 1 GiB on a small machine: one 50 MP
	// image that must be decoded at full size (an interlaced 16-bit PNG, a progressive JPEG)
	// at a time, or many ordinary ones.
	DefaultDecodeBudget = 768 << 20
	DefaultDecodeQueue  = 64
	DefaultDecodeWait   = 20 * time.Second
)

// budgetRetryAfter is the Retry-After of a job refused for want of decode memory.
const budgetRetryAfter = 2 * time.Second

// Budget admits decodes (validations and renders) against one amount of memory: a job takes
// its estimated cost (see DecodeCost) before any pixel is decoded and gives it back when it
// is done. Jobs that do not fit wait in first-come order, so a large job is never starved by
// a stream of small ones; past queue waiting jobs, or after waiting wait, a job is refused
// (EUNAVAILABLE, 503 with Retry-After), and a job larger than the whole budget is refused at
// once (EUNPROCESSABLE, 422). A nil *Budget admits everything.
type Budget struct {
	total int64
	queue int
	wait  time.Duration

	mu      sync.Mutex
	used    int64
	waiters []*budgetWaiter

	refused, tooLarge uint64
}

type budgetWaiter struct {
	cost  int64
	ready chan struct{} // closed when the cost is granted
}

// NewBudget returns a budget of total bytes with at most queue jobs waiting, each for at
// most wait. Zero values take the defaults.
func NewBudget(total int64, queue int, wait time.Duration) *Budget {
	if total <= 0 {
		total = DefaultDecodeBudget
	}
	if queue <= 0 {
		queue = DefaultDecodeQueue
	}
	if wait <= 0 {
		wait = DefaultDecodeWait
	}
	return &Budget{total: total, queue: queue, wait: wait}
}

// BudgetStats is a budget's state, for metrics.
type BudgetStats struct {
	Total, Used int64
	Waiting     int
	Refused     uint64 // refused for a full queue or a wait that ran out
	TooLarge    uint64 // refused for a cost larger than the whole budget
}

// Stats returns the budget's state.
func (b *Budget) Stats() BudgetStats {
	if b == nil {
		return BudgetStats{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return BudgetStats{Total: b.total, Used: b.used, Waiting: len(b.waiters), Refused: b.refused, TooLarge: b.tooLarge}
}

// Acquire takes cost bytes of the budget, waiting its turn, and returns the function that
// gives them back (call it once).
func (b *Budget) Acquire(ctx context.Context, cost int64) (release func(), err error) {
	if b == nil {
		return func() {}, nil
	}
	cost = max(cost, 1)
	b.mu.Lock()
	if cost > b.total {
		b.tooLarge++
		b.mu.Unlock()
		msg := fmt.Sprintf("Decoding this image would need %d MiB of memory, more than the server's %d MiB decode budget.", cost>>20, b.total>>20)
		return nil, &tierpix.Error{Code: tierpix.EUNPROCESSABLE, Message: msg, Fields: map[string]string{"image": msg}}
	}
	if len(b.waiters) == 0 && b.used+cost <= b.total {
		b.used += cost
		b.mu.Unlock()
		return b.releaser(cost), nil
	}
	if len(b.waiters) >= b.queue {
		b.refused++
		b.mu.Unlock()
		return nil, b.busy()
	}
	w := &budgetWaiter{cost: cost, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()

	t := time.NewTimer(b.wait)
	defer t.Stop()
	select {
	case <-w.ready:
		return b.releaser(cost), nil
	case <-t.C:
		err = b.busy()
	case <-ctx.Done():
		err = ctx.Err()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // granted meanwhile: take it after all
		return b.releaser(cost), nil
	default:
	}
	for i, x := range b.waiters {
		if x == w {
			b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
			break
		}
	}
	b.refused++
	b.grantLocked() // the head may have been this job, holding back smaller ones behind it
	return nil, err
}

func (b *Budget) busy() error {
	return tierpix.Unavailable(budgetRetryAfter, "The server is decoding as many images as its memory allows; retry shortly.")
}

func (b *Budget) releaser(cost int64) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			b.used -= cost
			b.grantLocked()
			b.mu.Unlock()
		})
	}
}

// grantLocked admits waiting jobs in order while the first of them fits.
func (b *Budget) grantLocked() {
	for len(b.waiters) > 0 && b.used+b.waiters[0].cost <= b.total {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.used += w.cost
		close(w.ready)
	}
}
