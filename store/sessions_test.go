package store_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
)

// The web UI's policy, as these tests assume it.
const (
	testIdle   = 30 * time.Minute
	testMaxAge = 2 * time.Hour
)

func createSession(t *testing.T, s *store.Store, userID int64) (string, store.Session) {
	t.Helper()
	token, sess, err := s.CreateSession(t.Context(), userID, testMaxAge, "test agent", "192.0.2.1")
	mustOK(t, err)
	return token, sess
}

// findSession looks a session up with the idle timeout measured back from the clock.
func findSession(t *testing.T, s *store.Store, c *storetest.Clock, token string) (store.Session, tierpix.Identity, error) {
	t.Helper()
	return s.FindSession(t.Context(), token, c.Now().Add(-testIdle))
}

// countSessions returns how many sessions of a user are stored, live or not.
func countSessions(t *testing.T, s *store.Store, userID int64) int {
	t.Helper()
	var n int
	mustOK(t, store.DB(s).GetContext(t.Context(), &n, store.DB(s).Rebind(`SELECT COUNT(*) FROM sessions WHERE user_id = ?`), userID))
	return n
}

func TestCreateSession(t *testing.T) {
	storetest.EachClock(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := t.Context()
		alice := createUser(t, s, "alice", "Premium")
		token, sess, err := s.CreateSession(ctx, alice.ID, testMaxAge, "Mozilla/5.0", "192.0.2.1")
		mustOK(t, err)

		for _, secret := range []string{token, sess.CSRFToken} {
			if b, err := base64.RawURLEncoding.DecodeString(secret); err != nil || len(b) != 32 {
				t.Errorf("got %q (%v), want 256 bits in unpadded base64url", secret, err)
			}
		}
		if token == sess.CSRFToken {
			t.Errorf("got the session token as CSRF token, want another")
		}
		now := clock.Now()
		want := store.Session{ID: sess.ID, UserID: alice.ID, CSRFToken: sess.CSRFToken, CreatedAt: now, LastSeenAt: now,
			ExpiresAt: now.Add(testMaxAge), UserAgent: "Mozilla/5.0", Address: "192.0.2.1"}
		if sess.ID == 0 || sess != want {
			t.Fatalf("got %+v, want %+v with an id", sess, want)
		}

		var stored []string
		mustOK(t, store.DB(s).SelectContext(ctx, &stored, `SELECT token_hash FROM sessions`))
		sum := sha256.Sum256([]byte(token))
		if !slices.Equal(stored, []string{hex.EncodeToString(sum[:])}) {
			t.Errorf("got stored hashes %v, want the SHA-256 of the token", stored)
		}

		got, id, err := findSession(t, s, clock, token)
		mustOK(t, err)
		if got != sess {
			t.Errorf("got %+v, want %+v", got, sess)
		}
		if id.User.ID != alice.ID || id.User.Username != "alice" || id.Tier.Name != "Premium" || !id.Tier.OriginalLink {
			t.Errorf("got identity %+v, want alice on Premium", id)
		}

		_, _, err = s.CreateSession(ctx, 999999, testMaxAge, "", "")
		wantCode(t, err, tierpix.ENOTFOUND)
		_, _, err = s.CreateSession(ctx, alice.ID, 0, "", "")
		wantCode(t, err, tierpix.EINVALID)

		// What a client sends is cut and cleaned so that both dialects store it as given back.
		texts := []struct {
			name string
			in   string
			want string
		}{
			{name: "short", in: "curl/8.5.0", want: "curl/8.5.0"},
			{name: "empty", in: "", want: ""},
			{name: "long", in: strings.Repeat("a", 300), want: strings.Repeat("a", 256)},
			{name: "exactly 256", in: strings.Repeat("b", 256), want: strings.Repeat("b", 256)},
			{name: "cut between characters", in: strings.Repeat("a", 255) + "é", want: strings.Repeat("a", 255)},
			{name: "invalid UTF-8", in: "a\xffb", want: "a\uFFFDb"},
			{name: "NUL", in: "a\x00b", want: "ab"},
		}
		for _, tt := range texts {
			t.Run(tt.name, func(t *testing.T) {
				token, sess, err := s.CreateSession(ctx, alice.ID, testMaxAge, tt.in, tt.in)
				mustOK(t, err)
				if sess.UserAgent != tt.want || sess.Address != tt.want {
					t.Errorf("got user agent %q and address %q, want %q", sess.UserAgent, sess.Address, tt.want)
				}
				got, _, err := findSession(t, s, clock, token)
				mustOK(t, err)
				if got.UserAgent != tt.want || got.Address != tt.want {
					t.Errorf("got stored user agent %q and address %q, want %q", got.UserAgent, got.Address, tt.want)
				}
			})
		}
	})
}

