package web

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
)

func TestAdminTierCreate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ts := newTestServerWith(t, st, Config{})
		ctx := context.Background()
		c, csrf := ts.signedIn(t, "admin")

		tests := []struct {
			name       string
			form       url.Values
			wantStatus int
			wantFields map[string]string // field errors shown
			wantBody   []string          // what the re-rendered form keeps
			want       *tierpix.Tier     // the tier stored, for a success
		}{
			{
				name:       "heights and flags",
				form:       url.Values{"name": {"Gold"}, "thumbnail_heights": {"600, 150 150"}, "original_link": {"on"}, "expiring_links": {"on"}},
				wantStatus: http.StatusSeeOther,
				want:       &tierpix.Tier{Name: "Gold", ThumbnailHeights: []int{150, 600}, OriginalLink: true, ExpiringLinks: true},
			},
			{
				name:       "no heights no flags",
				form:       url.Values{"name": {"Bare"}, "thumbnail_heights": {""}},
				wantStatus: http.StatusSeeOther,
				want:       &tierpix.Tier{Name: "Bare", ThumbnailHeights: []int{}},
			},
			{
				name:       "heights not numbers",
				form:       url.Values{"name": {"Silver"}, "thumbnail_heights": {"0, abc"}, "original_link": {"on"}},
				wantStatus: http.StatusBadRequest,
				wantFields: map[string]string{"thumbnail_heights": `"abc" is not a whole number: give heights in pixels, separated by commas or spaces.`},
				wantBody:   []string{`value="0, abc"`, `value="Silver"`, `id="original_link" name="original_link" type="checkbox" value="on" checked>`},
			},
			{
				name:       "height out of range",
				form:       url.Values{"name": {"Silver"}, "thumbnail_heights": {"0, 100"}},
				wantStatus: http.StatusBadRequest,
				wantFields: map[string]string{"thumbnail_heights": "Each height must be between 1 and 10000."},
				wantBody:   []string{`value="0, 100"`, `id="original_link" name="original_link" type="checkbox" value="on">`},
			},
			{
				name:       "too many heights",
				form:       url.Values{"name": {"Silver"}, "thumbnail_heights": {"1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17"}},
				wantStatus: http.StatusBadRequest,
				wantFields: map[string]string{"thumbnail_heights": "At most 16 heights."},
			},
			{
				name:       "bad name and heights",
				form:       url.Values{"name": {"no spaces allowed"}, "thumbnail_heights": {"x"}},
				wantStatus: http.StatusBadRequest,
				wantFields: map[string]string{
					"name":              "The name must be 1 to 64 letters, digits, '-' or '_', starting with a letter or digit.",
					"thumbnail_heights": `"x" is not a whole number: give heights in pixels, separated by commas or spaces.`,
				},
				wantBody: []string{`value="no spaces allowed"`},
			},
			{
				name:       "empty name",
				form:       url.Values{"name": {""}, "thumbnail_heights": {"100"}},
				wantStatus: http.StatusBadRequest,
				wantFields: map[string]string{"name": "The name must be 1 to 64 letters, digits, '-' or '_', starting with a letter or digit."},
			},
			{
				name:       "duplicate name in another case",
				form:       url.Values{"name": {"premium"}, "thumbnail_heights": {"100"}},
				wantStatus: http.StatusConflict,
				wantFields: map[string]string{"name": `The tier "premium" already exists.`},
				wantBody:   []string{`value="premium"`, `value="100"`},
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got := ts.adminPostForm(t, c, "/admin/tiers/new", csrf, tt.form)
				got.wantStatus(t, tt.wantStatus)
				if tt.want != nil {
					got.wantRedirect(t, "/admin/tiers")
					stored, err := ts.st.FindTier(ctx, tt.want.Name)
					if err != nil {
						t.Fatalf("find tier: %v", err)
					}
					if stored.Name != tt.want.Name || !slices.Equal(stored.ThumbnailHeights, tt.want.ThumbnailHeights) ||
						stored.OriginalLink != tt.want.OriginalLink || stored.ExpiringLinks != tt.want.ExpiringLinks || stored.Builtin {
						t.Errorf("got tier %+v, want %+v", stored, *tt.want)
					}
					list := ts.adminGet(t, c, got.location)
					list.wantStatus(t, http.StatusOK)
					list.wantBody(t, `<p class="flash" role="status">Tier `+tt.want.Name+` created.</p>`, `<a href="/admin/tiers/`+tt.want.Name+`">`+tt.want.Name+`</a>`)
					return
				}
				got.wantBody(t, `<p class="flash error" id="form-error" role="alert">Please correct the marked fields.</p>`)
				for field, msg := range tt.wantFields {
					got.wantFieldError(t, field, msg)
				}
				got.wantBody(t, tt.wantBody...)
				// Nothing else was created under the typed name.
				if name := tt.form.Get("name"); name != "" && tt.wantStatus != http.StatusConflict {
					if _, err := ts.st.FindTier(ctx, name); tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
						t.Errorf("find tier %q: got %v, want ENOTFOUND", name, err)
					}
				}
			})
		}
	})
}

