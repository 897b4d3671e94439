package nginx_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tierpix/tierpix/signing"
	"github.com/tierpix/tierpix/store/storetest"
)

// TestSeveralNodes runs the deployment of docker-compose.yml: two tierpix nodes on one
// PostgreSQL database (a fresh schema), one S3 bucket of originals and one signing key, each
// with a data directory of its own, behind nginx with both as upstreams. An image uploaded to
// one node is served by the other, and a tier change made on one node takes effect on the
// other's origin within 5 seconds, and in nginx within TIERPIX_CACHE_MAX_AGE more.
func TestSeveralNodes(t *testing.T) {
	t.Parallel()
	n1, n2, bucket := startTwoNodes(t)
	f := startFront(t, "", n1, n2)

	admin1 := newClient(t, n1.URL, adminName, adminPW)
	admin1.createUser("prem", "Premium")
	orig := testJPEG(t, 300, 480)
	img := newClient(t, n1.URL, "prem", userPW).upload(orig)

	// Node 2 has the row (the database) and the original (the bucket: the nodes share no
	// directory), and takes node 1's links (the signing key).
	if _, ok := bucket.Stat(t, img.ID); !ok {
		t.Fatalf("the original of %s is not in the bucket", img.ID)
	}
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
	n1, n2, _ := startTwoNodes(t)

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

// TestImageAffinity runs two nodes that share no directory behind nginx. nginx sends every
// link of an image (each size, a .webp link, the original, expiring links) to one node, so each image is
// rendered, and its original fetched from the bucket, on one node only, and the images spread
// over both nodes. Then one node is killed in the middle of a bounded load of links over
// every size of every image: the links go on answering through the other node, a request may
// fail only if it was in flight at the kill and for the dead node's images, nginx retries on
// the other node the requests it met the dead node with, and the survivor renders each of the
// dead node's variants once and none of its own again.
func TestImageAffinity(t *testing.T) {
	t.Parallel()
	n1, n2, _ := startTwoNodes(t)
	nodes := []*node{n1, n2}
	f := startFront(t, "", n1, n2)

	heights := []int{100, 200, 300, 400}
	admin := newClient(t, n1.URL, adminName, adminPW)
	admin.json(http.MethodPost, "/api/admin/tiers", map[string]any{
		"name": "Gallery", "thumbnail_heights": heights, "original_link": true, "expiring_links": true,
	}, http.StatusCreated, nil)
	admin.createUser("gal", "Gallery")
	// Uploaded through node 1, whose cache of originals then holds every original; node 2's
	// holds only those it fetched.
	user := newClient(t, n1.URL, "gal", userPW)
	const images = 16
	var imgs []imageJSON
	for range images {
		imgs = append(imgs, user.upload(testJPEG(t, 300, 480)))
	}

	// Every link of every image, through nginx: each size, a .webp link, the original and an
	// expiring link.
	signer := testSigner(t)
	expires := time.Now().Unix() + 3600
	anon := newClient(t, f.URL, "", "")
	rendersBefore := []int{n1.renders(t), n2.renders(t)}
	links := map[string][]string{}
	for _, img := range imgs {
		for _, h := range heights {
			links[img.ID] = append(links[img.ID], img.thumbnailPath(t, h))
		}
		links[img.ID] = append(links[img.ID], img.webpPath(t, 400), pathOf(t, img.Links.Original),
			signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(400), Expires: expires}))
		for _, path := range links[img.ID] {
			resp, b := anon.get(path)
			wantStatus(t, path+" through nginx", resp, b, http.StatusOK)
		}
	}

	// Each image's links all reached one node.
	n1.sync(t)
	n2.sync(t)
	owner := map[string]int{} // image id: index in nodes
	owned := make([][]string, len(nodes))
	for _, img := range imgs {
		at := make([]int, len(nodes))
		for i, n := range nodes {
			for _, path := range links[img.ID] {
				at[i] += n.requests("GET", path)
			}
		}
		i := slices.Index(at, len(links[img.ID]))
		if i < 0 || at[1-i] != 0 {
			t.Fatalf("image %s: got %d of its %d links at node 1 and %d at node 2, want all at one node", img.ID, at[0], len(links[img.ID]), at[1])
		}
		owner[img.ID] = i
		owned[i] = append(owned[i], img.ID)
	}
	t.Logf("images by node: %d and %d of %d", len(owned[0]), len(owned[1]), images)
	if len(owned[0]) == 0 || len(owned[1]) == 0 {
		t.Fatalf("all %d images hashed to one node, want them spread over both", images)
	}
	// Each node rendered every size of its own images, and the WebP, once, and nothing else.
	for i, n := range nodes {
		if got, want := n.renders(t)-rendersBefore[i], (len(heights)+1)*len(owned[i]); got != want {
			t.Fatalf("node %d rendered %d thumbnails, want %d (the %d sizes and the WebP of its %d images, once each)", i+1, got, want, len(heights), len(owned[i]))
		}
	}
	// Node 2 uploaded nothing: the originals it holds are the ones it fetched, its own.
	slices.Sort(owned[1])
	if got := n2.cachedOriginals(t); !slices.Equal(got, owned[1]) {
		t.Fatalf("node 2 holds the originals %v, want those of its images, %v", got, owned[1])
	}

	// A load of links over every size of every image, each request a new expiring link (so a
	// miss in nginx, answered from a node's caches), in bursts of concurrent requests. Node 1
	// is killed right after a burst with some of its images has been sent, so that requests
	// for them are in flight; node 2 must then fetch node 1's originals from the bucket and
	// render their variants.
	const (
		total    = 384
		perBurst = 8
		every    = 50 * time.Millisecond
		killFrom = 120 // the first request that may precede the kill
		victim   = 0
	)
	survivor := nodes[1-victim]
	survivorBefore := survivor.renders(t)
	link := func(i int) (string, string) {
		img := imgs[i/len(heights)%images]
		l := signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(heights[i%len(heights)]), Expires: expires + int64(i)}
		return img.ID, signer.Path(l)
	}
	var killStart, killEnd time.Time
	results := runLoad(t, f.URL, total, perBurst, every, link, func(last int) {
		if !killStart.IsZero() || last < killFrom {
			return
		}
		for i := last - perBurst + 1; i <= last; i++ {
			if id, _ := link(i); owner[id] == victim {
				killStart = time.Now()
				nodes[victim].kill()
				killEnd = time.Now()
				return
			}
		}
	})
	if killStart.IsZero() {
		t.Fatal("node 1 was never killed: no burst after the first requests had its images")
	}

	var failed, inFlight, victimInFlight, after int
	var slowest time.Duration
	first, last := results[0].start, results[0].end
	for _, r := range results {
		first, last = minTime(first, r.start), maxTime(last, r.end)
		if r.start.Before(killEnd) && r.end.After(killStart) {
			inFlight++
			if owner[r.image] == victim {
				victimInFlight++
			}
		}
		if r.start.After(killEnd) {
			after++
		}
		slowest = max(slowest, r.end.Sub(r.start))
		if r.err == nil && r.status == http.StatusOK {
			continue
		}
		failed++
		what := fmt.Sprintf("request %d (image %s, node %d's, sent %v after the kill): got status %d, error %v",
			r.i, r.image, owner[r.image]+1, r.start.Sub(killEnd).Round(time.Millisecond), r.status, r.err)
		switch {
		case owner[r.image] != victim:
			t.Errorf("%s; want 200: the survivor's images must not notice the kill", what)
		case !r.start.Before(killEnd) || !r.end.After(killStart):
			t.Errorf("%s; want 200: only requests in flight at the kill may fail", what)
		default:
			t.Logf("%s (in flight at the kill)", what)
		}
	}
	loadTime := last.Sub(first)
	t.Logf("%d requests in %v, %d sent after the kill of node %d; %d in flight at the kill (%d for its images), %d failed; slowest answer %v",
		total, loadTime.Round(time.Millisecond), after, victim+1, inFlight, victimInFlight, failed, slowest.Round(time.Millisecond))
	// What nginx met at the dead node: requests it was serving (reset) or new connections
	// (refused), each retried on the survivor.
	var reset, refused int
	for _, line := range strings.Split(f.errorLog(t), "\n") {
		if strings.Contains(line, "[error]") && strings.Contains(line, `upstream: "http://`+nodes[victim].Addr()+"/") {
			switch {
			case strings.Contains(line, "while connecting to upstream"):
				refused++
			default:
				reset++
			}
		}
	}
	t.Logf("nginx met node %d dead %d times: %d requests cut while it served them, %d connections refused", victim+1, reset+refused, reset, refused)
	if reset+refused == 0 {
		t.Fatalf("nginx never met node %d dead: the load did not test a stop mid-traffic", victim+1)
	}
	// A retry on the next node saves them; one that cannot be retried (its answer already
	// begun) may fail, but not all of them.
	if failed >= reset+refused {
		t.Errorf("%d requests failed of the %d nginx met node %d dead with: want them retried on the other node", failed, reset+refused, victim+1)
	}
	if victimInFlight == 0 {
		t.Fatalf("no request for node %d's images was in flight at its kill: the load did not test a stop mid-traffic", victim+1)
	}
	// Every variant of the dead node's images was asked for after the kill (the load cycles
	// through them), so the survivor rendered each once; any more would be a re-render.
	if got, want := survivor.renders(t)-survivorBefore, len(heights)*len(owned[victim]); got != want {
		t.Fatalf("the survivor rendered %d thumbnails during the load, want %d (the %d sizes of node %d's %d images, once each)", got, want, len(heights), victim+1, len(owned[victim]))
	}
	// It rendered them from the originals it fetched from the bucket: now every image's.
	var all []string
	for _, img := range imgs {
		all = append(all, img.ID)
	}
	slices.Sort(all)
	if got := survivor.cachedOriginals(t); !slices.Equal(got, all) {
		t.Fatalf("after the load the survivor holds the originals %v, want every image's, %v", got, all)
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// loadResult is one request of runLoad.
type loadResult struct {
	i          int
	image      string
	start, end time.Time
	status     int // 0 when err is set
	err        error
}

// runLoad sends total GET requests to base, the i-th for the path link(i) returns (with the
// image id it names), in bursts of perBurst concurrent requests one interval apart; after
// handing out a burst, whose last request is last, it calls after(last) on the test's
// goroutine. It returns the results in the order of i, and fails the test if the load takes
// more than 30 s beyond its schedule: every request has a 10 s limit.
func runLoad(t *testing.T, base string, total, perBurst int, interval time.Duration,
	link func(i int) (image, path string), after func(last int)) []loadResult {
	t.Helper()
	hc := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: perBurst},
		Timeout:   10 * time.Second,
	}
	defer hc.CloseIdleConnections()
	results := make([]loadResult, total)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range perBurst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				r := &results[i]
				r.i = i
				var path string
				r.image, path = link(i)
				r.start = time.Now()
				resp, err := hc.Get(base + path)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					r.status = resp.StatusCode
				}
				r.end, r.err = time.Now(), err
			}
		}()
	}
	bound := time.Duration(total/perBurst)*interval + 30*time.Second
	deadline := time.After(bound)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; i < total; i++ {
		select {
		case jobs <- i:
		case <-deadline:
			close(jobs)
			t.Fatalf("load: request %d of %d not taken by a worker within %v", i, total, bound)
		}
		if (i+1)%perBurst == 0 || i == total-1 {
			after(i)
			<-tick.C
		}
	}
	close(jobs)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-deadline:
		t.Fatalf("load: %d requests not done within %v", total, bound)
	}
	return results
}

// startTwoNodes starts two nodes as docker-compose.yml deploys them: one fresh PostgreSQL
// schema, originals in one fresh bucket of an S3 server started for the test, and a data
// directory of its own for each node (render cache, cached originals), so that nothing but
// the database and the bucket is shared. They start one after the other: the first applies
// the migrations and creates the admin.
func startTwoNodes(t *testing.T) (*node, *node, *storetest.Bucket) {
	t.Helper()
	dbURL := storetest.NewSchema(t, storetest.PostgresURL(t))
	bucket := storetest.NewStoreBucket(t, storetest.StartS3(t))
	var env []string
	for k, v := range bucket.Env(bucket.Name) {
		env = append(env, k+"="+v)
	}
	n1 := startNode(t, t.TempDir(), dbURL, env...)
	return n1, startNode(t, t.TempDir(), dbURL, env...), bucket
}
