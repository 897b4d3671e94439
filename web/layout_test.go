package web

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/tierpix/tierpix"
	"golang.org/x/net/html"
)

// TestTableLabels checks that every data cell of every list table names its column in
// data-label, which a phone shows beside the value once the rows become cards.
func TestTableLabels(t *testing.T) {
	ts := newTestServer(t, Config{})
	ctx := context.Background()
	alice := ts.adminUser(t, "alice")
	ts.adminAddImage(t, alice.ID, "cat.jpg", 40, 30)
	if err := ts.st.CreateTier(ctx, &tierpix.Tier{Name: "Gold", ThumbnailHeights: []int{150}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ts.st.CreateToken(ctx, alice.ID); err != nil {
		t.Fatal(err)
	}
	ts.signedIn(t, "alice") // a session for alice's page to list
	c, _ := ts.signedIn(t, "admin")

	for _, path := range []string{"/admin/users", "/admin/users/alice", "/admin/tiers", "/admin/images", "/api/docs"} {
		t.Run(path, func(t *testing.T) {
			r := ts.do(t, c, http.MethodGet, path, nil, nil)
			r.wantStatus(t, http.StatusOK)
			tables := findAll(r.doc, func(n *html.Node) bool { return n.Data == "table" && strings.Contains(attr(n, "class"), "list") })
			if len(tables) == 0 {
				t.Fatalf("no table.list")
			}
			cells := 0
			for _, table := range tables {
				var columns []string
				for _, th := range elements(table, "th", "scope", "col") {
					// A sorted column's arrow is decoration (aria-hidden), not its label.
					columns = append(columns, strings.TrimRight(textOf(th), " ▲▼"))
				}
				for _, body := range elements(table, "tbody") {
					for _, tr := range elements(body, "tr") {
						i := 0
						for td := tr.FirstChild; td != nil; td = td.NextSibling {
							if td.Type != html.ElementNode {
								continue
							}
							col := i
							i++
							if td.Data != "td" || attr(td, "colspan") != "" {
								continue // a row's title, or a row saying the list is empty
							}
							cells++
							if col >= len(columns) {
								t.Errorf("a cell beyond the %d columns: %q", len(columns), textOf(td))
							} else if got := attr(td, "data-label"); got != columns[col] {
								t.Errorf("cell %q: got data-label %q, want its column's %q", textOf(td), got, columns[col])
							}
						}
					}
				}
			}
			if cells == 0 {
				t.Errorf("no data cells: the test saw nothing")
			}
		})
	}

	// The stylesheet turns rows into cards on a phone and shows the labels.
	var cards, labels bool
	for _, r := range parseCSS(t, string(staticFiles()["style.css"].body)) {
		if !strings.Contains(r.media, "max-width") {
			continue
		}
		if strings.Contains(r.selector, "table.list tr") && r.decls["display"] == "block" {
			cards = true
		}
		if strings.Contains(r.selector, "td[data-label]::before") && r.decls["content"] == "attr(data-label)" {
			labels = true
		}
	}
	if !cards || !labels {
		t.Errorf("stylesheet: rows as blocks %v, cells labelled %v on narrow screens; want both", cards, labels)
	}
}

// TestSubnavCurrentStyle checks that the stylesheet draws the current section of a sub-navigation
// unlike the other links: the aria-current the pages set is otherwise invisible.
func TestSubnavCurrentStyle(t *testing.T) {
	for _, r := range parseCSS(t, string(staticFiles()["style.css"].body)) {
		if r.media == "" && strings.Contains(r.selector, `.subnav a[aria-current="page"]`) {
			if r.decls["font-weight"] == "" && r.decls["border-bottom"] == "" && r.decls["background"] == "" {
				t.Errorf("%s: got %v, want a weight, a bar or a background", r.selector, r.decls)
			}
			return
		}
	}
	t.Errorf(`stylesheet: no rule for .subnav a[aria-current="page"]`)
}

// TestThumbnailStyle checks that the stylesheet draws a thumbnail at its own height, but no
// wider than its column.
func TestThumbnailStyle(t *testing.T) {
	found := false
	for _, r := range parseCSS(t, string(staticFiles()["style.css"].body)) {
		if !strings.Contains(r.selector, ".thumb img") {
			continue
		}
		found = true
		if v, ok := r.decls["max-height"]; ok {
			t.Errorf("%s: max-height %s draws every thumbnail at most that high", r.selector, v)
		}
		if r.media == "" && r.decls["max-width"] != "100%" {
			t.Errorf("%s: got max-width %q, want 100%%", r.selector, r.decls["max-width"])
		}
	}
	if !found {
		t.Errorf("stylesheet: no rule for .thumb img")
	}
}
