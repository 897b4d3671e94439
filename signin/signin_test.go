package signin

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
	"golang.org/x/crypto/bcrypt"
)

// testCost keeps bcrypt cheap in tests.
const testCost = 4

const password = "right-password"

// fixture is a service over a store whose clock the test moves, with a user alice.
type fixture struct {
	s     *Service
	st    *store.Store
	clock *storetest.Clock
}

// each runs fn on SQLite and PostgreSQL, with a service of cfg (cost and clock filled in).
func each(t *testing.T, cfg Config, fn func(t *testing.T, f *fixture)) {
	t.Helper()
	storetest.EachClock(t, func(t *testing.T, st *store.Store, clock *storetest.Clock) {
		cfg := cfg
		cfg.BcryptCost = testCost
		cfg.Now = clock.Now
		s, err := New(cfg, st, nil)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		hash, err := store.HashPassword(password, testCost)
		if err != nil {
			t.Fatalf("HashPassword: %v", err)
		}
		u := tierpix.User{Username: "alice", PasswordHash: hash, TierName: "Basic"}
		if err := st.CreateUser(t.Context(), &u); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		fn(t, &fixture{s: s, st: st, clock: clock})
	})
}

// try signs in and returns the error code ("" for success) and how many bcrypt comparisons
// it cost.
func (f *fixture) try(t *testing.T, username, pw, addr string) (code string, checks uint64) {
	t.Helper()
	before := f.s.Stats().PasswordChecks
	id, err := f.s.Authenticate(t.Context(), username, pw, addr)
	code = tierpix.ErrorCode(err)
	if code == tierpix.EINTERNAL {
		t.Fatalf("SignIn(%q, %q): %v", username, addr, err)
	}
	if err == nil && id.User.Username != username {
		t.Fatalf("SignIn(%q): got user %q", username, id.User.Username)
	}
	if code == tierpix.ETOOMANY {
		if ra := tierpix.ErrorRetryAfter(err); ra <= 0 {
			t.Errorf("429 Retry-After: got %s, want positive", ra)
		}
	}
	return code, f.s.Stats().PasswordChecks - before
}

// want signs in and checks the outcome and the bcrypt comparisons it cost.
func (f *fixture) want(t *testing.T, username, pw, addr, wantCode string, wantChecks uint64) {
	t.Helper()
	code, checks := f.try(t, username, pw, addr)
	if code != wantCode || checks != wantChecks {
		t.Fatalf("SignIn(%q, %q from %s): got code %q and %d password checks, want %q and %d",
			username, pw, addr, code, checks, wantCode, wantChecks)
	}
}

func TestSignIn(t *testing.T) {
	each(t, Config{}, func(t *testing.T, f *fixture) {
		tests := []struct {
			name, username, password string
			code                     string
			checks                   uint64
		}{
			{name: "right password", username: "alice", password: password, code: "", checks: 1},
			{name: "wrong password", username: "alice", password: "wrong", code: tierpix.EUNAUTHORIZED, checks: 1},
			{name: "other case is another user", username: "Alice", password: password, code: tierpix.EUNAUTHORIZED, checks: 1},
			{name: "unknown user costs a bcrypt too", username: "nobody", password: password, code: tierpix.EUNAUTHORIZED, checks: 1},
			{name: "impossible username", username: "no body", password: password, code: tierpix.EUNAUTHORIZED, checks: 1},
		}
		for _, tt := range tests {
			// A fresh address each, so no memo hit and no throttle.
			f.want(t, tt.username, tt.password, "192.0.2."+fmt.Sprint(len(tt.name)), tt.code, tt.checks)
		}
	})
}

// TestThrottleAccountFromAddress: failures from one address lock the account out from that
// address only, before bcrypt and whatever the password, until the window is over.
func TestThrottleAccountFromAddress(t *testing.T) {
	each(t, Config{}, func(t *testing.T, f *fixture) {
		const attacker, owner = "198.51.100.1", "203.0.113.7"
		for i := range DefaultPairLimit {
			f.want(t, "alice", fmt.Sprintf("guess-%d", i), attacker, tierpix.EUNAUTHORIZED, 1)
		}
		f.want(t, "alice", password, attacker, tierpix.ETOOMANY, 0)
		f.want(t, "ALICE", "guess", attacker, tierpix.ETOOMANY, 0)
		// The owner, elsewhere, signs in.
		f.want(t, "alice", password, owner, "", 1)
		// Other accounts from the attacker's address are not locked.
		f.want(t, "bob", "guess", attacker, tierpix.EUNAUTHORIZED, 1)

		f.clock.Advance(DefaultWindow)
		f.want(t, "alice", password, attacker, tierpix.ETOOMANY, 0)
		f.clock.Advance(time.Microsecond)
		f.want(t, "alice", password, attacker, "", 1)
	})
}

