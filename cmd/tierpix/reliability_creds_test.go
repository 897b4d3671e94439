package main

// Issue 9, cases 3 and 9, against the real binary: guessing passwords over Basic and the
// sign-in form meets one shared throttle, per account and address, before bcrypt; the owner
// still signs in from elsewhere; cross-site Basic state changes are refused; image answers are
// sandboxed. TIERPIX_TRUSTED_PROXIES=127.0.0.1 lets X-Forwarded-For play several addresses.

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestCredentialAbuse(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary and pays for bcrypt")
	}
	p := startProcess(t, buildBinary(t), t.TempDir(), "TIERPIX_TRUSTED_PROXIES=127.0.0.1")
	s := &server{URL: p.URL, logs: p.logs}
	admin := s.basic(t, testAdmin, testAdminPW)
	resp, body := admin.json("POST", "/api/admin/users", map[string]any{
		"username": testUserName, "password": testUserPW, "tier": "Enterprise",
	}, nil)
	wantStatus(t, "create user", resp, body, http.StatusCreated)

	// from is a Basic client of alice's (or anyone's) at a client address.
	from := func(addr, user, pw string) *client {
		c := s.basic(t, user, pw)
		auth := c.auth
		c.auth = func(r *http.Request) {
			auth(r)
			r.Header.Set("X-Forwarded-For", addr)
		}
		return c
	}
	const home = "203.0.113.50"
	owner := from(home, testUserName, testUserPW)
	var img imageJSON
	resp, body = owner.upload("photo.jpg", gradientJPEG(t, 300, 200), &img)
	wantStatus(t, "upload", resp, body, http.StatusCreated)

	t.Run("basic guessing meets 429", func(t *testing.T) {
		const attacker = "198.51.100.1"
		first429 := -1
		for i := range 30 {
			resp, body := from(attacker, testUserName, fmt.Sprintf("guess-%d", i)).do("GET", "/api/me", nil, "", nil)
			switch resp.StatusCode {
			case http.StatusUnauthorized:
				if first429 >= 0 {
					t.Fatalf("guess %d: got 401 after a 429 at guess %d", i+1, first429+1)
				}
			case http.StatusTooManyRequests:
				wantRetryAfter(t, resp)
				if first429 < 0 {
					first429 = i
				}
			default:
				t.Fatalf("guess %d: got status %d, want 401 or 429; body %s", i+1, resp.StatusCode, body)
			}
		}
		if first429 < 0 || first429 >= 29 {
			t.Fatalf("30 wrong passwords: got no 429 before the 30th, want one")
		}
		t.Logf("first 429 at wrong password %d of 30", first429+1)
		resp, body := from(attacker, testUserName, testUserPW).do("GET", "/api/me", nil, "", nil)
		wantStatus(t, "the right password from the guessing address", resp, body, http.StatusTooManyRequests)
		wantRetryAfter(t, resp)
		resp, body = from("198.51.100.2", testUserName, testUserPW).do("GET", "/api/me", nil, "", nil)
		wantStatus(t, "the right password from another address", resp, body, http.StatusOK)
	})

	t.Run("sign-in lockout locks basic too", func(t *testing.T) {
		const addr = "198.51.100.3"
		for i := range 5 {
			if got := formSignIn(t, s.URL, addr, testUserName, fmt.Sprintf("guess-%d", i)); got != http.StatusBadRequest {
				t.Fatalf("wrong password %d at /login: got %d, want 400", i+1, got)
			}
		}
		if got := formSignIn(t, s.URL, addr, testUserName, testUserPW); got != http.StatusTooManyRequests {
			t.Fatalf("right password at /login after 5 wrong: got %d, want 429", got)
		}
		resp, body := from(addr, testUserName, testUserPW).do("GET", "/api/me", nil, "", nil)
		wantStatus(t, "Basic from the address locked out of /login", resp, body, http.StatusTooManyRequests)
		wantRetryAfter(t, resp)
		if got := formSignIn(t, s.URL, "198.51.100.4", testUserName, testUserPW); got != http.StatusSeeOther {
			t.Fatalf("right password at /login from another address: got %d, want 303", got)
		}
	})

	t.Run("unknown usernames are throttled before bcrypt", func(t *testing.T) {
		const addr, tries, limit = "198.51.100.5", 60, 50
		before := passwordChecks(t, s.URL)
		var unauthorized, throttled int
		for i := range tries {
			resp, body := from(addr, fmt.Sprintf("nobody-%d", i), "guess").do("GET", "/api/me", nil, "", nil)
			switch resp.StatusCode {
			case http.StatusUnauthorized:
				unauthorized++
			case http.StatusTooManyRequests:
				throttled++
			default:
				t.Fatalf("unknown user %d: got status %d; body %s", i, resp.StatusCode, body)
			}
		}
		checks := passwordChecks(t, s.URL) - before
		t.Logf("%d unknown usernames from one address: %d answered 401, %d answered 429, %d bcrypt comparisons", tries, unauthorized, throttled, checks)
		if unauthorized != limit || throttled != tries-limit || checks != limit {
			t.Errorf("got %d 401s, %d 429s and %d bcrypt comparisons, want %d, %d and %d",
				unauthorized, throttled, checks, limit, tries-limit, limit)
		}
	})

	t.Run("cross-site basic changes nothing", func(t *testing.T) {
		crossSite := from(home, testUserName, testUserPW)
		auth := crossSite.auth
		crossSite.auth = func(r *http.Request) {
			auth(r)
			r.Header.Set("Sec-Fetch-Site", "cross-site")
		}
		resp, body := crossSite.do("POST", "/api/images/"+img.ID+"?_method=DELETE", nil, "", nil)
		wantStatus(t, "cross-site POST ?_method=DELETE", resp, body, http.StatusForbidden)
		resp, body = crossSite.do("DELETE", "/api/images/"+img.ID, nil, "", nil)
		wantStatus(t, "cross-site DELETE", resp, body, http.StatusForbidden)
		resp, body = crossSite.upload("more.jpg", gradientJPEG(t, 30, 20), nil)
		wantStatus(t, "cross-site upload", resp, body, http.StatusForbidden)
		var list struct {
			Results []imageJSON `json:"results"`
		}
		resp, body = owner.json("GET", "/api/images", nil, &list)
		wantStatus(t, "list", resp, body, http.StatusOK)
		if len(list.Results) != 1 || list.Results[0].ID != img.ID {
			t.Fatalf("images after cross-site requests: got %s, want only %s", body, img.ID)
		}
	})

	t.Run("image answers are sandboxed", func(t *testing.T) {
		const want = "sandbox; default-src 'none'"
		link := img.Links.Thumbnails[0].URL
		resp, _ := getLink(t, link)
		etag := resp.Header.Get("ETag")
		for _, tt := range []struct {
			name, url, inm string
			status         int
		}{
			{"thumbnail", link, "", http.StatusOK},
			{"not modified", link, etag, http.StatusNotModified},
			{"original", img.Links.Original, "", http.StatusOK},
			{"not a link", s.URL + "/i/nothing-here", "", http.StatusNotFound},
		} {
			req, err := http.NewRequest("GET", tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.inm != "" {
				req.Header.Set("If-None-Match", tt.inm)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body) //nolint:errcheck
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("%s: got status %d, want %d", tt.name, resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("Content-Security-Policy"); got != want {
				t.Errorf("%s: Content-Security-Policy: got %q, want %q", tt.name, got, want)
			}
		}
	})
}

// wantRetryAfter checks that a 429 says when to come back.
func wantRetryAfter(t *testing.T, resp *http.Response) {
	t.Helper()
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n <= 0 {
		t.Errorf("Retry-After: got %q, want a positive number of seconds", resp.Header.Get("Retry-After"))
	}
}

var loginTokenRE = regexp.MustCompile(`name="csrf_token" value="([A-Z2-7]+)"`)

// formSignIn signs in through /login from addr, as a browser would (the form's double-submit
// token included), and returns the status of the POST.
func formSignIn(t *testing.T, base, addr, user, pw string) int {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer c.CloseIdleConnections()
	send := func(req *http.Request) (*http.Response, string) {
		req.Header.Set("X-Forwarded-For", addr)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	req, _ := http.NewRequest("GET", base+"/login", nil)
	_, page := send(req)
	m := loginTokenRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("GET /login: no csrf_token in the form")
	}
	form := url.Values{"csrf_token": {m[1]}, "username": {user}, "password": {pw}}
	req, _ = http.NewRequest("POST", base+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, _ := send(req)
	return resp.StatusCode
}

// passwordChecks reads the server's count of bcrypt comparisons from /metrics.
func passwordChecks(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "tierpix_signin_password_checks_total "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("/metrics: %q: %v", sc.Text(), err)
			}
			return int(n)
		}
	}
	t.Fatalf("/metrics: no tierpix_signin_password_checks_total")
	return 0
}
