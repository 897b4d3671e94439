package main

import (
	"context"
	"flag"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The browser test drives Debian's Chromium through chromedp against the real server: an admin
// signs in and sets up a tier, a user and a token in the admin UI, the user signs in and
// uploads through the browsable API, the thumbnails render in the page, and forged form posts
// (from another origin, and from this origin without the CSRF token) are refused.
//
// It needs Chromium: TIERPIX_CHROMIUM names the binary (default /usr/bin/chromium; make test
// installs it). Without it the test skips, except under CI=true, where it fails. Screenshots
// of a few pages go to TIERPIX_SCREENSHOT_DIR when set (docs/screenshots holds the committed
// ones), else to a temp dir. When a step fails, a screenshot and the HTML of the page at that
// moment are kept (under -artifacts in the test's artifact dir, else in a temp dir whose path
// is logged) and the server log is printed.

const (
	browserUser     = "viv"
	browserUserPW   = "viv-browser-password-42"
	browserTier     = "Gallery"
	browserStepTime = 15 * time.Second
)

// TestBrowserEndToEnd is the whole flow in one browser session, step by step: a step that
// fails stops the flow, since every later step builds on it.
func TestBrowserEndToEnd(t *testing.T) {
	execPath := chromiumPath(t)
	s := startServer(t, nil)
	b := startBrowser(t, execPath, s.URL)
	admin := s.basic(t, testAdmin, testAdminPW)

	upload := filepath.Join(t.TempDir(), "gradient.jpg")
	if err := os.WriteFile(upload, gradientJPEG(t, 1200, 800), 0o600); err != nil {
		t.Fatal(err)
	}

	var (
		token   string // viv's API token, minted in the admin UI
		imageID string // viv's upload
	)

	b.step("admin signs in", func(ctx context.Context, t *testing.T) {
		b.signIn(ctx, t, testAdmin, testAdminPW)
		if got := b.path(ctx, t); got != "/admin" && got != "/admin/" {
			t.Errorf("admin after sign-in: got page %s, want /admin", got)
			b.open(ctx, t, "/admin", http.StatusOK)
		}
		if !b.has(ctx, t, `a[href="/admin/tiers"]`) {
			t.Fatalf("admin dashboard: no link to /admin/tiers; page says:\n%s", b.pageText(ctx, t))
		}
	})

	b.step("admin creates a tier", func(ctx context.Context, t *testing.T) {
		b.open(ctx, t, "/admin/tiers/new", http.StatusOK)
		b.fill(ctx, t, "name", browserTier)
		b.fill(ctx, t, "thumbnail_heights", "150, 600")
		b.setChecked(ctx, t, "original_link", false)
		b.setChecked(ctx, t, "expiring_links", false)
		b.screenshot(ctx, t, "admin-tier-form.png")
		resp := b.submit(ctx, t, formOf(`[name="thumbnail_heights"]`))
		b.wantStatus(ctx, t, "create tier", resp, http.StatusOK)
		if got := b.path(ctx, t); got != "/admin/tiers" {
			t.Errorf("after creating a tier: got page %s, want /admin/tiers", got)
			b.open(ctx, t, "/admin/tiers", http.StatusOK)
		}
		if !b.tableHasCell(ctx, t, browserTier) {
			t.Fatalf("tier list: no cell %q in a table; page says:\n%s", browserTier, b.pageText(ctx, t))
		}

		var tier struct {
			Name             string `json:"name"`
			ThumbnailHeights []int  `json:"thumbnail_heights"`
			OriginalLink     bool   `json:"original_link"`
			ExpiringLinks    bool   `json:"expiring_links"`
		}
		r, body := admin.json("GET", "/api/admin/tiers/"+browserTier, nil, &tier)
		wantStatus(t, "tier through the API", r, body, http.StatusOK)
		if fmt.Sprint(tier.ThumbnailHeights) != "[150 600]" || tier.OriginalLink || tier.ExpiringLinks {
			t.Fatalf("tier through the API: got %s, want heights [150 600], no original, no expiring links", body)
		}
	})

	b.step("admin creates a user", func(ctx context.Context, t *testing.T) {
		b.open(ctx, t, "/admin/users/new", http.StatusOK)
		b.fill(ctx, t, "username", browserUser)
		b.fill(ctx, t, "password", browserUserPW)
		b.selectOption(ctx, t, "tier", browserTier)
		resp := b.submit(ctx, t, formOf(`[name="username"]`))
		if resp.Status >= 400 {
			b.wantStatus(ctx, t, "create user", resp, http.StatusOK)
		}
		b.open(ctx, t, "/admin/users", http.StatusOK)
		if !b.has(ctx, t, `a[href="/admin/users/`+browserUser+`"]`) || !b.tableHasCell(ctx, t, browserUser) {
			t.Fatalf("user list: no row for %s linking to /admin/users/%s; page says:\n%s", browserUser, browserUser, b.pageText(ctx, t))
		}
		b.screenshot(ctx, t, "admin-user-list.png")

		var user struct {
			Tier    string `json:"tier"`
			IsAdmin bool   `json:"is_admin"`
		}
		r, body := admin.json("GET", "/api/admin/users/"+browserUser, nil, &user)
		wantStatus(t, "user through the API", r, body, http.StatusOK)
		if user.Tier != browserTier || user.IsAdmin {
			t.Fatalf("user through the API: got %s, want tier %s, not an admin", body, browserTier)
		}
	})

	b.step("admin mints a token", func(ctx context.Context, t *testing.T) {
		b.open(ctx, t, "/admin/users/"+browserUser, http.StatusOK)
		resp := b.submit(ctx, t, `document.querySelector('form[action$="/admin/users/`+browserUser+`/tokens"] [type=submit]')`)
		if resp.Status != http.StatusOK && resp.Status != http.StatusCreated {
			b.wantStatus(ctx, t, "mint token", resp, http.StatusCreated)
		}
		token = evaluate[string](ctx, t, `(e => e ? (e.value || e.textContent).trim() : "")(document.querySelector('#new-token'))`)
		if !strings.HasPrefix(token, "tpx_") || len(token) < 20 {
			t.Fatalf("#new-token: got %q, want a tpx_ token; page says:\n%s", token, b.pageText(ctx, t))
		}

		var me struct {
			Username string `json:"username"`
			Tier     struct {
				Name string `json:"name"`
			} `json:"tier"`
		}
		r, body := s.bearer(t, token).json("GET", "/api/me", nil, &me)
		wantStatus(t, "/api/me with the minted token", r, body, http.StatusOK)
		if me.Username != browserUser || me.Tier.Name != browserTier {
			t.Fatalf("/api/me with the minted token: got %s, want %s on %s", body, browserUser, browserTier)
		}
	})

	b.step("admin signs out and the user signs in", func(ctx context.Context, t *testing.T) {
		resp := b.submit(ctx, t, `document.querySelector('form[action$="/logout"] [type=submit]')`)
		if resp.Status >= 400 {
			b.wantStatus(ctx, t, "sign out", resp, http.StatusOK)
		}
		b.open(ctx, t, "/admin", http.StatusOK)
		if got := b.path(ctx, t); got != "/login" {
			t.Fatalf("/admin after signing out: got page %s, want the redirect to /login", got)
		}
		b.signIn(ctx, t, browserUser, browserUserPW)
		if got := b.path(ctx, t); got != "/api" && got != "/api/" {
			t.Fatalf("user after sign-in: got page %s, want /api", got)
		}
	})

	b.step("user uploads through the browsable API", func(ctx context.Context, t *testing.T) {
		resp := b.open(ctx, t, "/api/images", http.StatusOK)
		if resp.MimeType != "text/html" {
			t.Fatalf("/api/images in a browser: got %s, want text/html", resp.MimeType)
		}
		file := `input[type=file][name=image]`
		if !b.has(ctx, t, file) {
			t.Fatalf("/api/images: no %s; page says:\n%s", file, b.pageText(ctx, t))
		}
		do(ctx, t, "set the upload file", chromedp.SetUploadFiles(chromedp.CSS(file), []string{upload}))
		resp = b.submit(ctx, t, formOf(file))
		b.wantStatus(ctx, t, "upload", resp, http.StatusCreated)

		imageID = onlyImageID(t, s, token)
		thumbs := b.waitImages(ctx, t, 150, 600)
		for _, tt := range []struct {
			height, wantW, wantH int
		}{{150, 225, 150}, {600, 900, 600}} {
			got := thumbs[tt.height]
			if got.W != tt.wantW || got.H != tt.wantH {
				t.Errorf("%d px thumbnail in the page: got %dx%d, want %dx%d", tt.height, got.W, got.H, tt.wantW, tt.wantH)
			}
			if !strings.Contains(got.Src, "/"+imageID+"/") {
				t.Errorf("%d px thumbnail: src %s does not name image %s", tt.height, got.Src, imageID)
			}
			// Chromium takes WebP, so it loads the <picture>'s source, the thumbnail's webp_url.
			if want := fmt.Sprintf("/%s/h%d.webp", imageID, tt.height); !strings.HasSuffix(got.CurrentSrc, want) {
				t.Errorf("%d px thumbnail: the browser loaded %s, want the WebP link ending in %s", tt.height, got.CurrentSrc, want)
			}
		}

		b.open(ctx, t, "/api/images", http.StatusOK)
		if n := b.waitImagesOf(ctx, t, imageID); n == 0 {
			t.Fatalf("/api/images: no thumbnail of %s; page says:\n%s", imageID, b.pageText(ctx, t))
		}
		b.screenshot(ctx, t, "browsable-image-list.png")
	})

	b.step("user opens a thumbnail", func(ctx context.Context, t *testing.T) {
		b.open(ctx, t, "/api/images/"+imageID, http.StatusOK)
		b.waitImages(ctx, t, 150)
		link := evaluate[struct {
			Href   string `json:"href"`
			Target string `json:"target"`
			Src    string `json:"src"`
		}](ctx, t, `(() => {
			const img = Array.from(document.images).find(i => /\/h150(?:[\/?#]|$)/.test(i.src));
			const a = img.closest('a');
			return {href: a ? a.href : "", target: a ? a.target : "", src: img.src};
		})()`)
		var resp *network.Response
		switch {
		case link.Href == "":
			t.Errorf("/api/images/%s: the 150 px thumbnail is not inside a link", imageID)
			resp = b.open(ctx, t, link.Src, http.StatusOK)
		case link.Target != "" && link.Target != "_self":
			// A click would open another tab; follow the link in this one.
			t.Logf("the thumbnail link opens in target %q; following its href here", link.Target)
			resp = b.open(ctx, t, link.Href, http.StatusOK)
		default:
			resp = b.submit(ctx, t, `Array.from(document.images).find(i => /\/h150(?:[\/?#]|$)/.test(i.src)).closest('a')`)
			b.wantStatus(ctx, t, "thumbnail link", resp, http.StatusOK)
		}
		// Chromium's Accept lists image/webp, so the negotiated link answers WebP.
		if ct := evaluate[string](ctx, t, `document.contentType`); ct != "image/webp" || resp.MimeType != "image/webp" {
			t.Fatalf("thumbnail document: got content type %q (response %q), want image/webp", ct, resp.MimeType)
		}
		got := b.waitImages(ctx, t, 150)[150]
		if got.W != 225 || got.H != 150 {
			t.Fatalf("thumbnail document: got %dx%d, want 225x150", got.W, got.H)
		}
	})

	b.step("a form on another origin cannot delete the image", func(ctx context.Context, t *testing.T) {
		target := s.URL + "/api/images/" + imageID + "?_method=DELETE"
		attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			attackerPage.Execute(w, target)
		}))
		t.Cleanup(attacker.Close)
		b.open(ctx, t, attacker.URL, http.StatusOK)
		// A delete that went through answers 204, which a browser does not navigate to: the
		// click then loads no page, so the image's fate is checked before the click's error.
		resp, clickErr := b.trySubmit(ctx, t, `document.querySelector('#forge')`)
		r, body := s.bearer(t, token).json("GET", "/api/images/"+imageID, nil, nil)
		wantStatus(t, "the image after the forged delete", r, body, http.StatusOK)
		if clickErr != nil {
			t.Fatal(clickErr)
		}
		b.wantStatus(ctx, t, "cross-origin delete form", resp, http.StatusForbidden)
	})

	b.step("an upload form without its CSRF token is refused", func(ctx context.Context, t *testing.T) {
		b.open(ctx, t, "/api/images", http.StatusOK)
		file := `input[type=file][name=image]`
		removed := evaluate[bool](ctx, t, `(f => {
			const c = f && f.form && f.form.querySelector('[name=csrf_token]');
			if (!c) return false;
			c.remove();
			return true;
		})(document.querySelector('`+file+`'))`)
		if !removed {
			t.Fatalf("/api/images: the upload form has no csrf_token field")
		}
		do(ctx, t, "set the upload file", chromedp.SetUploadFiles(chromedp.CSS(file), []string{upload}))
		resp := b.submit(ctx, t, formOf(file))
		b.wantStatus(ctx, t, "upload without a CSRF token", resp, http.StatusForbidden)
		if got := onlyImageID(t, s, token); got != imageID {
			t.Fatalf("after the refused upload: got image %s, want only %s", got, imageID)
		}
	})
}

