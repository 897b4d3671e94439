package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The user list scenario: 1 000 000 users, pages of 20 in every order.
const (
	seededUsers = 1_000_000
	userRounds  = 3 // interleaved rounds; each figure is the median of its rounds' p50s
)

// userDur is each wrk run of the user list scenario.
var userDur = 3 * time.Second

// userOrderings are the orderings measured: the default (no parameter) first, the reference
// of every ratio, then each sortable column both ways.
var userOrderings = []string{"", "username", "-username", "tier", "-tier", "is_admin", "-is_admin", "created_at", "-created_at"}

// seedUsers inserts n users straight in SQL, in one statement: usernames in an order unrelated
// to the row number (an md5 prefix, then the number, so they are distinct), tiers 60% Basic,
// 30% Premium, 10% Enterprise, one in a thousand an admin, and creation times on 50 000
// distinct instants, 20 users on each, unrelated to the username order, so that every order
// has long runs of ties that only the username breaks.
func (d *db) seedUsers(ctx context.Context, n int) error {
	_, err := d.conn.Exec(ctx, `INSERT INTO users (username, password_hash, tier, is_admin, created_at, updated_at)
		SELECT 'u' || substr(md5(g::text), 1, 8) || g, 'x',
			CASE WHEN g % 10 < 6 THEN 'Basic' WHEN g % 10 < 9 THEN 'Premium' ELSE 'Enterprise' END,
			g % 1000 = 0,
			c, c
		FROM generate_series(1, $1::bigint) AS g,
			LATERAL (SELECT (extract(epoch FROM now()) * 1000000)::bigint - (g * 7919 % 50000) * 1000000 AS c) AS t`, n)
	if err != nil {
		return fmt.Errorf("insert %d users: %w", n, err)
	}
	_, err = d.conn.Exec(ctx, `ANALYZE users`)
	return err
}

// userListURL is the path of a page of 20 users in an ordering, after cursor if not "".
func userListURL(ordering, cursor string) string {
	v := url.Values{"limit": {"20"}}
	if ordering != "" {
		v.Set("ordering", ordering)
	}
	if cursor != "" {
		v.Set("cursor", cursor)
	}
	return "/api/admin/users?" + v.Encode()
}

// userListScenario seeds a million users and measures GET /api/admin/users?limit=20, the first
// page and the second (through the first's next link), in every ordering: rounds of wrk runs
// of 4 connections, interleaved so that the machine's drift falls on all alike. Each ordering
// is one row, its p50 the first page's; both pages are compared with the default order's
// same page, measured in the same rounds.
func (b *bench) userListScenario(ctx context.Context) error {
	logf("seeding %d users", seededUsers)
	began := time.Now()
	if err := b.db.seedUsers(ctx, seededUsers); err != nil {
		return err
	}
	logf("seeded in %s", time.Since(began).Round(time.Second))
	var tok struct {
		Token string `json:"token"`
	}
	if err := b.a.client.do(ctx, http.MethodPost, "/api/admin/users/benchadmin/tokens", b.admin(), nil, "", http.StatusCreated, &tok); err != nil {
		return err
	}
	auth := "Authorization: Bearer " + tok.Token

	// The two pages of each ordering, checked once: full pages, in the order asked, the
	// second starting after the first.
	type pages struct{ first, second string }
	paths := map[string]pages{}
	for _, o := range userOrderings {
		var p struct {
			Count       int     `json:"count"`
			CountCapped bool    `json:"count_capped"`
			Next        *string `json:"next"`
			Results     []struct {
				Username string `json:"username"`
			} `json:"results"`
		}
		first := userListURL(o, "")
		if err := b.a.client.do(ctx, http.MethodGet, first, bearer(tok.Token), nil, "", http.StatusOK, &p); err != nil {
			return err
		}
		if len(p.Results) != 20 || p.Next == nil || !p.CountCapped {
			return fmt.Errorf("%s: got %d users, next %v, count %d (capped %v); want 20, a next link and a capped count", first, len(p.Results), p.Next, p.Count, p.CountCapped)
		}
		next, err := url.Parse(*p.Next)
		if err != nil {
			return err
		}
		paths[o] = pages{first, userListURL(o, next.Query().Get("cursor"))}
	}

	runs := map[string][]measured{}
	for round := range userRounds {
		for _, o := range userOrderings {
			for _, path := range []string{paths[o].first, paths[o].second} {
				logf("user list round %d/%d: %s, 4 connections", round+1, userRounds, path)
				m, err := b.measure(ctx, b.a.target(), wrkSpec{URL: b.a.base + path, Conns: 4, Duration: userDur, Headers: []string{auth}}, nil)
				if err != nil {
					return err
				}
				runs[path] = append(runs[path], m)
			}
		}
	}
	p50 := func(path string) time.Duration {
		var ds []time.Duration
		for _, m := range runs[path] {
			ds = append(ds, m.wrk.P50)
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	ref := paths[""]
	refFirst, refSecond := p50(ref.first), p50(ref.second)
	for _, o := range userOrderings {
		name := "ordering=" + o
		if o == "" {
			name = "default order (username)"
		}
		r := combine("user list page of 20, 1 000 000 users, "+name, 4, runs[paths[o].first])
		first, second := p50(paths[o].first), p50(paths[o].second)
		r.P50 = first
		r.Notes = append(r.Notes, fmt.Sprintf("median p50 of %d rounds", userRounds),
			fmt.Sprintf("second page (by its cursor) p50 %s", fmtDur(second)))
		if o != "" {
			fr, sr := float64(first)/float64(refFirst), float64(second)/float64(refSecond)
			r.Target = "p50 ≤ 1.2x the default order's, first and second page"
			var failed []string
			if fr > 1.2 {
				failed = append(failed, fmt.Sprintf("first page %sx", sig3(fr)))
			}
			if sr > 1.2 {
				failed = append(failed, fmt.Sprintf("second page %sx", sig3(sr)))
			}
			r.Holds = verdict(failed)
			r.Notes = append(r.Notes, fmt.Sprintf("%sx and %sx the default order's first and second page", sig3(fr), sig3(sr)))
		}
		b.rows = append(b.rows, r)
	}

	// Statements per page, counted by PostgreSQL itself: the second page of an ordering.
	if b.db.statementsAvailable(ctx) {
		var counts []string
		for _, limit := range []string{"1", "20", "100"} {
			path := strings.Replace(paths["-created_at"].second, "limit=20", "limit="+limit, 1)
			if err := b.a.client.do(ctx, http.MethodGet, path, bearer(tok.Token), nil, "", http.StatusOK, nil); err != nil {
				return err
			}
			if err := b.db.resetStatements(ctx); err != nil {
				return err
			}
			if err := b.a.client.do(ctx, http.MethodGet, path, bearer(tok.Token), nil, "", http.StatusOK, nil); err != nil {
				return err
			}
			n, err := b.db.statements(ctx)
			if err != nil {
				return fmt.Errorf("count statements: %w", err)
			}
			counts = append(counts, strconv.FormatInt(n, 10))
		}
		last := &b.rows[len(b.rows)-1]
		last.Notes = append(last.Notes, fmt.Sprintf("statements per second page at limit 1/20/100: %s (pg_stat_statements, authentication included)", strings.Join(counts, "/")))
	}
	return nil
}
