package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
)

type apiChange struct {
	ID         int64   `json:"id"`
	Actor      *string `json:"actor"`
	Action     string  `json:"action"`
	ObjectType string  `json:"object_type"`
	ObjectID   string  `json:"object_id"`
	ObjectRepr string  `json:"object_repr"`
	Fields     []struct {
		Field, Old, New, Note string
	} `json:"fields"`
}

type apiChangePage struct {
	Results  []apiChange `json:"results"`
	First    string      `json:"first"`
	Previous *string     `json:"previous"`
	Next     *string     `json:"next"`
}

// TestAuditAPI proves GET /api/admin/audit: changes made through the API are listed newest
// first with their actor, pages link both ways, filters apply, and only admins may read it.
func TestAuditAPI(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.doJSON(t, "POST", "/api/admin/tiers", asAdmin, `{"name":"Gold","thumbnail_heights":[300],"original_link":false,"expiring_links":false}`).wantStatus(t, http.StatusCreated)
	ts.doJSON(t, "PATCH", "/api/admin/users/alice", asAdmin, `{"tier":"Gold"}`).wantStatus(t, http.StatusOK)
	img := ts.uploadImage(t, asAlice, encodePNG(t, picture(40, 30)))
	ts.doJSON(t, "DELETE", "/api/images/"+img.ID, asAlice, nil).wantStatus(t, http.StatusNoContent)

	var all []apiChange
	var pages []apiChangePage
	next := "/api/admin/audit?limit=2"
	for next != "" {
		var p apiChangePage
		r := ts.do(t, "GET", next, asAdmin, "", nil)
		r.wantStatus(t, http.StatusOK)
		r.decode(t, &p)
		pages = append(pages, p)
		all = append(all, p.Results...)
		next = ""
		if p.Next != nil {
			next = *p.Next
		}
	}
	if len(all) != 4 || len(pages) != 2 {
		t.Fatalf("got %d entries on %d pages, want 4 on 2: %+v", len(all), len(pages), all)
	}
	want := []struct{ actor, action, objType, repr string }{
		{"alice", "delete", "image", img.Name},
		{"alice", "create", "image", img.Name},
		{"admin", "update", "user", "alice"},
		{"admin", "create", "tier", "Gold"},
	}
	for i, w := range want {
		c := all[i]
		if c.Actor == nil || *c.Actor != w.actor || c.Action != w.action || c.ObjectType != w.objType || c.ObjectRepr != w.repr {
			t.Errorf("entry %d: got %+v, want %+v", i, c, w)
		}
	}
	if f := all[2].Fields; len(f) != 1 || f[0].Field != "tier" || f[0].Old != "Basic" || f[0].New != "Gold" {
		t.Errorf("alice's update: fields %+v, want tier Basic → Gold", f)
	}
	if pages[0].Previous != nil || pages[1].Previous == nil {
		t.Fatalf("previous links: page 1 %v, page 2 %v; want none then one", pages[0].Previous, pages[1].Previous)
	}
	var back apiChangePage
	r := ts.do(t, "GET", *pages[1].Previous, asAdmin, "", nil)
	r.wantStatus(t, http.StatusOK)
	r.decode(t, &back)
	if len(back.Results) != 2 || back.Results[0].ID != all[0].ID || back.Results[1].ID != all[1].ID {
		t.Fatalf("previous of page 2: got %+v, want page 1", back.Results)
	}

	var filtered apiChangePage
	r = ts.do(t, "GET", "/api/admin/audit?actor=alice&action=create", asAdmin, "", nil)
	r.wantStatus(t, http.StatusOK)
	r.decode(t, &filtered)
	if len(filtered.Results) != 1 || filtered.Results[0].ObjectID != img.ID {
		t.Fatalf("alice's creations: got %+v, want her upload", filtered.Results)
	}
	ts.do(t, "GET", "/api/admin/audit?action=drop", asAdmin, "", nil).wantProblem(t, http.StatusBadRequest, "action")
	ts.do(t, "GET", "/api/admin/audit?since=yesterday", asAdmin, "", nil).wantProblem(t, http.StatusBadRequest, "since")
	ts.do(t, "GET", "/api/admin/audit?cursor=bm9wZQ", asAdmin, "", nil).wantProblem(t, http.StatusBadRequest, "cursor")
	ts.do(t, "GET", "/api/admin/audit", asAlice, "", nil).wantProblem(t, http.StatusForbidden)
}

