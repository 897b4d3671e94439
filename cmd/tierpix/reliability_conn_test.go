package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestDescriptorExhaustion runs the binary with a file limit of 256 and opens 400 idle
// connections: the process must live on, answer the connections over its cap with 503, and
// serve again once they close.
func TestDescriptorExhaustion(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := buildBinary(t)
	wrapper := filepath.Join(t.TempDir(), "tierpix-256")
	script := fmt.Sprintf("#!/bin/sh\nulimit -n 256 || exit 1\nexec %q \"$@\"\n", bin)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	p := startProcess(t, wrapper, dataDir)
	addr := strings.TrimPrefix(p.URL, "http://")

	const idle = 400
	conns := make([]net.Conn, 0, idle)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range idle {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	// The ones over the cap are answered 503 and closed; the others wait for a request.
	refused := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		line, err := bufio.NewReader(c).ReadString('\n')
		switch {
		case err == nil && strings.HasPrefix(line, "HTTP/1.1 503"):
			refused++
		case err == nil:
			t.Fatalf("an idle connection got %q, want 503 or nothing", line)
		case errors.Is(err, os.ErrDeadlineExceeded):
		default:
			t.Fatalf("an idle connection: %v, want 503 or nothing", err)
		}
	}
	if err := p.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the server died with 400 connections open: %v\n%s", err, p.logs.String())
	}
	if refused == 0 {
		t.Fatalf("got no 503 among %d connections, want the ones over the cap refused", idle)
	}
	t.Logf("with a file limit of 256: %d of %d connections admitted, %d refused with 503", idle-refused, idle, refused)
	for _, c := range conns {
		c.Close()
	}
	conns = nil

	// Once they are closed, it serves as before.
	s := &server{URL: p.URL, DataDir: dataDir, logs: p.logs}
	waitFor(t, 10*time.Second, "healthz after the connections closed", func() bool {
		resp, err := http.Get(p.URL + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	var img imageJSON
	resp, body := s.basic(t, testAdmin, testAdminPW).upload("after.jpg", gradientJPEG(t, 300, 200), &img)
	wantStatus(t, "upload after the connections closed", resp, body, http.StatusCreated)
	resp, body = getLink(t, img.Links.Thumbnails[0].URL)
	wantStatus(t, "thumbnail after the connections closed", resp, body, http.StatusOK)
}

// TestListenerSurvivesAcceptErrors feeds the listener the errors an exhausted process gets
// from accept: it must keep accepting rather than fail, and give the next connection.
func TestListenerSurvivesAcceptErrors(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	fake := &flakyListener{errs: []error{
		&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.EMFILE)},
		&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.ENFILE)},
		&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.ECONNABORTED)},
	}, conn: a}
	l := newLimitListener(fake, connLimits{Total: 10, PerIP: 10}, slog.New(slog.DiscardHandler))
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept: got %v, want the connection after the errors", err)
	}
	c.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on a closed listener: got %v, want net.ErrClosed", err)
	}
}

// flakyListener fails with errs, one per Accept, then gives conn once, then is closed.
type flakyListener struct {
	errs []error
	conn net.Conn
}

func (f *flakyListener) Accept() (net.Conn, error) {
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	if c := f.conn; c != nil {
		f.conn = nil
		return c, nil
	}
	return nil, net.ErrClosed
}
func (f *flakyListener) Close() error   { return nil }
func (f *flakyListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// TestConnectionCaps shows the per-address cap: one address's connections beyond it get 503
// while an exempt (trusted proxy) address is held only to the total.
func TestConnectionCaps(t *testing.T) {
	tests := []struct {
		name   string
		exempt bool
		want   int // connections admitted of 8
	}{
		{"per address", false, 2},
		{"trusted proxy", true, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			limits := connLimits{Total: 4, PerIP: 2}
			if tt.exempt {
				limits.Exempt = mustPrefixes(t, "127.0.0.1")
			}
			l := newLimitListener(ln, limits, slog.New(slog.DiscardHandler))
			defer l.Close()
			var mu sync.Mutex
			var admitted []net.Conn
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					mu.Lock()
					admitted = append(admitted, c)
					mu.Unlock()
				}
			}()
			refused := 0
			for range 8 {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				line, _ := bufio.NewReader(c).ReadString('\n')
				if strings.HasPrefix(line, "HTTP/1.1 503") {
					refused++
				}
			}
			mu.Lock()
			n := len(admitted)
			mu.Unlock()
			if n != tt.want || refused != 8-tt.want {
				t.Fatalf("got %d admitted and %d refused, want %d and %d", n, refused, tt.want, 8-tt.want)
			}
			// A connection the server closed gives its place back.
			mu.Lock()
			admitted[0].Close()
			l.connState(admitted[0], fasthttp.StateClosed)
			mu.Unlock()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			waitFor(t, 5*time.Second, "a place given back", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(admitted) == tt.want+1
			})
		})
	}
}

