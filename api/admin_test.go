package api

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/service"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
)

// TestAdminAccess checks every admin route refuses the unauthenticated (401) and non-admins
// (403) before looking at anything else.
func TestAdminAccess(t *testing.T) {
	ts := newTestServer(t, Config{})
	routes := []struct{ method, path string }{
		{http.MethodGet, "/api/admin/tiers"},
		{http.MethodPost, "/api/admin/tiers"},
		{http.MethodGet, "/api/admin/tiers/Basic"},
		{http.MethodPatch, "/api/admin/tiers/Basic"},
		{http.MethodDelete, "/api/admin/tiers/Basic"},
		{http.MethodGet, "/api/admin/users"},
		{http.MethodPost, "/api/admin/users"},
		{http.MethodGet, "/api/admin/users/alice"},
		{http.MethodPatch, "/api/admin/users/alice"},
		{http.MethodDelete, "/api/admin/users/alice"},
		{http.MethodPost, "/api/admin/users/alice/tokens"},
	}
	for _, rt := range routes {
		for _, who := range []struct {
			name string
			as   auth
			want int
		}{{"anonymous", noAuth, http.StatusUnauthorized}, {"user", asAlice, http.StatusForbidden}} {
			t.Run(rt.method+" "+rt.path+" "+who.name, func(t *testing.T) {
				r := ts.doJSON(t, rt.method, rt.path, who.as, `{}`)
				r.wantProblem(t, who.want)
				if who.want == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") != wwwAuthenticate {
					t.Errorf("WWW-Authenticate: got %q, want %q", r.header.Get("WWW-Authenticate"), wwwAuthenticate)
				}
			})
		}
	}
	if _, err := ts.st.FindUser(context.Background(), "alice"); err != nil {
		t.Errorf("alice after refused admin calls: got %v, want her still there", err)
	}
}

type apiTier struct {
	Name             string `json:"name"`
	ThumbnailHeights []int  `json:"thumbnail_heights"`
	OriginalLink     bool   `json:"original_link"`
	ExpiringLinks    bool   `json:"expiring_links"`
	Builtin          bool   `json:"builtin"`
}

