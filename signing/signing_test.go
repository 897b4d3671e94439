package signing_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tierpix/tierpix"

	"github.com/tierpix/tierpix/signing"
)

// Fixed keys, so failures reproduce and the known-answer test pins the format.
var (
	keyA = []byte("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	keyB = []byte("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
	keyC = []byte("ccccccccccccccccccccccccccccccccccccccccccc")
)

// now is the clock of every test: expiring links below expire after it or before it.
var now = time.Unix(1_700_000_000, 0)

const testID = "abcdefghijklmnopqrstuvwx" // like the store's 24-char base32 ids

func newSigner(t testing.TB, keys ...[]byte) *signing.Signer {
	t.Helper()
	s, err := signing.New(keys)
	if err != nil {
		t.Fatalf("New: got error %v, want nil", err)
	}
	return s
}

// sign computes a signature independently of the package, from the documented canonical
// string, so the format other services or tools might rely on cannot drift unnoticed.
func sign(key []byte, id, variant, exp string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("tierpix/v1\n" + id + "\n" + variant + "\n" + exp))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func TestVariant(t *testing.T) {
	tests := []struct {
		name    string
		variant signing.Variant
		want    string
	}{
		{name: "original", variant: signing.Original, want: "original"},
		{name: "smallest", variant: signing.Thumbnail(1), want: "h1"},
		{name: "typical", variant: signing.Thumbnail(200), want: "h200"},
		{name: "largest", variant: signing.Thumbnail(signing.MaxHeight), want: "h10000"},
		{name: "webp", variant: signing.ThumbnailAs(200, tierpix.FormatWebP), want: "h200.webp"},
		{name: "largest webp", variant: signing.ThumbnailAs(signing.MaxHeight, tierpix.FormatWebP), want: "h10000.webp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.variant.String(); got != tt.want {
				t.Errorf("String: got %q, want %q", got, tt.want)
			}
			got, err := signing.ParseVariant(tt.want)
			if err != nil {
				t.Fatalf("ParseVariant(%q): got error %v, want nil", tt.want, err)
			}
			if got != tt.variant {
				t.Errorf("ParseVariant(%q): got %+v, want %+v", tt.want, got, tt.variant)
			}
			if err := tt.variant.Validate(); err != nil {
				t.Errorf("Validate: got %v, want nil", err)
			}
		})
	}
}

func TestParseVariantMalformed(t *testing.T) {
	tests := []struct {
		name    string
		segment string
	}{
		{name: "empty", segment: ""},
		{name: "bare h", segment: "h"},
		{name: "zero", segment: "h0"},
		{name: "leading zero", segment: "h0200"},
		{name: "too high", segment: "h10001"},
		{name: "overflow", segment: "h99999999999999999999999"},
		{name: "negative", segment: "h-200"},
		{name: "plus", segment: "h+200"},
		{name: "upper case", segment: "H200"},
		{name: "width", segment: "w200"},
		{name: "no prefix", segment: "200"},
		{name: "trailing junk", segment: "h200x"},
		{name: "space", segment: "h 200"},
		{name: "original upper", segment: "Original"},
		{name: "original suffix", segment: "originals"},
		{name: "original with a format", segment: "original.webp"},
		{name: "empty format", segment: "h200."},
		{name: "format without height", segment: "h.webp"},
		{name: "upper-case format", segment: "h200.WEBP"},
		{name: "format too long", segment: "h200.webpxx"},
		{name: "two formats", segment: "h200.webp.webp"},
		{name: "digit in format", segment: "h200.w3bp"},
		{name: "leading zero before a format", segment: "h0200.webp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := signing.ParseVariant(tt.segment)
			if !errors.Is(err, signing.ErrMalformed) {
				t.Errorf("ParseVariant(%q): got %+v, %v, want ErrMalformed", tt.segment, v, err)
			}
		})
	}
}

