package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestDedupHandler(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	logger := slog.New(newDedupHandler(slog.NewTextHandler(&buf, nil), 10*time.Second, func() time.Time { return now }))
	down := errors.New("dial tcp: connection refused")
	for range 500 {
		logger.Error("internal error", "path", "/api/me", "err", down)
		logger.Warn("request", "path", "/api/images", "status", 503)
	}
	for i := range 3 {
		logger.Warn("request", "path", "/api/x", "status", 404, "n", i) // 4xx lines are kept
	}
	logger.Error("internal error", "err", errors.New("another trouble"))
	if got := strings.Count(buf.String(), "\n"); got != 1+1+3+1 {
		t.Fatalf("within the interval: got %d lines, want 6:\n%s", got, buf.String())
	}
	now = now.Add(11 * time.Second)
	buf.Reset()
	logger.Error("internal error", "path", "/api/me", "err", down)
	if got := buf.String(); !strings.Contains(got, "repeated=499") {
		t.Fatalf("after the interval: got %q, want the line with repeated=499", got)
	}
}

func TestDedupHandlerBounded(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	h := newDedupHandler(slog.NewTextHandler(&buf, nil), 10*time.Second, func() time.Time { return now })
	logger := slog.New(h)
	for i := range 3 * maxDedupKeys {
		logger.Error("trouble", "err", errors.New(strings.Repeat("x", i%50)+string(rune('a'+i%26))+time.Duration(i).String()))
	}
	if n := len(h.state.seen); n > maxDedupKeys {
		t.Fatalf("table: got %d keys, want at most %d", n, maxDedupKeys)
	}
	if got := strings.Count(buf.String(), "\n"); got != 3*maxDedupKeys {
		t.Fatalf("distinct troubles: got %d lines, want every one of %d", got, 3*maxDedupKeys)
	}
}
