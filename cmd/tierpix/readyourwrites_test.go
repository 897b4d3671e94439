package main

import (
	"net/http"
	"testing"
)

// TestUpgradeThenLink moves a user up a tier and at once fetches an expiring link, which only
// the new tier allows, a hundred times: the origin re-checks a refusal against the store, so
// a link the API has just handed out is never refused on this node's cached metadata.
func TestUpgradeThenLink(t *testing.T) {
	s := startServer(t, nil)
	admin := s.basic(t, testAdmin, testAdminPW)
	user := newTestUser(t, s, admin, "Premium")
	var img imageJSON
	resp, body := user.upload("up.jpg", gradientJPEG(t, 600, 400), &img)
	wantStatus(t, "upload", resp, body, http.StatusCreated)
	permanent := img.Links.Thumbnails[0].URL

	for i := range 100 {
		resp, body = admin.json("PATCH", "/api/admin/users/"+testUserName, map[string]any{"tier": "Premium"}, nil)
		wantStatus(t, "down to Premium", resp, body, http.StatusOK)
		// The origin now caches the owner on Premium (or keeps what it had: either way a
		// cached tier without expiring links is what the next fetch meets, sooner or later).
		resp, body = getLink(t, permanent)
		wantStatus(t, "permanent link", resp, body, http.StatusOK)
		resp, body = admin.json("PATCH", "/api/admin/users/"+testUserName, map[string]any{"tier": "Enterprise"}, nil)
		wantStatus(t, "up to Enterprise", resp, body, http.StatusOK)
		var link struct {
			URL string `json:"url"`
		}
		resp, body = user.json("POST", "/api/images/"+img.ID+"/expiring-links", map[string]any{"expires_in": 300, "height": 200}, &link)
		wantStatus(t, "expiring link", resp, body, http.StatusCreated)
		resp, body = getLink(t, link.URL)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("iteration %d: an expiring link just handed out after the upgrade: got %d %s, want 200", i, resp.StatusCode, body)
		}
	}
}