func TestLinkValidate(t *testing.T) {
	tests := []struct {
		name string
		link signing.Link
		ok   bool
	}{
		{name: "permanent original", link: signing.Link{ImageID: testID, Variant: signing.Original}, ok: true},
		{name: "expiring thumbnail", link: signing.Link{ImageID: "a234567abcdefghijklmnopq", Variant: signing.Thumbnail(1), Expires: 1}, ok: true},
		{name: "short id", link: signing.Link{ImageID: "a", Variant: signing.Thumbnail(200)}},
		{name: "digit 1 in id", link: signing.Link{ImageID: "1bcdefghijklmnopqrstuvwx", Variant: signing.Thumbnail(200)}},
		{name: "empty id", link: signing.Link{Variant: signing.Original}},
		{name: "long id", link: signing.Link{ImageID: strings.Repeat("a", 65), Variant: signing.Original}},
		{name: "upper case id", link: signing.Link{ImageID: "ABC", Variant: signing.Original}},
		{name: "slash in id", link: signing.Link{ImageID: "a/b", Variant: signing.Original}},
		{name: "newline in id", link: signing.Link{ImageID: "a\nh200", Variant: signing.Original}},
		{name: "negative height", link: signing.Link{ImageID: testID, Variant: signing.Thumbnail(-1)}},
		{name: "height too large", link: signing.Link{ImageID: testID, Variant: signing.Thumbnail(10001)}},
		{name: "negative expiry", link: signing.Link{ImageID: testID, Variant: signing.Original, Expires: -5}},
		{name: "webp thumbnail", link: signing.Link{ImageID: testID, Variant: signing.ThumbnailAs(200, tierpix.FormatWebP), Expires: 1}, ok: true},
		{name: "png thumbnail", link: signing.Link{ImageID: testID, Variant: signing.ThumbnailAs(200, tierpix.FormatPNG)}},
		{name: "webp original", link: signing.Link{ImageID: testID, Variant: signing.Variant{Format: tierpix.FormatWebP}}},
	}
	s := newSigner(t, keyA)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.link.Validate()
			if tt.ok {
				if err != nil {
					t.Fatalf("Validate: got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, signing.ErrMalformed) {
				t.Fatalf("Validate: got %v, want ErrMalformed", err)
			}
			// An invalid link must not sign into something Verify accepts.
			path := s.Path(tt.link)
			if l, err := s.Verify([]byte(path), now); err == nil || errors.Is(err, signing.ErrExpired) {
				t.Errorf("Verify(%q): got %+v, %v, want an error other than ErrExpired", path, l, err)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		link signing.Link
		want string // the path, with "SIG" for the signature
	}{
		{
			name: "permanent thumbnail",
			link: signing.Link{ImageID: testID, Variant: signing.Thumbnail(200)},
			want: "/i/SIG/" + testID + "/h200",
		},
		{
			name: "permanent original",
			link: signing.Link{ImageID: testID, Variant: signing.Original},
			want: "/i/SIG/" + testID + "/original",
		},
		{
			name: "expiring thumbnail",
			link: signing.Link{ImageID: testID, Variant: signing.Thumbnail(400), Expires: now.Unix() + 300},
			want: "/i/SIG/" + testID + "/h400/1700000300",
		},
		{
			name: "expiring original far ahead",
			link: signing.Link{ImageID: "222222222222222222222222", Variant: signing.Original, Expires: 1<<63 - 1},
			want: "/i/SIG/222222222222222222222222/original/9223372036854775807",
		},
		{
			name: "largest height",
			link: signing.Link{ImageID: strings.Repeat("7a", 12), Variant: signing.Thumbnail(10000), Expires: now.Unix() + 30000},
			want: "/i/SIG/" + strings.Repeat("7a", 12) + "/h10000/1700030000",
		},
	}
	s := newSigner(t, keyA)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := s.Path(tt.link)
			sig, _, ok := strings.Cut(strings.TrimPrefix(path, "/i/"), "/")
			if !ok {
				t.Fatalf("Path: got %q, want a path like %q", path, tt.want)
			}
			if got, want := strings.Replace(path, sig, "SIG", 1), tt.want; got != want {
				t.Errorf("Path: got %q, want %q", got, want)
			}
			if got := string(s.AppendPath([]byte("https://x"), tt.link)); got != "https://x"+path {
				t.Errorf("AppendPath: got %q, want %q", got, "https://x"+path)
			}
			got, err := s.Verify([]byte(path), now)
			if err != nil {
				t.Fatalf("Verify(%q): got error %v, want nil", path, err)
			}
			if got != tt.link {
				t.Errorf("Verify(%q): got %+v, want %+v", path, got, tt.link)
			}
		})
	}
}