func TestAdminTiers(t *testing.T) {
	ts := newTestServer(t, Config{})

	t.Run("list", func(t *testing.T) {
		r := ts.do(t, http.MethodGet, "/api/admin/tiers", asAdmin, "", nil)
		r.wantStatus(t, http.StatusOK)
		r.wantHeaders(t, jsonHeaders)
		want := `{"results":[` +
			`{"name":"Basic","thumbnail_heights":[200],"original_link":false,"expiring_links":false,"builtin":true},` +
			`{"name":"Enterprise","thumbnail_heights":[200,400],"original_link":true,"expiring_links":true,"builtin":true},` +
			`{"name":"Premium","thumbnail_heights":[200,400],"original_link":true,"expiring_links":false,"builtin":true}` +
			`],"next":null}`
		if strings.TrimSuffix(string(r.body), "\n") != want {
			t.Errorf("body: got %s, want %s", r.body, want)
		}
	})

	steps := []struct {
		name   string
		method string
		path   string
		body   any
		want   int
		field  string
		check  string // the tier JSON the step must answer with
	}{
		{name: "create", method: http.MethodPost, path: "/api/admin/tiers", body: `{"name":"Gold","thumbnail_heights":[800,100,100],"original_link":true}`, want: http.StatusCreated,
			check: `{"name":"Gold","thumbnail_heights":[100,800],"original_link":true,"expiring_links":false,"builtin":false}`},
		{name: "create with defaults", method: http.MethodPost, path: "/api/admin/tiers", body: `{"name":"Bare"}`, want: http.StatusCreated,
			check: `{"name":"Bare","thumbnail_heights":[],"original_link":false,"expiring_links":false,"builtin":false}`},
		{name: "create existing", method: http.MethodPost, path: "/api/admin/tiers", body: `{"name":"Gold"}`, want: http.StatusConflict},
		{name: "create existing other case", method: http.MethodPost, path: "/api/admin/tiers", body: `{"name":"gold"}`, want: http.StatusConflict},
		{name: "create without name", method: http.MethodPost, path: "/api/admin/tiers", body: `{"thumbnail_heights":[100]}`, want: http.StatusBadRequest, field: "name"},
		{name: "create bad name", method: http.MethodPost, path: "/api/admin/tiers", body: `{"name":"no spaces"}`, want: http.StatusBadRequest, field: "name"},
		{name: "create bad height", method: http.MethodPost, path: "/api/admin/tiers", body: `{"name":"Tall","thumbnail_heights":[0]}`, want: http.StatusBadRequest, field: "thumbnail_heights"},
		{name: "create huge height", method: http.MethodPost, path: "/api/admin/tiers", body: `{"name":"Tall","thumbnail_heights":[10001]}`, want: http.StatusBadRequest, field: "thumbnail_heights"},
		{name: "create builtin", method: http.MethodPost, path: "/api/admin/tiers", body: `{"name":"Fake","builtin":true}`, want: http.StatusBadRequest, field: "builtin"},
		{name: "get", method: http.MethodGet, path: "/api/admin/tiers/Gold", want: http.StatusOK,
			check: `{"name":"Gold","thumbnail_heights":[100,800],"original_link":true,"expiring_links":false,"builtin":false}`},
		{name: "get other case", method: http.MethodGet, path: "/api/admin/tiers/gOLD", want: http.StatusOK,
			check: `{"name":"Gold","thumbnail_heights":[100,800],"original_link":true,"expiring_links":false,"builtin":false}`},
		{name: "get missing", method: http.MethodGet, path: "/api/admin/tiers/Nope", want: http.StatusNotFound},
		{name: "patch one flag", method: http.MethodPatch, path: "/api/admin/tiers/Gold", body: `{"expiring_links":true}`, want: http.StatusOK,
			check: `{"name":"Gold","thumbnail_heights":[100,800],"original_link":true,"expiring_links":true,"builtin":false}`},
		{name: "patch heights", method: http.MethodPatch, path: "/api/admin/tiers/Gold", body: `{"thumbnail_heights":[50,20]}`, want: http.StatusOK,
			check: `{"name":"Gold","thumbnail_heights":[20,50],"original_link":true,"expiring_links":true,"builtin":false}`},
		{name: "patch nothing", method: http.MethodPatch, path: "/api/admin/tiers/Gold", body: `{}`, want: http.StatusOK,
			check: `{"name":"Gold","thumbnail_heights":[20,50],"original_link":true,"expiring_links":true,"builtin":false}`},
		{name: "patch same name", method: http.MethodPatch, path: "/api/admin/tiers/Gold", body: `{"name":"gold","original_link":false}`, want: http.StatusOK,
			check: `{"name":"Gold","thumbnail_heights":[20,50],"original_link":false,"expiring_links":true,"builtin":false}`},
		{name: "patch rename", method: http.MethodPatch, path: "/api/admin/tiers/Gold", body: `{"name":"Platinum"}`, want: http.StatusBadRequest, field: "name"},
		{name: "patch bad heights", method: http.MethodPatch, path: "/api/admin/tiers/Gold", body: `{"thumbnail_heights":[-1]}`, want: http.StatusBadRequest, field: "thumbnail_heights"},
		{name: "patch builtin flag", method: http.MethodPatch, path: "/api/admin/tiers/Gold", body: `{"builtin":true}`, want: http.StatusBadRequest, field: "builtin"},
		{name: "patch missing", method: http.MethodPatch, path: "/api/admin/tiers/Nope", body: `{"original_link":true}`, want: http.StatusNotFound},
		{name: "patch builtin tier", method: http.MethodPatch, path: "/api/admin/tiers/Basic", body: `{"thumbnail_heights":[200,300]}`, want: http.StatusOK,
			check: `{"name":"Basic","thumbnail_heights":[200,300],"original_link":false,"expiring_links":false,"builtin":true}`},
		{name: "delete builtin", method: http.MethodDelete, path: "/api/admin/tiers/Basic", want: http.StatusConflict},
		{name: "delete in use", method: http.MethodDelete, path: "/api/admin/tiers/Gold", want: http.StatusConflict},
		{name: "move user off", method: http.MethodPatch, path: "/api/admin/users/goldie", body: `{"tier":"Basic"}`, want: http.StatusOK},
		{name: "delete", method: http.MethodDelete, path: "/api/admin/tiers/Gold", want: http.StatusNoContent},
		{name: "get deleted", method: http.MethodGet, path: "/api/admin/tiers/Gold", want: http.StatusNotFound},
		{name: "delete missing", method: http.MethodDelete, path: "/api/admin/tiers/Gold", want: http.StatusNotFound},
	}
	for _, st := range steps {
		if st.name == "delete in use" {
			ts.createUser(t, "goldie", userPassword, "Gold", false)
		}
		t.Run(st.name, func(t *testing.T) {
			r := ts.doJSON(t, st.method, st.path, asAdmin, st.body)
			switch {
			case st.want >= 400 && st.field != "":
				r.wantProblem(t, st.want, st.field)
			case st.want >= 400:
				r.wantProblem(t, st.want)
			default:
				r.wantStatus(t, st.want)
				if st.check != "" && strings.TrimSuffix(string(r.body), "\n") != st.check {
					t.Errorf("body: got %s, want %s", r.body, st.check)
				}
				if st.want == http.StatusCreated {
					var tier apiTier
					r.decode(t, &tier)
					if got, want := r.header.Get("Location"), ts.url+"/api/admin/tiers/"+tier.Name; got != want {
						t.Errorf("Location: got %q, want %q", got, want)
					}
				}
			}
		})
	}
}