// TestAdminTierList checks the list's columns and that builtin tiers offer no delete.
func TestAdminTierList(t *testing.T) {
	ts := newTestServer(t, Config{})
	c, _ := ts.signedIn(t, "admin")
	if err := ts.st.CreateTier(context.Background(), &tierpix.Tier{Name: "Gold", ThumbnailHeights: []int{150, 600}, ExpiringLinks: true}); err != nil {
		t.Fatalf("create tier: %v", err)
	}
	got := ts.adminGet(t, c, "/admin/tiers")
	got.wantStatus(t, http.StatusOK)
	got.wantBody(t,
		`<a class="button" href="/admin/tiers/new">Add tier</a>`,
		`<a href="/admin/tiers/Enterprise">Enterprise</a></th>
      <td data-label="Thumbnail heights">200, 400</td>
      <td data-label="Original link">Yes</td>
      <td data-label="Expiring links">Yes</td>
      <td data-label="Builtin">Yes</td>`,
		`<a href="/admin/tiers/Gold">Gold</a></th>
      <td data-label="Thumbnail heights">150, 600</td>
      <td data-label="Original link">No</td>
      <td data-label="Expiring links">Yes</td>
      <td data-label="Builtin">No</td>`,
		`href="/admin/tiers/Gold/delete"`,
	)
	got.wantNoBody(t, `href="/admin/tiers/Basic/delete"`, `href="/admin/tiers/Premium/delete"`, `href="/admin/tiers/Enterprise/delete"`)

	// A flash is only a name: a crafted sentence shows nothing.
	crafted := ts.adminGet(t, c, "/admin/tiers?created="+url.QueryEscape("Your account is locked, call us"))
	crafted.wantNoBody(t, "locked", `class="flash"`)
}

func TestAdminTierEdit(t *testing.T) {
	ts := newTestServer(t, Config{})
	ctx := context.Background()
	c, csrf := ts.signedIn(t, "admin")

	form := ts.adminGet(t, c, "/admin/tiers/premium")
	form.wantStatus(t, http.StatusOK)
	form.wantBody(t, `<p class="readonly" id="name">Premium</p>`, `value="200, 400"`, `name="original_link" type="checkbox" value="on" checked>`, `name="expiring_links" type="checkbox" value="on">`)
	form.wantNoBody(t, `name="name"`, `href="/admin/tiers/Premium/delete"`)

	tests := []struct {
		name       string
		path       string
		form       url.Values
		wantStatus int
		wantField  string
		wantMsg    string
		want       tierpix.Tier
	}{
		{
			name:       "new heights, flags swapped, name ignored",
			path:       "/admin/tiers/Premium",
			form:       url.Values{"name": {"Platinum"}, "thumbnail_heights": {"100 300,1000"}, "expiring_links": {"on"}},
			wantStatus: http.StatusSeeOther,
			want:       tierpix.Tier{Name: "Premium", ThumbnailHeights: []int{100, 300, 1000}, ExpiringLinks: true},
		},
		{
			name:       "invalid heights keep the tier",
			path:       "/admin/tiers/Premium",
			form:       url.Values{"thumbnail_heights": {"0, abc"}, "original_link": {"on"}},
			wantStatus: http.StatusBadRequest,
			wantField:  "thumbnail_heights",
			wantMsg:    `"abc" is not a whole number: give heights in pixels, separated by commas or spaces.`,
			want:       tierpix.Tier{Name: "Premium", ThumbnailHeights: []int{100, 300, 1000}, ExpiringLinks: true},
		},
		{
			name:       "unknown tier",
			path:       "/admin/tiers/Nope",
			form:       url.Values{"thumbnail_heights": {"100"}},
			wantStatus: http.StatusNotFound,
			want:       tierpix.Tier{Name: "Premium", ThumbnailHeights: []int{100, 300, 1000}, ExpiringLinks: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ts.adminPostForm(t, c, tt.path, csrf, tt.form)
			got.wantStatus(t, tt.wantStatus)
			switch tt.wantStatus {
			case http.StatusSeeOther:
				got.wantRedirect(t, "/admin/tiers")
				ts.adminGet(t, c, got.location).wantBody(t, "Tier "+tt.want.Name+" saved.")
			case http.StatusBadRequest:
				got.wantFieldError(t, tt.wantField, tt.wantMsg)
				got.wantBody(t, `value="`+adminEsc(tt.form.Get(tt.wantField))+`"`)
			case http.StatusNotFound:
				got.wantBody(t, "The tier does not exist.")
			}
			stored, err := ts.st.FindTier(ctx, tt.want.Name)
			if err != nil {
				t.Fatalf("find tier: %v", err)
			}
			if !slices.Equal(stored.ThumbnailHeights, tt.want.ThumbnailHeights) || stored.OriginalLink != tt.want.OriginalLink || stored.ExpiringLinks != tt.want.ExpiringLinks {
				t.Errorf("got tier %+v, want %+v", stored, tt.want)
			}
		})
	}
	if _, err := ts.st.FindTier(ctx, "Platinum"); tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
		t.Errorf("find tier Platinum: got %v, want ENOTFOUND (no rename)", err)
	}
	ts.adminGet(t, c, "/admin/tiers/Nope").wantStatus(t, http.StatusNotFound)
}