// TestKnownAnswer pins the canonical string and the signature encoding.
func TestKnownAnswer(t *testing.T) {
	tests := []struct {
		name string
		link signing.Link
		want string
	}{
		{
			name: "permanent",
			link: signing.Link{ImageID: testID, Variant: signing.Thumbnail(200)},
			want: "/i/" + sign(keyA, testID, "h200", "0") + "/" + testID + "/h200",
		},
		{
			name: "expiring",
			link: signing.Link{ImageID: testID, Variant: signing.Original, Expires: 1700000300},
			want: "/i/" + sign(keyA, testID, "original", "1700000300") + "/" + testID + "/original/1700000300",
		},
		{
			name: "webp",
			link: signing.Link{ImageID: testID, Variant: signing.ThumbnailAs(400, tierpix.FormatWebP), Expires: 1700000300},
			want: "/i/" + sign(keyA, testID, "h400.webp", "1700000300") + "/" + testID + "/h400.webp/1700000300",
		},
	}
	s := newSigner(t, keyA, keyB)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.Path(tt.link); got != tt.want {
				t.Errorf("Path: got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	link := signing.Link{ImageID: testID, Variant: signing.Thumbnail(200)}
	oldPath := newSigner(t, keyA).Path(link)
	newPath := newSigner(t, keyB).Path(link)
	if oldPath == newPath {
		t.Fatalf("paths under two keys: got both %q, want them to differ", oldPath)
	}

	tests := []struct {
		name    string
		keys    [][]byte
		path    string
		wantErr error
	}{
		{name: "old link, old key only", keys: [][]byte{keyA}, path: oldPath},
		{name: "old link after rotation", keys: [][]byte{keyB, keyA}, path: oldPath},
		{name: "new link after rotation", keys: [][]byte{keyB, keyA}, path: newPath},
		{name: "old link, key in the middle", keys: [][]byte{keyC, keyA, keyB}, path: oldPath},
		{name: "old link after its key is removed", keys: [][]byte{keyB}, path: oldPath, wantErr: signing.ErrSignature},
		{name: "old link under unrelated keys", keys: [][]byte{keyB, keyC}, path: oldPath, wantErr: signing.ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSigner(t, tt.keys...)
			got, err := s.Verify([]byte(tt.path), now)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify: got error %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && got != link {
				t.Errorf("Verify: got %+v, want %+v", got, link)
			}
		})
	}

	// The signer signs with its first key.
	if got := newSigner(t, keyB, keyA).Path(link); got != newPath {
		t.Errorf("Path with [new, old]: got %q, want %q", got, newPath)
	}
}

// TestTamper changes, removes and inserts single bytes anywhere in valid paths: none of the
// results may verify.
func TestTamper(t *testing.T) {
	s := newSigner(t, keyA, keyB)
	links := []struct {
		name string
		link signing.Link
	}{
		{name: "permanent", link: signing.Link{ImageID: testID, Variant: signing.Thumbnail(200)}},
		{name: "expiring", link: signing.Link{ImageID: testID, Variant: signing.Original, Expires: now.Unix() + 3600}},
		{name: "webp", link: signing.Link{ImageID: testID, Variant: signing.ThumbnailAs(200, tierpix.FormatWebP)}},
	}
	check := func(t *testing.T, path []byte) {
		t.Helper()
		l, err := s.Verify(path, now)
		if !errors.Is(err, signing.ErrSignature) && !errors.Is(err, signing.ErrMalformed) {
			t.Fatalf("Verify(%q): got %+v, %v, want ErrSignature or ErrMalformed", path, l, err)
		}
	}
	for _, tt := range links {
		t.Run(tt.name, func(t *testing.T) {
			path := []byte(s.Path(tt.link))
			if _, err := s.Verify(path, now); err != nil {
				t.Fatalf("Verify(%q) before tampering: got %v, want nil", path, err)
			}
			for i := range path {
				for b := 0; b < 256; b++ {
					if byte(b) == path[i] {
						continue
					}
					changed := append([]byte(nil), path...)
					changed[i] = byte(b)
					check(t, changed)
				}
				check(t, append(append([]byte(nil), path[:i]...), path[i+1:]...))
			}
			for i := 0; i <= len(path); i++ {
				for _, b := range []byte("/0a9Az_-\x00") {
					inserted := append(append(append([]byte(nil), path[:i]...), b), path[i:]...)
					check(t, inserted)
				}
			}
		})
	}
}

// TestSwap moves components between two valid links: each mix must fail the signature.
func TestSwap(t *testing.T) {
	s := newSigner(t, keyA)
	a := strings.Split(s.Path(signing.Link{ImageID: "aaaa", Variant: signing.Thumbnail(200), Expires: now.Unix() + 600}), "/")
	b := strings.Split(s.Path(signing.Link{ImageID: "bbbb", Variant: signing.Thumbnail(400), Expires: now.Unix() + 9000}), "/")
	const sig, id, variant, exp = 2, 3, 4, 5 // after "", "i"

	tests := []struct {
		name  string
		parts []string
	}{
		{name: "id", parts: []string{"", "i", a[sig], b[id], a[variant], a[exp]}},
		{name: "variant", parts: []string{"", "i", a[sig], a[id], b[variant], a[exp]}},
		{name: "exp", parts: []string{"", "i", a[sig], a[id], a[variant], b[exp]}},
		{name: "sig", parts: []string{"", "i", b[sig], a[id], a[variant], a[exp]}},
		{name: "id and variant", parts: []string{"", "i", a[sig], a[id], a[exp], a[variant]}},
		{name: "exp dropped", parts: []string{"", "i", a[sig], a[id], a[variant]}},
		{name: "exp to zero-padded", parts: []string{"", "i", a[sig], a[id], a[variant], "0" + a[exp]}},
		{name: "permanent made expiring", parts: []string{"", "i", strings.Split(s.Path(signing.Link{ImageID: "aaaa", Variant: signing.Thumbnail(200)}), "/")[sig], a[id], a[variant], a[exp]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := strings.Join(tt.parts, "/")
			l, err := s.Verify([]byte(path), now)
			if !errors.Is(err, signing.ErrSignature) && !errors.Is(err, signing.ErrMalformed) {
				t.Errorf("Verify(%q): got %+v, %v, want ErrSignature or ErrMalformed", path, l, err)
			}
		})
	}
}

func TestExpiry(t *testing.T) {
	s := newSigner(t, keyA)
	exp := now.Unix() + 300
	link := signing.Link{ImageID: testID, Variant: signing.Thumbnail(200), Expires: exp}
	path := []byte(s.Path(link))
	at := time.Unix(exp, 0)

	tests := []struct {
		name    string
		now     time.Time
		wantErr error
	}{
		{name: "long before", now: now},
		{name: "one second before", now: at.Add(-time.Second)},
		{name: "one nanosecond before", now: at.Add(-time.Nanosecond)},
		{name: "exactly at expiry", now: at, wantErr: signing.ErrExpired},
		{name: "just after", now: at.Add(time.Nanosecond), wantErr: signing.ErrExpired},
		{name: "long after", now: at.Add(24 * time.Hour), wantErr: signing.ErrExpired},
		{name: "other time zone at expiry", now: at.In(time.FixedZone("x", 5*3600)), wantErr: signing.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Verify(path, tt.now)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify at %v: got error %v, want %v", tt.now, err, tt.wantErr)
			}
			if got != link {
				t.Errorf("Verify at %v: got %+v, want %+v", tt.now, got, link)
			}
		})
	}

	// Permanent links never expire.
	perm := []byte(s.Path(signing.Link{ImageID: testID, Variant: signing.Original}))
	if _, err := s.Verify(perm, time.Unix(1<<62, 0)); err != nil {
		t.Errorf("Verify permanent link far in the future: got %v, want nil", err)
	}
}