func TestSessionExpiry(t *testing.T) {
	storetest.EachClock(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := t.Context()
		alice := createUser(t, s, "alice", "Basic")
		// Each case starts a session, then touches it `touches` times, every 20 minutes, then
		// waits `then` and looks it up.
		tests := []struct {
			name    string
			touches int
			then    time.Duration
			found   bool
		}{
			{name: "fresh", found: true},
			{name: "idle for exactly the timeout", then: testIdle, found: true},
			{name: "idle past the timeout", then: testIdle + time.Microsecond, found: false},
			{name: "touches restart the idle timeout", touches: 3, then: testIdle, found: true},
			{name: "idle past the timeout after touches", touches: 3, then: testIdle + time.Microsecond, found: false},
			{name: "just before the absolute expiry", touches: 5, then: 20*time.Minute - time.Microsecond, found: true},
			{name: "at the absolute expiry despite touches", touches: 5, then: 20 * time.Minute, found: false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				token, sess := createSession(t, s, alice.ID)
				for range tt.touches {
					clock.Advance(20 * time.Minute)
					mustOK(t, s.TouchSession(ctx, sess.ID))
				}
				clock.Advance(tt.then)
				got, _, err := findSession(t, s, clock, token)
				if !tt.found {
					wantCode(t, err, tierpix.ENOTFOUND)
					return
				}
				mustOK(t, err)
				wantSeen := sess.CreatedAt.Add(time.Duration(tt.touches) * 20 * time.Minute)
				if !got.LastSeenAt.Equal(wantSeen) || !got.ExpiresAt.Equal(sess.ExpiresAt) {
					t.Errorf("got last seen %v, expires %v; want %v, %v", got.LastSeenAt, got.ExpiresAt, wantSeen, sess.ExpiresAt)
				}
			})
		}

		token, _ := createSession(t, s, alice.ID)
		unknown := []struct {
			name  string
			token string
		}{
			{name: "unknown", token: strings.Repeat("A", len(token))},
			{name: "empty", token: ""},
			{name: "too long", token: token + "A"},
			{name: "hash itself", token: func() string { sum := sha256.Sum256([]byte(token)); return hex.EncodeToString(sum[:]) }()},
		}
		for _, tt := range unknown {
			t.Run(tt.name, func(t *testing.T) {
				_, _, err := findSession(t, s, clock, tt.token)
				wantCode(t, err, tierpix.ENOTFOUND)
			})
		}

		// Looking a session up does not count as activity; only TouchSession does.
		clock.Advance(testIdle / 2)
		_, _, err := findSession(t, s, clock, token)
		mustOK(t, err)
		clock.Advance(testIdle/2 + time.Microsecond)
		_, _, err = findSession(t, s, clock, token)
		wantCode(t, err, tierpix.ENOTFOUND)
		// A session that is gone can be touched without error.
		mustOK(t, s.TouchSession(ctx, 999999))
	})
}

