package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestAuthentication(t *testing.T) {
	ts := newTestServer(t, Config{})
	tok := ts.doJSON(t, http.MethodPost, "/api/admin/users/alice/tokens", asAdmin, nil)
	tok.wantStatus(t, http.StatusCreated)
	var token struct{ Token string }
	tok.decode(t, &token)

	raw := func(h string) auth { return func(r *http.Request) { r.Header.Set("Authorization", h) } }
	tests := []struct {
		name string
		as   auth
		want int
	}{
		{name: "no credentials", as: noAuth, want: http.StatusUnauthorized},
		{name: "unknown scheme", as: raw("Digest username=alice"), want: http.StatusUnauthorized},
		{name: "wrong password", as: basic("alice", "wrong-password"), want: http.StatusUnauthorized},
		{name: "unknown user", as: basic("nobody", userPassword), want: http.StatusUnauthorized},
		{name: "invalid username", as: basic("no body!", userPassword), want: http.StatusUnauthorized},
		{name: "basic without colon", as: raw("Basic YWxpY2U="), want: http.StatusUnauthorized},
		{name: "basic not base64", as: raw("Basic !!!"), want: http.StatusUnauthorized},
		{name: "unknown token", as: bearer("tpx_nope"), want: http.StatusUnauthorized},
		{name: "empty bearer", as: raw("Bearer "), want: http.StatusUnauthorized},
		{name: "basic", as: asAlice, want: http.StatusOK},
		{name: "basic lower-case scheme", as: raw(strings.Replace(basicHeader("alice", userPassword), "Basic", "basic", 1)), want: http.StatusOK},
		{name: "bearer", as: bearer(token.Token), want: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(t, http.MethodGet, "/api/me", tt.as, "", nil)
			if tt.want == http.StatusUnauthorized {
				r.wantProblem(t, http.StatusUnauthorized)
				if got := r.header.Get("WWW-Authenticate"); got != wwwAuthenticate {
					t.Errorf("WWW-Authenticate: got %q, want %q", got, wwwAuthenticate)
				}
				return
			}
			r.wantStatus(t, tt.want)
			var me struct{ Username string }
			r.decode(t, &me)
			if me.Username != "alice" {
				t.Errorf("username: got %q, want alice", me.Username)
			}
		})
	}
}

