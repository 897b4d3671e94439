// Package nginx_test runs the shipped caching front (tierpix.conf) in a real nginx in front
// of real tierpix processes, and checks the promises the file makes: hits never reach the
// origin, variants never mix, errors are never cached, expiring links are never served past
// their expiry, a deleted image stops being served within TIERPIX_CACHE_MAX_AGE, and several
// nodes sharing PostgreSQL and an S3 bucket but no directory behave as one service, each
// image's links going to one node and to another when that one dies.
//
// The package has no code of its own; nginx/tierpix.conf is what it tests.
package nginx_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tierpix/tierpix/api/openapi/openapitest"
)

const (
	// signingKey is shared by every node of a test and by the test itself, which signs
	// links the API does not hand out (expiring in seconds, unknown ids, unlisted heights).
	signingKey = "nginx-test-signing-key-0123456789abcdefghij"
	adminName  = "root"
	adminPW    = "correct horse battery"
	userPW     = "user-password-1"

	// cacheMaxAge is TIERPIX_CACHE_MAX_AGE for every node: small, so the tests can wait out
	// the bound it sets on a deleted image or a lost size.
	cacheMaxAge = 3 * time.Second
)

// binDir holds the tierpix binary, built once, by the first test that starts a node.
var (
	binDir    string
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	var err error
	binDir, err = os.MkdirTemp("", "tierpix-nginx-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}

// tierpixBin builds cmd/tierpix (once) and returns the binary's path.
func tierpixBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		bin := filepath.Join(binDir, "tierpix")
		start := time.Now()
		out, err := exec.Command("go", "build", "-o", bin, "github.com/tierpix/tierpix/cmd/tierpix").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/tierpix: %v\n%s", err, out)
			return
		}
		t.Logf("built tierpix in %v", time.Since(start).Round(time.Millisecond))
		binPath = bin
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// nginxPath returns the nginx binary: $TIERPIX_NGINX, else nginx on PATH, else
// /usr/sbin/nginx (Debian's, not on a user's PATH). Without one the test is skipped, except
// under CI=true, where it fails: `make test` installs nginx.
func nginxPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("TIERPIX_NGINX"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("TIERPIX_NGINX=%s: %v", p, err)
		}
		return p
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := exec.LookPath("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nginx is not installed; CI must run the nginx tests (make test installs it)")
	}
	t.Skip("nginx is not installed (apt-get install nginx-light, or set TIERPIX_NGINX); `make test` installs it")
	return ""
}

// node is one tierpix process.
type node struct {
	URL     string // http://127.0.0.1:port, the node itself
	DataDir string
	cmd     *exec.Cmd
	logs    *syncBuffer
	syncs   atomic.Int64
}

var listenRE = regexp.MustCompile(`tierpix listening" addr=(\S+)`)

// startNode runs `tierpix serve` on 127.0.0.1:0 with the test's signing key, admin and
// cache max-age, logging every request (debug), over dataDir and databaseURL (empty:
// SQLite in dataDir). extraEnv comes last and wins. It returns once the node listens.
func startNode(t *testing.T, dataDir, databaseURL string, extraEnv ...string) *node {
	t.Helper()
	n := &node{DataDir: dataDir, logs: &syncBuffer{}}
	n.cmd = exec.Command(tierpixBin(t), "serve")
	n.cmd.Env = append(os.Environ(),
		"TIERPIX_ADDR=127.0.0.1:0",
		"TIERPIX_PUBLIC_URL=",
		"TIERPIX_DATA_DIR="+dataDir,
		"DATABASE_URL="+databaseURL,
		"TIERPIX_SIGNING_KEY="+signingKey,
		"TIERPIX_ADMIN_USERNAME="+adminName,
		"TIERPIX_ADMIN_PASSWORD="+adminPW,
		fmt.Sprintf("TIERPIX_CACHE_MAX_AGE=%d", int(cacheMaxAge/time.Second)),
		"TIERPIX_TRUSTED_PROXIES=127.0.0.1",
		"TIERPIX_RENDER_WORKERS=2",
		"TIERPIX_LOG_LEVEL=debug",
		"TIERPIX_LOG_FORMAT=text",
	)
	n.cmd.Env = append(n.cmd.Env, extraEnv...)
	// The node dies with the test binary, even if the test times out.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start tierpix: %v", err)
	}
	t.Cleanup(func() {
		n.cmd.Process.Kill()
		n.cmd.Wait()
		if t.Failed() {
			t.Logf("log of the tierpix node at %s:\n%s", n.URL, n.logs.String())
		}
	})
	addr := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stderr)
		s.Buffer(make([]byte, 64<<10), 1<<20)
		for s.Scan() {
			n.logs.Write(append(s.Bytes(), '\n'))
			if m := listenRE.FindSubmatch(s.Bytes()); m != nil {
				addr <- string(m[1])
			}
		}
	}()
	select {
	case a := <-addr:
		n.URL = "http://" + a
	case <-time.After(60 * time.Second):
		t.Fatalf("tierpix did not start listening within 60s:\n%s", n.logs.String())
	}
	return n
}