// TestThrottleAddress: an address guessing at many usernames, unknown ones included, is
// refused before bcrypt once it reaches AddressLimit.
func TestThrottleAddress(t *testing.T) {
	each(t, Config{AddressLimit: 6}, func(t *testing.T, f *fixture) {
		const attacker = "198.51.100.1"
		for i := range 3 {
			f.want(t, fmt.Sprintf("random%d", i), "guess", attacker, tierpix.EUNAUTHORIZED, 1)
			f.want(t, fmt.Sprintf("not valid %d", i), "guess", attacker, tierpix.EUNAUTHORIZED, 1)
		}
		for i := range 3 {
			f.want(t, fmt.Sprintf("random-more%d", i), "guess", attacker, tierpix.ETOOMANY, 0)
			f.want(t, fmt.Sprintf("not valid more %d", i), "guess", attacker, tierpix.ETOOMANY, 0)
		}
		f.want(t, "alice", password, attacker, tierpix.ETOOMANY, 0)
		if got := f.s.Stats().Throttled; got != 7 {
			t.Errorf("Stats().Throttled: got %d, want 7", got)
		}
		f.want(t, "alice", password, "198.51.100.2", "", 1)
	})
}

// TestThrottleAccountTotal: guesses from many addresses together are bounded by AccountLimit;
// an address that signed in to the account recently is exempt, one that did so too long ago
// is not.
func TestThrottleAccountTotal(t *testing.T) {
	cfg := Config{PairLimit: 2, AccountLimit: 6, KnownAddressAge: 10 * 24 * time.Hour}
	each(t, cfg, func(t *testing.T, f *fixture) {
		const owner, oldHome = "203.0.113.7", "203.0.113.8"
		f.want(t, "alice", password, oldHome, "", 1)
		f.clock.Advance(cfg.KnownAddressAge + time.Hour)
		f.want(t, "alice", password, owner, "", 1)

		var checks uint64
		for a := 0; a < 10; a++ {
			for range cfg.PairLimit {
				_, n := f.try(t, "alice", "guess", fmt.Sprintf("198.51.100.%d", a))
				checks += n
			}
		}
		if checks != uint64(cfg.AccountLimit) {
			t.Errorf("guesses from 10 addresses: got %d password checks, want %d", checks, cfg.AccountLimit)
		}
		f.want(t, "alice", password, "198.51.100.200", tierpix.ETOOMANY, 0)
		f.want(t, "alice", password, oldHome, tierpix.ETOOMANY, 0)
		f.clock.Advance(DefaultMemoTTL) // past the memo, within the window
		f.want(t, "alice", password, owner, "", 1)
		// The owner's success does not reset what the others spent.
		f.want(t, "alice", password, "198.51.100.201", tierpix.ETOOMANY, 0)
	})
}

// TestConcurrentGuesses: guesses that all pass the counts at once (here: queued behind a held
// bcrypt slot) are answered only as far as the limit; the rest answer 429.
func TestConcurrentGuesses(t *testing.T) {
	const guesses, limit = 10, 4
	cfg := Config{AccountLimit: limit, BcryptSlots: 1, BcryptQueue: guesses, BcryptWait: time.Minute}
	each(t, cfg, func(t *testing.T, f *fixture) {
		f.s.slots <- struct{}{}
		codes := make(chan string, guesses)
		for i := range guesses {
			go func() {
				_, err := f.s.SignIn(context.Background(), "alice", "guess", fmt.Sprintf("198.51.100.%d", i))
				codes <- tierpix.ErrorCode(err)
			}()
		}
		deadline := time.Now().Add(10 * time.Second)
		for f.s.waiting.Load() != guesses {
			if time.Now().After(deadline) {
				t.Fatalf("the guesses did not all queue within 10s: %d waiting", f.s.waiting.Load())
			}
			time.Sleep(time.Millisecond)
		}
		<-f.s.slots
		got := map[string]int{}
		for range guesses {
			got[<-codes]++
		}
		if got[tierpix.EUNAUTHORIZED] != limit || got[tierpix.ETOOMANY] != guesses-limit {
			t.Errorf("%d guesses at once: got %v, want %d answered %q and the rest %q",
				guesses, got, limit, tierpix.EUNAUTHORIZED, tierpix.ETOOMANY)
		}
	})
}

// TestMemo: a password verified by Authenticate from an address is accepted again from that
// address without bcrypt and without counters; from any other address it is checked, and throttled, as ever.
func TestMemo(t *testing.T) {
	each(t, Config{}, func(t *testing.T, f *fixture) {
		const home, attacker = "203.0.113.7", "198.51.100.1"
		f.want(t, "alice", password, home, "", 1)
		f.want(t, "alice", password, home, "", 0)
		for i := range DefaultPairLimit {
			f.want(t, "alice", fmt.Sprintf("guess-%d", i), attacker, tierpix.EUNAUTHORIZED, 1)
		}
		// The memo of home's success is no oracle at the attacker's address.
		f.want(t, "alice", password, attacker, tierpix.ETOOMANY, 0)
		f.want(t, "alice", password, home, "", 0)

		f.clock.Advance(DefaultMemoTTL)
		f.want(t, "alice", password, home, "", 1)

		f.s.Forget("ALICE")
		f.want(t, "alice", password, home, "", 1)

		// SignIn, the form's, always checks.
		before := f.s.Stats().PasswordChecks
		if _, err := f.s.SignIn(t.Context(), "alice", password, home); err != nil {
			t.Fatalf("SignIn: %v", err)
		}
		if n := f.s.Stats().PasswordChecks - before; n != 1 {
			t.Errorf("SignIn after Authenticate: got %d password checks, want 1", n)
		}
	})
}