func TestMaxConnsFor(t *testing.T) {
	tests := []struct {
		name   string
		nofile uint64
		want   int
	}{
		{"small limit", 256, 64},
		{"default limit", 20000, 7468},
		{"tiny limit", 64, 16},
	}
	for _, tt := range tests {
		if got := maxConnsFor(tt.nofile); got != tt.want {
			t.Errorf("%s: maxConnsFor(%d): got %d, want %d", tt.name, tt.nofile, got, tt.want)
		}
	}
	l := resolveConnLimits(config{MaxConns: 100000}, 256, slog.New(slog.DiscardHandler))
	if l.Total != 64 || l.PerIP != 16 {
		t.Fatalf("a cap over the file limit: got %d total, %d per address; want 64, 16", l.Total, l.PerIP)
	}
}

// TestStalledUpload sends half an upload and then nothing: the server answers 408 once the
// body has been idle for TIERPIX_BODY_IDLE_TIMEOUT, and keeps no temp file.
func TestStalledUpload(t *testing.T) {
	s := startServer(t, map[string]string{"TIERPIX_BODY_IDLE_TIMEOUT": "2"})
	addr := strings.TrimPrefix(s.URL, "http://")
	// Large enough that the half sent is more than the 8 KiB fasthttp reads before the
	// handler runs, so the handler is the one waiting.
	body, ctype := multipartBody(t, noiseJPEG(t, 800, 600))
	conn := startUpload(t, addr, ctype, len(body))
	conn.Write(body[:len(body)/2])
	sent := time.Now()
	waitFor(t, 10*time.Second, "the half upload's temp file", func() bool { return countFiles(t, filepath.Join(s.DataDir, "tmp")) == 1 })

	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	took := time.Since(sent)
	if resp.StatusCode != http.StatusRequestTimeout || !bytes.Contains(got, []byte("sent nothing")) {
		t.Fatalf("got %d %s, want 408 saying the body stalled", resp.StatusCode, got)
	}
	if took > 8*time.Second {
		t.Fatalf("the 408 came %v after the body stalled, want about 2 s", took)
	}
	t.Logf("408 after %v", took.Round(10*time.Millisecond))
	if n := countFiles(t, filepath.Join(s.DataDir, "tmp")); n != 0 {
		t.Fatalf("after the 408: got %d temp files, want 0", n)
	}
}

// TestSlowUploadKeepsMoving sends an upload more slowly than the header timeout allows a
// whole request, but never idle for long: it is stored.
func TestSlowUploadKeepsMoving(t *testing.T) {
	s := startServer(t, map[string]string{"TIERPIX_HEADER_TIMEOUT": "1", "TIERPIX_BODY_IDLE_TIMEOUT": "2"})
	addr := strings.TrimPrefix(s.URL, "http://")
	body, ctype := multipartBody(t, noiseJPEG(t, 200, 150))
	conn := startUpload(t, addr, ctype, len(body))
	start := time.Now()
	const pieces = 8 // 8 x 400 ms: 3.2 s in all, never more than 0.4 s idle
	for i := range pieces {
		time.Sleep(400 * time.Millisecond)
		conn.Write(body[i*len(body)/pieces : (i+1)*len(body)/pieces])
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("a slow upload over %v: got %d %s, want 201", time.Since(start).Round(time.Millisecond), resp.StatusCode, got)
	}
}

// TestHeaderTimeout leaves a request's headers unfinished: the connection is closed once
// TIERPIX_HEADER_TIMEOUT has passed.
func TestHeaderTimeout(t *testing.T) {
	s := startServer(t, map[string]string{"TIERPIX_HEADER_TIMEOUT": "2"})
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	io.Copy(io.Discard, conn) // until the server closes (after a 408, or at once)
	if took := time.Since(start); took > 6*time.Second {
		t.Fatalf("unfinished headers held the connection %v, want about 2 s", took)
	} else {
		t.Logf("closed after %v", took.Round(10*time.Millisecond))
	}
}