// Addr is the node's host:port.
func (n *node) Addr() string { return strings.TrimPrefix(n.URL, "http://") }

// requests counts the requests for path (without a query) that the node has logged. Call
// sync first: a request's log line may still be on its way through the pipe.
func (n *node) requests(method, path string) int {
	return strings.Count(n.logs.String(), " msg=request method="+method+" path="+path+" status=")
}

// sync makes a request of its own to the node and waits until its log line has arrived. Log
// lines are written in order, so every request that was answered before sync was called is
// in the log when it returns.
func (n *node) sync(t *testing.T) {
	t.Helper()
	path := fmt.Sprintf("/sync-%d", n.syncs.Add(1))
	resp, err := http.Get(n.URL + path)
	if err != nil {
		t.Fatalf("sync with %s: %v", n.URL, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	waitFor(t, 10*time.Second, "the log line of "+path, func() bool { return n.requests("GET", path) == 1 })
}

// kill stops the node at once (SIGKILL), as a crash or a lost machine would, and waits until
// it has exited.
func (n *node) kill() {
	n.cmd.Process.Kill()
	n.cmd.Wait()
}

// renders reads tierpix_origin_renders_total, the thumbnails the node has rendered, from its
// /metrics.
func (n *node) renders(t *testing.T) int {
	t.Helper()
	resp, err := http.Get(n.URL + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", n.URL, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics of %s: got status %d, error %v; want 200", n.URL, resp.StatusCode, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "tierpix_origin_renders_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metrics of %s: %q: %v", n.URL, line, err)
			}
			return int(f)
		}
	}
	t.Fatalf("metrics of %s: no tierpix_origin_renders_total", n.URL)
	return 0
}

// cachedOriginals lists, sorted, the ids of the originals in the node's cache of originals
// from a bucket (<data dir>/originals-cache, files named by image id; temp files of fetches
// in progress start with a dot).
func (n *node) cachedOriginals(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(n.DataDir, "originals-cache"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			ids = append(ids, e.Name())
		}
	}
	slices.Sort(ids)
	return ids
}

// front is an nginx running a copy of tierpix.conf.
type front struct {
	URL string
	Dir string
	cmd *exec.Cmd
}

