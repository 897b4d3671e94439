package main

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// dedupHandler logs a repeated trouble once per interval with a count, so that an outage (a
// database down, a disk full) fills the log with a line per 10 s rather than one per request.
// Records at Warn or above that carry an "err" attribute, or a "status" of 500 or more, are
// the same when their level, message, err and status are; a repeat within every of the first
// is dropped and counted, and the next one logged after it says how many were dropped
// ("repeated"). Everything else passes untouched: a 4xx request line names its own path.
type dedupHandler struct {
	next  slog.Handler
	state *dedupState
}

type dedupState struct {
	every time.Duration
	now   func() time.Time
	mu    sync.Mutex
	seen  map[string]*dedupEntry
}

type dedupEntry struct {
	since   time.Time // when the last logged one was logged
	dropped int       // repeats dropped since then
}

// maxDedupKeys bounds the table: past it, entries older than the interval are swept, and a
// new kind of record that still finds no room is logged as it is.
const maxDedupKeys = 1000

func newDedupHandler(next slog.Handler, every time.Duration, now func() time.Time) *dedupHandler {
	return &dedupHandler{next: next, state: &dedupState{every: every, now: now, seen: make(map[string]*dedupEntry)}}
}

func (h *dedupHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *dedupHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &dedupHandler{next: h.next.WithAttrs(as), state: h.state}
}

func (h *dedupHandler) WithGroup(name string) slog.Handler {
	return &dedupHandler{next: h.next.WithGroup(name), state: h.state}
}

func (h *dedupHandler) Handle(ctx context.Context, r slog.Record) error {
	key, ok := dedupKey(r)
	if !ok {
		return h.next.Handle(ctx, r)
	}
	dropped, log := h.state.note(key)
	if !log {
		return nil
	}
	if dropped > 0 {
		r.AddAttrs(slog.Int("repeated", dropped))
	}
	return h.next.Handle(ctx, r)
}

// dedupKey returns what makes two records the same trouble, and whether r is one to dedupe.
func dedupKey(r slog.Record) (string, bool) {
	if r.Level < slog.LevelWarn {
		return "", false
	}
	var errText string
	status := 0
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "err":
			errText = a.Value.String()
		case "status":
			if a.Value.Kind() == slog.KindInt64 {
				status = int(a.Value.Int64())
			}
		}
		return true
	})
	if errText == "" && status < 500 {
		return "", false
	}
	return r.Level.String() + "\x00" + r.Message + "\x00" + errText + "\x00" + strconv.Itoa(status), true
}

// note counts a record of key and says whether to log it, and how many were dropped before it.
func (s *dedupState) note(key string) (dropped int, log bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.seen[key]
	if ok && now.Sub(e.since) < s.every {
		e.dropped++
		return 0, false
	}
	if ok {
		dropped = e.dropped
		e.since, e.dropped = now, 0
		return dropped, true
	}
	if len(s.seen) >= maxDedupKeys {
		for k, v := range s.seen {
			if now.Sub(v.since) >= s.every {
				delete(s.seen, k)
			}
		}
		if len(s.seen) >= maxDedupKeys {
			return 0, true
		}
	}
	s.seen[key] = &dedupEntry{since: now}
	return 0, true
}