type apiUser struct {
	Username  string `json:"username"`
	Tier      string `json:"tier"`
	IsAdmin   bool   `json:"is_admin"`
	CreatedAt string `json:"created_at"`
}

func TestAdminUsersList(t *testing.T) {
	ts := newTestServer(t, Config{})
	for i := range 7 {
		ts.createUser(t, fmt.Sprintf("user%02d", i), userPassword, "Basic", false)
	}
	want := []string{"admin", "alice", "erin", "pam", "user00", "user01", "user02", "user03", "user04", "user05", "user06"}

	var got []string
	next := "/api/admin/users?limit=4"
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatalf("more than 5 pages for %d users", len(want))
		}
		r := ts.do(t, http.MethodGet, next, asAdmin, "", nil)
		r.wantStatus(t, http.StatusOK)
		if bytes.Contains(r.body, []byte("password")) {
			t.Errorf("body: got %s, want no password field", r.body)
		}
		var p struct {
			Results []apiUser `json:"results"`
			Next    *string   `json:"next"`
		}
		r.decode(t, &p)
		for _, u := range p.Results {
			got = append(got, u.Username)
			if _, err := time.Parse(time.RFC3339, u.CreatedAt); err != nil || u.Tier == "" {
				t.Errorf("user: got %+v, want a tier and an RFC 3339 created_at", u)
			}
		}
		next = ""
		if p.Next != nil {
			next = *p.Next
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("usernames: got %v, want %v", got, want)
	}
	ts.do(t, http.MethodGet, "/api/admin/users?limit=0", asAdmin, "", nil).wantProblem(t, http.StatusBadRequest, "limit")
	ts.do(t, http.MethodGet, "/api/admin/users?cursor=%25", asAdmin, "", nil).wantProblem(t, http.StatusBadRequest, "cursor")
}

// apiUserPage is the body of GET /api/admin/users.
type apiUserPage struct {
	Count       int       `json:"count"`
	CountCapped bool      `json:"count_capped"`
	First       *string   `json:"first"`
	Previous    *string   `json:"previous"`
	Next        *string   `json:"next"`
	Results     []apiUser `json:"results"`
}