// startFront runs nginx in a temp dir with tierpix.conf (rewritten for the given upstream
// nodes, a free port on 127.0.0.1, a cache in the temp dir and bodyLimit, if not empty, as
// client_max_body_size) included into a generated main config that keeps pid, logs and
// temp files in the temp dir. It returns once nginx proxies /healthz to an origin.
func startFront(t *testing.T, bodyLimit string, nodes ...*node) *front {
	t.Helper()
	bin := nginxPath(t)
	shipped, err := os.ReadFile("tierpix.conf")
	if err != nil {
		t.Fatal(err)
	}
	var servers []string
	for _, n := range nodes {
		servers = append(servers, n.Addr())
	}
	// A free port can be taken between the probe and nginx's bind: try a few.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		dir := t.TempDir()
		port := freePort(t)
		conf, err := rewriteConf(string(shipped), site{
			Servers:   servers,
			Listen:    fmt.Sprintf("127.0.0.1:%d", port),
			CachePath: filepath.Join(dir, "cache"),
			BodyLimit: bodyLimit,
		})
		if err != nil {
			t.Fatalf("rewrite tierpix.conf: %v", err)
		}
		f, err := runNginx(t, bin, dir, conf, port)
		if err == nil {
			return f
		}
		lastErr = err
		if !strings.Contains(err.Error(), "Address already in use") {
			break
		}
	}
	t.Fatal(lastErr)
	return nil
}

// mainConf is the main configuration the tests generate around a copy of tierpix.conf.
// The access log records the cache status, for reading when a test fails.
const mainConf = `# Generated by nginx/harness_test.go.
%s
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
events {
    worker_connections 256;
}
http {
    log_format cache '$remote_addr "$request" $status $upstream_cache_status $upstream_addr $request_time';
    access_log %[2]s/access.log cache;
    client_body_temp_path %[2]s/tmp/body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;
    include %[2]s/tierpix.conf;
}
`

func runNginx(t *testing.T, bin, dir, conf string, port int) (*front, error) {
	t.Helper()
	// As root, nginx's workers would switch to nobody, who cannot enter the test's temp
	// dirs (mode 0700); the workers stay root instead. As anyone else they run as the caller.
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tierpix.conf"), []byte(conf), 0o600); err != nil {
		return nil, err
	}
	main := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(main, []byte(fmt.Sprintf(mainConf, user, dir)), 0o600); err != nil {
		return nil, err
	}
	errorLog := filepath.Join(dir, "error.log")
	if out, err := exec.Command(bin, "-t", "-q", "-p", dir, "-e", errorLog, "-c", main).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nginx -t: %v\n%s", err, out)
	}

	f := &front{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Dir: dir}
	f.cmd = exec.Command(bin, "-p", dir, "-e", errorLog, "-c", main, "-g", "daemon off;")
	// Its own process group, so the workers can be killed with the master; the master
	// shuts down (and takes its workers) when the test binary dies.
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	var out syncBuffer
	f.cmd.Stdout, f.cmd.Stderr = &out, &out
	if err := f.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start nginx: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- f.cmd.Wait() }()
	stop := func() {
		f.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(errorLog)
			return nil, fmt.Errorf("nginx exited: %v\n%s%s", err, out.String(), log)
		default:
		}
		resp, err := http.Get(f.URL + "/healthz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			stop()
			log, _ := os.ReadFile(errorLog)
			return nil, fmt.Errorf("nginx did not proxy /healthz within 30s (last: %v)\n%s", err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			for _, name := range []string{"error.log", "access.log"} {
				b, _ := os.ReadFile(filepath.Join(dir, name))
				t.Logf("nginx %s:\n%s", name, b)
			}
		}
	})
	return f, nil
}

