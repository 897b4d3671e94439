package origin

import (
	"net"
	"net/http"
	"testing"

	"github.com/fasthttp/router"
	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/signing"
	"github.com/valyala/fasthttp"
)

// wantCSP is the policy every answer under /i/ carries.
const wantCSP = "sandbox; default-src 'none'"

// TestImageAnswersAreSandboxed: every answer under /i/, whatever its status and whichever
// path serves it (the router's, or Front's ahead of it), carries the sandboxing policy, and
// so does the admin's preview.
func TestImageAnswersAreSandboxed(t *testing.T) {
	e := newEnv(t, fullTier, Config{})
	img, _ := e.addImage(t, tierpix.FormatJPEG, 600, 400)
	thumb := e.signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200)})
	expiring := e.signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(100), Expires: testNow.Unix() + 600})

	// A second server over the same origin, as cmd/tierpix serves it: Front before the router,
	// and the preview route.
	r := router.New()
	e.origin.Register(r)
	r.GET("/preview/{id}", func(ctx *fasthttp.RequestCtx) {
		e.origin.ServePreview(ctx, ctx.UserValue("id").(string), 200)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := &fasthttp.Server{Handler: e.origin.Front(r.Handler)}
	go srv.Serve(ln)                     //nolint:errcheck // ends with Shutdown
	t.Cleanup(func() { srv.Shutdown() }) //nolint:errcheck
	front := "http://" + ln.Addr().String()

	etag := get(t, e.base+thumb).header.Get("ETag")
	tests := []struct {
		name, method, path string
		header             []string
		status             int
	}{
		{name: "render", method: http.MethodGet, path: e.signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(400)}), status: 200},
		{name: "memory hit", method: http.MethodGet, path: thumb, status: 200},
		{name: "not modified", method: http.MethodGet, path: thumb, header: []string{"If-None-Match: " + etag}, status: 304},
		{name: "head", method: http.MethodHead, path: thumb, status: 200},
		{name: "original", method: http.MethodGet, path: e.signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Original}), status: 200},
		{name: "expiring", method: http.MethodGet, path: expiring, status: 200},
		{name: "expired", method: http.MethodGet, path: e.signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(100), Expires: testNow.Unix() - 1}), status: 410},
		{name: "bad signature", method: http.MethodGet, path: tamper(thumb), status: 403},
		{name: "malformed", method: http.MethodGet, path: "/i/not-a-link", status: 404},
	}
	for _, base := range []struct{ name, url string }{{"router", e.base}, {"front", front}} {
		for _, tt := range tests {
			t.Run(base.name+"/"+tt.name, func(t *testing.T) {
				res := do(t, tt.method, base.url+tt.path, tt.header...)
				if res.status != tt.status {
					t.Fatalf("status: got %d, want %d", res.status, tt.status)
				}
				if got := res.header.Get("Content-Security-Policy"); got != wantCSP {
					t.Errorf("Content-Security-Policy: got %q, want %q", got, wantCSP)
				}
			})
		}
	}
	more := []struct {
		name, method, url string
		status            int
	}{
		{name: "front/other method", method: http.MethodPost, url: front + thumb, status: 405},
		{name: "preview", method: http.MethodGet, url: front + "/preview/" + img.ID, status: 200},
		{name: "preview of nothing", method: http.MethodGet, url: front + "/preview/AAAAAAAAAAAAAAAAAAAAAAAA", status: 404},
	}
	for _, tt := range more {
		t.Run(tt.name, func(t *testing.T) {
			res := do(t, tt.method, tt.url)
			if res.status != tt.status {
				t.Fatalf("status: got %d, want %d", res.status, tt.status)
			}
			if got := res.header.Get("Content-Security-Policy"); got != wantCSP {
				t.Errorf("Content-Security-Policy: got %q, want %q", got, wantCSP)
			}
		})
	}
}