// TestAdminUsersOrderedAndFiltered walks a filtered, descending user list forward with next
// and back with previous: every link is a full URL that keeps the filters, and the pages
// hold the matching users in the order asked, with their count.
func TestAdminUsersOrderedAndFiltered(t *testing.T) {
	clock := storetest.NewClock()
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ts := newTestServerWith(t, st, Config{}, nil)
		// Users on Premium, not admins, with an x in their names, created three at an
		// instant; and some that each miss one filter.
		var want []tierpix.User
		for i, name := range []string{"x5", "Xb", "x1", "x9", "ax", "x3", "x7", "x2", "x0"} {
			want = append(want, ts.createUser(t, name, userPassword, "Premium", false))
			if i%3 == 2 {
				clock.Advance(time.Second)
			}
		}
		ts.createUser(t, "x-admin", userPassword, "Premium", true)
		ts.createUser(t, "x-basic", userPassword, "Basic", false)
		ts.createUser(t, "premium", userPassword, "Premium", false)
		slices.SortFunc(want, func(a, b tierpix.User) int {
			if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
				return c
			}
			return strings.Compare(b.Username, a.Username)
		})
		var wantNames []string
		for _, u := range want {
			wantNames = append(wantNames, u.Username)
		}

		filters := url.Values{"ordering": {"-created_at"}, "tier": {"premium"}, "is_admin": {"false"}, "search": {"X"}, "limit": {"4"}}
		get := func(link string) apiUserPage {
			t.Helper()
			r := ts.do(t, http.MethodGet, link, asAdmin, "", nil)
			r.wantStatus(t, http.StatusOK)
			var p apiUserPage
			r.decode(t, &p)
			if p.Count != len(want) || p.CountCapped {
				t.Errorf("%s: got count %d (capped %v), want %d", link, p.Count, p.CountCapped, len(want))
			}
			return p
		}
		// keeps checks that a link is a full URL of the list with the filters and a cursor.
		keeps := func(what string, link *string, cursor bool) string {
			t.Helper()
			if link == nil {
				t.Fatalf("%s: got null, want a link", what)
			}
			u, err := url.Parse(*link)
			if err != nil || u.Path != "/api/admin/users" || !strings.HasPrefix(*link, ts.url+"/") {
				t.Fatalf("%s: got %q, want a full URL of /api/admin/users", what, *link)
			}
			q := u.Query()
			for k, v := range filters {
				if q.Get(k) != v[0] {
					t.Errorf("%s: got %s=%q, want %q", what, k, q.Get(k), v[0])
				}
			}
			if (q.Get("cursor") != "") != cursor {
				t.Errorf("%s: got cursor %q, want one: %v", what, q.Get("cursor"), cursor)
			}
			return *link
		}
		names := func(p apiUserPage) []string {
			var n []string
			for _, u := range p.Results {
				n = append(n, u.Username)
			}
			return n
		}

		first := get("/api/admin/users?" + filters.Encode())
		if first.First != nil || first.Previous != nil {
			t.Errorf("first page: got first %v, previous %v, want both null", first.First, first.Previous)
		}
		pages := [][]string{names(first)}
		p := first
		for p.Next != nil {
			next := keeps("next", p.Next, true)
			p = get(next)
			keeps("first", p.First, false)
			keeps("previous", p.Previous, true)
			pages = append(pages, names(p))
		}
		if got := slices.Concat(pages...); !slices.Equal(got, wantNames) {
			t.Fatalf("walking next: got %v, want %v", got, wantNames)
		}
		if len(pages) != 3 {
			t.Fatalf("got %d pages of 4 for %d users, want 3", len(pages), len(want))
		}
		for i := len(pages) - 2; i >= 0; i-- {
			p = get(keeps("previous", p.Previous, true))
			if got := names(p); !slices.Equal(got, pages[i]) {
				t.Errorf("page %d by previous: got %v, want %v", i, got, pages[i])
			}
		}
		if p.Previous != nil || p.First != nil {
			t.Errorf("back on the first page: got first %v, previous %v, want both null", p.First, p.Previous)
		}
		// The first link leads to the first page.
		second := get(keeps("next", first.Next, true))
		if got := names(get(*second.First)); !slices.Equal(got, pages[0]) {
			t.Errorf("first link: got %v, want %v", got, pages[0])
		}
		// Every ordering, both ways, lists everyone.
		for _, o := range []string{"username", "-username", "tier", "-tier", "is_admin", "-is_admin", "created_at", "-created_at"} {
			p := get("/api/admin/users?search=x&tier=Premium&is_admin=false&ordering=" + o)
			if len(p.Results) != len(want) {
				t.Errorf("ordering=%s: got %v, want the %d users", o, names(p), len(want))
			}
		}

		tierCursor := url.Values{}
		{
			u, _ := url.Parse(*get("/api/admin/users?search=x&tier=Premium&is_admin=false&ordering=tier&limit=1").Next)
			tierCursor.Set("cursor", u.Query().Get("cursor"))
		}
		for _, tt := range []struct{ query, field string }{
			{"ordering=password_hash", "ordering"},
			{"ordering=-", "ordering"},
			{"ordering=--tier", "ordering"},
			{"is_admin=yes", "is_admin"},
			{"cursor=bm9wZQ", "cursor"},
			{"ordering=created_at&" + tierCursor.Encode(), "cursor"},
			{"search=" + strings.Repeat("x", 151), "search"},
			{"limit=101", "limit"},
		} {
			ts.do(t, http.MethodGet, "/api/admin/users?"+tt.query, asAdmin, "", nil).wantProblem(t, http.StatusBadRequest, tt.field)
		}
	}, storetest.WithNow(clock.Now))
}

