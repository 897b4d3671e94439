package nginx_test

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tierpix/tierpix/signing"
)

// TestFront runs one tierpix node (SQLite) behind nginx with the shipped tierpix.conf.
func TestFront(t *testing.T) {
	t.Parallel()
	// A 2 MiB upload cap, and nginx's limit set to match it as the file says (cap + 1 MiB).
	n := startNode(t, t.TempDir(), "", "TIERPIX_MAX_UPLOAD_BYTES=2097152")
	f := startFront(t, "3m", n)

	admin := newClient(t, f.URL, adminName, adminPW)
	admin.createUser("ent", "Enterprise")
	user := newClient(t, f.URL, "ent", userPW) // every API call goes through nginx
	anon := newClient(t, f.URL, "", "")
	signer := testSigner(t)

	t.Run("hit does not reach the origin", func(t *testing.T) {
		user, anon := user.in(t), anon.in(t)
		img := user.upload(testJPEG(t, 300, 480))
		path := img.thumbnailPath(t, 200)

		resp, first := anon.get(path)
		wantStatus(t, "first fetch", resp, first, http.StatusOK)
		if got := cacheStatus(resp); got != "MISS" {
			t.Fatalf("first fetch: got X-Cache-Status %q, want MISS", got)
		}
		resp, second := anon.get(path)
		wantStatus(t, "second fetch", resp, second, http.StatusOK)
		if got := cacheStatus(resp); got != "HIT" {
			t.Fatalf("second fetch: got X-Cache-Status %q, want HIT", got)
		}
		if !bytes.Equal(first, second) {
			t.Fatalf("the hit's body differs from the miss's: got %d bytes, want %d", len(second), len(first))
		}
		// The origin's sandboxing policy is passed on, and kept with the cached answer.
		if got, want := resp.Header.Get("Content-Security-Policy"), "sandbox; default-src 'none'"; got != want {
			t.Errorf("hit: Content-Security-Policy: got %q, want %q", got, want)
		}
		n.sync(t)
		if got := n.requests("GET", path); got != 1 {
			t.Fatalf("got %d requests for %s at the origin, want 1 (the miss)", got, path)
		}

		// Requests that arrive together for a missing entry wait for the first (cache lock).
		path = img.thumbnailPath(t, 400)
		const concurrent = 8
		type result struct {
			status int
			body   []byte
			err    error
		}
		results := make(chan result, concurrent)
		for i := 0; i < concurrent; i++ {
			go func() {
				resp, err := http.Get(f.URL + path)
				if err != nil {
					results <- result{err: err}
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				results <- result{resp.StatusCode, b, err}
			}()
		}
		var bodies [][]byte
		for i := 0; i < concurrent; i++ {
			r := <-results
			if r.err != nil || r.status != http.StatusOK {
				t.Fatalf("concurrent fetch: got status %d, error %v; want 200", r.status, r.err)
			}
			bodies = append(bodies, r.body)
		}
		for _, b := range bodies[1:] {
			if !bytes.Equal(b, bodies[0]) {
				t.Fatal("concurrent fetches of one link got different bodies")
			}
		}
		n.sync(t)
		if got := n.requests("GET", path); got != 1 {
			t.Fatalf("%d concurrent fetches of a new link: got %d requests at the origin, want 1", concurrent, got)
		}
	})

	t.Run("variants never mix", func(t *testing.T) {
		user, anon := user.in(t), anon.in(t)
		img := user.upload(testJPEG(t, 300, 480))
		bodies := map[int][]byte{}
		for _, h := range []int{200, 400} {
			path := img.thumbnailPath(t, h)
			for _, want := range []string{"MISS", "HIT"} {
				resp, b := anon.get(path)
				wantStatus(t, fmt.Sprintf("h%d", h), resp, b, http.StatusOK)
				if got := cacheStatus(resp); got != want {
					t.Fatalf("h%d: got X-Cache-Status %q, want %s", h, got, want)
				}
				if got := jpegHeight(t, b); got != h {
					t.Fatalf("h%d (%s): got a %d px high image, want %d", h, want, got, h)
				}
				bodies[h] = b
			}
		}
		if bytes.Equal(bodies[200], bodies[400]) {
			t.Fatal("h200 and h400 have the same bytes")
		}
		// Other spellings of a link share its entry (the key is the normalised path) and
		// still get the right variant; the query is not passed on. (Not through the
		// OpenAPI-checking client: the document describes links in their one spelling.)
		path := img.thumbnailPath(t, 400)
		for _, spelling := range []string{path + "?v=2", strings.Replace(path, "/i/", "/i//", 1)} {
			resp, b := rawGet(t, f.URL+spelling)
			wantStatus(t, spelling, resp, b, http.StatusOK)
			if got := cacheStatus(resp); got != "HIT" || !bytes.Equal(b, bodies[400]) {
				t.Fatalf("%s: got X-Cache-Status %q and %d bytes, want a HIT with the h400 bytes (%d)", spelling, got, len(b), len(bodies[400]))
			}
		}
	})

	t.Run("errors are not cached", func(t *testing.T) {
		user, anon := user.in(t), anon.in(t)
		img := user.upload(testJPEG(t, 300, 480))
		good := img.thumbnailPath(t, 200)
		forged := []byte(good)
		if forged[len("/i/")] == 'A' { // another first character of the signature
			forged[len("/i/")] = 'B'
		} else {
			forged[len("/i/")] = 'A'
		}
		now := time.Now().Unix()
		tests := []struct {
			name   string
			path   string
			status int
		}{
			{"bad signature", string(forged), http.StatusForbidden},
			{"no such image", signer.Path(signing.Link{ImageID: "aaaaaaaaaaaaaaaaaaaaaaaa", Variant: signing.Thumbnail(200)}), http.StatusNotFound},
			{"expired", signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200), Expires: now - 10}), http.StatusGone},
			{"size not in the tier", signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(300)}), http.StatusForbidden},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				anon := anon.in(t)
				for i := 0; i < 2; i++ {
					resp, b := anon.get(tt.path)
					wantStatus(t, fmt.Sprintf("fetch %d", i+1), resp, b, tt.status)
					if got := cacheStatus(resp); got == "HIT" {
						t.Fatalf("fetch %d: got X-Cache-Status HIT for a %d", i+1, tt.status)
					}
				}
				n.sync(t)
				if got := n.requests("GET", tt.path); got != 2 {
					t.Fatalf("got %d requests at the origin, want 2: the first %d was cached", got, tt.status)
				}
			})
		}
	})

	t.Run("expired link refused though cached", func(t *testing.T) {
		t.Parallel()
		user, anon := user.in(t), anon.in(t)
		img := user.upload(testJPEG(t, 600, 800))
		// The first fetch starts in the last 15 ms of a second and is a render that takes
		// longer: the origin computes max-age (whole seconds left) in one second and nginx
		// stores the entry in the next, so by max-age alone the entry would stay fresh
		// through the expiry second, when tierpix already answers 410.
		for deadline := time.Now().Add(3 * time.Second); time.Now().Nanosecond() < 985_000_000; {
			if time.Now().After(deadline) {
				t.Fatal("no end of a second within 3 s")
			}
			time.Sleep(time.Millisecond)
		}
		exp := time.Now().Unix() + 3
		path := signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(400), Expires: exp})

		for _, want := range []string{"MISS", "HIT"} {
			resp, b := anon.get(path)
			wantStatus(t, want, resp, b, http.StatusOK)
			if got := cacheStatus(resp); got != want {
				t.Fatalf("got X-Cache-Status %q, want %s", got, want)
			}
			if age := maxAge(t, resp); time.Now().Unix()+int64(age) > exp {
				t.Fatalf("Cache-Control %q outlives the link's expiry at %d", resp.Header.Get("Cache-Control"), exp)
			}
		}
		// Until the expiry, nginx answers from the cache; from its first instant, the origin's
		// 410 comes through, and is not cached either.
		for time.Now().Unix() < exp {
			resp, b := anon.get(path)
			if resp.StatusCode != http.StatusOK && !(resp.StatusCode == http.StatusGone && time.Now().Unix() >= exp) {
				t.Fatalf("before the expiry: got status %d (%s), want 200; body: %.200s", resp.StatusCode, cacheStatus(resp), b)
			}
			time.Sleep(50 * time.Millisecond)
		}
		for i := 0; i < 2; i++ {
			resp, _ := anon.get(path)
			if got := cacheStatus(resp); resp.StatusCode != http.StatusGone || got == "HIT" || got == "STALE" || got == "UPDATING" {
				t.Fatalf("fetch %d after the expiry: got status %d, X-Cache-Status %q; want the origin's 410", i+1, resp.StatusCode, got)
			}
		}
	})

	t.Run("deleted image stops within max-age", func(t *testing.T) {
		t.Parallel()
		user, anon := user.in(t), anon.in(t)
		img := user.upload(testJPEG(t, 300, 480))
		path := img.thumbnailPath(t, 200)
		resp, cached := anon.get(path)
		wantStatus(t, "before the delete", resp, cached, http.StatusOK)

		user.json(http.MethodDelete, "/api/images/"+img.ID, nil, http.StatusNoContent, nil)
		deleted := time.Now()
		hits := 0
		for {
			resp, b := anon.get(path)
			if resp.StatusCode == http.StatusNotFound {
				break
			}
			// Until then, only the copy nginx cached before the delete may be served.
			if resp.StatusCode != http.StatusOK || cacheStatus(resp) != "HIT" || !bytes.Equal(b, cached) {
				t.Fatalf("after the delete: got status %d, X-Cache-Status %q; want the cached copy (200, HIT) or 404", resp.StatusCode, cacheStatus(resp))
			}
			hits++
			if time.Since(deleted) > cacheMaxAge+10*time.Second {
				t.Fatalf("nginx still serves the deleted image %v after the delete", time.Since(deleted))
			}
			time.Sleep(50 * time.Millisecond)
		}
		took := time.Since(deleted)
		t.Logf("the deleted image was served from the cache %d times, for %v; then 404", hits, took.Round(time.Millisecond))
		if hits == 0 {
			t.Fatal("the cached copy was never served after the delete: the test proves nothing about the cache")
		}
		// nginx counts whole seconds and keeps an entry fresh through its last one.
		if bound := cacheMaxAge + time.Second + 500*time.Millisecond; took > bound {
			t.Fatalf("the deleted image was served for %v, want at most %v (TIERPIX_CACHE_MAX_AGE + 1 s)", took, bound)
		}
		resp, b := anon.get(path)
		wantStatus(t, "again", resp, b, http.StatusNotFound)
	})

	t.Run("metrics only from localhost", func(t *testing.T) {
		resp, err := dialFrom("127.0.0.2").Get(f.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("/metrics from 127.0.0.2: got status %d, want 403", resp.StatusCode)
		}
		n.sync(t)
		if got := n.requests("GET", "/metrics"); got != 0 {
			t.Fatalf("/metrics from 127.0.0.2 reached the origin %d times, want 0", got)
		}
		resp, err = http.Get(f.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		n.sync(t)
		if got := n.requests("GET", "/metrics"); got != 1 {
			t.Fatalf("/metrics from 127.0.0.1: got %d requests at the origin (status %d), want 1", got, resp.StatusCode)
		}
	})

	t.Run("uploads are streamed", func(t *testing.T) {
		uploadStreams(t, f, n)
	})
}