// phoneWidth is the viewport of TestBrowserLayout's phone: an iPhone 12 to 15's 390 CSS px.
const phoneWidth = 390

// TestBrowserLayout checks what only a browser's layout shows: on a phone the admin lists and
// the token list fit the screen with their Delete and Revoke buttons on it, the admin
// navigation shows the current section, the browsable API draws each thumbnail at its own
// height, and the docs page starts short.
func TestBrowserLayout(t *testing.T) {
	execPath := chromiumPath(t)
	s := startServer(t, nil)
	admin := s.basic(t, testAdmin, testAdminPW)

	// A user with a long name on Premium (200 and 400 px thumbnails), a token, a custom tier
	// (which has a Delete link) and an image.
	const user = "viv.with-a-rather-long-username@example.com"
	r, body := admin.json("POST", "/api/admin/users", map[string]any{"username": user, "password": browserUserPW, "tier": "Premium"}, nil)
	wantStatus(t, "create user", r, body, http.StatusCreated)
	r, body = admin.json("POST", "/api/admin/tiers", map[string]any{"name": browserTier, "thumbnail_heights": []int{150, 600}}, nil)
	wantStatus(t, "create tier", r, body, http.StatusCreated)
	var tok struct {
		Token string `json:"token"`
	}
	r, body = admin.json("POST", "/api/admin/users/"+url.PathEscape(user)+"/tokens", nil, &tok)
	wantStatus(t, "mint token", r, body, http.StatusCreated)
	r, body = s.bearer(t, tok.Token).upload("a-photograph-with-a-long-descriptive-file-name.jpg", gradientJPEG(t, 1200, 800), nil)
	wantStatus(t, "upload", r, body, http.StatusCreated)

	b := startBrowser(t, execPath, s.URL)
	b.step("admin signs in", func(ctx context.Context, t *testing.T) {
		b.signIn(ctx, t, testAdmin, testAdminPW)
	})

	b.step("the admin navigation marks the current section", func(ctx context.Context, t *testing.T) {
		for _, tt := range []struct{ page, current string }{
			{"/admin/users", "/admin/users"},
			{"/admin/users/" + url.PathEscape(user), "/admin/users"},
			{"/admin/tiers", "/admin/tiers"},
		} {
			b.open(ctx, t, tt.page, http.StatusOK)
			got := evaluate[struct {
				Current []string `json:"current"`
				Looks   []string `json:"looks"`
			}](ctx, t, `(() => {
				const links = Array.from(document.querySelectorAll('nav.subnav a'));
				const look = a => { const s = getComputedStyle(a); return [s.fontWeight, s.color, s.backgroundColor, s.textDecorationLine, s.borderBottomStyle, s.borderBottomColor].join(' '); };
				return {
					current: links.filter(a => a.getAttribute('aria-current') === 'page').map(a => a.getAttribute('href')),
					looks: links.map(a => (a.getAttribute('aria-current') === 'page' ? 'current: ' : 'other: ') + look(a)),
				};
			})()`)
			if len(got.Current) != 1 || got.Current[0] != tt.current {
				t.Errorf("%s: links marked current: got %v, want [%s]", tt.page, got.Current, tt.current)
			}
			var cur, others []string
			for _, l := range got.Looks {
				if c, ok := strings.CutPrefix(l, "current: "); ok {
					cur = append(cur, c)
				} else {
					others = append(others, strings.TrimPrefix(l, "other: "))
				}
			}
			if len(cur) == 1 && slices.Contains(others, cur[0]) {
				t.Errorf("%s: the current section looks like another (%s)", tt.page, cur[0])
			}
		}
	})

	b.step("the docs page starts short", func(ctx context.Context, t *testing.T) {
		b.open(ctx, t, "/api/docs", http.StatusOK)
		// Every operation's details open, the page was some 26 000 px high.
		if h := evaluate[int](ctx, t, `document.documentElement.scrollHeight`); h > 8000 {
			t.Errorf("/api/docs: %d px high, want at most 8000 with the operations closed", h)
		}
		// A link from the contents leads to the operation's heading, though its details are
		// closed.
		top := evaluate[float64](ctx, t, `(() => {
			document.querySelector('nav.toc a[href="#op-uploadimage"]').click();
			return document.getElementById('op-uploadimage').getBoundingClientRect().top;
		})()`)
		if top < -1 || top > 100 {
			t.Errorf("/api/docs#op-uploadimage: the heading is at %.0f px, want it at the top of the window", top)
		}
	})

	b.step("user's thumbnails at their own heights", func(ctx context.Context, t *testing.T) {
		b.signOut(ctx, t)
		b.signIn(ctx, t, user, browserUserPW)
		b.open(ctx, t, "/api/images", http.StatusOK)
		b.waitImages(ctx, t, 200, 400)
		for _, h := range []int{200, 400} {
			got := evaluate[float64](ctx, t, fmt.Sprintf(`Array.from(document.images).find(i => /\/h%d(?:[\/?#]|$)/.test(i.src)).getBoundingClientRect().height`, h))
			if int(got+0.5) != h {
				t.Errorf("the %d px thumbnail is drawn %.0f px high, want %d", h, got, h)
			}
		}
	})

	b.step("phone", func(ctx context.Context, t *testing.T) {
		do(ctx, t, "emulate a phone", chromedp.EmulateViewport(phoneWidth, 844, chromedp.EmulateMobile))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
			defer cancel()
			chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)) //nolint:errcheck // the test is over
		})
		b.open(ctx, t, "/api/images", http.StatusOK)
		b.waitImages(ctx, t, 200, 400)
		b.fitsPhone(ctx, t, `img[src*="/h400"]`)
		b.screenshot(ctx, t, "phone-browsable-image-list.png")

		b.signOut(ctx, t)
		b.signIn(ctx, t, testAdmin, testAdminPW)
		for _, tt := range []struct{ page, button, shot string }{
			{"/admin/users", `table a[href^="/admin/users/"]`, "phone-admin-user-list.png"},
			{"/admin/users/" + url.PathEscape(user), `a[href*="/tokens/"][href$="/delete"]`, "phone-admin-user-tokens.png"},
			{"/admin/tiers", `a[href="/admin/tiers/` + browserTier + `/delete"]`, "phone-admin-tier-list.png"},
			{"/admin/images", `a[href$="/delete"]`, "phone-admin-image-list.png"},
			{"/api/docs", `#op-uploadimage`, "phone-docs.png"},
		} {
			b.open(ctx, t, tt.page, http.StatusOK)
			b.fitsPhone(ctx, t, tt.button)
			b.screenshot(ctx, t, tt.shot)
		}
	})
}