// TestBcryptBudget: with every slot taken, an attempt waits BcryptWait and is refused with
// Retry-After, running no bcrypt; once a slot is free it goes through.
func TestBcryptBudget(t *testing.T) {
	each(t, Config{BcryptSlots: 1, BcryptWait: 10 * time.Millisecond}, func(t *testing.T, f *fixture) {
		f.s.slots <- struct{}{}
		_, err := f.s.SignIn(t.Context(), "alice", password, "203.0.113.7")
		if code := tierpix.ErrorCode(err); code != tierpix.EUNAVAILABLE {
			t.Fatalf("with no slot: got %q (%v), want %q", code, err, tierpix.EUNAVAILABLE)
		}
		if ra := tierpix.ErrorRetryAfter(err); ra <= 0 {
			t.Errorf("Retry-After: got %s, want positive", ra)
		}
		if st := f.s.Stats(); st.PasswordChecks != 0 || st.Busy != 1 {
			t.Errorf("Stats: got %+v, want no password checks and 1 busy", st)
		}
		<-f.s.slots
		f.want(t, "alice", password, "203.0.113.7", "", 1)
		if n := len(f.s.slots); n != 0 {
			t.Errorf("slots taken after the check: got %d, want 0", n)
		}
	})
}

// TestBcryptQueue: behind BcryptQueue waiting attempts, the next is refused at once.
func TestBcryptQueue(t *testing.T) {
	each(t, Config{BcryptSlots: 1, BcryptQueue: 1, BcryptWait: time.Minute}, func(t *testing.T, f *fixture) {
		f.s.slots <- struct{}{}
		first := make(chan error, 1)
		go func() {
			_, err := f.s.SignIn(context.Background(), "alice", password, "203.0.113.7")
			first <- err
		}()
		deadline := time.Now().Add(10 * time.Second)
		for f.s.waiting.Load() != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("the first attempt did not start waiting within 10s")
			}
			time.Sleep(time.Millisecond)
		}
		second := make(chan error, 1)
		go func() {
			_, err := f.s.SignIn(context.Background(), "alice", password, "203.0.113.8")
			second <- err
		}()
		select {
		case err := <-second:
			if code := tierpix.ErrorCode(err); code != tierpix.EUNAVAILABLE {
				t.Errorf("past the queue: got %q (%v), want %q", code, err, tierpix.EUNAVAILABLE)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("past the queue: still waiting after 10s, want refused at once")
		}
		<-f.s.slots
		if err := <-first; err != nil {
			t.Errorf("the waiting attempt once the slot is free: got %v, want success", err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{name: "defaults", cfg: Config{}},
		{name: "negative limit", cfg: Config{PairLimit: -1}, wantErr: true},
		{name: "short window", cfg: Config{Window: time.Millisecond}, wantErr: true},
		{name: "negative slots", cfg: Config{BcryptSlots: -1}, wantErr: true},
		{name: "negative wait", cfg: Config{BcryptWait: -time.Second}, wantErr: true},
		{name: "bcrypt cost too low", cfg: Config{BcryptCost: 2}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate: got %v, want error %t", err, tt.wantErr)
			}
		})
	}
}

// TestHashPasswordBudget: setting a password takes a bcrypt slot like a check does.
func TestHashPasswordBudget(t *testing.T) {
	each(t, Config{BcryptSlots: 1, BcryptWait: 10 * time.Millisecond}, func(t *testing.T, f *fixture) {
		if _, err := f.s.HashPassword(t.Context(), "short", bcrypt.MinCost); tierpix.ErrorCode(err) != tierpix.EINVALID {
			t.Fatalf("a short password: got %v, want %q", err, tierpix.EINVALID)
		}
		f.s.slots <- struct{}{}
		if _, err := f.s.HashPassword(t.Context(), "a-long-password", bcrypt.MinCost); tierpix.ErrorCode(err) != tierpix.EUNAVAILABLE {
			t.Fatalf("with no slot: got %v, want %q", err, tierpix.EUNAVAILABLE)
		}
		<-f.s.slots
		h, err := f.s.HashPassword(t.Context(), "a-long-password", bcrypt.MinCost)
		if err != nil || bcrypt.CompareHashAndPassword([]byte(h), []byte("a-long-password")) != nil {
			t.Fatalf("with a slot: got %q, %v; want a hash of the password", h, err)
		}
		if n := len(f.s.slots); n != 0 {
			t.Errorf("slots taken after hashing: got %d, want 0", n)
		}
	})
}