func TestAdminUsers(t *testing.T) {
	ts := newTestServer(t, Config{})
	asBob := basic("bob", "bob-password")
	var bobToken string
	var bobImage apiImage

	steps := []struct {
		name   string
		method string
		path   string
		as     auth
		body   any
		want   int
		field  string
		check  func(t *testing.T, r response)
	}{
		{name: "create", method: http.MethodPost, path: "/api/admin/users", as: asAdmin, body: `{"username":"bob","password":"bob-password"}`, want: http.StatusCreated,
			check: func(t *testing.T, r response) {
				var u apiUser
				r.decode(t, &u)
				if u.Username != "bob" || u.Tier != "Basic" || u.IsAdmin {
					t.Errorf("user: got %+v, want bob on Basic, not admin", u)
				}
				if bytes.Contains(r.body, []byte("password")) {
					t.Errorf("body: got %s, want no password", r.body)
				}
				if got, want := r.header.Get("Location"), ts.url+"/api/admin/users/bob"; got != want {
					t.Errorf("Location: got %q, want %q", got, want)
				}
			}},
		{name: "new user signs in", method: http.MethodGet, path: "/api/me", as: asBob, want: http.StatusOK},
		{name: "create existing", method: http.MethodPost, path: "/api/admin/users", as: asAdmin, body: `{"username":"bob","password":"bob-password"}`, want: http.StatusConflict},
		{name: "create without password", method: http.MethodPost, path: "/api/admin/users", as: asAdmin, body: `{"username":"carol"}`, want: http.StatusBadRequest, field: "password"},
		{name: "create short password", method: http.MethodPost, path: "/api/admin/users", as: asAdmin, body: `{"username":"carol","password":"short"}`, want: http.StatusBadRequest, field: "password"},
		{name: "create bad username", method: http.MethodPost, path: "/api/admin/users", as: asAdmin, body: `{"username":"carol smith","password":"carol-password"}`, want: http.StatusBadRequest, field: "username"},
		{name: "create unknown tier", method: http.MethodPost, path: "/api/admin/users", as: asAdmin, body: `{"username":"carol","password":"carol-password","tier":"Nope"}`, want: http.StatusBadRequest, field: "tier"},
		{name: "create with tier and admin", method: http.MethodPost, path: "/api/admin/users", as: asAdmin, body: `{"username":"carol","password":"carol-password","tier":"premium","is_admin":true}`, want: http.StatusCreated,
			check: func(t *testing.T, r response) {
				var u apiUser
				r.decode(t, &u)
				if u.Tier != "Premium" || !u.IsAdmin {
					t.Errorf("user: got %+v, want Premium admin", u)
				}
			}},
		{name: "get", method: http.MethodGet, path: "/api/admin/users/bob", as: asAdmin, want: http.StatusOK,
			check: func(t *testing.T, r response) {
				var u apiUser
				r.decode(t, &u)
				if u.Username != "bob" || u.Tier != "Basic" {
					t.Errorf("user: got %+v, want bob on Basic", u)
				}
			}},
		{name: "get missing", method: http.MethodGet, path: "/api/admin/users/nobody", as: asAdmin, want: http.StatusNotFound},
		{name: "patch tier", method: http.MethodPatch, path: "/api/admin/users/bob", as: asAdmin, body: `{"tier":"Premium"}`, want: http.StatusOK},
		{name: "tier shows at once", method: http.MethodGet, path: "/api/me", as: asBob, want: http.StatusOK,
			check: func(t *testing.T, r response) {
				if !bytes.Contains(r.body, []byte(`"tier":{"name":"Premium"`)) {
					t.Errorf("body: got %s, want the Premium tier", r.body)
				}
			}},
		{name: "patch unknown tier", method: http.MethodPatch, path: "/api/admin/users/bob", as: asAdmin, body: `{"tier":"Nope"}`, want: http.StatusBadRequest, field: "tier"},
		{name: "patch short password", method: http.MethodPatch, path: "/api/admin/users/bob", as: asAdmin, body: `{"password":"short"}`, want: http.StatusBadRequest, field: "password"},
		{name: "patch rename", method: http.MethodPatch, path: "/api/admin/users/bob", as: asAdmin, body: `{"username":"robert"}`, want: http.StatusBadRequest, field: "username"},
		{name: "patch unknown field", method: http.MethodPatch, path: "/api/admin/users/bob", as: asAdmin, body: `{"created_at":"2020-01-01T00:00:00Z"}`, want: http.StatusBadRequest, field: "created_at"},
		{name: "patch missing", method: http.MethodPatch, path: "/api/admin/users/nobody", as: asAdmin, body: `{"tier":"Basic"}`, want: http.StatusNotFound},
		{name: "mint token", method: http.MethodPost, path: "/api/admin/users/bob/tokens", as: asAdmin, want: http.StatusCreated,
			check: func(t *testing.T, r response) {
				var tok struct {
					Token string `json:"token"`
				}
				r.decode(t, &tok)
				if !strings.HasPrefix(tok.Token, "tpx_") {
					t.Errorf("token: got %q, want tpx_...", tok.Token)
				}
				bobToken = tok.Token
			}},
		{name: "mint token for missing user", method: http.MethodPost, path: "/api/admin/users/nobody/tokens", as: asAdmin, want: http.StatusNotFound},
		{name: "demote self with another admin left", method: http.MethodPatch, path: "/api/admin/users/carol", as: basic("carol", "carol-password"), body: `{"is_admin":false}`, want: http.StatusConflict},
		{name: "demote an admin", method: http.MethodPatch, path: "/api/admin/users/carol", as: asAdmin, body: `{"is_admin":false}`, want: http.StatusOK},
		{name: "demote the last admin", method: http.MethodPatch, path: "/api/admin/users/admin", as: asAdmin, body: `{"is_admin":false}`, want: http.StatusConflict},
		{name: "delete self", method: http.MethodDelete, path: "/api/admin/users/admin", as: asAdmin, want: http.StatusConflict},
		{name: "delete missing", method: http.MethodDelete, path: "/api/admin/users/nobody", as: asAdmin, want: http.StatusNotFound},
		{name: "delete", method: http.MethodDelete, path: "/api/admin/users/bob", as: asAdmin, want: http.StatusNoContent,
			check: func(t *testing.T, r response) {
				if got := ts.purger.purged(); len(got) != 1 || got[0] != bobImage.ID {
					t.Errorf("purged: got %v, want [%s]", got, bobImage.ID)
				}
				if files := ts.files(t); len(files) != 0 {
					t.Errorf("files: got %v, want none", files)
				}
			}},
		{name: "deleted password", method: http.MethodGet, path: "/api/me", as: asBob, want: http.StatusUnauthorized},
		{name: "deleted token", method: http.MethodGet, path: "/api/me", as: func(r *http.Request) { bearer(bobToken)(r) }, want: http.StatusUnauthorized},
		{name: "get deleted", method: http.MethodGet, path: "/api/admin/users/bob", as: asAdmin, want: http.StatusNotFound},
	}
	for _, st := range steps {
		if st.name == "delete" {
			bobImage = ts.uploadImage(t, asBob, encodePNG(t, picture(30, 20)))
		}
		t.Run(st.name, func(t *testing.T) {
			r := ts.doJSON(t, st.method, st.path, st.as, st.body)
			switch {
			case st.want >= 400 && st.field != "":
				r.wantProblem(t, st.want, st.field)
			case st.want >= 400:
				r.wantProblem(t, st.want)
			default:
				r.wantStatus(t, st.want)
			}
			if st.check != nil {
				st.check(t, r)
			}
		})
	}
}

