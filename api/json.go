package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"os"
	"reflect"
	"strconv"
	"strings"
	"unicode"

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

// decodeJSON reads a request's JSON object, or an HTML form standing for one, into v: a
// pointer to a struct whose fields are pointers, so that a nil field means the client left it
// out.
//
// It is strict, and every way a client can get a body wrong is a 4xx naming what is wrong:
// another media type (415), over maxJSONBytes (413), not JSON or not one object (400), a field
// the struct does not have, a null, or a value of the wrong type (400 with the field under
// errors). Fields are checked one by one so that all of them are reported at once.
//
// A form (application/x-www-form-urlencoded or multipart/form-data without files) is turned
// into the object it stands for by formFields, and then checked the same way.
func decodeJSON(ctx *fasthttp.RequestCtx, v any) error {
	known := jsonFields(reflect.TypeOf(v).Elem())
	mt, params := mediaType(ctx)
	var fields map[string]json.RawMessage
	switch {
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		body, err := readBody(ctx, maxJSONBytes)
		if err != nil {
			return err
		}
		if fields, err = jsonObject(body); err != nil {
			return err
		}
	case mt == "application/x-www-form-urlencoded":
		body, err := readBody(ctx, maxJSONBytes)
		if err != nil {
			return err
		}
		var args fasthttp.Args
		args.ParseBytes(body)
		if raw := args.Peek(rawContentField); raw != nil {
			// The browsable API's raw data form: the JSON body itself, in one field.
			if ct := string(args.Peek(rawContentTypeField)); ct != "" && ct != "application/json" {
				return tierpix.Errorf(tierpix.EUNSUPPORTED, "The raw data form sends JSON only (%s = application/json).", rawContentTypeField)
			}
			if fields, err = jsonObject(raw); err != nil {
				return err
			}
			break
		}
		values := map[string][]string{}
		args.VisitAll(func(k, v []byte) { values[string(k)] = append(values[string(k)], string(v)) })
		fields = formFields(values, known)
	case mt == "multipart/form-data":
		values, err := readSmallMultipart(ctx, params["boundary"])
		if err != nil {
			return err
		}
		fields = formFields(values, known)
	default:
		return tierpix.Errorf(tierpix.EUNSUPPORTED, "The body must be JSON, sent with Content-Type: application/json (or an HTML form).")
	}
	return decodeFields(fields, known, v)
}

// The fields of the browsable API's raw data form, as DRF names them: a JSON body sent from
// an HTML form, which cannot set a request's Content-Type itself.
const (
	rawContentField     = "_content"
	rawContentTypeField = "_content_type"
)

// jsonObject parses a body that must be one JSON object.
func jsonObject(body []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var fields map[string]json.RawMessage
	if err := dec.Decode(&fields); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr):
			return nil, tierpix.Errorf(tierpix.EINVALID, "The body must be a JSON object.")
		case errors.Is(err, io.EOF):
			return nil, tierpix.Errorf(tierpix.EINVALID, "The body is empty; a JSON object is expected.")
		case errors.As(err, &syntaxErr):
			return nil, tierpix.Errorf(tierpix.EINVALID, "The body is not valid JSON: %s (at byte %d).", syntaxErr.Error(), syntaxErr.Offset)
		default:
			return nil, tierpix.Errorf(tierpix.EINVALID, "The body is not valid JSON.")
		}
	}
	if fields == nil {
		return nil, tierpix.Errorf(tierpix.EINVALID, "The body must be a JSON object.")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, tierpix.Errorf(tierpix.EINVALID, "The body must hold one JSON object and nothing after it.")
	}
	return fields, nil
}

// decodeFields checks each field of a request object against the struct's fields, then
// decodes the object into v.
func decodeFields(fields map[string]json.RawMessage, known map[string]reflect.Type, v any) error {
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
	body, err := json.Marshal(fields)
	if err == nil {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		return tierpix.Errorf(tierpix.EINVALID, "The body does not match this endpoint's fields.")
	}
	return nil
}

