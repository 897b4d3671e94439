package origin

import (
	"errors"
	"sync"
)

// errAbandoned is what waiters get when the leader's fn panicked and never returned.
var errAbandoned = errors.New("shared execution panicked")

// flight makes concurrent callers with the same key share one execution of fn. It is
// golang.org/x/sync/singleflight cut down to what the origin needs, plus a count of the callers
// waiting on each key: the count makes "N requests, one render" observable to tests without
// timing, and is cheap enough to keep in production.
type flight[T any] struct {
	mu    sync.Mutex
	calls map[string]*call[T]
}

type call[T any] struct {
	done    chan struct{}
	val     T
	err     error
	waiters int // callers sharing the leader's result, the leader not included
}

// do runs fn once for all concurrent callers of key and gives each the same result. shared
// reports whether this caller waited on another's execution.
func (f *flight[T]) do(key string, fn func() (T, error)) (val T, err error, shared bool) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = make(map[string]*call[T])
	}
	if c, ok := f.calls[key]; ok {
		c.waiters++
		f.mu.Unlock()
		<-c.done
		return c.val, c.err, true
	}
	c := &call[T]{done: make(chan struct{})}
	f.calls[key] = c
	f.mu.Unlock()

	// The deferred cleanup runs even if fn panics, so waiters are never stranded (they get
	// errAbandoned); the panic itself still reaches the leader's caller.
	c.err = errAbandoned
	defer func() {
		f.mu.Lock()
		delete(f.calls, key)
		f.mu.Unlock()
		close(c.done)
	}()
	c.val, c.err = fn()
	return c.val, c.err, false
}

// waiting returns how many callers are waiting on the execution in flight for key.
func (f *flight[T]) waiting(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.calls[key]; ok {
		return c.waiters
	}
	return 0
}