// TestCredentialCache checks that remembered Basic passwords never outlive a change: through
// this node's API, or straight in the database as another node would make it.
// TestAdminsDemoteEachOther has two admins demote, or delete, each other at the same moment:
// whatever the interleaving, one admin remains, on either database.
func TestAdminsDemoteEachOther(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ts := newTestServerWith(t, st, Config{}, nil)
		for round := range 10 {
			other := fmt.Sprintf("admin%d", round)
			ts.createUser(t, other, adminPassword, "Basic", true)
			method, body := http.MethodPatch, `{"is_admin":false}`
			if round%2 == 1 {
				method, body = http.MethodDelete, ""
			}
			var wg sync.WaitGroup
			statuses := make([]int, 2)
			for i, req := range []struct {
				as     auth
				target string
			}{{asAdmin, other}, {basic(other, adminPassword), "admin"}} {
				wg.Go(func() {
					var b any
					if body != "" {
						b = body
					}
					statuses[i] = ts.doJSON(t, method, "/api/admin/users/"+req.target, req.as, b).status
				})
			}
			wg.Wait()
			n, err := ts.st.CountAdmins(t.Context())
			if err != nil {
				t.Fatalf("count admins: %v", err)
			}
			if n != 1 {
				t.Fatalf("round %d (%s): got statuses %v and %d admins left, want 1 admin", round, method, statuses, n)
			}
			// Start the next round from admin alone.
			id, err := ts.st.FindUser(t.Context(), "admin")
			switch {
			case tierpix.ErrorCode(err) == tierpix.ENOTFOUND:
				ts.createUser(t, "admin", adminPassword, "Basic", true)
			case err != nil:
				t.Fatalf("find admin: %v", err)
			case !id.User.IsAdmin:
				if _, err := ts.st.ModifyUser(t.Context(), "admin", func(u *tierpix.User) error { u.IsAdmin = true; return nil }); err != nil {
					t.Fatalf("promote admin: %v", err)
				}
			}
			if _, err := ts.st.DeleteUser(t.Context(), other); err != nil && tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
				t.Fatalf("delete %s: %v", other, err)
			}
		}
	})
}