// TestRefusedBodyDrainIsBounded dribbles a refused upload's body a byte every 500 ms (after
// the first 16 KiB, so the handler has answered and drains): the server gives up within its
// drain bound and closes the connection.
func TestRefusedBodyDrainIsBounded(t *testing.T) {
	s := startServer(t, nil)
	addr := strings.TrimPrefix(s.URL, "http://")
	conn := startUpload(t, addr, "image/gif", 100000)
	conn.Write(make([]byte, 16<<10))
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		io.Copy(io.Discard, conn)
		closed <- time.Since(start)
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case took := <-closed:
			if took > 8*time.Second {
				t.Fatalf("a dribbled refused body held the connection %v, want at most about 5 s", took)
			}
			t.Logf("closed after %v", took.Round(10*time.Millisecond))
			return
		case <-tick.C:
			if time.Since(start) > 20*time.Second {
				t.Fatal("the connection was still open after 20 s of a dribbled refused body")
			}
			conn.Write([]byte("x"))
		}
	}
}

// TestLogHoldsNoCredentials sends a request with a malformed header line next to an
// Authorization header and a session cookie: nothing logged may carry either.
func TestLogHoldsNoCredentials(t *testing.T) {
	s := startServer(t, map[string]string{"TIERPIX_LOG_LEVEL": "debug"})
	const secretAuth, secretCookie = "c2VjcmV0LXVzZXI6c2VjcmV0LXBhc3N3b3Jk", "SECRETSESSIONCOOKIE0123456789"
	for _, req := range []string{
		"GET /api/me HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + secretAuth + "\r\nCookie: tierpix_session=" + secretCookie + "\r\nThis line is no header\r\n\r\n",
		"GET /api/me HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + secretAuth + "\r\nCookie: tierpix_session=" + secretCookie + "\r\nContent-Length: x1\r\n\r\n",
		"GET /api/me HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + secretAuth + "\r\nCookie: tierpix_session=" + secretCookie + "\r\nTransfer-Encoding: bogus\r\n\r\n",
		// A mistyped Authorization line is the malformed one: fasthttp quotes it.
		"GET /api/me HTTP/1.1\r\nHost: x\r\nAuthorization Basic " + secretAuth + "\r\n\r\n",
	} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte(req))
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 4") {
			t.Fatalf("a malformed request: got %q (%v), want a 4xx", line, err)
		}
	}
	waitFor(t, 5*time.Second, "the requests logged", func() bool { return strings.Contains(s.logs.String(), "component=fasthttp") })
	logs := s.logs.String()
	if strings.Contains(logs, secretAuth) || strings.Contains(logs, secretCookie) {
		t.Fatalf("the log holds a credential:\n%s", logs)
	}
}

// startUpload connects to addr and sends the headers of an upload as the test admin, with
// the Content-Type and Content-Length given; the body is the caller's to send.
func startUpload(t *testing.T, addr, ctype string, length int) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /api/images HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		addr, basicAuth(testAdmin, testAdminPW), ctype, length)
	return conn
}

// multipartBody returns an upload form with data in its image field, and its Content-Type.
func multipartBody(t *testing.T, data []byte) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile("image", "slow.jpg")
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}

func mustPrefixes(t *testing.T, addrs ...string) []netip.Prefix {
	t.Helper()
	var ps []netip.Prefix
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return ps
}

// TestStalledJSONBody: a JSON body that stops coming is answered 408 once it has been idle
// for TIERPIX_BODY_IDLE_TIMEOUT, before its first 8 KiB (which fasthttp reads before any
// handler runs) or after.
func TestStalledJSONBody(t *testing.T) {
	s := startServer(t, map[string]string{"TIERPIX_BODY_IDLE_TIMEOUT": "2"})
	addr := strings.TrimPrefix(s.URL, "http://")
	for _, sent := range []int{100, 9000} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /api/admin/tiers HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\nContent-Type: application/json\r\nContent-Length: 20000\r\n\r\n",
			addr, basicAuth(testAdmin, testAdminPW))
		conn.Write([]byte(`{"name": "` + strings.Repeat("x", sent-10)))
		start := time.Now()
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%d bytes sent: read the answer: %v", sent, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout || time.Since(start) > 8*time.Second {
			t.Fatalf("%d bytes sent, then nothing: got %d after %v, want 408 after about 2 s", sent, resp.StatusCode, time.Since(start))
		}
	}
}

// TestSlowClientDefaults: with nothing set, headers get 10 s and an idle body 60 s, so a
// stalled upload is answered within the minute and a half the service promises.
func TestSlowClientDefaults(t *testing.T) {
	c, err := loadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.HeaderTimeout != 10*time.Second || c.BodyIdleTimeout != 60*time.Second {
		t.Fatalf("got header %v, body idle %v; want 10s and 60s", c.HeaderTimeout, c.BodyIdleTimeout)
	}
}
