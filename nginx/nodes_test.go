package nginx_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/tierpix/tierpix/store/storetest"
)

// TestSeveralNodes runs the deployment of docker-compose.yml: two tierpix nodes on one
// PostgreSQL database (a fresh schema) and one data directory, with one signing key, behind
// nginx with both as upstreams. An image uploaded to one node is served by the other, and a
// tier change made on one node takes effect on the other's origin within 5 seconds, and in
// nginx within TIERPIX_CACHE_MAX_AGE more.
func TestSeveralNodes(t *testing.T) {
	t.Parallel()
	n1, n2 := startTwoNodes(t)
	f := startFront(t, "", n1, n2)

	admin1 := newClient(t, n1.URL, adminName, adminPW)
	admin1.createUser("prem", "Premium")
	orig := testJPEG(t, 300, 480)
	img := newClient(t, n1.URL, "prem", userPW).upload(orig)

	// Node 2 has the row (the database) and the original (the data directory), and takes
	// node 1's links (the signing key).
	var got imageJSON
	newClient(t, n2.URL, "prem", userPW).json(http.MethodGet, "/api/images/"+img.ID, nil, http.StatusOK, &got)
	if got.ID != img.ID || got.Height != 480 || len(got.Links.Thumbnails) != 2 {
		t.Fatalf("image through node 2: got %+v, want image %s, 480 px high, with 2 thumbnail links", got, img.ID)
	}
	anon2 := newClient(t, n2.URL, "", "")
	h200, h400 := img.thumbnailPath(t, 200), img.thumbnailPath(t, 400)
	resp, b := anon2.get(pathOf(t, img.Links.Original))
	wantStatus(t, "original through node 2", resp, b, http.StatusOK)
	if !bytes.Equal(b, orig) {
		t.Fatalf("original through node 2: got %d bytes, want the %d uploaded", len(b), len(orig))
	}
	for _, h := range []struct {
		path   string
		height int
	}{{h200, 200}, {h400, 400}} {
		resp, b := anon2.get(h.path)
		wantStatus(t, "thumbnail through node 2", resp, b, http.StatusOK)
		if got := jpegHeight(t, b); got != h.height {
			t.Fatalf("thumbnail through node 2: got %d px high, want %d", got, h.height)
		}
	}

	// Through nginx, and nginx spreads requests over both nodes.
	anonF := newClient(t, f.URL, "", "")
	resp, b = anonF.get(h400)
	wantStatus(t, "h400 through nginx", resp, b, http.StatusOK)
	if got := jpegHeight(t, b); got != 400 {
		t.Fatalf("h400 through nginx: got %d px high, want 400", got)
	}
	userF := newClient(t, f.URL, "prem", userPW)
	n1.sync(t)
	n2.sync(t)
	before1, before2 := n1.requests("GET", "/api/images/"+img.ID), n2.requests("GET", "/api/images/"+img.ID)
	for i := 0; i < 4; i++ {
		userF.json(http.MethodGet, "/api/images/"+img.ID, nil, http.StatusOK, nil)
	}
	n1.sync(t)
	n2.sync(t)
	d1, d2 := n1.requests("GET", "/api/images/"+img.ID)-before1, n2.requests("GET", "/api/images/"+img.ID)-before2
	if d1 == 0 || d2 == 0 || d1+d2 != 4 {
		t.Fatalf("4 API requests through nginx: got %d at node 1 and %d at node 2, want both nodes used", d1, d2)
	}

	// Premium -> Basic on node 1: node 2's origin stops serving h400 within 5 seconds.
	admin1.json(http.MethodPatch, "/api/admin/users/prem", map[string]any{"tier": "Basic"}, http.StatusOK, nil)
	changed := time.Now()
	for {
		resp, b := anon2.get(h400)
		if resp.StatusCode == http.StatusForbidden {
			break
		}
		wantStatus(t, "h400 through node 2 before the change arrives", resp, b, http.StatusOK)
		if time.Since(changed) > 10*time.Second {
			t.Fatal("node 2 still serves h400 10 s after the tier change")
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(changed)
	t.Logf("node 2 refused h400 %v after the tier change on node 1", took.Round(time.Millisecond))
	if took >= 5*time.Second {
		t.Fatalf("node 2 took %v to apply the tier change, want under 5 s", took)
	}
	resp, b = anon2.get(h200)
	wantStatus(t, "h200 through node 2 on Basic", resp, b, http.StatusOK)

	// nginx may keep its copy of h400 for TIERPIX_CACHE_MAX_AGE (and a whole second more),
	// after which it asks an origin, which may hold the old tier for 2 s more.
	for {
		resp, b := anonF.get(h400)
		if resp.StatusCode == http.StatusForbidden {
			break
		}
		wantStatus(t, "h400 through nginx before the change arrives", resp, b, http.StatusOK)
		if time.Since(changed) > cacheMaxAge+15*time.Second {
			t.Fatal("nginx still serves h400 long after the tier change")
		}
		time.Sleep(50 * time.Millisecond)
	}
	took = time.Since(changed)
	t.Logf("nginx refused h400 %v after the tier change", took.Round(time.Millisecond))
	if bound := cacheMaxAge + time.Second + 2*time.Second + 500*time.Millisecond; took > bound {
		t.Fatalf("nginx served h400 for %v after the tier change, want at most %v", took, bound)
	}
}

// TestUpgradeThenLinkAcrossNodes moves a user up a tier through node 1 and at once fetches,
// through node 2's origin, an expiring link (which only the new tier allows) that node 1's
// API has just handed out, a hundred times: node 2 holds the owner's old tier in its
// metadata cache until its next read of the change epoch, but re-checks a refusal against the
// store before sending it, so a fresh link is never refused.
func TestUpgradeThenLinkAcrossNodes(t *testing.T) {
	t.Parallel()
	n1, n2 := startTwoNodes(t)

	admin1 := newClient(t, n1.URL, adminName, adminPW)
	admin1.createUser("prem", "Premium")
	img := newClient(t, n1.URL, "prem", userPW).upload(testJPEG(t, 300, 480))
	user1 := newClient(t, n1.URL, "prem", userPW)
	anon2 := newClient(t, n2.URL, "", "")
	h200 := img.thumbnailPath(t, 200)

	for i := range 100 {
		admin1.json(http.MethodPatch, "/api/admin/users/prem", map[string]any{"tier": "Premium"}, http.StatusOK, nil)
		// Node 2 caches the owner on Premium (or keeps what it had): a cached tier without
		// expiring links is what the next fetch meets, sooner or later.
		resp, b := anon2.get(h200)
		wantStatus(t, "h200 through node 2", resp, b, http.StatusOK)
		admin1.json(http.MethodPatch, "/api/admin/users/prem", map[string]any{"tier": "Enterprise"}, http.StatusOK, nil)
		var link struct {
			URL string `json:"url"`
		}
		user1.json(http.MethodPost, "/api/images/"+img.ID+"/expiring-links", map[string]any{"expires_in": 300, "height": 200}, http.StatusCreated, &link)
		resp, b = anon2.get(pathOf(t, link.URL))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("iteration %d: node 2 answered a link node 1 handed out right after the upgrade with %d %s, want 200", i, resp.StatusCode, b)
		}
	}
}

// startTwoNodes starts two nodes on one fresh PostgreSQL schema and one data directory, as
// docker-compose.yml deploys them, one after the other: the first applies the migrations
// and creates the admin.
func startTwoNodes(t *testing.T) (*node, *node) {
	t.Helper()
	dbURL := storetest.NewSchema(t, storetest.PostgresURL(t))
	data := t.TempDir()
	n1 := startNode(t, data, dbURL)
	return n1, startNode(t, data, dbURL)
}