// TestChangePasswordAPI proves POST /api/me/password: the current password is required and
// checked, the new one obeys the rules, and after the change only the new one works.
func TestChangePasswordAPI(t *testing.T) {
	ts := newTestServer(t, Config{})
	const next = "a-new-password"
	ts.doJSON(t, "POST", "/api/me/password", asAlice, `{"current_password":"wrong-password","new_password":"`+next+`"}`).
		wantProblem(t, http.StatusBadRequest, "current_password")
	ts.doJSON(t, "POST", "/api/me/password", asAlice, `{"current_password":"`+userPassword+`","new_password":"short"}`).
		wantProblem(t, http.StatusBadRequest, "new_password")
	ts.doJSON(t, "POST", "/api/me/password", asAlice, `{"new_password":"`+next+`"}`).
		wantProblem(t, http.StatusBadRequest, "current_password")
	ts.doJSON(t, "POST", "/api/me/password", asAlice, `{"current_password":"`+userPassword+`","new_password":"`+next+`"}`).
		wantStatus(t, http.StatusNoContent)
	ts.do(t, "GET", "/api/me", asAlice, "", nil).wantProblem(t, http.StatusUnauthorized)
	ts.do(t, "GET", "/api/me", basic("alice", next), "", nil).wantStatus(t, http.StatusOK)

	var p apiChangePage
	r := ts.do(t, "GET", "/api/admin/audit?action=change_password", asAdmin, "", nil)
	r.wantStatus(t, http.StatusOK)
	r.decode(t, &p)
	if len(p.Results) != 1 || p.Results[0].Actor == nil || *p.Results[0].Actor != "alice" || p.Results[0].ObjectRepr != "alice" {
		t.Fatalf("the log: got %+v, want alice's change of her own password", p.Results)
	}
}

// TestOptionsAndAllow proves DRF's metadata on OPTIONS (from the OpenAPI document, with the
// fields each write takes) and the Allow header on every answer of a route.
func TestOptionsAndAllow(t *testing.T) {
	ts := newTestServer(t, Config{})
	req, err := http.NewRequest(http.MethodOptions, ts.url+"/api/admin/users", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var meta struct {
		Name    string   `json:"name"`
		Allow   []string `json:"allow"`
		Parses  []string `json:"parses"`
		Actions map[string]map[string]struct {
			Type      string `json:"type"`
			Required  bool   `json:"required"`
			WriteOnly bool   `json:"write_only"`
			MinLength *int   `json:"min_length"`
		} `json:"actions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&meta); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("OPTIONS: got %d, %v", resp.StatusCode, err)
	}
	pw := meta.Actions["POST"]["password"]
	if meta.Name == "" || !slices.Contains(meta.Allow, "POST") || !slices.Contains(meta.Parses, "application/json") ||
		!meta.Actions["POST"]["username"].Required || !pw.WriteOnly || pw.MinLength == nil || *pw.MinLength != 8 {
		t.Fatalf("OPTIONS /api/admin/users: got %+v", meta)
	}
	if got := resp.Header.Get("Allow"); got != "OPTIONS, GET, HEAD, POST" {
		t.Errorf("OPTIONS Allow: got %q", got)
	}
	for path, want := range map[string]string{
		"/api/images":       "OPTIONS, GET, HEAD, POST",
		"/api/me":           "OPTIONS, GET, HEAD",
		"/api/images/aaaaa": "OPTIONS, GET, HEAD, DELETE",
	} {
		r := ts.do(t, http.MethodGet, path, asAlice, "", nil)
		if got := r.header.Get("Allow"); got != want {
			t.Errorf("GET %s: Allow %q, want %q", path, got, want)
		}
	}
}