// TestFormatTamper checks that a link's format suffix is covered by its signature: adding,
// removing or changing it gives ErrSignature (403 at the origin), not another image format
// and not a malformed link (404).
func TestFormatTamper(t *testing.T) {
	s := newSigner(t, keyA)
	plain := s.Path(signing.Link{ImageID: testID, Variant: signing.Thumbnail(200)})
	webp := s.Path(signing.Link{ImageID: testID, Variant: signing.ThumbnailAs(200, tierpix.FormatWebP), Expires: now.Unix() + 600})
	if l, err := s.Verify([]byte(webp), now); err != nil || l.Variant.Format != tierpix.FormatWebP || l.Variant.Height != 200 {
		t.Fatalf("Verify(%q): got %+v, %v, want the WebP variant of h200", webp, l, err)
	}
	for _, path := range []string{
		plain + ".webp",
		strings.Replace(webp, "/h200.webp/", "/h200/", 1),
		strings.Replace(webp, "/h200.webp/", "/h200.png/", 1),
		strings.Replace(webp, "/h200.webp/", "/h200.avif/", 1),
		strings.Replace(webp, "/h200.webp/", "/h200.jpeg/", 1),
		strings.Replace(webp, "/h200.webp/", "/h400.webp/", 1),
	} {
		if l, err := s.Verify([]byte(path), now); !errors.Is(err, signing.ErrSignature) {
			t.Errorf("Verify(%q): got %+v, %v, want ErrSignature", path, l, err)
		}
	}
}

