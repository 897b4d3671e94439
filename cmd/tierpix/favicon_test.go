package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestFaviconIsNotAWarning checks that the icon browsers ask for unprompted is served, so the
// request log (4xx at Warn) does not carry a warning for every new browser.
func TestFaviconIsNotAWarning(t *testing.T) {
	s := startServer(t, nil)
	c := apiClient(t)
	for _, tt := range []struct {
		path string
		want int
	}{
		{"/favicon.ico", http.StatusOK},
		{"/no-such-page", http.StatusNotFound}, // the control: a 404 is a warning
	} {
		resp, err := c.Get(s.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("GET %s: got %d, want %d", tt.path, resp.StatusCode, tt.want)
		}
	}
	var warned []string
	for _, line := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "msg=request") {
			warned = append(warned, line)
		}
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "path=/no-such-page") {
		t.Errorf("request warnings: got %q, want only the one of /no-such-page", warned)
	}
}