// readBody reads a small request body whole, refusing more than limit bytes. With
// StreamRequestBody the body is still on the connection, so it is read through a limit
// instead of trusting Content-Length. A declared length over the limit is read up to the
// limit all the same: that costs at most limit bytes, and leaves fasthttp little enough to
// discard that a client which overshoots gets its 413 on a connection that stays usable.
//
// The body read is kept on ctx, so that the CSRF check and the handler can both read a form.
func readBody(ctx *fasthttp.RequestCtx, limit int) ([]byte, error) {
	if body, ok := ctx.UserValue(ctxBody).([]byte); ok {
		return body, nil
	}
	body, err := readBodyOnce(ctx, limit)
	if err != nil {
		return nil, err
	}
	ctx.SetUserValue(ctxBody, body)
	return body, nil
}

func readBodyOnce(ctx *fasthttp.RequestCtx, limit int) ([]byte, error) {
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
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The body stopped coming within the server's body timeout (see serve).
		ctx.SetConnectionClose()
		return nil, tierpix.Errorf(tierpix.ETIMEOUT, "The request body was not received in time.")
	}
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

// mediaType returns the request's media type, lower case, and its parameters.
func mediaType(ctx *fasthttp.RequestCtx) (string, map[string]string) {
	mt, params, err := mime.ParseMediaType(string(ctx.Request.Header.ContentType()))
	if err != nil {
		return "", nil
	}
	return mt, params
}

// readSmallMultipart reads a multipart/form-data body of at most maxJSONBytes that holds
// fields only: an HTML form posted to a route that takes JSON.
func readSmallMultipart(ctx *fasthttp.RequestCtx, boundary string) (map[string][]string, error) {
	if boundary == "" {
		return nil, tierpix.Errorf(tierpix.EINVALID, "The multipart/form-data Content-Type has no boundary.")
	}
	body, err := readBody(ctx, maxJSONBytes)
	if err != nil {
		return nil, err
	}
	form, err := multipart.NewReader(bytes.NewReader(body), boundary).ReadForm(maxJSONBytes)
	if err != nil {
		return nil, tierpix.Errorf(tierpix.EINVALID, "The multipart body is malformed or was cut off.")
	}
	defer form.RemoveAll() //nolint:errcheck // nothing was spilled to disk: the body is small
	if len(form.File) > 0 {
		return nil, tierpix.Errorf(tierpix.EINVALID, "This endpoint takes no files.")
	}
	return form.Value, nil
}

// formFields turns the values of an HTML form into the JSON object it stands for, by the types
// of the request's fields: an integer from its digits, a boolean from true/false/on/off/1/0
// (a checkbox sends "on"), an array of integers from comma- or space-separated values or
// repeated fields, and anything else as a string. An empty value means the field was left
// out, so a form's blank optional inputs change nothing; csrf_token is the CSRF check's. A
// value that does not convert is passed on as a string, so decodeFields reports it under its
// field like a JSON value of the wrong type.
func formFields(values map[string][]string, known map[string]reflect.Type) map[string]json.RawMessage {
	fields := make(map[string]json.RawMessage, len(values))
	for name, vs := range values {
		if name == csrfField || len(vs) == 0 {
			continue
		}
		raw := vs[len(vs)-1]
		last := strings.TrimSpace(raw)
		t, ok := known[name]
		if !ok {
			if last != "" {
				fields[name] = quote(last)
			}
			continue
		}
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch {
		case t.Kind() == reflect.String:
			// Kept as typed: spaces may belong to a password.
			if raw != "" {
				fields[name] = quote(raw)
			}
		case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Int:
			var items []string
			for _, v := range vs {
				items = append(items, strings.FieldsFunc(v, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })...)
			}
			if len(items) == 0 {
				continue
			}
			nums := make([]int, 0, len(items))
			for _, it := range items {
				n, err := strconv.Atoi(it)
				if err != nil {
					nums = nil
					break
				}
				nums = append(nums, n)
			}
			if nums == nil {
				fields[name] = quote(strings.Join(items, ","))
			} else {
				fields[name], _ = json.Marshal(nums)
			}
		case last == "":
			continue
		case t.Kind() == reflect.Int:
			if _, err := strconv.ParseInt(last, 10, 64); err == nil {
				fields[name] = json.RawMessage(last)
			} else {
				fields[name] = quote(last)
			}
		case t.Kind() == reflect.Bool:
			switch strings.ToLower(last) {
			case "true", "on", "1", "yes":
				fields[name] = json.RawMessage("true")
			case "false", "off", "0", "no":
				fields[name] = json.RawMessage("false")
			default:
				fields[name] = quote(last)
			}
		default:
			fields[name] = quote(last)
		}
	}
	return fields
}

func quote(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}