// fitsPhone checks that the page is no wider than the phone's screen, that nothing in it
// but a text field scrolls sideways (a table in its wrapper), and that the element sel (a Delete button) is on
// the screen.
func (b *browser) fitsPhone(ctx context.Context, t *testing.T, sel string) {
	t.Helper()
	got := evaluate[struct {
		ScrollWidth int      `json:"scrollWidth"`
		InnerWidth  int      `json:"innerWidth"`
		Scrolling   []string `json:"scrolling"`
		Found       bool     `json:"found"`
		Left        float64  `json:"left"`
		Right       float64  `json:"right"`
	}](ctx, t, fmt.Sprintf(`(() => {
		const el = document.querySelector(%q);
		const r = el ? el.getBoundingClientRect() : {left: 0, right: 0};
		return {
			scrollWidth: document.documentElement.scrollWidth,
			innerWidth: window.innerWidth,
			scrolling: Array.from(document.querySelectorAll('body *:not(input):not(textarea)'))
				.filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible' && getComputedStyle(e).overflowX !== 'hidden')
				.map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : '') + ' ' + e.scrollWidth + '>' + e.clientWidth),
			found: !!el, left: r.left, right: r.right,
		};
	})()`, sel))
	page := b.path(ctx, t)
	if got.ScrollWidth > got.InnerWidth || got.InnerWidth > phoneWidth {
		t.Errorf("%s: page %d px wide in a window of %d, want it within %d", page, got.ScrollWidth, got.InnerWidth, phoneWidth)
	}
	if len(got.Scrolling) > 0 {
		t.Errorf("%s: scrolls sideways inside: %v", page, got.Scrolling)
	}
	switch {
	case !got.Found:
		t.Errorf("%s: no %s", page, sel)
	case got.Left < 0 || got.Right > phoneWidth:
		t.Errorf("%s: %s spans %.0f to %.0f px, want it within 0 to %d", page, sel, got.Left, got.Right, phoneWidth)
	}
}

