package tierpix

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. Each maps to one HTTP status in package problem.
const (
	EINVALID       = "invalid"       // 400: the request is malformed or a field is wrong
	EUNAUTHORIZED  = "unauthorized"  // 401: no or wrong credentials
	EFORBIDDEN     = "forbidden"     // 403: authenticated, but not allowed
	ENOTFOUND      = "not_found"     // 404
	ECONFLICT      = "conflict"      // 409: clashes with existing state
	EGONE          = "gone"          // 410: an expired link
	ETOOLARGE      = "too_large"     // 413: the body is over the size cap
	EUNSUPPORTED   = "unsupported"   // 415: not a PNG or JPEG
	EUNPROCESSABLE = "unprocessable" // 422: a PNG or JPEG that cannot be accepted (corrupt, too many pixels)
	ETIMEOUT       = "timeout"       // 408: the client stopped sending its request
	ETOOMANY       = "too_many"      // 429: throttled (too many failed sign-ins); retry later
	EUNAVAILABLE   = "unavailable"   // 503: overloaded, or a dependency is down; retry later
	ESTORAGE       = "storage"       // 507: the data dir is (nearly) full
	EINTERNAL      = "internal"      // 500: a bug or an infrastructure failure; details are logged, not shown
)

// Error is the one error type that crosses package boundaries with a meaning for clients.
// Message is safe to show to a client; Fields holds per-field messages for EINVALID.
// Any error that is not an *Error is internal.
type Error struct {
	Code    string
	Message string
	Fields  map[string]string
	// RetryAfter, when positive, is sent as Retry-After (whole seconds, rounded up) with a
	// 429, 503 or 507; those statuses get a default when it is zero.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if len(e.Fields) == 0 {
		return fmt.Sprintf("tierpix error: code=%s message=%s", e.Code, e.Message)
	}
	return fmt.Sprintf("tierpix error: code=%s message=%s fields=%v", e.Code, e.Message, e.Fields)
}

// Errorf returns an *Error with a formatted, client-safe message.
func Errorf(code string, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EINVALID error about one field.
func Invalid(field, message string) *Error {
	return &Error{Code: EINVALID, Message: "The request has invalid fields.", Fields: map[string]string{field: message}}
}

// ErrorCode returns the code of err, EINTERNAL for errors that are not *Error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of err; internal errors get a generic one.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}

// ErrorFields returns the per-field messages of err, if any.
func ErrorFields(err error) map[string]string {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}

// Unavailable returns an EUNAVAILABLE error: a dependency (the database, the disk) is in
// trouble or the server is at a limit, and the client should retry after retryAfter.
func Unavailable(retryAfter time.Duration, format string, args ...any) *Error {
	return &Error{Code: EUNAVAILABLE, Message: fmt.Sprintf(format, args...), RetryAfter: retryAfter}
}

// ErrorRetryAfter returns the Retry-After of err, 0 when it names none.
func ErrorRetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
