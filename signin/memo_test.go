package signin

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestMemoBounds(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c, err := newMemo(time.Minute, 10, func() time.Time { return now })
	if err != nil {
		t.Fatalf("newMemo: %v", err)
	}
	tests := []struct {
		name    string
		advance time.Duration
		want    bool
	}{
		{name: "fresh", advance: 0, want: true},
		{name: "before expiry", advance: 59 * time.Second, want: true},
		{name: "at expiry", advance: time.Minute, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			k := c.key("alice", "pw-"+tt.name, "192.0.2.1")
			c.remember(k, "alice", "hash")
			now = now.Add(tt.advance)
			if _, got := c.lookup(k); got != tt.want {
				t.Errorf("lookup: got %t, want %t", got, tt.want)
			}
		})
	}

	t.Run("bounded", func(t *testing.T) {
		for i := range 100 {
			c.remember(c.key(fmt.Sprintf("user%d", i), "pw", "192.0.2.1"), fmt.Sprintf("user%d", i), "hash")
			if n := c.len(); n > 10 {
				t.Fatalf("after %d inserts: got %d entries, want at most 10", i+1, n)
			}
		}
	})

	t.Run("forget", func(t *testing.T) {
		k := c.key("Bob", "pw", "192.0.2.1")
		c.remember(k, "Bob", "hash")
		c.forget("bob")
		if _, ok := c.lookup(k); ok {
			t.Errorf("lookup after forget: got an entry, want none")
		}
	})

	t.Run("per address", func(t *testing.T) {
		if c.key("alice", "pw", "192.0.2.1") == c.key("alice", "pw", "192.0.2.2") {
			t.Errorf("keys of two addresses: got equal, want different")
		}
	})

	t.Run("salted per process", func(t *testing.T) {
		other, err := newMemo(time.Minute, 10, time.Now)
		if err != nil {
			t.Fatalf("newMemo: %v", err)
		}
		if c.key("alice", "pw", "192.0.2.1") == other.key("alice", "pw", "192.0.2.1") {
			t.Errorf("keys of two caches: got equal, want different salts")
		}
	})
}

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		peer    net.IP
		xff     []string
		want    string
	}{
		{name: "no proxies: the peer", peer: net.ParseIP("192.0.2.1"), xff: []string{"198.51.100.1"}, want: "192.0.2.1"},
		{name: "untrusted peer's header ignored", trusted: trusted, peer: net.ParseIP("192.0.2.1"), xff: []string{"198.51.100.1"}, want: "192.0.2.1"},
		{name: "trusted peer", trusted: trusted, peer: net.ParseIP("10.0.0.1"), xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "client's own entries ignored", trusted: trusted, peer: net.ParseIP("10.0.0.1"), xff: []string{"6.6.6.6, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "chain of proxies", trusted: trusted, peer: net.ParseIP("10.0.0.1"), xff: []string{"6.6.6.6, 198.51.100.1, 10.0.0.9"}, want: "198.51.100.1"},
		{name: "several headers", trusted: trusted, peer: net.ParseIP("10.0.0.1"), xff: []string{"6.6.6.6", "198.51.100.1"}, want: "198.51.100.1"},
		{name: "no header: the proxy", trusted: trusted, peer: net.ParseIP("10.0.0.1"), want: "10.0.0.1"},
		{name: "all trusted: the leftmost", trusted: trusted, peer: net.ParseIP("10.0.0.1"), xff: []string{"10.0.0.3, 10.0.0.2"}, want: "10.0.0.3"},
		{name: "junk ends the chain", trusted: trusted, peer: net.ParseIP("10.0.0.1"), xff: []string{"junk, 10.0.0.2"}, want: "10.0.0.2"},
		{name: "with ports", trusted: trusted, peer: net.ParseIP("10.0.0.1"), xff: []string{"[2001:db8::1]:443, 198.51.100.1:1234"}, want: "198.51.100.1"},
		{name: "IPv6", trusted: trusted, peer: net.ParseIP("::1"), xff: []string{"2001:db8::1"}, want: "2001:db8::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Service{cfg: Config{TrustedProxies: tt.trusted}}
			var xff [][]byte
			for _, h := range tt.xff {
				xff = append(xff, []byte(h))
			}
			if got := s.ClientAddr(tt.peer, xff); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