// TestConcurrentPatches sends two PATCHes of different fields of one user, and of one tier, at
// the same moment: neither may undo the other. A password change hashes between reading the
// user and writing it, which is when a tier change could slip in and be overwritten.
func TestConcurrentPatches(t *testing.T) {
	ts := newTestServerService(t, Config{}, service.Config{BcryptCost: 10})
	ts.createUser(t, "bob", userPassword, "Basic", false)
	ts.doJSON(t, http.MethodPost, "/api/admin/tiers", asAdmin, `{"name":"Gold","thumbnail_heights":[100]}`).wantStatus(t, http.StatusCreated)
	patchBoth := func(path string, bodies ...string) {
		t.Helper()
		var wg sync.WaitGroup
		statuses := make([]int, len(bodies))
		for i, body := range bodies {
			wg.Go(func() { statuses[i] = ts.doJSON(t, http.MethodPatch, path, asAdmin, body).status })
		}
		wg.Wait()
		for i, st := range statuses {
			if st != http.StatusOK {
				t.Fatalf("PATCH %s %s: got status %d, want 200", path, bodies[i], st)
			}
		}
	}
	for round, tier := range []string{"Premium", "Enterprise", "Premium"} {
		password := fmt.Sprintf("password-of-round-%d", round)
		patchBoth("/api/admin/users/bob", `{"password":"`+password+`"}`, `{"tier":"`+tier+`"}`)
		ts.do(t, http.MethodGet, "/api/me", basic("bob", password), "", nil).wantStatus(t, http.StatusOK)
		if got := ts.user(t, "bob").User.TierName; got != tier {
			t.Errorf("round %d: got tier %s, want %s", round, got, tier)
		}

		heights := []int{100 + round}
		patchBoth("/api/admin/tiers/gold", fmt.Sprintf(`{"thumbnail_heights":[%d]}`, heights[0]), fmt.Sprintf(`{"original_link":%t}`, round%2 == 0))
		gold, err := ts.st.FindTier(t.Context(), "Gold")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(gold.ThumbnailHeights, heights) || gold.OriginalLink != (round%2 == 0) {
			t.Errorf("round %d: got tier %+v, want heights %v and original_link %t", round, gold, heights, round%2 == 0)
		}
	}
}

