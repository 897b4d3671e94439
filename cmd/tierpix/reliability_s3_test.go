package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/tierpix/tierpix/api/openapi/openapitest"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
)

// outageBound is how long a request that needs the bucket may take to be refused while the
// bucket is down.
const outageBound = 5 * time.Second

// recoveryBound is how soon after the S3 server answers again the node must stop refusing
// what needs it: a failure takes the bucket for down for a second (store's downFor).
const recoveryBound = 3 * time.Second

// outageRequest is one request of TestBucketOutage's load, as the client saw it.
type outageRequest struct {
	kind       string
	start, end time.Time
	status     int
	retryAfter string
	err        error
	body       []byte
}

func (r outageRequest) took() time.Duration { return r.end.Sub(r.start) }

// outageLoad sends the load's requests and keeps what each got.
type outageLoad struct {
	t     *testing.T
	cli   *http.Client
	token string

	mu   sync.Mutex
	reqs []outageRequest
}

// send makes one request; a client timeout (a hang) comes back as err.
func (l *outageLoad) send(kind, method, url string, body io.Reader, contentType string) outageRequest {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		l.t.Error(err)
		return outageRequest{kind: kind, err: err}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if strings.Contains(url, "/api/") {
		req.Header.Set("Authorization", "Bearer "+l.token)
	}
	r := outageRequest{kind: kind, start: time.Now()}
	resp, err := l.cli.Do(req)
	if err == nil {
		r.body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		r.status, r.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	}
	r.end, r.err = time.Now(), err
	l.mu.Lock()
	l.reqs = append(l.reqs, r)
	l.mu.Unlock()
	return r
}

// upload sends data as an upload.
func (l *outageLoad) upload(base string, data []byte) outageRequest {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("image", "outage.jpg")
	fw.Write(data)
	mw.Close()
	return l.send("upload", http.MethodPost, base+"/api/images", &buf, mw.FormDataContentType())
}