// TestErrorPrecedence checks that the signature is decided before expiry: a forged link must
// not learn, or tell a client, that it would have expired.
func TestErrorPrecedence(t *testing.T) {
	s := newSigner(t, keyA)
	expired := s.Path(signing.Link{ImageID: testID, Variant: signing.Thumbnail(200), Expires: now.Unix() - 10})
	other := newSigner(t, keyB).Path(signing.Link{ImageID: testID, Variant: signing.Thumbnail(200), Expires: now.Unix() - 10})

	tests := []struct {
		name    string
		path    string
		wantErr error
	}{
		{name: "expired", path: expired, wantErr: signing.ErrExpired},
		{name: "expired with tampered id", path: strings.Replace(expired, testID, "x"+testID[1:], 1), wantErr: signing.ErrSignature},
		{name: "expired with tampered variant", path: strings.Replace(expired, "/h200/", "/h400/", 1), wantErr: signing.ErrSignature},
		{name: "expired with tampered expiry", path: strings.Replace(expired, fmt.Sprint(now.Unix()-10), fmt.Sprint(now.Unix()-11), 1), wantErr: signing.ErrSignature},
		{name: "expired under an unknown key", path: other, wantErr: signing.ErrSignature},
		{name: "expired and malformed", path: expired + "/", wantErr: signing.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Verify([]byte(tt.path), now); !errors.Is(err, tt.wantErr) {
				t.Errorf("Verify(%q): got %v, want %v", tt.path, err, tt.wantErr)
			}
		})
	}
}