// errorLog returns nginx's error log so far.
func (f *front) errorLog(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.Dir, "error.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// site is what differs between the places tierpix.conf runs: the origins, the address
// nginx listens on, and where the cache lives.
type site struct {
	Servers   []string // host:port of each origin
	Listen    string   // "" keeps the shipped "listen 80;"
	CachePath string   // "" keeps the shipped path
	BodyLimit string   // client_max_body_size; "" keeps the shipped one
}

// upstreams are the upstream blocks of tierpix.conf, each of which lists every node: links
// hashed by image id, and round-robin for the rest.
var upstreams = []string{"tierpix_origin", "tierpix_images"}

// rewriteConf returns conf (tierpix.conf) for s. It replaces the server lines of each upstream
// block (commented ones included) with s.Servers, the listen address, the cache path and the
// body limit, and fails unless each is where it is expected, exactly once: a change to the
// shipped file's shape breaks the tests instead of leaving them to test something else.
func rewriteConf(conf string, s site) (string, error) {
	if n := strings.Count(conf, "\nupstream "); n != len(upstreams) {
		return "", fmt.Errorf("got %d upstream blocks, want %d (%s)", n, len(upstreams), strings.Join(upstreams, ", "))
	}
	for _, name := range upstreams {
		var err error
		if conf, err = rewriteUpstream(conf, name, s.Servers); err != nil {
			return "", err
		}
	}

	if s.Listen != "" {
		if n := strings.Count(conf, "    listen 80;\n"); n != 1 {
			return "", fmt.Errorf(`got %d "listen 80;" lines, want 1`, n)
		}
		conf = strings.Replace(conf, "    listen 80;\n", "    listen "+s.Listen+";\n", 1)
	}
	if s.CachePath != "" {
		const shippedPath = "proxy_cache_path /var/cache/nginx/tierpix "
		if n := strings.Count(conf, shippedPath); n != 1 {
			return "", fmt.Errorf("got %d %q, want 1", n, shippedPath)
		}
		conf = strings.Replace(conf, shippedPath, "proxy_cache_path "+s.CachePath+" ", 1)
	}
	if s.BodyLimit != "" {
		re := regexp.MustCompile(`(?m)^    client_max_body_size \S+;$`)
		if n := len(re.FindAllString(conf, -1)); n != 1 {
			return "", fmt.Errorf("got %d client_max_body_size lines, want 1", n)
		}
		conf = re.ReplaceAllLiteralString(conf, "    client_max_body_size "+s.BodyLimit+";")
	}
	return conf, nil
}

// rewriteUpstream replaces the server lines of conf's upstream block name with servers, where
// the first active one was, and drops the commented ones.
func rewriteUpstream(conf, name string, servers []string) (string, error) {
	open := "\nupstream " + name + " {\n"
	i := strings.Index(conf, open)
	if i < 0 || strings.Count(conf, open) != 1 {
		return "", fmt.Errorf("want one %q block", strings.TrimSpace(open))
	}
	bodyStart := i + len(open)
	end := strings.Index(conf[bodyStart:], "\n}\n")
	if end < 0 {
		return "", fmt.Errorf("the upstream block %s does not end", name)
	}
	body := conf[bodyStart : bodyStart+end+1]
	var lines strings.Builder
	active := 0
	for _, line := range strings.SplitAfter(body, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "server "):
			if active == 0 {
				for _, srv := range servers {
					lines.WriteString("    server " + srv + ";\n")
				}
			}
			active++
		case strings.HasPrefix(trimmed, "# server "):
		default:
			lines.WriteString(line)
		}
	}
	if active == 0 {
		return "", fmt.Errorf("the upstream block %s has no server line", name)
	}
	return conf[:bodyStart] + lines.String() + conf[bodyStart+end+1:], nil
}

// client is an HTTP client whose every response to an API or image path is checked against
// the OpenAPI document. Basic auth is added when user is set.
type client struct {
	t          *testing.T
	base       string
	user, pass string
	header     http.Header // sent with every request
	hc         *http.Client
}

func newClient(t *testing.T, base, user, pass string) *client {
	return &client{t: t, base: base, user: user, pass: pass,
		hc: &http.Client{Transport: openapitest.Transport(t, nil), Timeout: 30 * time.Second}}
}

// in returns a copy of the client that reports to t, for use in t's subtests.
func (c *client) in(t *testing.T) *client {
	cp := *c
	cp.t = t
	return &cp
}

// with returns a copy of the client that sends the header name: value with every request.
func (c *client) with(name, value string) *client {
	cp := *c
	cp.header = c.header.Clone()
	if cp.header == nil {
		cp.header = http.Header{}
	}
	cp.header.Set(name, value)
	return &cp
}