// TestBucketOutage kills the S3 server under a node's traffic and brings it back. A second
// node on the same database and bucket uploads the "cold" images, whose originals the first
// node has never fetched. While the bucket is down: cached thumbnails, renders from originals
// in the node's cache, lists and /api/me answer 200; uploads, first renders and originals of
// cold images 503 with Retry-After within outageBound, never 500, never a hang; /healthz 200,
// saying the originals are unavailable; deletes 204, their objects left for the sweep. Once the
// server is back the node recovers without a restart, every upload that got 201 is in the
// bucket byte for byte, every refused one left no row, and a sweep (its clock an hour and more
// ahead) removes exactly the objects without rows. It runs on PostgreSQL, which the two nodes
// share as nodes without a shared directory do.
func TestBucketOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("kills an S3 server under load")
	}
	dbURL := postgresURL(t)
	srv := storetest.StartS3(t)
	bucket := srv.NewBucket(t)
	env := srv.Env(bucket)
	env["DATABASE_URL"] = dbURL
	a := startServer(t, env)
	b := startServer(t, env)
	admin := a.basic(t, testAdmin, testAdminPW)
	token := newTestUserToken(t, admin, "Enterprise")
	userA, userB := a.bearer(t, token), b.bearer(t, token)

	// linksOnA returns the image's links as node a hands them out.
	linksOnA := func(id string) imageJSON {
		t.Helper()
		var img imageJSON
		resp, body := userA.json("GET", "/api/images/"+id, nil, &img)
		wantStatus(t, "image on node a", resp, body, http.StatusOK)
		return img
	}
	uploadTo := func(c *client, name string, data []byte) imageJSON {
		t.Helper()
		var img imageJSON
		resp, body := c.upload(name, data, &img)
		wantStatus(t, "upload "+name, resp, body, http.StatusCreated)
		return linksOnA(img.ID)
	}
	height := func(img imageJSON, h int) string {
		for _, th := range img.Links.Thumbnails {
			if th.Height == h {
				return th.URL
			}
		}
		t.Fatalf("image %s has no %d px link: %+v", img.ID, h, img.Links)
		return ""
	}
	originals := map[string][]byte{} // id -> the bytes uploaded, of every image that got 201

	// warm: uploaded through a, so a keeps their originals; their 200 px thumbnails rendered.
	var warm []imageJSON
	for i := range 3 {
		data := gradientJPEG(t, 600+i, 400)
		img := uploadTo(userA, fmt.Sprintf("warm-%d.jpg", i), data)
		originals[img.ID] = data
		resp, body := getLink(t, height(img, 200))
		wantStatus(t, "warm thumbnail", resp, body, http.StatusOK)
		warm = append(warm, img)
	}
	// cold: uploaded through b, never fetched by a. The probe shows a reads such originals
	// from the bucket before the outage: a 200 px render and the original.
	var cold []imageJSON
	for i := range 4 {
		data := gradientJPEG(t, 640+i, 480)
		if i == 0 {
			data = noiseJPEG(t, 1600, 1200) // some MB: a longer transfer for the kill to cut
		}
		img := uploadTo(userB, fmt.Sprintf("cold-%d.jpg", i), data)
		originals[img.ID] = data
		cold = append(cold, img)
	}
	probeData := gradientJPEG(t, 700, 500)
	probe := uploadTo(userB, "probe.jpg", probeData)
	originals[probe.ID] = probeData
	resp, body := getLink(t, height(probe, 200))
	wantStatus(t, "a render of a cold original before the outage", resp, body, http.StatusOK)
	resp, body = getLink(t, probe.Links.Original)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, probeData) {
		t.Fatalf("a cold original before the outage: got %d and %d bytes, want 200 and the %d uploaded", resp.StatusCode, len(body), len(probeData))
	}
	// doomed: deleted during the outage.
	var doomed []imageJSON
	for i := range 3 {
		data := gradientJPEG(t, 500+i, 300)
		img := uploadTo(userA, fmt.Sprintf("doomed-%d.jpg", i), data)
		originals[img.ID] = data
		doomed = append(doomed, img)
	}

	load := &outageLoad{t: t, token: token, cli: &http.Client{
		Timeout:   15 * time.Second, // a hang shows as an error
		Transport: openapitest.Transport(t, &http.Transport{MaxIdleConnsPerHost: 8}),
	}}
	t.Cleanup(load.cli.CloseIdleConnections)
	var (
		accMu    sync.Mutex
		accepted = map[string][]byte{} // uploads of the load that got 201
	)
	stop := make(chan struct{})
	killed := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	// loop runs step until stop, at most maxRequests times, pausing between steps: some 200
	// requests a second from each of the five loops at most.
	const maxRequests = 3000
	var wg sync.WaitGroup
	loop := func(after chan struct{}, pause time.Duration, step func(i int)) {
		wg.Go(func() {
			if after != nil {
				select {
				case <-after:
				case <-stop:
					return
				}
			}
			for i := 0; i < maxRequests && !stopped(); i++ {
				step(i)
				time.Sleep(pause)
			}
		})
	}
	// target is a link the load fetches; size is the original's length, for a GET of one.
	type target struct {
		kind, method, url string
		size              int
	}
	fetch := func(targets []target) func(i int) {
		return func(i int) {
			tg := targets[i%len(targets)]
			r := load.send(tg.kind, tg.method, tg.url, nil, "")
			if r.status == http.StatusOK && tg.size > 0 && len(r.body) != tg.size {
				t.Errorf("%s: got 200 with %d bytes, want the %d of the original", tg.kind, len(r.body), tg.size)
			}
		}
	}
	var cachedThumbs, coldOriginals, coldThumbs, fromCache []target
	for _, img := range append([]imageJSON{probe}, warm...) {
		cachedThumbs = append(cachedThumbs, target{"cached thumbnail", http.MethodGet, height(img, 200), 0})
	}
	for _, img := range cold {
		coldOriginals = append(coldOriginals,
			target{"cold original", http.MethodGet, img.Links.Original, len(originals[img.ID])},
			target{"cold original HEAD", http.MethodHead, img.Links.Original, 0})
		coldThumbs = append(coldThumbs,
			target{"cold thumbnail", http.MethodGet, height(img, 200), 0},
			target{"cold thumbnail", http.MethodGet, height(img, 400), 0})
	}
	for _, img := range warm {
		fromCache = append(fromCache,
			target{"warm original", http.MethodGet, img.Links.Original, len(originals[img.ID])},
			target{"warm 400 px", http.MethodGet, height(img, 400), 0})
	}
	// From before the kill: cached thumbnails; originals of cold images, which the node
	// streams from the bucket each time (an original link does not fill the node's cache);
	// uploads, lists and /api/me in turn; /healthz.
	loop(nil, 5*time.Millisecond, fetch(cachedThumbs))
	loop(nil, 5*time.Millisecond, fetch(coldOriginals))
	uploads := make([][]byte, 64)
	for i := range uploads {
		uploads[i] = gradientJPEG(t, 80+i, 60)
	}
	loop(nil, 5*time.Millisecond, func(i int) {
		switch i % 3 {
		case 0:
			data := uploads[i/3%len(uploads)]
			r := load.upload(a.URL, data)
			if r.status == http.StatusCreated {
				var img imageJSON
				if err := json.Unmarshal(r.body, &img); err != nil {
					t.Errorf("upload answer %s: %v", r.body, err)
					return
				}
				accMu.Lock()
				accepted[img.ID] = data
				accMu.Unlock()
			}
		case 1:
			load.send("list", http.MethodGet, a.URL+"/api/images?limit=5", nil, "")
		case 2:
			load.send("me", http.MethodGet, a.URL+"/api/me", nil, "")
		}
	})
	loop(nil, 200*time.Millisecond, func(int) {
		load.send("healthz", http.MethodGet, a.URL+"/healthz", nil, "")
	})
	// From the kill on, lest they fill the caches first: first renders of cold images, which
	// need their originals from the bucket, and what the node's cache of originals answers
	// without it (warm originals, and their 400 px thumbnails rendered from them).
	loop(killed, 5*time.Millisecond, fetch(coldThumbs))
	loop(killed, 5*time.Millisecond, fetch(fromCache))

	time.Sleep(time.Second) // traffic before the kill
	killStart := time.Now()
	srv.Stop()
	killDone := time.Now()
	close(killed)
	var deletes []outageRequest
	for _, img := range doomed {
		time.Sleep(time.Second)
		deletes = append(deletes, load.send("delete", http.MethodDelete, a.URL+"/api/images/"+img.ID, nil, ""))
	}
	time.Sleep(3 * time.Second)
	restart := time.Now()
	srv.Start(t)
	restarted := time.Now()
	// Recovery without restarting tierpix: /healthz says the originals are there again.
	var recovered time.Duration
	waitFor(t, 20*time.Second, "/healthz saying the originals are available", func() bool {
		r := load.send("healthz", http.MethodGet, a.URL+"/healthz", nil, "")
		recovered = time.Since(restarted)
		return r.status == http.StatusOK && originalsCheck(t, r.body) == "ok"
	})
	time.Sleep(time.Second) // traffic after the recovery
	close(stop)
	wg.Wait()

	// Every answer: no transport error (a hang ends in the client's timeout), no 5xx but
	// 503, none slower than 10 s. During the outage each kind answers as promised.
	want := map[string]int{
		"cached thumbnail":   http.StatusOK,
		"list":               http.StatusOK,
		"me":                 http.StatusOK,
		"healthz":            http.StatusOK,
		"warm original":      http.StatusOK,
		"warm 400 px":        http.StatusOK,
		"upload":             http.StatusServiceUnavailable,
		"cold thumbnail":     http.StatusServiceUnavailable,
		"cold original":      http.StatusServiceUnavailable,
		"cold original HEAD": http.StatusServiceUnavailable,
		"delete":             http.StatusNoContent,
	}
	const (
		before  = "before the kill"
		killing = "across the kill"
		down    = "during the outage"
		booting = "across the restart"
		back    = "after the restart"
	)
	type tally struct {
		statuses map[int]int
		slowest  time.Duration
	}
	tallies := map[string]map[string]*tally{}
	var took503 []time.Duration // of the outage
	var last503 time.Duration   // after the restart, from when the S3 server answered
	load.mu.Lock()
	reqs := slices.Clone(load.reqs)
	load.mu.Unlock()
	for _, r := range reqs {
		what := fmt.Sprintf("%s %.2f s after the kill", r.kind, r.start.Sub(killStart).Seconds())
		killedMidway := r.start.Before(killDone) && r.end.After(killStart)
		if r.err != nil {
			// An original the kill cut after its headers were sent ends in an error (its
			// Content-Length unmet), never in a short body passed as whole.
			if killedMidway && r.kind == "cold original" && errors.Is(r.err, io.ErrUnexpectedEOF) {
				t.Logf("%s: cut by the kill (%v), as it must be", what, r.err)
				continue
			}
			t.Errorf("%s: %v, want an answer", what, r.err)
			continue
		}
		phase := down
		switch {
		case r.end.Before(killStart):
			phase = before
			if r.status != http.StatusOK && r.status != http.StatusCreated {
				t.Errorf("%s: got %d %s before the kill, want 200 or 201", what, r.status, r.body)
			}
		case killedMidway:
			phase = killing
		case r.start.Before(restarted) && r.end.After(restart):
			phase = booting
		case r.start.After(restarted):
			phase = back
			if r.status == http.StatusServiceUnavailable {
				last503 = max(last503, r.start.Sub(restarted))
			}
			if r.status == http.StatusServiceUnavailable && r.start.After(restarted.Add(recoveryBound)) {
				t.Errorf("%s: 503 %.2f s after the S3 server answered again, want 503s to stop within %v",
					what, r.start.Sub(restarted).Seconds(), recoveryBound)
			}
		default:
			if r.status != want[r.kind] {
				t.Errorf("%s: got %d %s, want %d", what, r.status, r.body, want[r.kind])
			}
			if r.status == http.StatusServiceUnavailable {
				took503 = append(took503, r.took())
				if r.took() > outageBound {
					t.Errorf("%s: 503 after %v, want within %v", what, r.took(), outageBound)
				}
			}
			if r.kind == "healthz" && r.status == http.StatusOK {
				if got := originalsCheck(t, r.body); !strings.HasPrefix(got, "unavailable") {
					t.Errorf("%s: checks.originals %q, want unavailable", what, got)
				}
			}
		}
		if tallies[phase] == nil {
			tallies[phase] = map[string]*tally{}
		}
		tl := tallies[phase][r.kind]
		if tl == nil {
			tl = &tally{statuses: map[int]int{}}
			tallies[phase][r.kind] = tl
		}
		tl.statuses[r.status]++
		tl.slowest = max(tl.slowest, r.took())
	}
	for k := range want {
		if tallies[down][k] == nil {
			t.Errorf("no %s request fell within the outage", k)
		}
	}
	slices.Sort(took503)
	t.Logf("S3 server killed for %.1f s, %d requests in all; it took %v to start again; /healthz said the originals were back %v after it answered, the last 503 began %v after",
		restart.Sub(killDone).Seconds(), len(reqs), restarted.Sub(restart).Round(time.Millisecond), recovered.Round(time.Millisecond), last503.Round(time.Millisecond))
	if n := len(took503); n > 0 {
		t.Logf("503s during the outage: %d, median %v, 99th percentile %v, slowest %v", n,
			took503[n/2].Round(time.Millisecond), took503[n*99/100].Round(time.Millisecond), took503[n-1].Round(time.Millisecond))
	}
	for _, phase := range []string{before, killing, down, booting, back} {
		for _, k := range slices.Sorted(maps.Keys(tallies[phase])) {
			tl := tallies[phase][k]
			var st []string
			for _, code := range slices.Sorted(maps.Keys(tl.statuses)) {
				st = append(st, fmt.Sprintf("%d×%d", tl.statuses[code], code))
			}
			t.Logf("  %s, %-20s %s, slowest %v", phase, k+":", strings.Join(st, " "), tl.slowest.Round(time.Millisecond))
		}
	}
	for _, d := range deletes {
		if d.status != http.StatusNoContent {
			t.Errorf("delete during the outage: got %d %s, want 204", d.status, d.body)
		}
	}
	logs := a.logs.String()
	t.Logf("node a logged %d ERROR and %d WARN lines", strings.Count(logs, "level=ERROR"), strings.Count(logs, "level=WARN"))

	// Nothing acknowledged is lost: every upload that got 201 is in the bucket, byte for byte,
	// and its original link reads it back; every refused upload left no row.
	accMu.Lock()
	for id, data := range accepted {
		originals[id] = data
	}
	accMu.Unlock()
	for _, img := range doomed {
		delete(originals, img.ID)
	}
	cli := srv.Client(t)
	for id, data := range originals {
		obj, err := cli.GetObject(context.Background(), bucket, "originals/"+id, minio.GetObjectOptions{})
		if err != nil {
			t.Fatalf("get object of %s: %v", id, err)
		}
		got, err := io.ReadAll(obj)
		obj.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("the object of %s: got %d bytes (err %v), want the %d uploaded", id, len(got), err, len(data))
		}
		resp, body := getLink(t, linksOnA(id).Links.Original)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
			t.Errorf("the original of %s after the outage: got %d and %d bytes, want 200 and the %d uploaded", id, resp.StatusCode, len(body), len(data))
		}
	}
	live := slices.Sorted(maps.Keys(originals))
	if rows := allImageIDs(t, userA); !slices.Equal(rows, live) {
		t.Errorf("rows after the outage: got %d %v, want the %d acknowledged %v", len(rows), rows, len(live), live)
	}
	// The deletes took the rows; their objects wait for the sweep.
	keys := srv.Keys(t, bucket, "originals/")
	for _, img := range doomed {
		resp, body := getLink(t, img.Links.Original)
		wantStatus(t, "a link of an image deleted during the outage", resp, body, http.StatusNotFound)
		if !slices.Contains(keys, "originals/"+img.ID) {
			t.Errorf("the object of %s, deleted during the outage, is gone before any sweep: want it left for the sweep", img.ID)
		}
	}

	// Renders and originals of the cold images answer again.
	for _, img := range cold {
		for _, h := range []int{200, 400} {
			resp, body := getLink(t, height(img, h))
			wantStatus(t, fmt.Sprintf("cold %d px after the outage", h), resp, body, http.StatusOK)
		}
	}
	var after imageJSON
	resp, body = admin.upload("after.jpg", gradientJPEG(t, 90, 60), &after)
	wantStatus(t, "upload after the outage", resp, body, http.StatusCreated)
	resp, body = admin.json("DELETE", "/api/images/"+after.ID, nil, nil)
	wantStatus(t, "delete after the outage", resp, body, http.StatusNoContent)
	if slices.Contains(srv.Keys(t, bucket, "originals/"), "originals/"+after.ID) {
		t.Errorf("the object of an image deleted after the outage is still there, want it removed with the row")
	}

	// A sweep whose clock is past orphanAge removes exactly the objects without rows: those
	// of the images deleted during the outage, and of any upload refused mid-put.
	sweeper, err := store.Open(context.Background(), store.Config{
		DatabaseURL: dbURL, DataDir: t.TempDir(), Originals: env["TIERPIX_ORIGINALS"], S3: srv.Config(),
		Now: func() time.Time { return time.Now().Add(2 * orphanAge) }, MinFreeBytes: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sweeper.Close()
	res, err := sweeper.Sweep(context.Background(), orphanAge)
	if err != nil {
		t.Fatalf("sweep after the outage: %v", err)
	}
	var wantKeys []string
	for _, id := range live {
		wantKeys = append(wantKeys, "originals/"+id)
	}
	if got := srv.Keys(t, bucket, "originals/"); !slices.Equal(got, wantKeys) {
		t.Errorf("objects after the sweep: got %v, want those of the %d rows %v", got, len(wantKeys), wantKeys)
	}
	t.Logf("accepted uploads during the load: %d; the sweep removed %d orphan objects (%d deleted during the outage)", len(accepted), res.Orphans, len(doomed))
	if res.Orphans < len(doomed) {
		t.Errorf("the sweep removed %d objects, want at least the %d deleted during the outage", res.Orphans, len(doomed))
	}
}

// originalsCheck returns checks.originals of a /healthz answer.
func originalsCheck(t *testing.T, body []byte) string {
	var h struct {
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		t.Errorf("/healthz answer %q: %v", body, err)
	}
	return h.Checks["originals"]
}

// allImageIDs lists every image of c's user, sorted, following next.
func allImageIDs(t *testing.T, c *client) []string {
	t.Helper()
	var ids []string
	link := "/api/images?limit=100"
	for range 100 {
		var p struct {
			Results []imageJSON `json:"results"`
			Next    *string     `json:"next"`
		}
		resp, body := c.json("GET", link, nil, &p)
		wantStatus(t, "list", resp, body, http.StatusOK)
		for _, r := range p.Results {
			ids = append(ids, r.ID)
		}
		if p.Next == nil {
			slices.Sort(ids)
			return ids
		}
		link = *p.Next
	}
	t.Fatal("list: more than 100 pages")
	return nil
}
