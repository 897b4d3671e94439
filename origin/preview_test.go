package origin

import (
	"bytes"
	"image"
	"net"
	"net/http"
	"strconv"
	"testing"

	"github.com/fasthttp/router"
	"github.com/tierpix/tierpix"
	"github.com/valyala/fasthttp"
)

func TestServePreview(t *testing.T) {
	// The owner's tier has no 200 px thumbnails: the preview is not bound by it.
	e := newEnv(t, tierpix.Tier{Name: "Small", ThumbnailHeights: []int{100}}, Config{})
	jpg, _ := e.addImage(t, tierpix.FormatJPEG, 600, 400)
	small, _ := e.addImage(t, tierpix.FormatPNG, 90, 60)

	r := router.New()
	r.GET("/preview/{id}/{h}", func(ctx *fasthttp.RequestCtx) {
		h, _ := strconv.Atoi(ctx.UserValue("h").(string))
		e.origin.ServePreview(ctx, ctx.UserValue("id").(string), h)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := &fasthttp.Server{Handler: r.Handler}
	go srv.Serve(ln)                     //nolint:errcheck // ends with Shutdown
	t.Cleanup(func() { srv.Shutdown() }) //nolint:errcheck
	base := "http://" + ln.Addr().String() + "/preview/"

	tests := []struct {
		name         string
		path         string
		status       int
		wantW, wantH int
	}{
		{"height the tier lacks", jpg.ID + "/200", http.StatusOK, 300, 200},
		{"smaller original at its own size", small.ID + "/200", http.StatusOK, 90, 60},
		{"unknown image", "AAAAAAAAAAAAAAAAAAAAAAAA/200", http.StatusNotFound, 0, 0},
		{"not an id", "nope/200", http.StatusNotFound, 0, 0},
		{"zero height", jpg.ID + "/0", http.StatusNotFound, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := get(t, base+tt.path)
			if res.status != tt.status {
				t.Fatalf("status: got %d, want %d (body %s)", res.status, tt.status, res.body)
			}
			if tt.status != http.StatusOK {
				return
			}
			if got := res.header.Get("Cache-Control"); got != "private, max-age=300" {
				t.Errorf("Cache-Control: got %q, want private, max-age=300", got)
			}
			m, _, err := image.Decode(bytes.NewReader(res.body))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if b := m.Bounds(); b.Dx() != tt.wantW || b.Dy() != tt.wantH {
				t.Errorf("size: got %dx%d, want %dx%d", b.Dx(), b.Dy(), tt.wantW, tt.wantH)
			}
		})
	}
}