func TestDeleteSessions(t *testing.T) {
	storetest.EachClock(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := t.Context()
		alice := createUser(t, s, "alice", "Basic")
		bob := createUser(t, s, "bob", "Basic")

		stale, _ := createSession(t, s, alice.ID) // goes idle below
		clock.Advance(testIdle + time.Second)
		var aliceTokens []string
		var aliceSessions []store.Session // newest first
		for range 3 {
			clock.Advance(time.Second)
			token, sess := createSession(t, s, alice.ID)
			aliceTokens = append(aliceTokens, token)
			aliceSessions = slices.Insert(aliceSessions, 0, sess)
		}
		bobToken, bobSession := createSession(t, s, bob.ID)

		list, err := s.ListUserSessions(ctx, alice.ID, clock.Now().Add(-testIdle))
		mustOK(t, err)
		if !slices.Equal(list, aliceSessions) {
			t.Errorf("got sessions %+v, want the 3 live ones newest first %+v", list, aliceSessions)
		}
		_, _, err = findSession(t, s, clock, stale)
		wantCode(t, err, tierpix.ENOTFOUND)

		// Signing out ends that session only; an unknown token is no error.
		mustOK(t, s.DeleteSession(ctx, aliceTokens[0]))
		_, _, err = findSession(t, s, clock, aliceTokens[0])
		wantCode(t, err, tierpix.ENOTFOUND)
		_, _, err = findSession(t, s, clock, aliceTokens[1])
		mustOK(t, err)
		mustOK(t, s.DeleteSession(ctx, aliceTokens[0]))
		mustOK(t, s.DeleteSession(ctx, ""))

		// Signing out everywhere counts the expired session too, and leaves bob's.
		n, err := s.DeleteUserSessions(ctx, alice.ID)
		mustOK(t, err)
		if n != 3 {
			t.Errorf("got %d sessions deleted, want 3 (2 live, 1 idle)", n)
		}
		for _, token := range aliceTokens {
			_, _, err = findSession(t, s, clock, token)
			wantCode(t, err, tierpix.ENOTFOUND)
		}
		list, err = s.ListUserSessions(ctx, alice.ID, clock.Now().Add(-testIdle))
		mustOK(t, err)
		if list == nil || len(list) != 0 {
			t.Errorf("got sessions %#v, want an empty list", list)
		}
		got, _, err := findSession(t, s, clock, bobToken)
		mustOK(t, err)
		if got != bobSession {
			t.Errorf("got bob's session %+v, want %+v", got, bobSession)
		}

		// Deleting a user deletes their sessions.
		_, err = s.DeleteUser(ctx, "bob")
		mustOK(t, err)
		if n := countSessions(t, s, bob.ID); n != 0 {
			t.Errorf("got %d sessions of a deleted user, want 0", n)
		}
	})
}

func TestDeleteExpiredSessions(t *testing.T) {
	storetest.EachClock(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := t.Context()
		alice := createUser(t, s, "alice", "Basic")

		old, oldSession := createSession(t, s, alice.ID) // touched until its absolute expiry
		idle, _ := createSession(t, s, alice.ID)         // never touched
		for range 6 {
			clock.Advance(20 * time.Minute)
			mustOK(t, s.TouchSession(ctx, oldSession.ID))
		}
		live, _ := createSession(t, s, alice.ID)

		n, err := s.DeleteExpiredSessions(ctx, clock.Now().Add(-testIdle))
		mustOK(t, err)
		if n != 2 {
			t.Errorf("got %d sessions deleted, want 2", n)
		}
		if got := countSessions(t, s, alice.ID); got != 1 {
			t.Errorf("got %d sessions left, want 1", got)
		}
		_, _, err = findSession(t, s, clock, live)
		mustOK(t, err)
		for _, token := range []string{old, idle} {
			_, _, err = findSession(t, s, clock, token)
			wantCode(t, err, tierpix.ENOTFOUND)
		}
		n, err = s.DeleteExpiredSessions(ctx, clock.Now().Add(-testIdle))
		mustOK(t, err)
		if n != 0 {
			t.Errorf("got %d sessions deleted by a second sweep, want 0", n)
		}
	})
}