func TestMe(t *testing.T) {
	ts := newTestServer(t, Config{})
	tests := []struct {
		name string
		as   auth
		want string
	}{
		{name: "basic tier", as: asAlice, want: `{"username":"alice","is_admin":false,"tier":{"name":"Basic","thumbnail_heights":[200],"original_link":false,"expiring_links":false,"builtin":true}}`},
		{name: "enterprise tier", as: asErin, want: `{"username":"erin","is_admin":false,"tier":{"name":"Enterprise","thumbnail_heights":[200,400],"original_link":true,"expiring_links":true,"builtin":true}}`},
		{name: "admin", as: asAdmin, want: `{"username":"admin","is_admin":true,"tier":{"name":"Basic","thumbnail_heights":[200],"original_link":false,"expiring_links":false,"builtin":true}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(t, http.MethodGet, "/api/me", tt.as, "", nil)
			r.wantStatus(t, http.StatusOK)
			r.wantHeaders(t, jsonHeaders)
			if strings.TrimSuffix(string(r.body), "\n") != tt.want {
				t.Errorf("body: got %s, want %s", r.body, tt.want)
			}
		})
	}
}

func TestRouting(t *testing.T) {
	ts := newTestServer(t, Config{})

	t.Run("healthz", func(t *testing.T) {
		r := ts.do(t, http.MethodGet, "/healthz", noAuth, "", nil)
		r.wantStatus(t, http.StatusOK)
		r.wantHeaders(t, jsonHeaders)
		if want := `{"checks":{"database":"ok","disk":"ok","originals":"ok"},"status":"ok"}`; strings.TrimSuffix(string(r.body), "\n") != want {
			t.Errorf("body: got %s, want %s", r.body, want)
		}
	})
	t.Run("HEAD of a GET route", func(t *testing.T) {
		get := ts.do(t, http.MethodGet, "/api/me", asAlice, "", nil)
		head := ts.do(t, http.MethodHead, "/api/me", asAlice, "", nil)
		head.wantStatus(t, http.StatusOK)
		if len(head.body) != 0 {
			t.Errorf("HEAD body: got %d bytes, want none", len(head.body))
		}
		for _, h := range []string{"Content-Type", "Content-Length", "Cache-Control"} {
			if got, want := head.header.Get(h), get.header.Get(h); got != want {
				t.Errorf("HEAD %s: got %q, want %q as for GET", h, got, want)
			}
		}
	})
	t.Run("unknown path", func(t *testing.T) {
		ts.do(t, http.MethodGet, "/api/nothing-here", asAlice, "", nil).wantProblem(t, http.StatusNotFound)
	})
	t.Run("wrong method", func(t *testing.T) {
		r := ts.do(t, http.MethodPut, "/api/images", asAlice, "", nil)
		r.wantProblem(t, http.StatusMethodNotAllowed)
		allow := strings.Split(strings.ReplaceAll(r.header.Get("Allow"), " ", ""), ",")
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			if !slices.Contains(allow, m) {
				t.Errorf("Allow: got %v, want it to contain %s", allow, m)
			}
		}
	})
	t.Run("unparsable request", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")); err != nil {
			t.Fatalf("write: %v", err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("read response: %v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("got %d %q, want 400 application/problem+json", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	})
}

func TestErrorHandler(t *testing.T) {
	ts := newTestServer(t, Config{})
	tests := []struct {
		name string
		err  error
		want int
	}{
		{name: "body too large", err: fasthttp.ErrBodyTooLarge, want: http.StatusRequestEntityTooLarge},
		{name: "wrapped body too large", err: errors.Join(errors.New("read"), fasthttp.ErrBodyTooLarge), want: http.StatusRequestEntityTooLarge},
		{name: "headers too large", err: &fasthttp.ErrSmallBuffer{}, want: http.StatusRequestHeaderFieldsTooLarge},
		{name: "other parse error", err: errors.New("cannot parse request line"), want: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			ts.api.ErrorHandler(&ctx, tt.err)
			if got := ctx.Response.StatusCode(); got != tt.want {
				t.Errorf("status: got %d, want %d", got, tt.want)
			}
			if got := string(ctx.Response.Header.ContentType()); got != "application/problem+json" {
				t.Errorf("content type: got %q, want application/problem+json", got)
			}
			var p problemBody
			if err := json.Unmarshal(ctx.Response.Body(), &p); err != nil || p.Status != tt.want {
				t.Errorf("body: got %s (%v), want a problem with status %d", ctx.Response.Body(), err, tt.want)
			}
		})
	}
}

func TestMaxRequestBodySize(t *testing.T) {
	ts := newTestServer(t, Config{MaxUploadBytes: 1000})
	if got, want := ts.api.MaxRequestBodySize(), 1000+multipartSlack; got != want {
		t.Errorf("got %d, want %d", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{name: "defaults", cfg: Config{PublicURL: "http://127.0.0.1:8080"}},
		{name: "trailing slash", cfg: Config{PublicURL: "https://img.example.com/base/"}},
		{name: "no public URL", cfg: Config{}, wantErr: true},
		{name: "relative public URL", cfg: Config{PublicURL: "/images"}, wantErr: true},
		{name: "other scheme", cfg: Config{PublicURL: "ftp://example.com"}, wantErr: true},
		{name: "query in public URL", cfg: Config{PublicURL: "http://example.com/?a=b"}, wantErr: true},
		{name: "negative upload cap", cfg: Config{PublicURL: "http://x", MaxUploadBytes: -1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err != nil) != tt.wantErr {
				t.Errorf("got %v, want error: %t", err, tt.wantErr)
			}
		})
	}
}

func TestJSONBodies(t *testing.T) {
	ts := newTestServer(t, Config{})
	tests := []struct {
		name        string
		contentType string
		body        string
		want        int
		field       string
	}{
		{name: "not JSON media type", contentType: "text/plain", body: `{"name":"Gold"}`, want: http.StatusUnsupportedMediaType},
		{name: "no media type", contentType: "", body: `{"name":"Gold"}`, want: http.StatusUnsupportedMediaType},
		{name: "invalid JSON", contentType: jsonType, body: `{"name":`, want: http.StatusBadRequest},
		{name: "empty", contentType: jsonType, body: ``, want: http.StatusBadRequest},
		{name: "array", contentType: jsonType, body: `[1]`, want: http.StatusBadRequest},
		{name: "null", contentType: jsonType, body: `null`, want: http.StatusBadRequest},
		{name: "trailing data", contentType: jsonType, body: `{"name":"Gold"} {}`, want: http.StatusBadRequest},
		{name: "unknown field", contentType: jsonType, body: `{"name":"Gold","colour":"gold"}`, want: http.StatusBadRequest, field: "colour"},
		{name: "field in other case", contentType: jsonType, body: `{"Name":"Gold"}`, want: http.StatusBadRequest, field: "Name"},
		{name: "wrong type", contentType: jsonType, body: `{"name":7}`, want: http.StatusBadRequest, field: "name"},
		{name: "wrong element type", contentType: jsonType, body: `{"name":"Gold","thumbnail_heights":["a"]}`, want: http.StatusBadRequest, field: "thumbnail_heights"},
		{name: "null field", contentType: jsonType, body: `{"name":"Gold","original_link":null}`, want: http.StatusBadRequest, field: "original_link"},
		{name: "too large", contentType: jsonType, body: `{"name":"` + strings.Repeat("x", maxJSONBytes) + `"}`, want: http.StatusRequestEntityTooLarge},
		{name: "charset parameter", contentType: "application/json; charset=utf-8", body: `{"name":"Gold"}`, want: http.StatusCreated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(t, http.MethodPost, "/api/admin/tiers", asAdmin, tt.contentType, strings.NewReader(tt.body))
			if tt.want == http.StatusCreated {
				r.wantStatus(t, tt.want)
				return
			}
			if tt.field != "" {
				r.wantProblem(t, tt.want, tt.field)
			} else {
				r.wantProblem(t, tt.want)
			}
		})
	}
}

func TestSanitizeName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "plain", in: "cat.png", want: "cat.png"},
		{name: "unix path", in: "../../etc/cat.png", want: "cat.png"},
		{name: "windows path", in: `C:\Users\me\cat.png`, want: "cat.png"},
		{name: "control characters", in: "c\x00a\nt\x7f.png", want: "cat.png"},
		{name: "bidi override", in: "cat\u202egnp.exe", want: "catgnp.exe"},
		{name: "invalid UTF-8", in: "c\xffat.png", want: "cat.png"},
		{name: "empty", in: "", want: "image"},
		{name: "dot dot", in: "..", want: "image"},
		{name: "only spaces", in: "   ", want: "image"},
		{name: "long", in: strings.Repeat("a", 300), want: strings.Repeat("a", 255)},
		{name: "long multibyte cut at a rune", in: strings.Repeat("é", 200), want: strings.Repeat("é", 127)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sanitizeName(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
