package api

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRefusedBodyIsDrained sends uploads that are refused before their body is read, whole
// and over one keep-alive connection, as nginx streams them: each answer must arrive, and the
// connection must still serve the next request.
func TestRefusedBodyIsDrained(t *testing.T) {
	ts := newTestServer(t, Config{})
	gif := encodeGIF(t, noise(1200, 1200)) // well over the 256 KiB fasthttp drains by itself
	body, ct := multipartBody(t, "image", "x.gif", gif)
	if len(body) < 1<<20 {
		t.Fatalf("body is %d bytes, want over 1 MiB", len(body))
	}
	tests := []struct {
		name   string
		auth   string
		status int
	}{
		{"not an image format we take", basicHeader("alice", userPassword), http.StatusUnsupportedMediaType},
		{"bad credentials", basicHeader("alice", "wrong-password"), http.StatusUnauthorized},
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second)) //nolint:errcheck
	br := bufio.NewReader(conn)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, ts.url+"/api/images", bytes.NewReader(body))
			req.Header.Set("Content-Type", ct)
			req.Header.Set("Authorization", tt.auth)
			if err := req.Write(conn); err != nil {
				t.Fatalf("write request: %v", err)
			}
			resp, err := http.ReadResponse(br, req)
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status: got %d, want %d (%s)", resp.StatusCode, tt.status, b)
			}
			if resp.Close {
				t.Errorf("the server closes the connection after a refused body it could have read")
			}
		})
	}
	// The same connection still works.
	req, _ := http.NewRequest(http.MethodGet, ts.url+"/healthz", nil)
	if err := req.Write(conn); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatalf("read the next response on the connection: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz after refused uploads: got %d, want 200", resp.StatusCode)
	}
}
