package web

import (
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
	"net/http"
	"regexp"
	"slices"
	"testing"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
)

// TestAdminImageList checks everyone's images newest first, 50 a page, filtered by owner.
func TestAdminImageList(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ts := newTestServerWith(t, st, Config{})
		c, _ := ts.signedIn(t, "admin")
		alice := ts.adminUser(t, "alice")
		admin := ts.adminUser(t, "admin")
		// 60 images, oldest first, every third the admin's.
		var ids []string // newest first
		var aliceIDs []string
		for i := range 60 {
			owner := alice.ID
			if i%3 == 0 {
				owner = admin.ID
			}
			img := ts.adminAddImage(t, owner, fmt.Sprintf("img-%02d.jpg", i), 8, 6)
			ids = append([]string{img.ID}, ids...)
			if owner == alice.ID {
				aliceIDs = append([]string{img.ID}, aliceIDs...)
			}
		}
		rowRE := regexp.MustCompile(`<a href="/admin/images/([a-z2-7]{24})/delete"`)
		rows := func(r adminResponse) []string {
			var got []string
			for _, m := range rowRE.FindAllStringSubmatch(r.body, -1) {
				got = append(got, m[1])
			}
			return got
		}
		nextRE := regexp.MustCompile(`<a href="(/admin/images\?[^"]+)" rel="next">Next page</a>`)

		tests := []struct {
			name      string
			path      string
			want      []string
			wantOwner bool // the next link keeps owner=alice
		}{
			{name: "everyone", path: "/admin/images", want: ids},
			{name: "alice", path: "/admin/images?owner=alice", want: aliceIDs, wantOwner: true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				first := ts.adminGet(t, c, tt.path)
				first.wantStatus(t, http.StatusOK)
				if got := rows(first); !slices.Equal(got, tt.want[:min(50, len(tt.want))]) {
					t.Fatalf("got first page %v, want %v", got, tt.want[:min(50, len(tt.want))])
				}
				if len(tt.want) <= 50 {
					first.wantNoBody(t, "Next page")
					return
				}
				m := nextRE.FindStringSubmatch(first.body)
				if m == nil {
					t.Fatalf("no next page link")
				}
				next := regexp.MustCompile(`&amp;`).ReplaceAllString(m[1], "&")
				if tt.wantOwner != regexp.MustCompile(`[?&]owner=alice(&|$)`).MatchString(next) {
					t.Errorf("got next link %q, want owner kept %t", next, tt.wantOwner)
				}
				second := ts.adminGet(t, c, next)
				second.wantStatus(t, http.StatusOK)
				if got := rows(second); !slices.Equal(got, tt.want[50:]) {
					t.Errorf("got second page %v, want %v", got, tt.want[50:])
				}
				second.wantNoBody(t, "Next page")
			})
		}

		// The columns of one row: preview picture inside a link, name, owner filter, size.
		page := ts.adminGet(t, c, "/admin/images?owner=alice")
		page.wantBody(t,
			fmt.Sprintf(`<a class="thumb" href="/admin/images/%[1]s/preview"><img src="/admin/images/%[1]s/preview" alt="Preview of img-59.jpg" width="8" height="6" loading="lazy"></a>`, aliceIDs[0]),
			fmt.Sprintf(`<th scope="row" data-label="Name"><a href="/admin/images/%s">img-59.jpg</a></th>`, aliceIDs[0]),
			`<a href="/admin/images?owner=alice" aria-label="Images of alice">alice</a>`,
			`<td data-label="Size">8×6, `,
		)
		page.wantNoBody(t, "img-57.jpg") // the admin's

		unknown := ts.adminGet(t, c, "/admin/images?owner=nobody")
		unknown.wantStatus(t, http.StatusOK)
		unknown.wantFieldError(t, "owner", `No user is named "nobody".`)
		if got := rows(unknown); len(got) != 0 {
			t.Errorf("got %d rows for an unknown owner, want none", len(got))
		}
	})
}