// TestPasswordChangeEndsSessions checks that every way of saving a user ends their sessions
// exactly when the password hash changes, and only if the change is saved.
func TestPasswordChangeEndsSessions(t *testing.T) {
	storetest.EachClock(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := t.Context()
		alice := createUser(t, s, "alice", "Basic")
		bob := createUser(t, s, "bob", "Basic")
		admin := tierpix.User{Username: "root", PasswordHash: "h", TierName: "Basic", IsAdmin: true}
		mustOK(t, s.CreateUser(ctx, &admin))

		update := func(fn func(u *tierpix.User)) func() error {
			return func() error {
				id, err := s.FindUser(ctx, "alice")
				mustOK(t, err)
				u := id.User
				fn(&u)
				return updateUser(ctx, s, &u)
			}
		}
		modify := func(fn func(u *tierpix.User)) func() error {
			return func() error {
				_, err := s.ModifyUser(ctx, "alice", func(u *tierpix.User) error { fn(u); return nil })
				return err
			}
		}
		tests := []struct {
			name  string
			run   func() error
			code  string
			ended bool
		}{
			{name: "UpdateUser same hash", run: update(func(u *tierpix.User) {})},
			{name: "UpdateUser new tier", run: update(func(u *tierpix.User) { u.TierName = "Premium" })},
			{name: "UpdateUser made admin", run: update(func(u *tierpix.User) { u.IsAdmin = true })},
			{name: "UpdateUser demoted", run: update(func(u *tierpix.User) { u.IsAdmin = false })},
			{name: "UpdateUser new hash", ended: true, run: update(func(u *tierpix.User) { u.PasswordHash = "hash-2" })},
			{name: "UpdateUser new hash and tier", ended: true, run: update(func(u *tierpix.User) {
				u.PasswordHash, u.TierName = "hash-3", "Basic"
			})},
			{name: "UpdateUser new hash, unknown tier", code: tierpix.EINVALID, run: update(func(u *tierpix.User) {
				u.PasswordHash, u.TierName = "hash-4", "Gold"
			})},
			{name: "ModifyUser same hash", run: modify(func(u *tierpix.User) {})},
			{name: "ModifyUser new tier", run: modify(func(u *tierpix.User) { u.TierName = "Enterprise" })},
			{name: "ModifyUser new hash", ended: true, run: modify(func(u *tierpix.User) { u.PasswordHash = "hash-5" })},
			{name: "ModifyUser new hash, unknown tier", code: tierpix.EINVALID, run: modify(func(u *tierpix.User) {
				u.PasswordHash, u.TierName = "hash-6", "Gold"
			})},
			{name: "ModifyUser new hash, last admin demoted", code: tierpix.ECONFLICT, run: func() error {
				_, err := s.ModifyUser(ctx, "root", func(u *tierpix.User) error {
					u.PasswordHash, u.IsAdmin = "hash-7", false
					return nil
				})
				return err
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				mine, _ := createSession(t, s, alice.ID)
				rootSession, _ := createSession(t, s, admin.ID)
				theirs, _ := createSession(t, s, bob.ID)
				wantCode(t, tt.run(), tt.code)
				_, _, err := findSession(t, s, clock, mine)
				if tt.ended {
					wantCode(t, err, tierpix.ENOTFOUND)
				} else {
					mustOK(t, err)
				}
				for _, token := range []string{rootSession, theirs} {
					_, _, err = findSession(t, s, clock, token)
					mustOK(t, err)
				}
				for _, id := range []int64{alice.ID, admin.ID, bob.ID} {
					mustOK(t, func() error { _, err := s.DeleteUserSessions(ctx, id); return err }())
				}
			})
		}
	})
}

func TestLoginFailures(t *testing.T) {
	storetest.EachClock(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := t.Context()
		const window = 10 * time.Minute
		// Steps run in order, on one store: each moves the clock, then records, reads or clears.
		steps := []struct {
			name    string
			advance time.Duration
			op      string // "record", "get" or "clear"
			keys    []string
			want    []int
		}{
			{name: "first failures", op: "record", keys: []string{"user:alice", "addr:1"}, want: []int{1, 1}},
			{name: "counts per key", advance: time.Minute, op: "record", keys: []string{"user:alice", "addr:2"}, want: []int{2, 1}},
			{name: "read", op: "get", keys: []string{"user:alice", "addr:1", "addr:2", "user:bob"}, want: []int{2, 1, 1, 0}},
			{name: "a key given twice counts once", op: "record", keys: []string{"addr:2", "addr:2"}, want: []int{2, 2}},
			{name: "no keys", op: "record", keys: nil, want: []int{}},
			{name: "read no keys", op: "get", keys: nil, want: []int{}},
			// user:alice's window started at 0: at exactly 0+window it still counts.
			{name: "end of the window", advance: window - time.Minute, op: "record", keys: []string{"user:alice"}, want: []int{3}},
			{name: "read after the window", advance: time.Microsecond, op: "get", keys: []string{"user:alice", "addr:1", "addr:2"}, want: []int{0, 0, 2}},
			{name: "new window", op: "record", keys: []string{"user:alice", "addr:1"}, want: []int{1, 1}},
			{name: "clear", op: "clear", keys: []string{"user:alice"}},
			{name: "read after clear", op: "get", keys: []string{"user:alice", "addr:1"}, want: []int{0, 1}},
			{name: "clear unknown", op: "clear", keys: []string{"user:nobody"}},
			{name: "count after clear", op: "record", keys: []string{"user:alice"}, want: []int{1}},
		}
		for _, st := range steps {
			clock.Advance(st.advance)
			var got []int
			var err error
			switch st.op {
			case "record":
				got, err = s.RecordLoginFailure(ctx, st.keys, window)
			case "get":
				got, err = s.LoginFailures(ctx, st.keys, window)
			case "clear":
				err = s.ClearLoginFailures(ctx, st.keys[0])
			}
			if err != nil {
				t.Fatalf("%s: got error %v, want nil", st.name, err)
			}
			if !slices.Equal(got, st.want) {
				t.Fatalf("%s: got %v, want %v", st.name, got, st.want)
			}
		}

		// A minute on, addr:2's window (started at 1m) is more than a window old; the others
		// started at the end of the steps.
		clock.Advance(time.Minute)
		n, err := s.DeleteStaleLoginFailures(ctx, window)
		mustOK(t, err)
		if n != 1 {
			t.Errorf("got %d stale counts deleted, want 1", n)
		}
		got, err := s.LoginFailures(ctx, []string{"user:alice", "addr:1"}, window)
		mustOK(t, err)
		if !slices.Equal(got, []int{1, 1}) {
			t.Errorf("got %v after pruning, want [1 1]", got)
		}

		_, err = s.RecordLoginFailure(ctx, []string{"x"}, 0)
		wantCode(t, err, tierpix.EINVALID)
		_, err = s.LoginFailures(ctx, []string{"x"}, 0)
		wantCode(t, err, tierpix.EINVALID)
		_, err = s.DeleteStaleLoginFailures(ctx, 0)
		wantCode(t, err, tierpix.EINVALID)
	})
}

