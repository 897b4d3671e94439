package web

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"testing"
	"time"
)

func TestZZShots(t *testing.T) {
	answers := map[string]fakeAnswer{}
	ts := browseServer(t, answers)
	base := ts.url
	answers["GET /api/images"] = fakeAnswer{status: 200, ctype: "application/json",
		body: `{"results":[` + imageJSON(base, "img1", "a-very-long-file-name-that-might-overflow-the-phone-screen-width.png") + `,` + imageJSON(base, "img2", "cat.jpg") + `],"next":"` + base + `/api/images?cursor=abcdefghijklmnopqrstuvwxyz0123456789&limit=2"}`}
	answers["GET /api/images/img1"] = fakeAnswer{status: 200, ctype: "application/json", body: imageJSON(base, "img1", "cat.png")}
	answers["GET /api/admin/tiers/Gold"] = fakeAnswer{status: 200, ctype: "application/json", body: `{"name":"Gold","thumbnail_heights":[200,400],"original_link":true,"expiring_links":false,"builtin":false}`}
	answers["GET /api/me"] = fakeAnswer{status: 401, ctype: "application/problem+json", body: `{"type":"about:blank","title":"Unauthorized","status":401,"detail":"Authentication is required."}`}
	id, _ := ts.st.FindUser(context.Background(), "admin")
	token, _, _ := ts.st.CreateSession(context.Background(), id.User.ID, time.Hour, "x", "127.0.0.1")
	u, _ := url.Parse(base)
	for _, signed := range []bool{true, false} {
		rp := httputil.NewSingleHostReverseProxy(u)
		signed := signed
		d := rp.Director
		rp.Director = func(r *http.Request) {
			d(r)
			if signed {
				r.Header.Set("Cookie", "tierpix_session="+token)
			}
		}
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		go http.Serve(ln, rp)
		for _, width := range []int{360, 1200} {
			for _, page := range []struct{ name, path string }{
				{"login", "/login"}, {"docs", "/api/docs"}, {"list", "/api/images"}, {"image", "/api/images/img1"}, {"tier", "/api/admin/tiers/Gold"}, {"me", "/api/me"},
			} {
				out := fmt.Sprintf("/tmp/shot-%s-%v-%d.png", page.name, signed, width)
				cmd := exec.Command("chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", fmt.Sprintf("--window-size=%d,1600", width), "--screenshot="+out, "http://"+ln.Addr().String()+page.path)
				if b, err := cmd.CombinedOutput(); err != nil {
					t.Logf("%s: %v %s", out, err, b)
				}
			}
		}
	}
}
