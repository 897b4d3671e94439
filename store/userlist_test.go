package store_test

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
)

// listNames lists every page of q from the first, following Next, and returns the usernames.
func listNames(t *testing.T, s *store.Store, q tierpix.UserQuery) []string {
	t.Helper()
	var got []string
	for range 100 {
		p, err := s.ListUsers(t.Context(), q)
		mustOK(t, err)
		for _, u := range p.Users {
			got = append(got, u.Username)
		}
		if p.Next == "" {
			return got
		}
		q.Cursor = p.Next
	}
	t.Fatalf("more than 100 pages")
	return nil
}

func TestListUsersSearch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		// Byte order: upper case before lower case, in both dialects.
		names := []string{"zed", "Zed", "amy", "bob", "Amy", "carl", "_x", "1st", "a_b", "axb", "Bo.b", "boB"}
		for _, n := range names {
			createUser(t, s, n, "Basic")
		}
		all := slices.Clone(names)
		slices.Sort(all)

		tests := []struct {
			name   string
			search string
			want   []string
		}{
			{name: "all", search: "", want: all},
			{name: "case-insensitive", search: "AM", want: []string{"Amy", "amy"}},
			{name: "substring", search: "o", want: []string{"Bo.b", "boB", "bob"}},
			{name: "underscore is literal", search: "_", want: []string{"_x", "a_b"}},
			{name: "percent is literal", search: "%", want: nil},
			{name: "backslash is literal", search: `\`, want: nil},
			{name: "escaped underscore is literal", search: `\_`, want: nil},
			{name: "dot is literal", search: "o.B", want: []string{"Bo.b"}},
			{name: "whole name", search: "1ST", want: []string{"1st"}},
			{name: "no match", search: "q", want: nil},
		}
		for _, tt := range tests {
			for _, limit := range []int{1, 3, 100} {
				t.Run(fmt.Sprintf("%s limit %d", tt.name, limit), func(t *testing.T) {
					got := listNames(t, s, tierpix.UserQuery{Search: tt.search, Limit: limit})
					if !slices.Equal(got, tt.want) {
						t.Errorf("got %v, want %v", got, tt.want)
					}
				})
			}
		}
	})
}

// userOrder compares two users as a list ordered by sort does: the column, then the username,
// both descending when desc is set. It is the order ListUsers should give, computed apart
// from SQL.
func userOrder(sort tierpix.UserSort, desc bool) func(a, b tierpix.User) int {
	return func(a, b tierpix.User) int {
		var c int
		switch sort {
		case tierpix.SortTier:
			c = strings.Compare(a.TierName, b.TierName)
		case tierpix.SortIsAdmin:
			c = cmp.Compare(boolInt(a.IsAdmin), boolInt(b.IsAdmin))
		case tierpix.SortCreatedAt:
			c = a.CreatedAt.Compare(b.CreatedAt)
		}
		if c == 0 {
			c = strings.Compare(a.Username, b.Username)
		}
		if desc {
			c = -c
		}
		return c
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestListUsersOrders walks every order, both ways, with and without filters, forward with
// Next and back with Prev, and checks the pages against the order computed in Go: the same
// rows, each once, with the right counts, positions and ends, in two statements a page.
func TestListUsersOrders(t *testing.T) {
	storetest.EachClock(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		names := []string{"zed", "Zed", "amy", "bob", "Amy", "carl", "_x", "1st", "a_b", "axb", "Bo.b", "boB"}
		for i := range 28 {
			names = append(names, fmt.Sprintf("u%02d", i))
		}
		// Created in an order unrelated to the names' (7 is prime to 40), four at each
		// instant, so created_at has ties; most users on Basic, a few admins.
		var users []tierpix.User
		for i := range names {
			name := names[i*7%len(names)]
			tier := []string{"Basic", "Basic", "Basic", "Premium", "Basic", "Enterprise"}[i%6]
			u := tierpix.User{Username: name, PasswordHash: "$2a$10$notarealhash", TierName: tier, IsAdmin: i%5 == 2}
			mustOK(t, s.CreateUser(t.Context(), &u))
			users = append(users, u)
			if i%4 == 3 {
				clock.Advance(time.Second)
			}
		}

		filters := []struct {
			name string
			q    tierpix.UserQuery
			keep func(u tierpix.User) bool
		}{
			{name: "all", keep: func(tierpix.User) bool { return true }},
			{name: "tier in another case", q: tierpix.UserQuery{Tier: "bASIC"}, keep: func(u tierpix.User) bool { return u.TierName == "Basic" }},
			{name: "admins", q: tierpix.UserQuery{Admin: new(true)}, keep: func(u tierpix.User) bool { return u.IsAdmin }},
			{name: "search, not admins", q: tierpix.UserQuery{Search: "U", Admin: new(false)}, keep: func(u tierpix.User) bool {
				return strings.Contains(strings.ToLower(u.Username), "u") && !u.IsAdmin
			}},
			{name: "search, tier, not admins", q: tierpix.UserQuery{Search: "0", Tier: "Basic", Admin: new(false)}, keep: func(u tierpix.User) bool {
				return strings.Contains(u.Username, "0") && u.TierName == "Basic" && !u.IsAdmin
			}},
			{name: "unknown tier", q: tierpix.UserQuery{Tier: "Gold"}, keep: func(tierpix.User) bool { return false }},
		}
		for _, sort := range tierpix.UserSorts {
			for _, desc := range []bool{false, true} {
				want := slices.Clone(users)
				slices.SortFunc(want, userOrder(sort, desc))
				for _, f := range filters {
					want := slices.DeleteFunc(slices.Clone(want), func(u tierpix.User) bool { return !f.keep(u) })
					for _, limit := range []int{1, 3, 7, 100} {
						t.Run(fmt.Sprintf("%s desc=%v %s limit %d", sort, desc, f.name, limit), func(t *testing.T) {
							q := f.q
							q.Sort, q.Desc, q.Limit = sort, desc, limit
							walkUsers(t, s, q, usernames(want))
						})
					}
				}
			}
		}
	})
}

func usernames(users []tierpix.User) []string {
	names := make([]string, len(users))
	for i, u := range users {
		names[i] = u.Username
	}
	return names
}

// walkUsers lists q forward to the last page and back to the first, checking each page
// against want, the whole list.
func walkUsers(t *testing.T, s *store.Store, q tierpix.UserQuery, want []string) {
	t.Helper()
	list := func(cursor string) tierpix.UserPage {
		t.Helper()
		q.Cursor = cursor
		before := s.Queries()
		p, err := s.ListUsers(t.Context(), q)
		mustOK(t, err)
		if n := s.Queries() - before; n != 2 {
			t.Errorf("got %d statements for a page, want 2", n)
		}
		if p.Total != len(want) || p.TotalCapped {
			t.Errorf("got total %d (capped %v), want %d", p.Total, p.TotalCapped, len(want))
		}
		if len(p.Users) > q.Limit {
			t.Fatalf("got %d users, want at most %d", len(p.Users), q.Limit)
		}
		return p
	}
	// check compares a page with want from position start.
	check := func(how string, p tierpix.UserPage, start int) {
		t.Helper()
		end := min(start+q.Limit, len(want))
		if got := usernames(p.Users); !slices.Equal(got, want[start:end]) {
			t.Fatalf("%s page at %d: got %v, want %v", how, start, got, want[start:end])
		}
		if p.Start != start || p.StartCapped {
			t.Errorf("%s page at %d: got start %d (capped %v), want %d", how, start, p.Start, p.StartCapped, start)
		}
		if first, last := start == 0, end == len(want); p.First != first || p.Last != last {
			t.Errorf("%s page at %d: got first %v, last %v; want %v, %v", how, start, p.First, p.Last, first, last)
		}
		if (p.Prev == "") != p.First || (p.Next == "") != p.Last {
			t.Errorf("%s page at %d: got prev %q and next %q with first %v and last %v, want a cursor for each side that has rows",
				how, start, p.Prev, p.Next, p.First, p.Last)
		}
	}

	p := list("")
	check("first", p, 0)
	start := 0
	for !p.Last {
		start += q.Limit
		p = list(p.Next)
		check("next", p, start)
	}
	if want := max(0, (len(want)-1)/q.Limit*q.Limit); start != want {
		t.Fatalf("got the last page at %d, want %d", start, want)
	}
	for !p.First {
		start -= q.Limit
		p = list(p.Prev)
		check("previous", p, start)
	}
	if start != 0 {
		t.Fatalf("got the first page at %d, want 0", start)
	}
}

// TestListUsersCountCap checks that counts stop at tierpix.UserCountCap and say so, and are
// exact below it.
func TestListUsersCountCap(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		const n = tierpix.UserCountCap + 50
		// Users cap1 to cap10050, created one microsecond apart in that order; every
		// seventh an admin, every hundredth on Premium.
		base := storetest.ClockStart.UnixMicro()
		db := store.DB(s)
		_, err := db.ExecContext(t.Context(), db.Rebind(`WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?)
			INSERT INTO users (username, password_hash, tier, is_admin, created_at, updated_at)
			SELECT 'cap' || n, 'x', CASE WHEN n % 100 = 0 THEN 'Premium' ELSE 'Basic' END, n % 7 = 0,
				CAST(? AS BIGINT) + n, CAST(? AS BIGINT) + n
			FROM g`), n, base, base)
		mustOK(t, err)
		at := func(i int) string {
			return tierpix.UserCursor{Key: tierpix.UserKey{Sort: tierpix.SortCreatedAt, CreatedAt: time.UnixMicro(base + int64(i)), Username: fmt.Sprintf("cap%d", i)}}.String()
		}
		before := func(i int) string {
			return tierpix.UserCursor{Key: tierpix.UserKey{Sort: tierpix.SortCreatedAt, CreatedAt: time.UnixMicro(base + int64(i)), Username: fmt.Sprintf("cap%d", i)}, Before: true}.String()
		}

		tests := []struct {
			name                   string
			q                      tierpix.UserQuery
			total                  int
			totalCapped            bool
			start                  int
			startCapped            bool
			first, last            string
			wantFirstPage, wantEnd bool
		}{
			{name: "first page", q: tierpix.UserQuery{}, total: tierpix.UserCountCap, totalCapped: true, first: "cap1", last: "cap10"},
			{name: "after 5000", q: tierpix.UserQuery{Cursor: at(5000)}, total: tierpix.UserCountCap, totalCapped: true, start: 5000, first: "cap5001", last: "cap5010"},
			{name: "after 10005", q: tierpix.UserQuery{Cursor: at(10005)}, total: tierpix.UserCountCap, totalCapped: true, start: tierpix.UserCountCap, startCapped: true, first: "cap10006", last: "cap10015"},
			{name: "before 10011", q: tierpix.UserQuery{Cursor: before(10011)}, total: tierpix.UserCountCap, totalCapped: true, start: tierpix.UserCountCap, first: "cap10001", last: "cap10010"},
			{name: "before 11", q: tierpix.UserQuery{Cursor: before(11)}, total: tierpix.UserCountCap, totalCapped: true, start: 0, first: "cap1", last: "cap10", wantFirstPage: true},
			{name: "descending after 45", q: tierpix.UserQuery{Desc: true, Cursor: at(45)}, total: tierpix.UserCountCap, totalCapped: true, start: n - 44, first: "cap44", last: "cap35", startCapped: true},
			{name: "descending, last page", q: tierpix.UserQuery{Desc: true, Cursor: at(8)}, total: tierpix.UserCountCap, totalCapped: true, start: tierpix.UserCountCap, startCapped: true, first: "cap7", last: "cap1", wantEnd: true},
			{name: "Premium", q: tierpix.UserQuery{Tier: "Premium"}, total: n / 100, first: "cap100", last: "cap1000"},
			{name: "Premium after 5000", q: tierpix.UserQuery{Tier: "Premium", Cursor: at(5000)}, total: n / 100, start: 50, first: "cap5100", last: "cap6000"},
			{name: "admins", q: tierpix.UserQuery{Admin: new(true)}, total: n / 7, first: "cap7", last: "cap70"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				q := tt.q
				q.Sort, q.Limit = tierpix.SortCreatedAt, 10
				p, err := s.ListUsers(t.Context(), q)
				mustOK(t, err)
				if p.Total != tt.total || p.TotalCapped != tt.totalCapped {
					t.Errorf("got total %d (capped %v), want %d (capped %v)", p.Total, p.TotalCapped, tt.total, tt.totalCapped)
				}
				wantStart := min(tt.start, tierpix.UserCountCap)
				if p.Start != wantStart || p.StartCapped != tt.startCapped {
					t.Errorf("got start %d (capped %v), want %d (capped %v)", p.Start, p.StartCapped, wantStart, tt.startCapped)
				}
				if len(p.Users) == 0 || p.Users[0].Username != tt.first || p.Users[len(p.Users)-1].Username != tt.last {
					t.Fatalf("got %v, want %s..%s", usernames(p.Users), tt.first, tt.last)
				}
				if p.First != (tt.wantFirstPage || q.Cursor == "") || p.Last != tt.wantEnd {
					t.Errorf("got first %v, last %v; want %v, %v", p.First, p.Last, tt.wantFirstPage || q.Cursor == "", tt.wantEnd)
				}
			})
		}
	})
}

// TestListUsersInvalid checks the queries ListUsers refuses, each naming its field.
func TestListUsersInvalid(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		createUser(t, s, "alice", "Basic")
		p, err := s.ListUsers(t.Context(), tierpix.UserQuery{Sort: tierpix.SortTier, Limit: 1})
		mustOK(t, err)
		tierCursor := tierpix.UserCursor{Key: tierpix.SortTier.KeyOf(&p.Users[0])}.String()
		tests := []struct {
			name  string
			q     tierpix.UserQuery
			field string
		}{
			{name: "limit 0", q: tierpix.UserQuery{}, field: "limit"},
			{name: "limit over the maximum", q: tierpix.UserQuery{Limit: tierpix.MaxUserLimit + 1}, field: "limit"},
			{name: "unknown order", q: tierpix.UserQuery{Sort: "password_hash", Limit: 1}, field: "ordering"},
			{name: "long search", q: tierpix.UserQuery{Search: strings.Repeat("a", tierpix.MaxUserSearch+1), Limit: 1}, field: "search"},
			{name: "not base64", q: tierpix.UserQuery{Cursor: "%%", Limit: 1}, field: "cursor"},
			{name: "a bare username", q: tierpix.UserQuery{Cursor: "YWxpY2U", Limit: 1}, field: "cursor"},
			{name: "another order's cursor", q: tierpix.UserQuery{Sort: tierpix.SortCreatedAt, Cursor: tierCursor, Limit: 1}, field: "cursor"},
			{name: "a time that is not a number", q: tierpix.UserQuery{Sort: tierpix.SortCreatedAt, Cursor: b64(">created_at\x00soon\x00alice"), Limit: 1}, field: "cursor"},
			{name: "no username", q: tierpix.UserQuery{Cursor: b64(">username\x00\x00"), Limit: 1}, field: "cursor"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.ListUsers(t.Context(), tt.q)
				wantCode(t, err, tierpix.EINVALID)
				if f := tierpix.ErrorFields(err); f[tt.field] == "" {
					t.Errorf("got fields %v, want %s named", f, tt.field)
				}
			})
		}
		// The tier cursor is good under its own order, and in either direction.
		for _, desc := range []bool{false, true} {
			_, err := s.ListUsers(t.Context(), tierpix.UserQuery{Sort: tierpix.SortTier, Desc: desc, Cursor: tierCursor, Limit: 1})
			mustOK(t, err)
		}
	})
}

// b64 encodes a hand-made cursor.
func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestListUsersUsesIndex checks that every order's page, both ways, from the start or from a
// key, is a range scan of the index that gives its order, on both planners: no sort step and
// no full scan, so a page costs the same however many users there are.
func TestListUsersUsesIndex(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		index := map[tierpix.UserSort]string{
			tierpix.SortUsername:  map[string]string{store.DialectSQLite: "sqlite_autoindex_users_1", store.DialectPostgres: "users_username_key"}[s.Dialect()],
			tierpix.SortTier:      "users_tier_username",
			tierpix.SortIsAdmin:   "users_is_admin_username",
			tierpix.SortCreatedAt: "users_created_at_username",
		}
		key := tierpix.UserKey{Tier: "Basic", IsAdmin: true, CreatedAt: storetest.ClockStart, Username: "alice"}
		for _, sort := range tierpix.UserSorts {
			for _, desc := range []bool{false, true} {
				for _, reverse := range []bool{false, true} {
					for _, search := range []string{"", "a"} {
						name := fmt.Sprintf("%s desc=%v reverse=%v search=%q", sort, desc, reverse, search)
						t.Run(name, func(t *testing.T) {
							q := tierpix.UserQuery{Sort: sort, Desc: desc, Search: search, Limit: 20}
							key := key
							key.Sort = sort
							for _, k := range []*tierpix.UserKey{nil, &key} {
								query, args := store.UserPageQuery(q, k, reverse)
								plan := strings.Join(queryPlan(t, s, query, args...), "\n")
								if !strings.Contains(plan, index[sort]) {
									t.Errorf("got plan\n%s\nwant it to use %s", plan, index[sort])
								}
								if strings.Contains(plan, "TEMP B-TREE") || strings.Contains(plan, "Sort") {
									t.Errorf("got plan\n%s\nwant no sort step", plan)
								}
								// From a key, the index is entered at the key: SQLite says
								// SEARCH, PostgreSQL an Index Cond on the row value.
								if k != nil && !strings.Contains(plan, "SEARCH u USING INDEX") && !strings.Contains(plan, "Index Cond") {
									t.Errorf("got plan\n%s\nwant a range of the index from the key", plan)
								}
							}
						})
					}
				}
			}
		}
	})
}
