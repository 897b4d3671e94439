// Package signin checks a username and password: the one rule behind the web UI's sign-in
// form and the API's Basic authentication.
//
// SignIn runs, in order: the throttle's counters (one query), the user (one query), bcrypt
// against the stored hash or, for an unknown user, a dummy hash of the same cost, then records
// the failure or the success. A throttled attempt answers ETOOMANY with Retry-After before any
// bcrypt, unknown usernames included, and whatever the password: the throttle leaks nothing.
//
// The throttle counts failures in the store, so every node sees the same counts, in fixed
// windows of Config.Window, under three keys:
//
//   - the account from one address ("user:alice addr:192.0.2.1"): PairLimit, so the owner's
//     own address is locked out only by failures from that address;
//   - the address, all accounts ("addr:192.0.2.1"): AddressLimit;
//   - the account, all addresses ("user:alice"): AccountLimit, which bounds the guesses an
//     account takes however many addresses guess. Addresses that signed in to the account
//     within KnownAddressAge are exempt from it, so a distributed guess cannot lock out an
//     owner who signs in from where they did before.
//
// The limits bound the guesses answered, however many run at once: an attempt's answer waits
// for the counts as they stand after it, so a failure past a limit, or a success once one is
// reached, answers 429 too. A success clears the account-and-address count only: one good
// password must not buy more guesses at other accounts from that address, nor reset what
// other addresses spent.
//
// bcrypt runs against a budget of BcryptSlots comparisons at once (half the cores by default);
// an attempt that finds no slot within BcryptWait, or finds BcryptQueue others waiting already,
// answers EUNAVAILABLE with Retry-After, so no flood of password checks can take every core.
//
// Authenticate, for credentials sent with every request, remembers a password verified from an
// address for MemoTTL (see memo), so a client sending Basic credentials with every request
// pays one bcrypt per MemoTTL and one query per request.
package signin

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/store"
	"golang.org/x/crypto/bcrypt"
)

// Defaults for the zero values of Config.
const (
	DefaultPairLimit       = 5
	DefaultAddressLimit    = 50
	DefaultAccountLimit    = 25
	DefaultWindow          = 15 * time.Minute
	DefaultKnownAddressAge = 30 * 24 * time.Hour
	DefaultMemoTTL         = 5 * time.Minute
	DefaultBcryptWait      = 2 * time.Second
	DefaultBcryptQueue     = 32
)

// memoSize bounds the memo. Each entry is about 150 bytes, so it stays under a few MiB however
// many clients use Basic authentication.
const memoSize = 10_000

// busyRetryAfter is the Retry-After of an attempt refused for want of a bcrypt slot: a
// comparison takes well under a second, so slots free up quickly.
const busyRetryAfter = time.Second

// Config holds the sign-in rule's settings. Zero values take the defaults.
type Config struct {
	PairLimit       int           // failures of one account from one address per Window; default 5
	AddressLimit    int           // failures from one address, all accounts, per Window; default 50
	AccountLimit    int           // failures of one account, all addresses, per Window; default 25
	Window          time.Duration // default 15m
	KnownAddressAge time.Duration // a sign-in this recent exempts its address from AccountLimit; default 30 days
	MemoTTL         time.Duration // how long a verified password is remembered; default 5m
	BcryptSlots     int           // bcrypt comparisons at once; default half the CPUs, at least 1
	BcryptQueue     int           // attempts waiting for a slot, beyond which they are refused at once; default 32
	BcryptWait      time.Duration // how long an attempt waits for a slot; default 2s
	BcryptCost      int           // cost of the dummy hash, as of real ones; default bcrypt.DefaultCost
	// TrustedProxies are the addresses whose X-Forwarded-For is believed (nginx in front);
	// the client address is the rightmost untrusted hop. Empty: the TCP peer is the client.
	TrustedProxies []netip.Prefix
	Now            func() time.Time
}