// TestLoginFailuresConcurrent records failures from many goroutines at once, with the keys in
// different orders: none is lost, and none deadlocks.
func TestLoginFailuresConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		const workers, each = 8, 5
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := range workers {
			keys := []string{"user:alice", fmt.Sprintf("addr:%d", w%2)}
			if w%2 == 1 {
				slices.Reverse(keys)
			}
			wg.Go(func() {
				for range each {
					if _, err := s.RecordLoginFailure(t.Context(), keys, time.Hour); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("got error %v, want nil", err)
		}
		got, err := s.LoginFailures(t.Context(), []string{"user:alice", "addr:0", "addr:1"}, time.Hour)
		mustOK(t, err)
		if want := []int{workers * each, workers * each / 2, workers * each / 2}; !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
}

func TestSignInAddresses(t *testing.T) {
	storetest.EachClock(t, func(t *testing.T, s *store.Store, clock *storetest.Clock) {
		ctx := t.Context()
		alice := createUser(t, s, "alice", "Basic")
		bob := createUser(t, s, "bob", "Basic")
		start := clock.Now()
		mustOK(t, s.RecordSignInAddress(ctx, alice.ID, "192.0.2.1"))
		clock.Advance(time.Hour)
		mustOK(t, s.RecordSignInAddress(ctx, alice.ID, "192.0.2.2"))
		tests := []struct {
			name  string
			user  int64
			addr  string
			since time.Time
			want  bool
		}{
			{name: "recorded", user: alice.ID, addr: "192.0.2.1", since: start, want: true},
			{name: "too old", user: alice.ID, addr: "192.0.2.1", since: start.Add(time.Microsecond), want: false},
			{name: "other address", user: alice.ID, addr: "192.0.2.3", since: start, want: false},
			{name: "other user", user: bob.ID, addr: "192.0.2.1", since: start, want: false},
		}
		for _, tt := range tests {
			got, err := s.SignedInFrom(ctx, tt.user, tt.addr, tt.since)
			mustOK(t, err)
			if got != tt.want {
				t.Errorf("%s: got %t, want %t", tt.name, got, tt.want)
			}
		}
		// Recording again moves the time.
		mustOK(t, s.RecordSignInAddress(ctx, alice.ID, "192.0.2.1"))
		if got, err := s.SignedInFrom(ctx, alice.ID, "192.0.2.1", clock.Now()); err != nil || !got {
			t.Errorf("after a second sign-in: got %t, %v, want true", got, err)
		}
		wantCode(t, s.RecordSignInAddress(ctx, 1<<40, "192.0.2.1"), tierpix.ENOTFOUND)

		clock.Advance(time.Minute)
		mustOK(t, s.RecordSignInAddress(ctx, bob.ID, "192.0.2.9"))
		n, err := s.DeleteStaleSignInAddresses(ctx, clock.Now())
		mustOK(t, err)
		if n != 2 {
			t.Errorf("got %d stale addresses deleted, want 2", n)
		}
		if got, _ := s.SignedInFrom(ctx, bob.ID, "192.0.2.9", start); !got {
			t.Errorf("the fresh address: got gone, want kept")
		}
	})
}
