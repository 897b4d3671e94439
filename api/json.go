package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"reflect"
	"strings"

	"github.com/tierpix/tierpix"
	"github.com/valyala/fasthttp"
)

// jsonMarshal encodes v without HTML escaping: responses are JSON for API clients, and
// escaping would turn the '&' of every next-page URL into \u0026. The trailing newline keeps
// curl output readable.
func jsonMarshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decodeJSON reads a request's JSON object into v, a pointer to a struct whose fields are
// pointers, so that a nil field means the client left it out.
//
// It is strict, and every way a client can get a body wrong is a 4xx naming what is wrong:
// another media type (415), over maxJSONBytes (413), not JSON or not one object (400), a field
// the struct does not have, a null, or a value of the wrong type (400 with the field under
// errors). Fields are checked one by one so that all of them are reported at once.
func decodeJSON(ctx *fasthttp.RequestCtx, v any) error {
	mt, _, err := mime.ParseMediaType(string(ctx.Request.Header.ContentType()))
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return tierpix.Errorf(tierpix.EUNSUPPORTED, "The body must be JSON, sent with Content-Type: application/json.")
	}
	body, err := readBody(ctx, maxJSONBytes)
	if err != nil {
		return err
	}

	dec := json.NewDecoder(bytes.NewReader(body))
	var fields map[string]json.RawMessage
	if err := dec.Decode(&fields); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr):
			return tierpix.Errorf(tierpix.EINVALID, "The body must be a JSON object.")
		case errors.Is(err, io.EOF):
			return tierpix.Errorf(tierpix.EINVALID, "The body is empty; a JSON object is expected.")
		case errors.As(err, &syntaxErr):
			return tierpix.Errorf(tierpix.EINVALID, "The body is not valid JSON: %s (at byte %d).", syntaxErr.Error(), syntaxErr.Offset)
		default:
			return tierpix.Errorf(tierpix.EINVALID, "The body is not valid JSON.")
		}
	}
	if fields == nil {
		return tierpix.Errorf(tierpix.EINVALID, "The body must be a JSON object.")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return tierpix.Errorf(tierpix.EINVALID, "The body must hold one JSON object and nothing after it.")
	}

	known := jsonFields(reflect.TypeOf(v).Elem())
	problems := map[string]string{}
	unknown := false
	for name, raw := range fields {
		t, ok := known[name]
		if !ok {
			problems[name] = "is not a field of this request"
			unknown = true
			continue
		}
		if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			problems[name] = "must not be null"
			continue
		}
		if err := json.Unmarshal(raw, reflect.New(t).Interface()); err != nil {
			problems[name] = describeType(t)
		}
	}
	if len(problems) > 0 {
		msg := "The request has invalid fields."
		if unknown {
			msg = "The request has fields this endpoint does not take."
		}
		return &tierpix.Error{Code: tierpix.EINVALID, Message: msg, Fields: problems}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return tierpix.Errorf(tierpix.EINVALID, "The body does not match this endpoint's fields.")
	}
	return nil
}

// readBody reads a small request body whole, refusing more than limit bytes. With
// StreamRequestBody the body is still on the connection, so it is read through a limit
// instead of trusting Content-Length. A declared length over the limit is read up to the
// limit all the same: that costs at most limit bytes, and leaves fasthttp little enough to
// discard that a client which overshoots gets its 413 on a connection that stays usable.
func readBody(ctx *fasthttp.RequestCtx, limit int) ([]byte, error) {
	tooLarge := tierpix.Errorf(tierpix.ETOOLARGE, "The body is larger than the %d-byte limit.", limit)
	stream := ctx.RequestBodyStream()
	if stream == nil {
		body := ctx.Request.Body()
		if len(body) > limit {
			return nil, tooLarge
		}
		return body, nil
	}
	body, err := io.ReadAll(io.LimitReader(stream, int64(limit)+1))
	if err != nil {
		return nil, tierpix.Errorf(tierpix.EINVALID, "The request body could not be read in full.")
	}
	if len(body) > limit {
		return nil, tooLarge
	}
	return body, nil
}

// jsonFields maps the JSON names of a struct's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	return m
}

// describeType says what a JSON value of type t must look like, for a field's error message.
func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "must be an integer"
	case reflect.Bool:
		return "must be true or false"
	case reflect.String:
		return "must be a string"
	case reflect.Slice:
		if d := describeType(t.Elem()); strings.HasPrefix(d, "must be an integer") {
			return "must be an array of integers"
		}
		return "must be an array"
	}
	return fmt.Sprintf("has the wrong type for %s", t)
}