// attackerPage is a page on another origin with a form aimed at tierpix, as a malicious site
// would have: no CSRF token, the session cookie left to the browser.
var attackerPage = template.Must(template.New("attacker").Parse(`<!doctype html>
<html><head><title>Win a prize</title></head><body>
<form method="post" action="{{.}}"><button id="forge" type="submit">Claim your prize</button></form>
</body></html>`))

// formOf is a JavaScript path to the submit button of the form that holds the field sel.
func formOf(sel string) string {
	return fmt.Sprintf(`document.querySelector(%q).form.querySelector('[type=submit]')`, sel)
}

// onlyImageID returns the id of the user's one image, through the API.
func onlyImageID(t *testing.T, s *server, token string) string {
	t.Helper()
	var list struct {
		Results []imageJSON `json:"results"`
	}
	resp, body := s.bearer(t, token).json("GET", "/api/images", nil, &list)
	wantStatus(t, "list images", resp, body, http.StatusOK)
	if len(list.Results) != 1 {
		t.Fatalf("list images: got %d images, want 1: %s", len(list.Results), body)
	}
	return list.Results[0].ID
}

// chromiumPath is the Chromium to drive. Missing, it fails the test under CI=true (CI must not
// skip it) and skips it elsewhere.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("TIERPIX_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(p); err != nil {
		msg := fmt.Sprintf("no Chromium at %s (%v): install it (sudo apt-get install --no-install-recommends chromium; make test does it as root) or set TIERPIX_CHROMIUM", p, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// browser is one Chromium with one tab, signed in as whoever signed in last.
type browser struct {
	t     *testing.T
	ctx   context.Context // the tab; steps derive their timeouts from it
	base  string          // the server's URL
	shots string          // where screenshots go
	out   *syncBuffer     // Chromium's stdout and stderr
}

// startBrowser starts Chromium with a fresh profile and opens its tab. It is closed at cleanup.
func startBrowser(t *testing.T, execPath, base string) *browser {
	t.Helper()
	shots := os.Getenv("TIERPIX_SCREENSHOT_DIR")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, base: base, shots: shots, out: &syncBuffer{}}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(b.out),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		if t.Failed() {
			t.Logf("chromium output (D-Bus complaints left out: there is no bus in a container):\n%s", chromiumLog(b.out.String()))
		}
	})
	// The first action starts the browser and ties it to the context it runs with, so it runs
	// without a deadline; the wait for it has one.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium %s: %v\n%s", execPath, err, b.out.String())
		}
	case <-time.After(30 * time.Second):
		cancelTab()
		t.Fatalf("chromium %s did not start within 30s:\n%s", execPath, b.out.String())
	}
	b.ctx = ctx
	return b
}