func TestAdminTierDelete(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ts := newTestServerWith(t, st, Config{})
		ctx := context.Background()
		c, csrf := ts.signedIn(t, "admin")
		for _, name := range []string{"Gold", "Free"} {
			if err := ts.st.CreateTier(ctx, &tierpix.Tier{Name: name, ThumbnailHeights: []int{100}}); err != nil {
				t.Fatalf("create tier: %v", err)
			}
		}
		ts.createUser(t, "bob", "Gold", false)

		tests := []struct {
			name        string
			tier        string
			wantConfirm bool // the confirmation offers the button
			wantStatus  int
			wantMsg     string
			wantGone    bool
		}{
			{name: "builtin", tier: "Basic", wantConfirm: false, wantStatus: http.StatusConflict, wantMsg: "The Basic tier is builtin and cannot be deleted."},
			{name: "in use, refused before the confirmation", tier: "Gold", wantConfirm: false, wantStatus: http.StatusConflict, wantMsg: "The tier Gold has 1 user. Move them to another tier first."},
			{name: "free", tier: "Free", wantConfirm: true, wantStatus: http.StatusSeeOther, wantGone: true},
			{name: "unknown", tier: "Nope", wantStatus: http.StatusNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				path := "/admin/tiers/" + tt.tier + "/delete"
				confirm := ts.adminGet(t, c, path)
				if tt.wantStatus == http.StatusNotFound {
					confirm.wantStatus(t, http.StatusNotFound)
				} else {
					confirm.wantStatus(t, http.StatusOK)
					button := `<form method="post" action="` + path + `">`
					if tt.wantConfirm {
						confirm.wantBody(t, button, `<button type="submit" class="button danger">Delete tier `+tt.tier+`</button>`)
					} else {
						confirm.wantNoBody(t, button)
						confirm.wantBody(t, tt.wantMsg)
					}
				}

				got := ts.adminPostForm(t, c, path, csrf, nil)
				got.wantStatus(t, tt.wantStatus)
				if tt.wantStatus == http.StatusSeeOther {
					got.wantRedirect(t, "/admin/tiers")
					ts.adminGet(t, c, got.location).wantBody(t, "Tier "+tt.tier+" deleted.")
				}
				if tt.wantMsg != "" {
					got.wantBody(t, `<p class="flash error" id="refusal" role="alert">`+tt.wantMsg+`</p>`)
				}
				_, err := ts.st.FindTier(ctx, tt.tier)
				switch {
				case tt.wantGone || tt.wantStatus == http.StatusNotFound:
					if tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
						t.Errorf("find tier: got %v, want ENOTFOUND", err)
					}
				case err != nil:
					t.Errorf("find tier: got %v, want it still there", err)
				}
			})
		}
		if u := ts.adminUser(t, "bob"); u.TierName != "Gold" {
			t.Errorf("got bob on %q, want Gold", u.TierName)
		}
	})
}
