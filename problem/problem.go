// Package problem writes RFC 9457 problem details (application/problem+json) over fasthttp.
// It holds the one table that maps tierpix error codes to HTTP statuses, so the API, the origin
// and the server's own error handler answer errors alike.
package problem

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/valyala/fasthttp"
)

// ContentType is the media type of every error body.
const ContentType = "application/problem+json"

var statuses = map[string]int{
	tierpix.EINVALID:       http.StatusBadRequest,
	tierpix.EUNAUTHORIZED:  http.StatusUnauthorized,
	tierpix.EFORBIDDEN:     http.StatusForbidden,
	tierpix.ENOTFOUND:      http.StatusNotFound,
	tierpix.ECONFLICT:      http.StatusConflict,
	tierpix.EGONE:          http.StatusGone,
	tierpix.ETOOLARGE:      http.StatusRequestEntityTooLarge,
	tierpix.EUNSUPPORTED:   http.StatusUnsupportedMediaType,
	tierpix.EUNPROCESSABLE: http.StatusUnprocessableEntity,
	tierpix.ETIMEOUT:       http.StatusRequestTimeout,
	tierpix.ETOOMANY:       http.StatusTooManyRequests,
	tierpix.EUNAVAILABLE:   http.StatusServiceUnavailable,
	tierpix.ESTORAGE:       http.StatusInsufficientStorage,
	tierpix.EINTERNAL:      http.StatusInternalServerError,
}

// Status returns the HTTP status for a tierpix error code (500 for unknown codes).
func Status(code string) int {
	if s, ok := statuses[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Details is the body of a problem response.
type Details struct {
	Type   string            `json:"type"`
	Title  string            `json:"title"`
	Status int               `json:"status"`
	Detail string            `json:"detail,omitempty"`
	Errors map[string]string `json:"errors,omitempty"`
}

// Write answers with a problem document. Responses to errors are never cached.
func Write(ctx *fasthttp.RequestCtx, status int, detail string, fields map[string]string) {
	d := Details{
		Type:   "about:blank",
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
		Errors: fields,
	}
	body, _ := json.Marshal(d)
	body = append(body, '\n')
	ctx.SetUserValue(writtenKey, &d)
	ctx.Response.ResetBody()
	ctx.SetStatusCode(status)
	ctx.SetContentType(ContentType)
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.SetBody(body)
}

// writtenKey holds the last problem Write answered on a request, for Written.
const writtenKey = "tierpix.problem"

// Written returns the problem document answered on ctx, or nil: the browsable API shows it
// as a typed value rather than parsing the body back.
func Written(ctx *fasthttp.RequestCtx) *Details {
	d, _ := ctx.UserValue(writtenKey).(*Details)
	return d
}

// Error answers with the problem that err stands for. Internal errors are logged with their
// detail and shown to the client as a generic message.
func Error(ctx *fasthttp.RequestCtx, logger *slog.Logger, err error) {
	code := tierpix.ErrorCode(err)
	if code == tierpix.EINTERNAL {
		logger.Error("internal error", "method", string(ctx.Method()), "path", string(ctx.Path()), "err", err)
	}
	var e *tierpix.Error
	var fields map[string]string
	if errors.As(err, &e) {
		fields = e.Fields
	}
	status := Status(code)
	switch status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusInsufficientStorage:
		SetRetryAfter(ctx, tierpix.ErrorRetryAfter(err))
	}
	Write(ctx, status, tierpix.ErrorMessage(err), fields)
}

// DefaultRetryAfter is the Retry-After of a 429, 503 or 507 whose error names none.
const DefaultRetryAfter = time.Second

// SetRetryAfter sets Retry-After to d in whole seconds, rounded up (DefaultRetryAfter when d
// is not positive).
func SetRetryAfter(ctx *fasthttp.RequestCtx, d time.Duration) {
	if d <= 0 {
		d = DefaultRetryAfter
	}
	secs := int64((d + time.Second - 1) / time.Second)
	ctx.Response.Header.Set("Retry-After", strconv.FormatInt(secs, 10))
}