// TestAdminImagePreview checks that the preview is a 200 px JPEG whatever the owner's tier
// allows, and never larger than the original.
func TestAdminImagePreview(t *testing.T) {
	ts := newTestServer(t, Config{})
	c, _ := ts.signedIn(t, "admin")
	if err := ts.st.CreateTier(context.Background(), &tierpix.Tier{Name: "Nothing"}); err != nil {
		t.Fatalf("create tier: %v", err)
	}
	bob := ts.createUser(t, "bob", "Nothing", false)
	tall := ts.adminAddImage(t, bob.ID, "tall.jpg", 300, 400)
	small := ts.adminAddImage(t, bob.ID, "small.jpg", 90, 60)

	tests := []struct {
		name  string
		id    string
		wantW int
		wantH int
	}{
		{name: "scaled to 200", id: tall.ID, wantW: 150, wantH: 200},
		{name: "never upscaled", id: small.ID, wantW: 90, wantH: 60},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ts.adminGet(t, c, "/admin/images/"+tt.id+"/preview")
			got.wantStatus(t, http.StatusOK)
			if ct := got.header.Get("Content-Type"); ct != "image/jpeg" {
				t.Errorf("got Content-Type %q, want image/jpeg", ct)
			}
			cfg, err := jpeg.DecodeConfig(bytes.NewReader([]byte(got.body)))
			if err != nil {
				t.Fatalf("decode preview: %v", err)
			}
			if cfg.Width != tt.wantW || cfg.Height != tt.wantH {
				t.Errorf("got %d×%d, want %d×%d", cfg.Width, cfg.Height, tt.wantW, tt.wantH)
			}
		})
	}
	ts.adminGet(t, c, "/admin/images/aaaaaaaaaaaaaaaaaaaaaaaa/preview").wantStatus(t, http.StatusNotFound)
	// The list announces the size the preview comes in.
	ts.adminGet(t, c, "/admin/images").wantBody(t, `alt="Preview of tall.jpg" width="150" height="200"`, `alt="Preview of small.jpg" width="90" height="60"`)
}

// TestAdminImageDelete checks the confirmation, the deletion and the purge: the image's links
// stop working at once, though the origin had its metadata cached.
func TestAdminImageDelete(t *testing.T) {
	ts := newTestServer(t, Config{})
	ctx := context.Background()
	c, csrf := ts.signedIn(t, "admin")
	alice := ts.adminUser(t, "alice")
	img := ts.adminAddImage(t, alice.ID, "cat.jpg", 300, 240)
	keep := ts.adminAddImage(t, alice.ID, "dog.jpg", 30, 20)
	link := ts.adminLink(img.ID)
	ts.adminGet(t, ts.client(t), link).wantStatus(t, http.StatusOK)

	path := "/admin/images/" + img.ID + "/delete"
	confirm := ts.adminGet(t, c, path)
	confirm.wantStatus(t, http.StatusOK)
	confirm.wantBody(t, "Delete image cat.jpg", `<form method="post" action="`+path+`">`, `<a href="/admin/images?owner=alice">alice</a>`, "300×240")

	got := ts.adminPostForm(t, c, path, csrf, nil)
	got.wantRedirect(t, "/admin/images")
	list := ts.adminGet(t, c, got.location)
	list.wantBody(t, "Image deleted.", "dog.jpg")
	list.wantNoBody(t, "cat.jpg")
	if _, err := ts.st.FindImage(ctx, img.ID); tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
		t.Errorf("find image: got %v, want ENOTFOUND", err)
	}
	if _, err := ts.st.FindImage(ctx, keep.ID); err != nil {
		t.Errorf("find the other image: got %v, want nil", err)
	}
	ts.adminGet(t, ts.client(t), link).wantStatus(t, http.StatusNotFound)

	ts.adminGet(t, c, path).wantStatus(t, http.StatusNotFound)
	ts.adminPostForm(t, c, path, csrf, nil).wantStatus(t, http.StatusNotFound)
}