func (cfg Config) withDefaults() Config {
	if cfg.PairLimit == 0 {
		cfg.PairLimit = DefaultPairLimit
	}
	if cfg.AddressLimit == 0 {
		cfg.AddressLimit = DefaultAddressLimit
	}
	if cfg.AccountLimit == 0 {
		cfg.AccountLimit = DefaultAccountLimit
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.KnownAddressAge == 0 {
		cfg.KnownAddressAge = DefaultKnownAddressAge
	}
	if cfg.MemoTTL == 0 {
		cfg.MemoTTL = DefaultMemoTTL
	}
	if cfg.BcryptSlots == 0 {
		// Half the cores: a flood of password checks leaves the rest to serving images.
		cfg.BcryptSlots = max(1, runtime.NumCPU()/2)
	}
	if cfg.BcryptQueue == 0 {
		cfg.BcryptQueue = DefaultBcryptQueue
	}
	if cfg.BcryptWait == 0 {
		cfg.BcryptWait = DefaultBcryptWait
	}
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = bcrypt.DefaultCost
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg
}

// Validate reports the first setting that cannot work.
func (cfg Config) Validate() error {
	cfg = cfg.withDefaults()
	if cfg.PairLimit < 1 || cfg.AddressLimit < 1 || cfg.AccountLimit < 1 || cfg.Window < time.Second {
		return errors.New("signin: failure limits and window must be positive")
	}
	if cfg.KnownAddressAge < 0 || cfg.MemoTTL < 0 || cfg.BcryptWait < 0 || cfg.BcryptSlots < 1 || cfg.BcryptQueue < 1 {
		return errors.New("signin: ages, waits and slots must be positive")
	}
	if cfg.BcryptCost < bcrypt.MinCost || cfg.BcryptCost > bcrypt.MaxCost {
		return fmt.Errorf("signin: bcrypt cost %d must be between %d and %d", cfg.BcryptCost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	return nil
}

// Stats counts what the service did since New.
type Stats struct {
	PasswordChecks uint64 // bcrypt comparisons run, against real or dummy hashes
	Throttled      uint64 // attempts refused by the throttle, before bcrypt
	Busy           uint64 // attempts refused for want of a bcrypt slot
}

// Service checks passwords. It is safe for concurrent use.
type Service struct {
	cfg    Config
	st     *store.Store
	logger *slog.Logger
	memo   *memo
	// dummyHash is compared against when a username does not exist, so that an unknown user
	// costs the same bcrypt work, and answers alike, as a wrong password.
	dummyHash []byte
	slots     chan struct{}
	waiting   atomic.Int64 // attempts waiting for a slot

	checks, throttled, busy atomic.Uint64
}

// New returns the sign-in service over st.
func New(cfg Config, st *store.Store, logger *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if st == nil {
		return nil, errors.New("signin: store is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMemo(cfg.MemoTTL, memoSize, cfg.Now)
	if err != nil {
		return nil, err
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("not a password anyone has"), cfg.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("signin: make dummy hash: %w", err)
	}
	return &Service{
		cfg:       cfg,
		st:        st,
		logger:    logger,
		memo:      m,
		dummyHash: dummy,
		slots:     make(chan struct{}, cfg.BcryptSlots),
	}, nil
}

// Stats returns the counters so far.
func (s *Service) Stats() Stats {
	return Stats{PasswordChecks: s.checks.Load(), Throttled: s.throttled.Load(), Busy: s.busy.Load()}
}

func errBadCredentials() error {
	return tierpix.Errorf(tierpix.EUNAUTHORIZED, "The username or password is not valid.")
}

// Authenticate is SignIn for credentials sent with every request (HTTP Basic): a password
// verified from the same address within MemoTTL is accepted again without bcrypt and without
// the counters, at the cost of one query.
func (s *Service) Authenticate(ctx context.Context, username, password, addr string) (tierpix.Identity, error) {
	key := s.memo.key(username, password, addr)
	if hash, ok := s.memo.lookup(key); ok {
		// A hit needs no counters: it proves this address presented exactly this password for
		// the user's current hash within MemoTTL, so it is no guess for the throttle to bound,
		// and it tells nothing to a guesser at another address, whose keys it never matches.
		// The user is read anyway, so a changed password or a deleted user takes effect at
		// once on every node.
		id, err := s.st.FindUser(ctx, username)
		if err == nil && subtle.ConstantTimeCompare([]byte(hash), []byte(id.User.PasswordHash)) == 1 {
			return id, nil
		}
		if err != nil && tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
			return tierpix.Identity{}, fmt.Errorf("find user: %w", err)
		}
	}
	id, err := s.SignIn(ctx, username, password, addr)
	if err != nil {
		return tierpix.Identity{}, err
	}
	s.memo.remember(key, id.User.Username, id.User.PasswordHash)
	return id, nil
}

// SignIn returns the user whose username and password these are, trying from addr (the
// client address, see ClientAddr). Errors: EUNAUTHORIZED for a wrong username or password,
// ETOOMANY (with RetryAfter) when the throttle refuses the attempt, EUNAVAILABLE (with
// RetryAfter) when no bcrypt slot came free in time, and store errors as they are.
func (s *Service) SignIn(ctx context.Context, username, password, addr string) (tierpix.Identity, error) {
	a := s.newAttempt(username, addr)
	counts, err := s.st.LoginFailures(ctx, a.keys, s.cfg.Window)
	if err != nil {
		return tierpix.Identity{}, fmt.Errorf("count sign-in failures: %w", err)
	}
	// The account-wide count is looked at once the user is known: it spares known addresses.
	if over, err := s.over(ctx, a, counts[:min(len(counts), accountKey)], 0); err != nil {
		return tierpix.Identity{}, err
	} else if over {
		return tierpix.Identity{}, s.throttle()
	}

	hash := s.dummyHash
	var id tierpix.Identity
	if a.validName {
		id, err = s.st.FindUser(ctx, username)
		switch {
		case err == nil:
			hash, a.user = []byte(id.User.PasswordHash), &id
		case tierpix.ErrorCode(err) != tierpix.ENOTFOUND:
			return tierpix.Identity{}, fmt.Errorf("find user: %w", err)
		}
		if over, err := s.over(ctx, a, counts, 0); err != nil {
			return tierpix.Identity{}, err
		} else if over {
			return tierpix.Identity{}, s.throttle()
		}
	}

	match, err := s.compare(ctx, hash, password)
	if err != nil {
		return tierpix.Identity{}, err
	}
	// Attempts checked at once all pass the counts as they were, so the answer waits for the
	// counts as they are now: a failure past a limit, or a success once a limit is reached,
	// answers 429 as any further attempt would. So however many attempts run at once, no more
	// guesses per window than the limits allow are answered.
	if a.user == nil || !match {
		counts, err := s.st.RecordLoginFailure(ctx, a.keys, s.cfg.Window)
		if err != nil {
			return tierpix.Identity{}, fmt.Errorf("record sign-in failure: %w", err)
		}
		if over, err := s.over(ctx, a, counts, 1); err != nil {
			return tierpix.Identity{}, err
		} else if over {
			return tierpix.Identity{}, s.throttle()
		}
		return tierpix.Identity{}, errBadCredentials()
	}
	if counts, err = s.st.LoginFailures(ctx, a.keys, s.cfg.Window); err != nil {
		return tierpix.Identity{}, fmt.Errorf("count sign-in failures: %w", err)
	}
	if over, err := s.over(ctx, a, counts, 0); err != nil {
		return tierpix.Identity{}, err
	} else if over {
		return tierpix.Identity{}, s.throttle()
	}

	if err := s.st.ClearLoginFailures(ctx, a.keys[pairKey]); err != nil {
		s.logger.Warn("clear sign-in failures", "err", err)
	}
	if err := s.st.RecordSignInAddress(ctx, id.User.ID, addr); err != nil {
		s.logger.Warn("record sign-in address", "err", err)
	}
	return id, nil
}

// Indexes of an attempt's keys and limits.
const (
	addressKey = iota // "addr:<address>"
	pairKey           // "user:<lower name> addr:<address>"
	accountKey        // "user:<lower name>"
)

// attempt is one sign-in's keys and limits, and what is learnt about it on the way.
type attempt struct {
	addr      string
	validName bool
	keys      []string
	limits    []int
	user      *tierpix.Identity // once found
	known     *bool             // whether addr signed in to user recently, once asked
}

// newAttempt returns the counters of a sign-in. A username that cannot exist is not counted
// against an account, so junk cannot fill the failure table with keys; it is still counted
// against the address.
func (s *Service) newAttempt(username, addr string) *attempt {
	a := &attempt{
		addr:      addr,
		validName: tierpix.ValidateUsername(username) == nil,
		keys:      []string{"addr:" + addr},
		limits:    []int{s.cfg.AddressLimit},
	}
	if a.validName {
		account := "user:" + strings.ToLower(username)
		a.keys = append(a.keys, account+" addr:"+addr, account)
		a.limits = append(a.limits, s.cfg.PairLimit, s.cfg.AccountLimit)
	}
	return a
}

// over reports whether counts (of a.keys, in order) reach their limits: own is 1 when the
// counts include this attempt's own failure, 0 before any. The account-wide limit spares an
// address that signed in to the account within KnownAddressAge.
func (s *Service) over(ctx context.Context, a *attempt, counts []int, own int) (bool, error) {
	for i, n := range counts {
		if n-own < a.limits[i] {
			continue
		}
		if i != accountKey {
			return true, nil
		}
		if a.known == nil {
			known := false
			if a.user != nil {
				var err error
				known, err = s.st.SignedInFrom(ctx, a.user.User.ID, a.addr, s.cfg.Now().Add(-s.cfg.KnownAddressAge))
				if err != nil {
					return false, fmt.Errorf("find sign-in address: %w", err)
				}
			}
			a.known = &known
		}
		if !*a.known {
			return true, nil
		}
	}
	return false, nil
}

// throttle counts a refused attempt and returns its error: retry once the window is over,
// the longest the counts that refused it can last.
func (s *Service) throttle() error {
	s.throttled.Add(1)
	return &tierpix.Error{
		Code:       tierpix.ETOOMANY,
		Message:    "Too many failed sign-ins. Try again later.",
		RetryAfter: s.cfg.Window,
	}
}

// compare runs bcrypt within the budget of slots: it waits at most BcryptWait for one, behind
// at most BcryptQueue others.
func (s *Service) compare(ctx context.Context, hash []byte, password string) (bool, error) {
	if err := s.acquire(ctx); err != nil {
		return false, err
	}
	defer func() { <-s.slots }()
	s.checks.Add(1)
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	if err != nil && !errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) && !errors.Is(err, bcrypt.ErrPasswordTooLong) {
		s.logger.Warn("compare password hash", "err", err)
	}
	return err == nil, nil
}

// HashPassword checks a new password against the length rules and hashes it at cost, within
// the same bcrypt slots as the checks, so that setting passwords (the admin API's and UI's)
// cannot take every core either.
func (s *Service) HashPassword(ctx context.Context, password string, cost int) (string, error) {
	if err := tierpix.ValidatePassword(password); err != nil {
		return "", err
	}
	if err := s.acquire(ctx); err != nil {
		return "", err
	}
	defer func() { <-s.slots }()
	return store.HashPassword(password, cost)
}

// acquire takes a bcrypt slot, or answers why not.
func (s *Service) acquire(ctx context.Context) error {
	select {
	case s.slots <- struct{}{}:
		return nil
	default:
	}
	if s.waiting.Add(1) > int64(s.cfg.BcryptQueue) {
		s.waiting.Add(-1)
		return s.tooBusy()
	}
	defer s.waiting.Add(-1)
	t := time.NewTimer(s.cfg.BcryptWait)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-t.C:
		return s.tooBusy()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tooBusy counts an attempt refused for want of a bcrypt slot and returns its error.
func (s *Service) tooBusy() error {
	s.busy.Add(1)
	return tierpix.Unavailable(busyRetryAfter, "Too many sign-ins are being checked at once. Try again in a moment.")
}

// Forget drops what the memo holds for a user, after their password changed or they were
// deleted. The memo's hash check makes such entries harmless already; this is about not
// keeping a dead password's trace for a full MemoTTL.
func (s *Service) Forget(username string) { s.memo.forget(username) }

// ClientAddr is the address sign-in failures are counted against and sessions record: the TCP
// peer, or, when the peer is a trusted proxy, the rightmost X-Forwarded-For hop that is not
// one. Hops to the left of that one were written by the client and prove nothing.
func (s *Service) ClientAddr(peer net.IP, forwardedFor [][]byte) string {
	p, ok := netip.AddrFromSlice(peer)
	if !ok {
		return peer.String()
	}
	addr := p.Unmap()
	if !s.trusted(addr) {
		return addr.String()
	}
	var hops []string
	for _, h := range forwardedFor {
		hops = append(hops, strings.Split(string(h), ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(stripPort(strings.TrimSpace(hops[i])))
		if err != nil {
			// Trusted proxies append valid addresses only; junk here means the chain of trust
			// ends, and the last trusted hop is the best-known client.
			break
		}
		addr = hop.Unmap()
		if !s.trusted(addr) {
			break
		}
	}
	return addr.String()
}

// stripPort removes a port from "192.0.2.1:1234" or "[2001:db8::1]:1234", which some proxies
// write into X-Forwarded-For.
func stripPort(s string) string {
	if host, _, err := net.SplitHostPort(s); err == nil {
		return host
	}
	return s
}

func (s *Service) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// FromOtherSite reports whether a browser's Sec-Fetch-Site value says another site (or a
// sibling subdomain) made the request: anything but same-origin or none (typed in, or a
// bookmark). Without the header (old browsers, curl, API clients) it is false. Browsers send
// remembered Basic credentials and cookies with any site's form post, so state changes such
// requests make are refused.
func FromOtherSite(secFetchSite string) bool {
	switch strings.ToLower(secFetchSite) {
	case "", "same-origin", "none":
		return false
	}
	return true
}