func TestVerifyMalformed(t *testing.T) {
	s := newSigner(t, keyA)
	sig := sign(keyA, testID, "h200", "0")
	good := "/i/" + sig + "/" + testID + "/h200"
	if _, err := s.Verify([]byte(good), now); err != nil {
		t.Fatalf("Verify(%q): got %v, want nil", good, err)
	}
	expSig := sign(keyA, testID, "h200", "1700000300")

	tests := []struct {
		name string
		path string
	}{
		{name: "empty", path: ""},
		{name: "root", path: "/"},
		{name: "prefix only", path: "/i/"},
		{name: "no leading slash", path: good[1:]},
		{name: "other prefix", path: "/x" + good[2:]},
		{name: "upper case prefix", path: "/I" + good[2:]},
		{name: "double slash after prefix", path: "/i/" + good[2:]},
		{name: "double slash inside", path: strings.Replace(good, "/h200", "//h200", 1)},
		{name: "trailing slash", path: good + "/"},
		{name: "query", path: good + "?x=1"},
		{name: "fragment", path: good + "#x"},
		{name: "two segments", path: "/i/" + sig + "/" + testID},
		{name: "extra segment", path: "/i/" + expSig + "/" + testID + "/h200/1700000300/x"},
		{name: "empty sig", path: "/i//" + testID + "/h200"},
		{name: "short sig", path: "/i/" + sig[1:] + "/" + testID + "/h200"},
		{name: "long sig", path: "/i/" + sig + "A/" + testID + "/h200"},
		{name: "padded sig", path: "/i/" + sig + "=/" + testID + "/h200"},
		{name: "std base64 sig", path: "/i/" + sig[:42] + "+/" + testID + "/h200"},
		{name: "newline in sig", path: "/i/" + sig[:42] + "\n/" + testID + "/h200"},
		{name: "empty id", path: "/i/" + sig + "//h200"},
		{name: "upper case id", path: "/i/" + sig + "/" + strings.ToUpper(testID) + "/h200"},
		{name: "long id", path: "/i/" + sig + "/" + strings.Repeat("a", 65) + "/h200"},
		{name: "dot id", path: "/i/" + sig + "/../h200"},
		{name: "percent id", path: "/i/" + sig + "/a%2Fb/h200"},
		{name: "empty variant", path: "/i/" + sig + "/" + testID + "/"},
		{name: "bad variant", path: "/i/" + sig + "/" + testID + "/w200"},
		{name: "zero height", path: "/i/" + sig + "/" + testID + "/h0"},
		{name: "leading zero height", path: "/i/" + sig + "/" + testID + "/h0200"},
		{name: "height too large", path: "/i/" + sig + "/" + testID + "/h10001"},
		{name: "empty exp", path: good + "/"},
		{name: "zero exp", path: good + "/0"},
		{name: "leading zero exp", path: "/i/" + expSig + "/" + testID + "/h200/01700000300"},
		{name: "negative exp", path: good + "/-1"},
		{name: "plus exp", path: good + "/+1700000300"},
		{name: "exp overflow", path: good + "/9223372036854775808"},
		{name: "exp too many digits", path: good + "/12345678901234567890"},
		{name: "exp with letters", path: good + "/17e9"},
		{name: "exp with space", path: good + "/1700000300 "},
		{name: "very long", path: good + "/" + strings.Repeat("1", 1<<16)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := s.Verify([]byte(tt.path), now)
			if !errors.Is(err, signing.ErrMalformed) {
				t.Errorf("Verify(%q): got %+v, %v, want ErrMalformed", tt.path, l, err)
			}
			if l != (signing.Link{}) {
				t.Errorf("Verify(%q): got link %+v, want the zero link", tt.path, l)
			}
		})
	}
}