// chromiumLog is Chromium's output without the lines about D-Bus, which it prints by the dozen
// wherever there is no system bus, and without anything before the last 8 KiB.
func chromiumLog(out string) string {
	var keep []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "dbus/") {
			keep = append(keep, line)
		}
	}
	s := strings.Join(keep, "\n")
	if len(s) > 8<<10 {
		s = "…" + s[len(s)-8<<10:]
	}
	return s
}

// step runs one step of the flow as a subtest with a deadline, keeps a screenshot and the page's
// HTML when it fails, and stops the flow there.
func (b *browser) step(name string, fn func(ctx context.Context, t *testing.T)) {
	ok := b.t.Run(name, func(t *testing.T) {
		t.Cleanup(func() {
			if t.Failed() {
				b.keepFailure(t)
			}
		})
		ctx, cancel := context.WithTimeout(b.ctx, browserStepTime)
		defer cancel()
		fn(ctx, t)
	})
	if !ok {
		b.t.FailNow()
	}
}

// keepFailure saves what the browser shows: failure.png and failure.html.
func (b *browser) keepFailure(t *testing.T) {
	dir := ""
	if f := flag.Lookup("test.artifacts"); f != nil && f.Value.String() == "true" {
		dir = t.ArtifactDir()
	} else {
		d, err := os.MkdirTemp("", "tierpix-browser-failure-")
		if err != nil {
			t.Logf("keep failure: %v", err)
			return
		}
		dir = d
	}
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err == nil {
		t.Logf("the browser was at %s", loc)
	}
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
		t.Logf("failure screenshot: %v", err)
	} else if err := os.WriteFile(filepath.Join(dir, "failure.png"), png, 0o644); err != nil {
		t.Logf("failure screenshot: %v", err)
	}
	if html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement ? document.documentElement.outerHTML : ""`)); err != nil {
		t.Logf("failure page HTML: %v", err)
	} else if err := os.WriteFile(filepath.Join(dir, "failure.html"), []byte(html), 0o644); err != nil {
		t.Logf("failure page HTML: %v", err)
	}
	t.Logf("kept the failed page: %s", filepath.Join(dir, "failure.png"))
}

// url resolves a path on the server; absolute URLs pass through.
func (b *browser) url(p string) string {
	if strings.HasPrefix(p, "http://") || strings.HasPrefix(p, "https://") {
		return p
	}
	return b.base + p
}

// open navigates to p and checks the status of the document it ends on (after redirects).
func (b *browser) open(ctx context.Context, t *testing.T, p string, want int) *network.Response {
	t.Helper()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(b.url(p)))
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	if resp == nil {
		t.Fatalf("open %s: no response", p)
	}
	b.wantStatus(ctx, t, "open "+p, resp, want)
	return resp
}

// submit clicks the element at the JavaScript path js (a submit button, a link) and waits for
// the page it leads to. The element must exist: its absence is a failure now, not a wait.
func (b *browser) submit(ctx context.Context, t *testing.T, js string) *network.Response {
	t.Helper()
	resp, err := b.trySubmit(ctx, t, js)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// trySubmit is submit that returns the failure to load a page instead of failing the test.
func (b *browser) trySubmit(ctx context.Context, t *testing.T, js string) (*network.Response, error) {
	t.Helper()
	if !evaluate[bool](ctx, t, `(() => { try { return !!(`+js+`) } catch (e) { return false } })()`) {
		t.Fatalf("no element %s on %s; page says:\n%s", js, b.path(ctx, t), b.pageText(ctx, t))
	}
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.JSPath(js)))
	if err != nil {
		return nil, fmt.Errorf("click %s: no page loaded: %w", js, err)
	}
	if resp == nil {
		return nil, fmt.Errorf("click %s: no page loaded", js)
	}
	return resp, nil
}

func (b *browser) wantStatus(ctx context.Context, t *testing.T, what string, resp *network.Response, want int) {
	t.Helper()
	if int(resp.Status) != want {
		t.Fatalf("%s: got status %d at %s, want %d; page says:\n%s", what, resp.Status, resp.URL, want, b.pageText(ctx, t))
	}
}

// signIn signs in through /login.
func (b *browser) signIn(ctx context.Context, t *testing.T, user, pw string) {
	t.Helper()
	b.open(ctx, t, "/login", http.StatusOK)
	b.fill(ctx, t, "username", user)
	b.fill(ctx, t, "password", pw)
	resp := b.submit(ctx, t, formOf(`input[name="password"]`))
	b.wantStatus(ctx, t, "sign in as "+user, resp, http.StatusOK)
}

// signOut signs out with the top bar's button.
func (b *browser) signOut(ctx context.Context, t *testing.T) {
	t.Helper()
	resp := b.submit(ctx, t, `document.querySelector('form[action$="/logout"] [type=submit]')`)
	if resp.Status >= 400 {
		b.wantStatus(ctx, t, "sign out", resp, http.StatusOK)
	}
}

// fill types value into the form field called name, replacing what it held.
func (b *browser) fill(ctx context.Context, t *testing.T, name, value string) {
	t.Helper()
	sel := chromedp.CSS(fmt.Sprintf(`[name=%q]`, name))
	if !b.has(ctx, t, string(sel)) {
		t.Fatalf("no field %s on %s; page says:\n%s", name, b.path(ctx, t), b.pageText(ctx, t))
	}
	evaluate[chromedp.Void](ctx, t, fmt.Sprintf(`document.querySelector(%q).value = ""`, string(sel)))
	do(ctx, t, "fill "+name, chromedp.SendKeys(sel, value))
	if got, err := chromedp.Run(ctx, chromedp.Value(sel)); err != nil || got != value {
		t.Fatalf("field %s: got %q (%v), want %q", name, got, err, value)
	}
}

// setChecked clicks the checkbox called name until it is checked or not.
func (b *browser) setChecked(ctx context.Context, t *testing.T, name string, checked bool) {
	t.Helper()
	sel := fmt.Sprintf(`input[type=checkbox][name=%q]`, name)
	if !b.has(ctx, t, sel) {
		t.Fatalf("no checkbox %s on %s; page says:\n%s", name, b.path(ctx, t), b.pageText(ctx, t))
	}
	if evaluate[bool](ctx, t, fmt.Sprintf(`document.querySelector(%q).checked`, sel)) != checked {
		do(ctx, t, "click "+name, chromedp.Click(chromedp.CSS(sel)))
	}
	if got := evaluate[bool](ctx, t, fmt.Sprintf(`document.querySelector(%q).checked`, sel)); got != checked {
		t.Fatalf("checkbox %s: got checked %v, want %v", name, got, checked)
	}
}

// selectOption picks the option of the select called name whose label or value is option.
func (b *browser) selectOption(ctx context.Context, t *testing.T, name, option string) {
	t.Helper()
	ok := evaluate[bool](ctx, t, fmt.Sprintf(`((s, want) => {
		if (!s) return false;
		const o = Array.from(s.options).find(o => o.value === want || o.text.trim() === want);
		if (!o) return false;
		s.value = o.value;
		s.dispatchEvent(new Event('change', {bubbles: true}));
		return true;
	})(document.querySelector(%q), %q)`, fmt.Sprintf(`select[name=%q]`, name), option))
	if !ok {
		t.Fatalf("no select %s with option %q on %s; page says:\n%s", name, option, b.path(ctx, t), b.pageText(ctx, t))
	}
}

// has reports whether the page has an element matching the CSS selector sel, now.
func (b *browser) has(ctx context.Context, t *testing.T, sel string) bool {
	t.Helper()
	return evaluate[bool](ctx, t, fmt.Sprintf(`!!document.querySelector(%q)`, sel))
}

// tableHasCell reports whether a table cell's text (or a link's in it) is exactly text.
func (b *browser) tableHasCell(ctx context.Context, t *testing.T, text string) bool {
	t.Helper()
	return evaluate[bool](ctx, t, fmt.Sprintf(`Array.from(document.querySelectorAll('table td, table th')).some(c =>
		c.textContent.trim() === %[1]q || Array.from(c.querySelectorAll('a')).some(a => a.textContent.trim() === %[1]q))`, text))
}

// path is the path of the page the browser shows.
func (b *browser) path(ctx context.Context, t *testing.T) string {
	t.Helper()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatalf("location: %v", err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("location %q: %v", loc, err)
	}
	return u.Path
}

// pageText is the start of the page's visible text, for failure messages.
func (b *browser) pageText(ctx context.Context, t *testing.T) string {
	t.Helper()
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return fmt.Sprintf("(no text: %v)", err)
	}
	const limit = 1500
	if len(text) > limit {
		text = text[:limit] + "…"
	}
	return "  | " + strings.ReplaceAll(strings.TrimSpace(text), "\n", "\n  | ")
}

// screenshot saves the whole page as a PNG named name in the screenshot dir.
func (b *browser) screenshot(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	// No focus ring or caret in the pictures the docs show.
	evaluate[chromedp.Void](ctx, t, `document.activeElement && document.activeElement.blur()`)
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(b.shots, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// shownImage is an img element of the page as the browser decoded it.
type shownImage struct {
	Found    bool   `json:"found"`
	Complete bool   `json:"complete"`
	W        int    `json:"w"`
	H        int    `json:"h"`
	Src      string `json:"src"`
	// CurrentSrc is what the browser loaded: a <picture>'s WebP source when it takes WebP.
	CurrentSrc string `json:"currentSrc"`
}

// waitImages waits until the page's img elements of the thumbnails of these heights (src path
// ending in /h<height>) have loaded, and returns their decoded sizes. A missing or broken
// image fails the test at once; one still loading is waited for, up to the step's deadline.
func (b *browser) waitImages(ctx context.Context, t *testing.T, heights ...int) map[int]shownImage {
	t.Helper()
	for {
		got := map[int]shownImage{}
		done := true
		for _, h := range heights {
			img := evaluate[shownImage](ctx, t, fmt.Sprintf(`(() => {
				const i = Array.from(document.images).find(i => /\/h%d(?:[\/?#]|$)/.test(i.src));
				if (!i) return {found: false};
				if (!i.complete && i.loading === 'lazy') i.loading = 'eager';
				return {found: true, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight, src: i.src, currentSrc: i.currentSrc};
			})()`, h))
			switch {
			case !img.Found:
				t.Fatalf("%s: no img whose src ends in /h%d; page says:\n%s", b.path(ctx, t), h, b.pageText(ctx, t))
			case img.Complete && img.H == 0:
				t.Fatalf("%s: the img %s did not load (broken image)", b.path(ctx, t), img.Src)
			case !img.Complete:
				done = false
			}
			got[h] = img
		}
		if done {
			return got
		}
		if ctx.Err() != nil {
			t.Fatalf("thumbnails %v still loading at the deadline: %+v", heights, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitImagesOf waits until every img of the page whose src names image id has loaded and
// returns how many there are.
func (b *browser) waitImagesOf(ctx context.Context, t *testing.T, id string) int {
	t.Helper()
	for {
		st := evaluate[struct {
			N       int      `json:"n"`
			Loading int      `json:"loading"`
			Broken  []string `json:"broken"`
		}](ctx, t, fmt.Sprintf(`(() => {
			const imgs = Array.from(document.images).filter(i => i.src.includes(%q));
			imgs.forEach(i => { if (!i.complete && i.loading === 'lazy') i.loading = 'eager'; });
			return {
				n: imgs.length,
				loading: imgs.filter(i => !i.complete).length,
				broken: imgs.filter(i => i.complete && i.naturalHeight === 0).map(i => i.src),
			};
		})()`, "/"+id+"/"))
		if len(st.Broken) > 0 {
			t.Fatalf("%s: broken images %v", b.path(ctx, t), st.Broken)
		}
		if st.Loading == 0 {
			return st.N
		}
		if ctx.Err() != nil {
			t.Fatalf("%s: %d of %d images of %s still loading at the deadline", b.path(ctx, t), st.Loading, st.N, id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// evaluate runs a JavaScript expression in the page and decodes its value.
func evaluate[T any](ctx context.Context, t *testing.T, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// do runs actions that return nothing.
func do(ctx context.Context, t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
