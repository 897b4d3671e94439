package nginx_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestFormats runs one tierpix node behind nginx and checks how the front caches the formats
// of a thumbnail link (see Formats in tierpix.conf). A negotiated link (h200) keeps one entry
// per format, chosen by whether Accept lists image/webp as tierpix decides it, never by the
// raw header, so each format is rendered once whatever the mix of browsers; Vary: Accept
// still reaches the clients. A .webp link has one entry whatever the Accept. A link whose
// suffix was added, removed or changed is the origin's 403, never cached.
func TestFormats(t *testing.T) {
	t.Parallel()
	// Entries live longer than the test: every cache status it expects is a MISS or a HIT,
	// never one of an entry that expired midway on a slow machine.
	n := startNode(t, t.TempDir(), "", "TIERPIX_CACHE_MAX_AGE=600")
	f := startFront(t, "", n)

	newClient(t, f.URL, adminName, adminPW).createUser("ent", "Enterprise")
	user := newClient(t, f.URL, "ent", userPW)
	img := user.upload(testJPEG(t, 300, 480))
	path, webpPath := img.thumbnailPath(t, 200), img.webpPath(t, 200)
	if !strings.HasSuffix(webpPath, "/h200.webp") {
		t.Fatalf("webp_url: got %s, want a path ending in /h200.webp", webpPath)
	}

	anon := newClient(t, f.URL, "", "") // sends no Accept
	webpClient := anon.with("Accept", "image/webp,*/*")

	// first holds the negotiated link's first answer in each format.
	first := map[string]answer{}

	t.Run("negotiated link", func(t *testing.T) {
		anon, webpClient := anon.in(t), webpClient.in(t)
		rendersBefore := n.renders(t)
		for _, step := range []struct {
			name   string
			c      *client
			format string
			cache  string
		}{
			{"JPEG client", anon, "jpeg", "MISS"},
			{"WebP client", webpClient, "webp", "MISS"},
			{"JPEG client again", anon, "jpeg", "HIT"},
			{"WebP client again", webpClient, "webp", "HIT"},
			{"Accept: image/jpeg", anon.with("Accept", "image/jpeg"), "jpeg", "HIT"},
		} {
			a := fetchAs(t, step.name, step.c, path, step.format, step.cache, "Accept")
			if prev, ok := first[step.format]; !ok {
				first[step.format] = a
			} else if !bytes.Equal(a.body, prev.body) || a.etag != prev.etag {
				t.Fatalf("%s: got %d bytes, ETag %s; want the first %s answer's %d bytes, ETag %s", step.name, len(a.body), a.etag, step.format, len(prev.body), prev.etag)
			}
		}
		if got := jpegHeight(t, first["jpeg"].body); got != 200 {
			t.Fatalf("JPEG: got %d px high, want 200", got)
		}
		if first["jpeg"].etag == "" || first["jpeg"].etag == first["webp"].etag {
			t.Fatalf("got ETag %s for the JPEG and %s for the WebP, want two different ones", first["jpeg"].etag, first["webp"].etag)
		}
		n.sync(t)
		if got := n.requests("GET", path); got != 2 {
			t.Fatalf("got %d requests for %s at the origin, want 2 (a miss per format)", got, path)
		}
		if got := n.renders(t) - rendersBefore; got != 2 {
			t.Fatalf("got %d renders at the origin, want 2 (one per format)", got)
		}
	})
	if t.Failed() {
		return
	}

	// Every Accept below shares an entry filled above: tierpix's rule picks the format, and
	// no raw header makes an entry of its own.
	t.Run("Accept values", func(t *testing.T) {
		rendersBefore := n.renders(t)
		tests := []struct {
			name   string
			accept string
			format string
		}{
			{"Firefox before WebP", "image/*,*/*;q=0.8", "jpeg"},
			{"any type", "*/*", "jpeg"},
			{"WebP refused", "image/webp;q=0", "jpeg"},
			{"WebP refused as 0.000", "image/webp;q=0.000", "jpeg"},
			{"WebP refused among parameters and spaces", "image/png, image/webp ; level=1 ; Q = 0", "jpeg"},
			{"the first image/webp decides", "image/webp;q=0, image/webp", "jpeg"},
			{"another media type", "image/webpx", "jpeg"},
			{"image/webp as a parameter", "text/html;x=image/webp", "jpeg"},
			{"Chrome", "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", "webp"},
			{"Safari", "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5", "webp"},
			{"Firefox", "image/avif,image/webp,*/*", "webp"},
			{"upper case", "IMAGE/WEBP", "webp"},
			{"low quality, not zero", "image/webp;q=0.001", "webp"},
			{"after a refused type", "image/png;q=0, image/webp", "webp"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				a := fetchAs(t, "Accept: "+tt.accept, anon.in(t).with("Accept", tt.accept), path, tt.format, "HIT", "Accept")
				if !bytes.Equal(a.body, first[tt.format].body) {
					t.Fatalf("got %d bytes, want the %s entry's %d", len(a.body), tt.format, len(first[tt.format].body))
				}
			})
		}
		if got := n.renders(t) - rendersBefore; got != 0 {
			t.Fatalf("got %d renders at the origin, want 0", got)
		}
	})

	t.Run("conditional requests", func(t *testing.T) {
		anon, webpClient := anon.in(t), webpClient.in(t)
		jpegTag, webpTag := first["jpeg"].etag, first["webp"].etag
		// One format's ETag does not validate the other's entry: the client gets its format.
		fetchAs(t, "WebP client with the JPEG's ETag", webpClient.with("If-None-Match", jpegTag), path, "webp", "HIT", "Accept")
		fetchAs(t, "JPEG client with the WebP's ETag", anon.with("If-None-Match", webpTag), path, "jpeg", "HIT", "Accept")
		// Its own does.
		resp, b := webpClient.with("If-None-Match", webpTag).get(path)
		wantStatus(t, "WebP client with the WebP's ETag", resp, b, http.StatusNotModified)

		// Nor on a miss: the JPEG's ETag, learnt from the origin itself, sent by a WebP client
		// for a link nginx has not cached yet.
		path400 := img.thumbnailPath(t, 400)
		resp, b = newClient(t, n.URL, "", "").get(path400)
		wantStatus(t, "h400 from the origin", resp, b, http.StatusOK)
		fetchAs(t, "WebP client with the JPEG's ETag, h400", webpClient.with("If-None-Match", resp.Header.Get("ETag")), path400, "webp", "MISS", "Accept")
	})

	// Where tierpix's rule and the regex disagree (a no-break space before image/webp: tierpix
	// trims Unicode spaces, the regex only ASCII ones), nginx's key decides, since the origin
	// sees only the Accept made from it: a client that fills the JPEG's entry gets a JPEG, and
	// the entry is one, rather than a WebP stored under the JPEG's key.
	t.Run("the origin gets the key's Accept", func(t *testing.T) {
		anon := anon.in(t)
		path := user.in(t).upload(testJPEG(t, 300, 480)).thumbnailPath(t, 200)
		fetchAs(t, "Accept with a no-break space", anon.with("Accept", "\u00a0image/webp"), path, "jpeg", "MISS", "Accept")
		fetchAs(t, "JPEG client", anon, path, "jpeg", "HIT", "Accept")
		fetchAs(t, "WebP client", webpClient.in(t), path, "webp", "MISS", "Accept")
	})

	t.Run("webp link", func(t *testing.T) {
		anon := anon.in(t)
		var body []byte
		for _, step := range []struct {
			name  string
			c     *client
			cache string
		}{
			{"Accept: image/jpeg", anon.with("Accept", "image/jpeg"), "MISS"},
			{"Accept: image/jpeg again", anon.with("Accept", "image/jpeg"), "HIT"},
			{"no Accept", anon, "HIT"},
			{"WebP client", webpClient.in(t), "HIT"},
		} {
			a := fetchAs(t, step.name, step.c, webpPath, "webp", step.cache, "")
			if body == nil {
				body = a.body
			} else if !bytes.Equal(a.body, body) {
				t.Fatalf("%s: got %d bytes, want the first answer's %d", step.name, len(a.body), len(body))
			}
		}
		n.sync(t)
		if got := n.requests("GET", webpPath); got != 1 {
			t.Fatalf("got %d requests for %s at the origin, want 1 (the miss)", got, webpPath)
		}
	})

	t.Run("tampered suffix", func(t *testing.T) {
		plain := strings.TrimSuffix(webpPath, ".webp")
		// A path in the shape of a link misses the cache; one with a suffix tierpix never
		// signs is no link to nginx, which does not consult the cache (no X-Cache-Status).
		tests := []struct {
			name  string
			path  string
			cache string
		}{
			{"webp link without its suffix", plain, "MISS"},
			{"webp link as .png", plain + ".png", ""},
			{"webp link as .avif", plain + ".avif", ""},
			{"negotiated link with .webp", path + ".webp", "MISS"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := webpClient.in(t)
				for i := 1; i <= 2; i++ {
					resp, b := c.get(tt.path)
					wantStatus(t, fmt.Sprintf("fetch %d", i), resp, b, http.StatusForbidden)
					if got := cacheStatus(resp); got != tt.cache {
						t.Fatalf("fetch %d: got X-Cache-Status %q, want %q", i, got, tt.cache)
					}
				}
				n.sync(t)
				if got := n.requests("GET", tt.path); got != 2 {
					t.Fatalf("got %d requests at the origin, want 2: the first 403 was cached", got)
				}
			})
		}
	})
}

