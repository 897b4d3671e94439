package origin

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/signing"
)

func TestAcceptsWebP(t *testing.T) {
	tests := []struct {
		accept string
		want   bool
	}{
		{"", false},
		{"image/webp", true},
		{"image/avif,image/webp,*/*", true},
		{"image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", true}, // Chrome
		{"IMAGE/WebP", true},
		{" image/webp ; q=0.5", true},
		{"image/webp;q=0", false},
		{"image/webp; q=0.000", false},
		{"image/webp;q=0.001", true},
		{"image/*,*/*;q=0.8", false}, // Firefox before WebP: a wildcard is not a promise
		{"*/*", false},
		{"image/jpeg", false},
		{"image/webpx", false},
		{"text/html,image/webp2", false},
	}
	for _, tt := range tests {
		if got := acceptsWebP([]byte(tt.accept)); got != tt.want {
			t.Errorf("acceptsWebP(%q): got %v, want %v", tt.accept, got, tt.want)
		}
	}
}

// TestNegotiation checks the answers of a thumbnail link by Accept, of an explicit .webp link,
// and with negotiation off: format, Vary, ETag per format, a render per format.
func TestNegotiation(t *testing.T) {
	e := newEnv(t, photoTier, Config{})
	img := e.addPhoto(t, 1200, 900)
	plain := e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200)})
	webp := e.url(signing.Link{ImageID: img.ID, Variant: signing.ThumbnailAs(200, tierpix.FormatWebP)})
	isWebP := func(b []byte) bool { return len(b) > 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP" }
	isJPEG := func(b []byte) bool { return bytes.HasPrefix(b, []byte{0xFF, 0xD8}) }

	jpeg := get(t, plain)
	if jpeg.status != http.StatusOK || jpeg.header.Get("Content-Type") != "image/jpeg" || !isJPEG(jpeg.body) {
		t.Fatalf("no Accept: got %d %q, want a 200 JPEG", jpeg.status, jpeg.header.Get("Content-Type"))
	}
	if got := jpeg.header.Get("Vary"); got != "Accept" {
		t.Errorf("no Accept: Vary %q, want Accept", got)
	}
	w := get(t, plain, "Accept: image/webp,*/*")
	if w.status != http.StatusOK || w.header.Get("Content-Type") != "image/webp" || !isWebP(w.body) {
		t.Fatalf("Accept webp: got %d %q, want a 200 WebP", w.status, w.header.Get("Content-Type"))
	}
	if got := w.header.Get("Vary"); got != "Accept" {
		t.Errorf("Accept webp: Vary %q, want Accept", got)
	}
	if jpeg.header.Get("ETag") == w.header.Get("ETag") {
		t.Errorf("ETag: both formats %q, want one each", w.header.Get("ETag"))
	}
	// A conditional request is answered for the format asked: the JPEG's ETag is no match for
	// the WebP, and the WebP's own is.
	if res := get(t, plain, "Accept: image/webp", "If-None-Match: "+jpeg.header.Get("ETag")); res.status != http.StatusOK || !isWebP(res.body) {
		t.Errorf("WebP client with the JPEG's ETag: got %d, want 200 with WebP", res.status)
	}
	if res := get(t, plain, "Accept: image/webp", "If-None-Match: "+w.header.Get("ETag")); res.status != http.StatusNotModified || res.header.Get("Vary") != "Accept" {
		t.Errorf("WebP client with its ETag: got %d, Vary %q, want 304 with Vary: Accept", res.status, res.header.Get("Vary"))
	}
	for _, accept := range []string{"Accept: image/jpeg", "Accept: image/webp;q=0", "Accept: image/*,*/*;q=0.8"} {
		if res := get(t, plain, accept); !isJPEG(res.body) || !bytes.Equal(res.body, jpeg.body) {
			t.Errorf("%s: got %q, want the JPEG", accept, res.header.Get("Content-Type"))
		}
	}
	ex := get(t, webp, "Accept: image/jpeg")
	if ex.status != http.StatusOK || !isWebP(ex.body) || !bytes.Equal(ex.body, w.body) {
		t.Errorf(".webp link: got %d %q, want the same WebP", ex.status, ex.header.Get("Content-Type"))
	}
	if got := ex.header.Get("Vary"); got != "" {
		t.Errorf(".webp link: Vary %q, want none", got)
	}
	if got := e.origin.Stats().Renders; got != 2 {
		t.Errorf("renders: got %d, want 2 (one per format)", got)
	}

	off := newEnv(t, photoTier, Config{NoNegotiation: true})
	img2 := off.addPhoto(t, 1200, 900)
	res := get(t, off.url(signing.Link{ImageID: img2.ID, Variant: signing.Thumbnail(200)}), "Accept: image/webp")
	if !isJPEG(res.body) || res.header.Get("Vary") != "" {
		t.Errorf("negotiation off: got %q with Vary %q, want a JPEG without Vary", res.header.Get("Content-Type"), res.header.Get("Vary"))
	}
	res = get(t, off.url(signing.Link{ImageID: img2.ID, Variant: signing.ThumbnailAs(200, tierpix.FormatWebP)}))
	if !isWebP(res.body) {
		t.Errorf("negotiation off, .webp link: got %q, want WebP", res.header.Get("Content-Type"))
	}
}

// TestWebPFromDisk checks that a WebP rendering is kept on disk under its own name and served
// from there once memory has forgotten it, and that a WebP cut short there is rendered anew.
func TestWebPFromDisk(t *testing.T) {
	e := newEnv(t, photoTier, Config{})
	img := e.addPhoto(t, 1200, 900)
	u := e.url(signing.Link{ImageID: img.ID, Variant: signing.ThumbnailAs(200, tierpix.FormatWebP)})
	first := get(t, u)
	e.origin.mem.Clear()
	second := get(t, u)
	if !bytes.Equal(first.body, second.body) || e.origin.Stats().DiskHits != 1 {
		t.Errorf("after memory was cleared: %d disk hits, same body %v; want 1 and true", e.origin.Stats().DiskHits, bytes.Equal(first.body, second.body))
	}
	if validBody(tierpix.FormatWebP, first.body[:len(first.body)-1]) || !validBody(tierpix.FormatWebP, first.body) {
		t.Errorf("validBody: a WebP cut short must fail and a whole one pass")
	}
}

// TestWebPTooWide checks that a thumbnail wider than WebP can hold is answered in the
// original's format, on a negotiated and on an explicit link, rather than failing.
func TestWebPTooWide(t *testing.T) {
	e := newEnv(t, photoTier, Config{})
	img := e.addPhoto(t, 20000, 300)
	for _, u := range []string{
		e.url(signing.Link{ImageID: img.ID, Variant: signing.ThumbnailAs(300, tierpix.FormatWebP)}),
		e.url(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(300)}),
	} {
		res := get(t, u, "Accept: image/webp")
		if res.status != http.StatusOK || res.header.Get("Content-Type") != "image/jpeg" {
			t.Errorf("20000 px wide thumbnail: got %d %q, want a 200 JPEG", res.status, res.header.Get("Content-Type"))
		}
	}
}
