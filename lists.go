package tierpix

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// UserSort is a column the user list can be ordered by. Every order ends with the username,
// which is unique, so the order is total and a page can start after any row.
type UserSort string

const (
	SortUsername  UserSort = "username"
	SortTier      UserSort = "tier"
	SortIsAdmin   UserSort = "is_admin"
	SortCreatedAt UserSort = "created_at"
)

// UserSorts lists every UserSort, the default first.
var UserSorts = []UserSort{SortUsername, SortTier, SortIsAdmin, SortCreatedAt}

// Bounds of a user list.
const (
	// MaxUserLimit is the largest page of users.
	MaxUserLimit = 1000
	// MaxUserSearch bounds a search in bytes: usernames are at most 150.
	MaxUserSearch = 150
	// UserCountCap is as far as a list counts its users. Past it, a count says "more than"
	// rather than reading every row of a large table on every page.
	UserCountCap = 10_000
)

// UserQuery asks for a page of users.
type UserQuery struct {
	Search string   // only usernames that contain it, case-insensitively; "" keeps all
	Tier   string   // only users on this tier, named in any case; "" keeps all
	Admin  *bool    // only admins (true) or only non-admins (false); nil keeps all
	Sort   UserSort // "" is SortUsername
	Desc   bool
	// Cursor is where the page starts: a UserPage's Next or Prev; "" is the first page.
	Cursor string
	Limit  int
}

// SortBy returns the query's order, the default filled in.
func (q *UserQuery) SortBy() UserSort {
	if q.Sort == "" {
		return SortUsername
	}
	return q.Sort
}

// Validate reports the first field at fault (EINVALID): an unknown order ("ordering"), a
// cursor this order did not hand out ("cursor"), a limit or a search out of bounds.
func (q *UserQuery) Validate() error {
	if !q.SortBy().valid() {
		return Invalid("ordering", fmt.Sprintf("%q is not a column users can be ordered by", q.Sort))
	}
	if q.Limit < 1 || q.Limit > MaxUserLimit {
		return Invalid("limit", fmt.Sprintf("must be an integer between 1 and %d", MaxUserLimit))
	}
	if len(q.Search) > MaxUserSearch {
		return Invalid("search", fmt.Sprintf("must be at most %d bytes", MaxUserSearch))
	}
	_, err := q.ParseCursor()
	return err
}

// ParseCursor returns the query's cursor, the zero UserCursor when it has none (EINVALID for a
// cursor that is not one of this order's).
func (q *UserQuery) ParseCursor() (UserCursor, error) {
	if q.Cursor == "" {
		return UserCursor{}, nil
	}
	c, ok := parseUserCursor(q.Cursor)
	if !ok || c.Key.Sort != q.SortBy() {
		return UserCursor{}, Invalid("cursor", "is not a cursor this list handed out")
	}
	return c, nil
}

func (s UserSort) valid() bool {
	switch s {
	case SortUsername, SortTier, SortIsAdmin, SortCreatedAt:
		return true
	}
	return false
}

// UserPage is a page of users with what an adapter needs to say where it is ("51–100 of
// 1 234") and to link its neighbours.
type UserPage struct {
	Users []User
	// Total is how many users match the query's filters, counted up to UserCountCap;
	// TotalCapped says more match.
	Total       int
	TotalCapped bool
	// Start is how many matching users come before this page, counted up to UserCountCap;
	// StartCapped says more do.
	Start       int
	StartCapped bool
	First       bool   // no matching user comes before this page
	Last        bool   // none comes after it
	Prev, Next  string // cursors of the pages before and after this one; "" at either end
}

// UserKey is a user's place in a list ordered by Sort: that column's value, then the
// username. Only the field Sort names is set, besides Username.
type UserKey struct {
	Sort      UserSort
	Tier      string
	IsAdmin   bool
	CreatedAt time.Time
	Username  string
}

// KeyOf returns u's place in a list ordered by s.
func (s UserSort) KeyOf(u *User) UserKey {
	k := UserKey{Sort: s, Username: u.Username}
	switch s {
	case SortTier:
		k.Tier = u.TierName
	case SortIsAdmin:
		k.IsAdmin = u.IsAdmin
	case SortCreatedAt:
		k.CreatedAt = u.CreatedAt
	}
	return k
}

// UserCursor is where a page starts: just after Key in the list's order, or, for the page
// before, just before it. It names a place, not a page number, so rows added or removed
// elsewhere do not shift the pages that follow.
type UserCursor struct {
	Key    UserKey
	Before bool
}

// String encodes c as an opaque token: unpadded base64url of the direction, the order, the
// column's value and the username. It is not secret; it holds only what the row shows.
func (c UserCursor) String() string {
	dir := ">"
	if c.Before {
		dir = "<"
	}
	var v string
	switch c.Key.Sort {
	case SortTier:
		v = c.Key.Tier
	case SortIsAdmin:
		v = "0"
		if c.Key.IsAdmin {
			v = "1"
		}
	case SortCreatedAt:
		v = strconv.FormatInt(c.Key.CreatedAt.UnixMicro(), 10)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(dir + string(c.Key.Sort) + "\x00" + v + "\x00" + c.Key.Username))
}

// parseUserCursor decodes what String encodes.
func parseUserCursor(s string) (UserCursor, bool) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) == 0 || !utf8.Valid(b) {
		return UserCursor{}, false
	}
	var c UserCursor
	switch b[0] {
	case '>':
	case '<':
		c.Before = true
	default:
		return UserCursor{}, false
	}
	parts := strings.Split(string(b[1:]), "\x00")
	if len(parts) != 3 || parts[2] == "" {
		return UserCursor{}, false
	}
	sort, v := UserSort(parts[0]), parts[1]
	c.Key = UserKey{Sort: sort, Username: parts[2]}
	switch sort {
	case SortUsername:
		return c, v == ""
	case SortTier:
		c.Key.Tier = v
		return c, v != ""
	case SortIsAdmin:
		c.Key.IsAdmin = v == "1"
		return c, v == "0" || v == "1"
	case SortCreatedAt:
		us, err := strconv.ParseInt(v, 10, 64)
		c.Key.CreatedAt = time.UnixMicro(us).UTC()
		return c, err == nil
	}
	return UserCursor{}, false
}
