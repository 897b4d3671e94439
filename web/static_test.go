package web

import (
	"bytes"
	"math"
	"net/http"
	"strings"
	"testing"
)

// TestFavicon checks that /favicon.ico, which browsers ask for unprompted, is an icon kept for
// a long time, and that every page links the icons.
func TestFavicon(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.client(t)
	r := ts.do(t, c, http.MethodGet, "/favicon.ico", nil, nil)
	r.wantStatus(t, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "image/x-icon" {
		t.Errorf("Content-Type: got %q, want image/x-icon", ct)
	}
	if !strings.HasPrefix(r.body, "\x00\x00\x01\x00") {
		t.Errorf("body: got % x..., want an ICO file", r.body[:min(8, len(r.body))])
	}
	if cc := r.header.Get("Cache-Control"); cc != faviconMaxAge {
		t.Errorf("Cache-Control: got %q, want %q", cc, faviconMaxAge)
	}
	etag := r.header.Get("ETag")
	head := ts.do(t, c, http.MethodHead, "/favicon.ico", nil, nil)
	head.wantStatus(t, http.StatusOK)
	if head.body != "" || head.header.Get("ETag") != etag {
		t.Errorf("HEAD: got %d bytes and ETag %q, want no body and %q", len(head.body), head.header.Get("ETag"), etag)
	}
	again := ts.do(t, c, http.MethodGet, "/favicon.ico", nil, http.Header{"If-None-Match": {etag}})
	again.wantStatus(t, http.StatusNotModified)

	page := ts.do(t, c, http.MethodGet, "/api/docs", nil, nil)
	icons := elements(page.doc, "link", "rel", "icon")
	if len(icons) != 2 {
		t.Fatalf("got %d <link rel=icon>, want 2 (ICO and SVG)", len(icons))
	}
	for _, l := range icons {
		r := ts.do(t, c, http.MethodGet, attr(l, "href"), nil, nil)
		r.wantStatus(t, http.StatusOK)
		if want := attr(l, "type"); want != "" && r.header.Get("Content-Type") != want {
			t.Errorf("%s: got Content-Type %q, want %q", attr(l, "href"), r.header.Get("Content-Type"), want)
		}
		if strings.HasSuffix(strings.Split(attr(l, "href"), "?")[0], ".svg") && !bytes.Contains([]byte(r.body), []byte("<svg")) {
			t.Errorf("%s: want an SVG", attr(l, "href"))
		}
	}
}

// cssRule is one rule of the stylesheet: its selector, the @media it sits in ("" at the top
// level) and its declarations.
type cssRule struct {
	media, selector string
	decls           map[string]string
}

// parseCSS reads the rules of a stylesheet with at most one level of @media around them,
// which is all style.css uses.
func parseCSS(t *testing.T, css string) []cssRule {
	t.Helper()
	for {
		i := strings.Index(css, "/*")
		if i < 0 {
			break
		}
		j := strings.Index(css[i:], "*/")
		if j < 0 {
			t.Fatalf("stylesheet: unclosed comment")
		}
		css = css[:i] + css[i+j+2:]
	}
	var rules []cssRule
	var parse func(s, media string)
	parse = func(s, media string) {
		for {
			open := strings.IndexByte(s, '{')
			if open < 0 {
				return
			}
			head := strings.TrimSpace(s[:open])
			depth, end := 0, -1
			for k := open; k < len(s) && end < 0; k++ {
				switch s[k] {
				case '{':
					depth++
				case '}':
					if depth--; depth == 0 {
						end = k
					}
				}
			}
			if end < 0 {
				t.Fatalf("stylesheet: unbalanced braces after %q", head)
			}
			body := s[open+1 : end]
			if strings.HasPrefix(head, "@media") {
				parse(body, head)
			} else {
				decls := map[string]string{}
				for d := range strings.SplitSeq(body, ";") {
					if k, v, ok := strings.Cut(d, ":"); ok {
						decls[strings.TrimSpace(k)] = strings.TrimSpace(v)
					}
				}
				rules = append(rules, cssRule{media: media, selector: head, decls: decls})
			}
			s = s[end+1:]
		}
	}
	parse(css, "")
	return rules
}

// hexColor reads #rgb or #rrggbb.
func hexColor(t *testing.T, s string) [3]float64 {
	t.Helper()
	s = strings.TrimPrefix(strings.ToLower(s), "#")
	if len(s) == 3 {
		s = string([]byte{s[0], s[0], s[1], s[1], s[2], s[2]})
	}
	var c [3]float64
	if len(s) != 6 {
		t.Fatalf("colour %q: want #rgb or #rrggbb", s)
	}
	for i := range c {
		var v int
		for _, ch := range s[2*i : 2*i+2] {
			v *= 16
			switch {
			case ch >= '0' && ch <= '9':
				v += int(ch - '0')
			case ch >= 'a' && ch <= 'f':
				v += int(ch-'a') + 10
			default:
				t.Fatalf("colour %q: not hex", s)
			}
		}
		c[i] = float64(v) / 255
	}
	return c
}

// contrastRatio is WCAG 2.1's contrast ratio of two sRGB colours, from 1 to 21.
func contrastRatio(a, b [3]float64) float64 {
	lum := func(c [3]float64) float64 {
		var l [3]float64
		for i, v := range c {
			if v <= 0.04045 {
				l[i] = v / 12.92
			} else {
				l[i] = math.Pow((v+0.055)/1.055, 2.4)
			}
		}
		return 0.2126*l[0] + 0.7152*l[1] + 0.0722*l[2]
	}
	la, lb := lum(a), lum(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// TestContrast reads style.css and checks, in the light and the dark scheme, that the focus
// ring and the edges of inputs have 3:1 against the page background (WCAG 2.1 SC 1.4.11), and
// text 4.5:1 against the backgrounds it is shown on (SC 1.4.3).
func TestContrast(t *testing.T) {
	rules := parseCSS(t, string(staticFiles()["style.css"].body))
	find := func(media string, match func(sel string) bool) cssRule {
		t.Helper()
		for _, r := range rules {
			if r.media == media && match(r.selector) {
				return r
			}
		}
		t.Fatalf("stylesheet: no such rule (media %q)", media)
		return cssRule{}
	}
	is := func(sel string) func(string) bool { return func(s string) bool { return s == sel } }
	light := find("", is(":root")).decls
	dark := map[string]string{}
	for k, v := range light {
		dark[k] = v
	}
	for k, v := range find("@media (prefers-color-scheme: dark)", is(":root")).decls {
		dark[k] = v
	}

	// colorIn returns the colour of a declaration such as "3px solid var(--focus)".
	colorIn := func(decl string) string {
		for f := range strings.FieldsSeq(decl) {
			if strings.HasPrefix(f, "var(") || strings.HasPrefix(f, "#") {
				return f
			}
		}
		t.Fatalf("no colour in %q", decl)
		return ""
	}
	focus := colorIn(find("", is(":focus-visible")).decls["outline"])
	inputs := find("", func(s string) bool { return strings.Contains(s, `input[type="text"]`) && strings.Contains(s, "select") })
	border := colorIn(inputs.decls["border"])
	page := colorIn(find("", is("body")).decls["background"])

	schemes := []struct {
		name string
		vars map[string]string
	}{{"light", light}, {"dark", dark}}
	for _, sc := range schemes {
		t.Run(sc.name, func(t *testing.T) {
			color := func(v string) [3]float64 {
				t.Helper()
				for strings.HasPrefix(v, "var(") {
					name := strings.TrimSuffix(strings.TrimPrefix(v, "var("), ")")
					var ok bool
					if v, ok = sc.vars[name]; !ok {
						t.Fatalf("no custom property %s", name)
					}
				}
				return hexColor(t, v)
			}
			tests := []struct {
				name   string
				fg, bg string
				min    float64
			}{
				{name: "focus ring on the page", fg: focus, bg: page, min: 3},
				{name: "focus ring on the top bar", fg: focus, bg: "var(--panel)", min: 3},
				{name: "input border on the page", fg: border, bg: page, min: 3},
				{name: "input border on the input", fg: border, bg: colorIn(inputs.decls["background"]), min: 3},
				{name: "text", fg: "var(--fg)", bg: page, min: 4.5},
				{name: "text on a panel", fg: "var(--fg)", bg: "var(--panel)", min: 4.5},
				{name: "muted text", fg: "var(--muted)", bg: page, min: 4.5},
				{name: "muted text on a panel", fg: "var(--muted)", bg: "var(--panel)", min: 4.5},
				{name: "links", fg: "var(--accent)", bg: page, min: 4.5},
				{name: "links on a panel", fg: "var(--accent)", bg: "var(--panel)", min: 4.5},
				{name: "primary button", fg: "var(--accent-fg)", bg: "var(--accent)", min: 4.5},
				{name: "danger button", fg: "var(--bg)", bg: "var(--danger)", min: 4.5},
				{name: "errors", fg: "var(--danger)", bg: page, min: 4.5},
				{name: "errors in a problem box", fg: "var(--danger)", bg: "var(--danger-bg)", min: 4.5},
				{name: "success", fg: "var(--ok)", bg: page, min: 4.5},
				{name: "JSON keys", fg: "var(--code-key)", bg: "var(--panel)", min: 4.5},
				{name: "JSON strings", fg: "var(--code-str)", bg: "var(--panel)", min: 4.5},
				{name: "JSON numbers", fg: "var(--code-num)", bg: "var(--panel)", min: 4.5},
				{name: "JSON literals", fg: "var(--code-lit)", bg: "var(--panel)", min: 4.5},
			}
			for _, tt := range tests {
				if got := contrastRatio(color(tt.fg), color(tt.bg)); got < tt.min {
					t.Errorf("%s: %s on %s: got %.2f:1, want at least %g:1", tt.name, tt.fg, tt.bg, got, tt.min)
				}
			}
		})
	}
}
