package problem_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/problem"
	"github.com/valyala/fasthttp"
)

func TestError(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		detail     string
		fields     map[string]string
		retryAfter string
	}{
		{name: "invalid with fields", err: tierpix.Invalid("limit", "too big"), status: 400, detail: "The request has invalid fields.", fields: map[string]string{"limit": "too big"}},
		{name: "not found, wrapped", err: fmt.Errorf("find: %w", tierpix.Errorf(tierpix.ENOTFOUND, "No such image.")), status: 404, detail: "No such image."},
		{name: "gone", err: tierpix.Errorf(tierpix.EGONE, "Expired."), status: 410, detail: "Expired."},
		{name: "too large", err: tierpix.Errorf(tierpix.ETOOLARGE, "Big."), status: 413, detail: "Big."},
		{name: "unsupported", err: tierpix.Errorf(tierpix.EUNSUPPORTED, "GIF."), status: 415, detail: "GIF."},
		{name: "unprocessable", err: tierpix.Errorf(tierpix.EUNPROCESSABLE, "Corrupt."), status: 422, detail: "Corrupt."},
		{name: "unavailable says when to retry", err: tierpix.Errorf(tierpix.EUNAVAILABLE, "Busy."), status: 503, detail: "Busy.", retryAfter: "1"},
		{name: "internal hides its detail", err: errors.New("secret path /var/x"), status: 500, detail: "Internal error."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs strings.Builder
			logger := slog.New(slog.NewTextHandler(&logs, nil))
			var ctx fasthttp.RequestCtx
			problem.Error(&ctx, logger, tt.err)

			if got := ctx.Response.StatusCode(); got != tt.status {
				t.Fatalf("status: got %d, want %d", got, tt.status)
			}
			if got := string(ctx.Response.Header.ContentType()); got != problem.ContentType {
				t.Fatalf("content type: got %q, want %q", got, problem.ContentType)
			}
			if got := string(ctx.Response.Header.Peek("Cache-Control")); got != "no-store" {
				t.Fatalf("cache control: got %q, want no-store", got)
			}
			if got := string(ctx.Response.Header.Peek("Retry-After")); got != tt.retryAfter {
				t.Fatalf("retry-after: got %q, want %q", got, tt.retryAfter)
			}
			var d problem.Details
			if err := json.Unmarshal(ctx.Response.Body(), &d); err != nil {
				t.Fatalf("body %q: %v", ctx.Response.Body(), err)
			}
			if d.Status != tt.status || d.Detail != tt.detail || d.Title == "" || d.Type != "about:blank" {
				t.Fatalf("body: got %+v, want status %d detail %q", d, tt.status, tt.detail)
			}
			if fmt.Sprint(d.Errors) != fmt.Sprint(tt.fields) && !(len(d.Errors) == 0 && len(tt.fields) == 0) {
				t.Fatalf("errors: got %v, want %v", d.Errors, tt.fields)
			}
			if logged := strings.Contains(logs.String(), "secret path"); logged != (tt.status == 500) {
				t.Fatalf("internal detail logged: got %v, want %v (log %q)", logged, tt.status == 500, logs.String())
			}
		})
	}
}