// answer is a 200 of an image link: its body and ETag.
type answer struct {
	body []byte
	etag string
}

// fetchAs fetches path with c and wants a 200 in format ("jpeg" or "webp"), by Content-Type
// and by the bytes' signature, with X-Cache-Status cache and Vary vary ("" for none).
func fetchAs(t *testing.T, what string, c *client, path, format, cache, vary string) answer {
	t.Helper()
	resp, b := c.get(path)
	wantStatus(t, what, resp, b, http.StatusOK)
	if got, want := resp.Header.Get("Content-Type"), "image/"+format; got != want {
		t.Fatalf("%s: got Content-Type %q, want %q", what, got, want)
	}
	if got := formatOf(b); got != format {
		t.Fatalf("%s: got bytes starting % x (%q), want %s", what, b[:min(len(b), 12)], got, format)
	}
	if got := cacheStatus(resp); got != cache {
		t.Fatalf("%s: got X-Cache-Status %q, want %s", what, got, cache)
	}
	if got := strings.Join(resp.Header.Values("Vary"), ", "); got != vary {
		t.Fatalf("%s: got Vary %q, want %q", what, got, vary)
	}
	return answer{body: b, etag: resp.Header.Get("ETag")}
}

// formatOf names the format of an image by its signature: "jpeg" (FF D8 FF), "webp"
// ("RIFF", a length, "WEBP"), or "" for anything else.
func formatOf(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte{0xff, 0xd8, 0xff}):
		return "jpeg"
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return "webp"
	}
	return ""
}