// do sends a request and returns the response with its body read.
func (c *client) do(method, path, contentType string, body io.Reader) (*http.Response, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	for name, values := range c.header {
		req.Header[name] = values
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, c.base+path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, c.base+path, err)
	}
	return resp, b
}

// json sends in (if not nil) as JSON, wants status, and decodes the answer into out (if not nil).
func (c *client) json(method, path string, in any, status int, out any) {
	c.t.Helper()
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			c.t.Fatal(err)
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	resp, b := c.do(method, path, ct, body)
	wantStatus(c.t, method+" "+path, resp, b, status)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

// get fetches path (an image link's path, through whatever base the client has).
func (c *client) get(path string) (*http.Response, []byte) {
	c.t.Helper()
	return c.do(http.MethodGet, path, "", nil)
}

// createUser makes a user on tier through the admin API.
func (c *client) createUser(name, tier string) {
	c.t.Helper()
	c.json(http.MethodPost, "/api/admin/users",
		map[string]any{"username": name, "password": userPW, "tier": tier}, http.StatusCreated, nil)
}

// upload sends data as a new image and returns it.
func (c *client) upload(data []byte) imageJSON {
	c.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile("image", "test.jpg")
	if err != nil {
		c.t.Fatal(err)
	}
	fw.Write(data)
	mw.Close()
	resp, b := c.do(http.MethodPost, "/api/images", mw.FormDataContentType(), &buf)
	wantStatus(c.t, "upload", resp, b, http.StatusCreated)
	var img imageJSON
	if err := json.Unmarshal(b, &img); err != nil {
		c.t.Fatalf("upload: decode %s: %v", b, err)
	}
	return img
}

type imageJSON struct {
	ID     string `json:"id"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Links  struct {
		Thumbnails []struct {
			Height  int    `json:"height"`
			URL     string `json:"url"`
			WebPURL string `json:"webp_url"`
		} `json:"thumbnails"`
		Original string `json:"original"`
	} `json:"links"`
}

// thumbnailPath returns the path of the image's link for height h.
func (img imageJSON) thumbnailPath(t *testing.T, h int) string {
	t.Helper()
	for _, th := range img.Links.Thumbnails {
		if th.Height == h {
			return pathOf(t, th.URL)
		}
	}
	t.Fatalf("image %s has no %d px link: %+v", img.ID, h, img.Links.Thumbnails)
	return ""
}

// webpPath returns the path of the image's .webp link for height h.
func (img imageJSON) webpPath(t *testing.T, h int) string {
	t.Helper()
	for _, th := range img.Links.Thumbnails {
		if th.Height == h {
			return pathOf(t, th.WebPURL)
		}
	}
	t.Fatalf("image %s has no %d px link: %+v", img.ID, h, img.Links.Thumbnails)
	return ""
}

// pathOf returns the path of an absolute link, so it can be fetched through any node or nginx.
func pathOf(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil || u.Path == "" {
		t.Fatalf("link %q: %v", link, err)
	}
	return u.Path
}

// testJPEG makes a w x h JPEG of noise, so every image of a test has its own bytes.
func testJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(rand.IntN(256))
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// jpegHeight decodes the height of a JPEG.
func jpegHeight(t *testing.T, b []byte) int {
	t.Helper()
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decode JPEG (%d bytes): %v", len(b), err)
	}
	return cfg.Height
}

func wantStatus(t *testing.T, what string, resp *http.Response, body []byte, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s: got status %d, want %d; body: %.300s", what, resp.StatusCode, want, body)
	}
}

// cacheStatus is nginx's X-Cache-Status of a response ("" when nginx did not consult the cache).
func cacheStatus(resp *http.Response) string { return resp.Header.Get("X-Cache-Status") }

// waitFor polls cond every 20 ms until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// dialFrom returns an HTTP client whose connections come from the local address ip (any
// 127.x.y.z address is this host's loopback on Linux), to see what nginx does with a client
// that is not 127.0.0.1.
func dialFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	return &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}},
		Timeout: 30 * time.Second,
	}
}