func TestNew(t *testing.T) {
	short := []byte(strings.Repeat("k", signing.MinKeyLength-1))
	tests := []struct {
		name    string
		keys    [][]byte
		wantErr string // substring; "" means success
	}{
		{name: "one key", keys: [][]byte{keyA}},
		{name: "shortest key", keys: [][]byte{[]byte(strings.Repeat("k", signing.MinKeyLength))}},
		{name: "nil", keys: nil, wantErr: "no signing key"},
		{name: "empty", keys: [][]byte{}, wantErr: "no signing key"},
		{name: "short first key", keys: [][]byte{short, keyA}, wantErr: "key 1 is 31 bytes"},
		{name: "short second key", keys: [][]byte{keyA, short}, wantErr: "key 2 is 31 bytes"},
		{name: "empty key", keys: [][]byte{keyA, {}}, wantErr: "key 2 is 0 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := signing.New(tt.keys)
			if tt.wantErr == "" {
				if err != nil || s == nil {
					t.Fatalf("New: got %v, %v, want a signer", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New: got error %v, want one containing %q", err, tt.wantErr)
			}
			if s != nil {
				t.Errorf("New: got signer %v with error, want nil", s)
			}
		})
	}
}

// TestNewCopiesKeys makes sure a caller reusing its buffers cannot change a live signer's keys.
func TestNewCopiesKeys(t *testing.T) {
	key := append([]byte(nil), keyA...)
	s := newSigner(t, key)
	link := signing.Link{ImageID: testID, Variant: signing.Thumbnail(200)}
	before := s.Path(link)
	for i := range key {
		key[i] = 'x'
	}
	if got := s.Path(link); got != before {
		t.Errorf("Path after the caller changed its key: got %q, want %q", got, before)
	}
	if _, err := s.Verify([]byte(before), now); err != nil {
		t.Errorf("Verify after the caller changed its key: got %v, want nil", err)
	}
}

func TestGenerateKey(t *testing.T) {
	k1, err := signing.GenerateKey()
	if err != nil {
		t.Fatalf("GenerateKey: got error %v, want nil", err)
	}
	k2, err := signing.GenerateKey()
	if err != nil {
		t.Fatalf("GenerateKey: got error %v, want nil", err)
	}
	if k1 == k2 {
		t.Errorf("two generated keys: got both %q, want them to differ", k1)
	}
	if len(k1) != 43 {
		t.Errorf("key length: got %d, want 43", len(k1))
	}
	raw, err := base64.RawURLEncoding.DecodeString(k1)
	if err != nil || len(raw) != 32 {
		t.Errorf("decoded key: got %d bytes, %v, want 32 bytes", len(raw), err)
	}
	keys, err := signing.ParseKeys(k1 + "," + k2)
	if err != nil {
		t.Fatalf("ParseKeys of generated keys: got error %v, want nil", err)
	}
	if len(keys) != 2 || string(keys[0]) != k1 || string(keys[1]) != k2 {
		t.Errorf("ParseKeys of generated keys: got %q, want [%q %q]", keys, k1, k2)
	}
	if _, err := signing.New(keys); err != nil {
		t.Errorf("New with generated keys: got %v, want nil", err)
	}
}

func TestParseKeys(t *testing.T) {
	a, b := string(keyA), string(keyB)
	short := "tooshort-secret"
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{name: "one", in: a, want: []string{a}},
		{name: "two", in: a + "," + b, want: []string{a, b}},
		{name: "spaces", in: "  " + a + " ,\t" + b + "\n", want: []string{a, b}},
		{name: "empty entries", in: "," + a + ",, ," + b + ",", want: []string{a, b}},
		{name: "inner spaces kept", in: "x " + a, want: []string{"x " + a}},
		{name: "empty", in: "", wantErr: "no signing key"},
		{name: "only commas and spaces", in: " , ,", wantErr: "no signing key"},
		{name: "short first", in: short + "," + a, wantErr: "key 1 is 15 bytes"},
		{name: "short second after empty entry", in: a + ",," + short, wantErr: "key 2 is 15 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := signing.ParseKeys(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseKeys: got %q, %v, want an error containing %q", got, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), short) || strings.Contains(err.Error(), a) {
					t.Errorf("ParseKeys error: got %q, want no key text in it", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKeys: got error %v, want nil", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ParseKeys: got %q, want %q", got, tt.want)
			}
			for i := range got {
				if string(got[i]) != tt.want[i] {
					t.Errorf("key %d: got %q, want %q", i+1, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestConcurrent signs and verifies from many goroutines with two keys; run with -race it
// checks that the pooled HMAC states are never shared.
func TestConcurrent(t *testing.T) {
	s := newSigner(t, keyA, keyB)
	old := newSigner(t, keyB)
	const workers, rounds = 8, 200
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for i := range rounds {
				l := signing.Link{ImageID: "img" + strings.Repeat(string(rune('a'+w)), 21), Variant: signing.Thumbnail(1 + i), Expires: now.Unix() + int64(i) + 1}
				signer := s
				if i%2 == 1 {
					signer = old
				}
				buf = signer.AppendPath(buf[:0], l)
				got, err := s.Verify(buf, now)
				if err != nil || got != l {
					errs <- fmt.Errorf("Verify(%q): got %+v, %v, want %+v", buf, got, err, l)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestAppendPathAllocs(t *testing.T) {
	s := newSigner(t, keyA)
	l := signing.Link{ImageID: testID, Variant: signing.Thumbnail(200), Expires: now.Unix() + 300}
	buf := make([]byte, 0, 256)
	s.AppendPath(buf, l) // fill the pool
	got := testing.AllocsPerRun(1000, func() { buf = s.AppendPath(buf[:0], l) })
	// Under the race detector sync.Pool drops a quarter of what is put back at random, so
	// some calls build a fresh HMAC (a handful of allocations); still far below one per call.
	want := 0.0
	if raceEnabled {
		want = 4
	}
	t.Logf("AppendPath allocations: %v per call", got)
	if got > want {
		t.Errorf("AppendPath allocations: got %v per call, want at most %v", got, want)
	}
}

func BenchmarkAppendPath(b *testing.B) {
	s := newSigner(b, keyA, keyB)
	l := signing.Link{ImageID: testID, Variant: signing.Thumbnail(200)}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = s.AppendPath(buf[:0], l)
	}
}

func BenchmarkVerify(b *testing.B) {
	link := signing.Link{ImageID: testID, Variant: signing.Thumbnail(200), Expires: now.Unix() + 300}
	benchmarks := []struct {
		name string
		keys [][]byte
		path string
	}{
		{name: "one key", keys: [][]byte{keyA}, path: newSigner(b, keyA).Path(link)},
		{name: "two keys", keys: [][]byte{keyA, keyB}, path: newSigner(b, keyB).Path(link)},
		{name: "bad signature", keys: [][]byte{keyA}, path: newSigner(b, keyC).Path(link)},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			s := newSigner(b, bm.keys...)
			path := []byte(bm.path)
			b.ReportAllocs()
			for b.Loop() {
				s.Verify(path, now)
			}
		})
	}
}

// BenchmarkHMACNew is the alternative to pooling HMAC states, kept to show why they are pooled.
func BenchmarkHMACNew(b *testing.B) {
	msg := []byte("tierpix/v1\n" + testID + "\nh200\n0")
	b.ReportAllocs()
	for b.Loop() {
		m := hmac.New(sha256.New, keyA)
		m.Write(msg)
		m.Sum(nil)
	}
}

func TestDeriveKey(t *testing.T) {
	a, b := newSigner(t, keyA), newSigner(t, keyB)
	k := a.DeriveKey("cursor")
	tests := []struct {
		name string
		got  []byte
		same bool
	}{
		{name: "same key and purpose", got: newSigner(t, keyA, keyB).DeriveKey("cursor"), same: true},
		{name: "other purpose", got: a.DeriveKey("other"), same: false},
		{name: "other signing key", got: b.DeriveKey("cursor"), same: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.got) != 32 {
				t.Fatalf("got %d bytes, want 32", len(tt.got))
			}
			if same := string(tt.got) == string(k); same != tt.same {
				t.Fatalf("got same=%v, want %v", same, tt.same)
			}
		})
	}
}
