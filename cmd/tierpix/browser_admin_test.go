package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserAdminFlows drives the django-admin and DRF features in Chromium: sorting and
// filtering the user list, a bulk delete with its one confirmation, the audit log on the
// dashboard, a minted token that a reload neither shows again nor mints again, the browsable
// API's raw JSON form, and a user's change of their own password. Its screenshots are the
// ones docs/screenshots holds for these pages.
func TestBrowserAdminFlows(t *testing.T) {
	execPath := chromiumPath(t)
	s := startServer(t, nil)
	b := startBrowser(t, execPath, s.URL)
	admin := s.basic(t, testAdmin, testAdminPW)
	const amyPW, amyNewPW = "amy-first-password", "amy-second-password"
	for _, u := range []struct{ name, tier string }{{"amy", "Premium"}, {"bo", "Basic"}, {"cy", "Basic"}, {"dee", "Enterprise"}} {
		r, body := admin.json("POST", "/api/admin/users", map[string]any{"username": u.name, "password": amyPW, "tier": u.tier}, nil)
		wantStatus(t, "create "+u.name, r, body, http.StatusCreated)
	}
	rowNames := func(ctx context.Context, t *testing.T) []string {
		return evaluate[[]string](ctx, t, `Array.from(document.querySelectorAll('table.list tbody th[scope=row] a')).map(a => a.textContent.trim())`)
	}

	b.step("admin signs in", func(ctx context.Context, t *testing.T) {
		b.signIn(ctx, t, testAdmin, testAdminPW)
	})

	b.step("admin sorts and filters the user list", func(ctx context.Context, t *testing.T) {
		b.open(ctx, t, "/admin/users", http.StatusOK)
		resp := b.submit(ctx, t, `Array.from(document.querySelectorAll('table.list thead a')).find(a => a.textContent.trim().startsWith('Tier'))`)
		b.wantStatus(ctx, t, "sort by tier", resp, http.StatusOK)
		if got := evaluate[string](ctx, t, `(th => th ? th.textContent.trim() : "")(document.querySelector('th[aria-sort=ascending]'))`); !strings.HasPrefix(got, "Tier") {
			t.Fatalf("after clicking Tier: the ascending column is %q", got)
		}
		resp = b.submit(ctx, t, `document.querySelector('th[aria-sort=ascending] a')`)
		b.wantStatus(ctx, t, "sort by tier, descending", resp, http.StatusOK)
		if names := rowNames(ctx, t); len(names) == 0 || names[0] != "amy" {
			t.Fatalf("by tier, descending: rows %v, want amy (Premium) first", names)
		}
		// Filter to Basic users who are not admins, keeping the order.
		b.selectOption(ctx, t, "tier", "Basic")
		b.selectOption(ctx, t, "admin", "no")
		resp = b.submit(ctx, t, `document.querySelector('form.filters [type=submit]')`)
		b.wantStatus(ctx, t, "filter", resp, http.StatusOK)
		if names := rowNames(ctx, t); strings.Join(names, ",") != "cy,bo" {
			t.Fatalf("Basic non-admins by tier descending: rows %v, want cy, bo", names)
		}
		if got := evaluate[string](ctx, t, `document.querySelector('#user-count').textContent.trim()`); got != "1–2 of 2 users" {
			t.Errorf("count: got %q, want 1–2 of 2 users", got)
		}
		b.screenshot(ctx, t, "admin-user-list-sorted-filtered.png")
	})

	b.step("admin deletes two users at once", func(ctx context.Context, t *testing.T) {
		b.open(ctx, t, "/admin/users", http.StatusOK)
		evaluate[bool](ctx, t, `['bo', 'cy'].every(n => { const c = document.getElementById('select-' + n); c.checked = true; return true })`)
		resp := b.submit(ctx, t, `document.querySelector('#bulk [type=submit]')`)
		b.wantStatus(ctx, t, "delete selected", resp, http.StatusOK)
		text := b.pageText(ctx, t)
		if !strings.Contains(text, "Delete 2 users?") || !strings.Contains(text, "bo, with 0 images") || !strings.Contains(text, "cy, with 0 images") {
			t.Fatalf("the confirmation does not list both users:\n%s", text)
		}
		b.screenshot(ctx, t, "admin-bulk-delete-confirmation.png")
		for _, name := range []string{"bo", "cy"} {
			r, body := admin.json("GET", "/api/admin/users/"+name, nil, nil)
			wantStatus(t, name+" before the confirmation", r, body, http.StatusOK)
		}
		resp = b.submit(ctx, t, `document.querySelector('main form [type=submit].danger')`)
		b.wantStatus(ctx, t, "confirm", resp, http.StatusOK)
		if !strings.Contains(b.pageText(ctx, t), "Deleted 2 users.") {
			t.Errorf("after the bulk delete: no notice; page says:\n%s", b.pageText(ctx, t))
		}
		for _, name := range []string{"bo", "cy"} {
			r, body := admin.json("GET", "/api/admin/users/"+name, nil, nil)
			wantStatus(t, name+" after the confirmation", r, body, http.StatusNotFound)
		}
	})

	b.step("the dashboard shows the recent actions", func(ctx context.Context, t *testing.T) {
		b.open(ctx, t, "/admin", http.StatusOK)
		recent := evaluate[string](ctx, t, `document.querySelector('#recent-actions').innerText`)
		for _, want := range []string{"Deleted user bo", "Deleted user cy", "Created user amy"} {
			if !strings.Contains(recent, want) {
				t.Errorf("recent actions: no %q in:\n%s", want, recent)
			}
		}
		b.screenshot(ctx, t, "admin-dashboard-recent-actions.png")
	})

	b.step("a minted token shows once, and a reload mints none", func(ctx context.Context, t *testing.T) {
		b.open(ctx, t, "/admin/users/amy", http.StatusOK)
		resp := b.submit(ctx, t, `document.querySelector('form[action$="/admin/users/amy/tokens"] [type=submit]')`)
		b.wantStatus(ctx, t, "mint", resp, http.StatusOK)
		if got := b.path(ctx, t); got != "/admin/users/amy/token" {
			t.Fatalf("after minting: page %s, want /admin/users/amy/token", got)
		}
		token := evaluate[string](ctx, t, `(e => e ? e.textContent.trim() : "")(document.querySelector('#new-token'))`)
		if !strings.HasPrefix(token, "tpx_") {
			t.Fatalf("no token shown; page says:\n%s", b.pageText(ctx, t))
		}
		do(ctx, t, "reload", chromedp.Reload())
		if b.has(ctx, t, "#new-token") || !b.has(ctx, t, "#token-gone") {
			t.Fatalf("after a reload: the token shows again, or no word of why not; page says:\n%s", b.pageText(ctx, t))
		}
		var tokens struct {
			Results []struct{} `json:"results"`
		}
		r, body := admin.json("GET", "/api/admin/users/amy/tokens", nil, &tokens)
		wantStatus(t, "amy's tokens", r, body, http.StatusOK)
		if len(tokens.Results) != 1 {
			t.Fatalf("amy's tokens after the mint and a reload: %d, want 1", len(tokens.Results))
		}
		r, body = s.bearer(t, token).json("GET", "/api/me", nil, nil)
		wantStatus(t, "the shown token", r, body, http.StatusOK)
	})

	b.step("the browsable API's raw JSON form", func(ctx context.Context, t *testing.T) {
		b.open(ctx, t, "/api/admin/users/amy", http.StatusOK)
		const raw = `#form-updateUser-raw`
		if !b.has(ctx, t, raw) {
			t.Fatalf("no raw data form; page says:\n%s", b.pageText(ctx, t))
		}
		evaluate[bool](ctx, t, `(d => { d.open = true; return true })(document.querySelector('`+raw+`').closest('details'))`)
		evaluate[bool](ctx, t, `(a => { a.value = '{"tier": "Enterprise"}'; return true })(document.querySelector('`+raw+` textarea[name=_content]'))`)
		b.screenshot(ctx, t, "browsable-raw-json-form.png")
		resp := b.submit(ctx, t, `document.querySelector('`+raw+` [type=submit]')`)
		b.wantStatus(ctx, t, "send JSON", resp, http.StatusOK)
		var user struct {
			Tier string `json:"tier"`
		}
		r, body := admin.json("GET", "/api/admin/users/amy", nil, &user)
		wantStatus(t, "amy", r, body, http.StatusOK)
		if user.Tier != "Enterprise" {
			t.Fatalf("amy after the raw PATCH: tier %q, want Enterprise", user.Tier)
		}
	})

	b.step("a user changes their own password", func(ctx context.Context, t *testing.T) {
		b.signOut(ctx, t)
		b.signIn(ctx, t, "amy", amyPW)
		b.open(ctx, t, "/account/password", http.StatusOK)
		b.fill(ctx, t, "current_password", "not-my-password")
		b.fill(ctx, t, "new_password", amyNewPW)
		resp := b.submit(ctx, t, formOf(`[name="new_password"]`))
		b.wantStatus(ctx, t, "wrong current password", resp, http.StatusBadRequest)
		if !b.has(ctx, t, "#current_password-error") {
			t.Fatalf("no error at the current password; page says:\n%s", b.pageText(ctx, t))
		}
		b.fill(ctx, t, "current_password", amyPW)
		b.fill(ctx, t, "new_password", amyNewPW)
		resp = b.submit(ctx, t, formOf(`[name="new_password"]`))
		b.wantStatus(ctx, t, "change password", resp, http.StatusOK)
		if !strings.Contains(b.pageText(ctx, t), "Your password is changed.") {
			t.Errorf("after the change: no notice; page says:\n%s", b.pageText(ctx, t))
		}
		// Still signed in here; the old password is refused, the new one works.
		b.open(ctx, t, "/api/me", http.StatusOK)
		r, body := s.basic(t, "amy", amyPW).json("GET", "/api/me", nil, nil)
		wantStatus(t, "the old password", r, body, http.StatusUnauthorized)
		b.signOut(ctx, t)
		b.signIn(ctx, t, "amy", amyNewPW)
		if got := b.path(ctx, t); got != "/api" && got != "/api/" {
			t.Fatalf("sign-in with the new password: page %s, want /api", got)
		}
	})
}