func TestCredentialCache(t *testing.T) {
	ts := newTestServer(t, Config{})
	me := func(t *testing.T, as auth) response {
		t.Helper()
		return ts.do(t, http.MethodGet, "/api/me", as, "", nil)
	}
	// checks returns how many bcrypt comparisons fn's requests cost.
	checks := func(fn func()) uint64 {
		before := ts.signin.Stats().PasswordChecks
		fn()
		return ts.signin.Stats().PasswordChecks - before
	}

	if n := checks(func() { me(t, asAlice).wantStatus(t, http.StatusOK) }); n != 1 {
		t.Fatalf("first request: got %d password checks, want 1", n)
	}
	if n := checks(func() { me(t, asAlice).wantStatus(t, http.StatusOK) }); n != 0 {
		t.Fatalf("second request: got %d password checks, want 0 (remembered)", n)
	}
	for range 2 {
		if n := checks(func() { me(t, basic("alice", "wrong-password")).wantStatus(t, http.StatusUnauthorized) }); n != 1 {
			t.Errorf("a wrong password: got %d password checks, want 1 each time", n)
		}
	}

	t.Run("password changed through the API", func(t *testing.T) {
		ts.doJSON(t, http.MethodPatch, "/api/admin/users/alice", asAdmin, `{"password":"second-password"}`).wantStatus(t, http.StatusOK)
		me(t, asAlice).wantProblem(t, http.StatusUnauthorized)
		me(t, basic("alice", "second-password")).wantStatus(t, http.StatusOK)
	})

	t.Run("password changed by another node", func(t *testing.T) {
		me(t, basic("alice", "second-password")).wantStatus(t, http.StatusOK)
		if n := checks(func() { me(t, basic("alice", "second-password")).wantStatus(t, http.StatusOK) }); n != 0 {
			t.Fatalf("the current password: got %d password checks, want 0 (remembered)", n)
		}
		hash, err := store.HashPassword("third-password", testBcryptCost)
		if err != nil {
			t.Fatalf("HashPassword: %v", err)
		}
		if _, err := ts.st.ModifyUser(context.Background(), "alice", func(u *tierpix.User) error { u.PasswordHash = hash; return nil }); err != nil {
			t.Fatalf("update user: %v", err)
		}
		me(t, basic("alice", "second-password")).wantProblem(t, http.StatusUnauthorized)
		me(t, basic("alice", "third-password")).wantStatus(t, http.StatusOK)
	})

	t.Run("tier changes show at once", func(t *testing.T) {
		asAliceNow := basic("alice", "third-password")
		ts.doJSON(t, http.MethodPatch, "/api/admin/users/alice", asAdmin, `{"tier":"Enterprise"}`).wantStatus(t, http.StatusOK)
		r := me(t, asAliceNow)
		if !bytes.Contains(r.body, []byte(`"tier":{"name":"Enterprise","thumbnail_heights":[200,400]`)) {
			t.Errorf("/api/me after a tier change: got %s, want Enterprise", r.body)
		}
		ts.doJSON(t, http.MethodPatch, "/api/admin/tiers/Enterprise", asAdmin, `{"thumbnail_heights":[100,200,400]}`).wantStatus(t, http.StatusOK)
		r = me(t, asAliceNow)
		if !bytes.Contains(r.body, []byte(`"thumbnail_heights":[100,200,400]`)) {
			t.Errorf("/api/me after the tier's heights changed: got %s, want [100,200,400]", r.body)
		}
	})
}