// uploadStreams sends an upload through nginx in two halves and shows the origin is already
// writing it to its temp file before the second half is sent: nginx does not buffer request
// bodies. Then it announces one over the limit and gets a 413 problem document from nginx,
// without the origin seeing the request.
func uploadStreams(t *testing.T, f *front, n *node) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("image", "stream.jpg")
	fw.Write(testJPEG(t, 800, 600))
	mw.Close()
	body := buf.Bytes()

	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, f.URL+"/api/images", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.SetBasicAuth("ent", userPW)
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		done <- result{resp, err}
	}()
	half := len(body) / 2
	if _, err := pw.Write(body[:half]); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(n.DataDir, "tmp")
	waitFor(t, 10*time.Second, "the origin to start writing the upload while half of it is unsent", func() bool {
		entries, _ := os.ReadDir(tmp)
		for _, e := range entries {
			if info, err := e.Info(); err == nil && strings.HasPrefix(e.Name(), "upload-") && info.Size() > 0 {
				return true
			}
		}
		return false
	})
	pw.Write(body[half:])
	pw.Close()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	b, _ := io.ReadAll(r.resp.Body)
	r.resp.Body.Close()
	wantStatus(t, "streamed upload", r.resp, b, http.StatusCreated)

	user := newClient(t, f.URL, "ent", userPW)
	buf.Reset()
	mw = multipart.NewWriter(&buf)
	fw, _ = mw.CreateFormFile("image", "big.jpg")
	fw.Write(bytes.Repeat([]byte{0xff}, 3<<20+1))
	mw.Close()
	n.sync(t)
	before := n.requests("POST", "/api/images")
	resp, b := user.do(http.MethodPost, "/api/images", mw.FormDataContentType(), &buf)
	wantStatus(t, "upload over the limit", resp, b, http.StatusRequestEntityTooLarge)
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("upload over the limit: got Content-Type %q, want application/problem+json", ct)
	}
	n.sync(t)
	if got := n.requests("POST", "/api/images") - before; got != 0 {
		t.Fatalf("upload over the limit: got %d requests at the origin, want 0", got)
	}
}

// rawGet fetches url with a plain client.
func rawGet(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// testSigner signs links with the nodes' key, for links the API does not make.
func testSigner(t *testing.T) *signing.Signer {
	t.Helper()
	keys, err := signing.ParseKeys(signingKey)
	if err != nil {
		t.Fatal(err)
	}
	s, err := signing.New(keys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// maxAge reads max-age from a response's Cache-Control.
func maxAge(t *testing.T, resp *http.Response) int {
	t.Helper()
	cc := resp.Header.Get("Cache-Control")
	for _, part := range strings.Split(cc, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "max-age="); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("Cache-Control %q: %v", cc, err)
			}
			return n
		}
	}
	t.Fatalf("Cache-Control %q has no max-age", cc)
	return 0
}
