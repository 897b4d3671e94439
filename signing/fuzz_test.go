package signing_test

import (
	"errors"
	"testing"
	"time"

	"github.com/tierpix/tierpix/signing"
)

// FuzzVerify feeds arbitrary bytes to Verify. It must never panic, must answer with one of
// its three errors, and whatever it accepts (valid or merely expired) must be exactly the path
// Path makes for the link it returned under one of the keys: there is one spelling of each
// link. The verifier holds two keys, as during a rotation.
func FuzzVerify(f *testing.F) {
	s := newSigner(f, keyA, keyB)
	cur, old := newSigner(f, keyA), newSigner(f, keyB)
	for _, l := range []signing.Link{
		{ImageID: testID, Variant: signing.Thumbnail(200)},
		{ImageID: testID, Variant: signing.Original},
		{ImageID: "222222222222222222222222", Variant: signing.Thumbnail(10000), Expires: now.Unix() + 300},
		{ImageID: testID, Variant: signing.Thumbnail(1), Expires: now.Unix() - 300},
		{ImageID: "zzzzzzzzzzzzzzzzzzzzzzzz", Variant: signing.Original, Expires: 1<<63 - 1},
	} {
		f.Add([]byte(cur.Path(l)))
		f.Add([]byte(old.Path(l)))
	}
	for _, p := range []string{
		"", "/", "/i/", "/i//a/h1", "/i/x/y/z/1/2",
		"/i/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/abc/h0200",
		"/i/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/abc/original/0",
		"/i/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/abc/h200/9223372036854775808",
	} {
		f.Add([]byte(p))
	}

	f.Fuzz(func(t *testing.T, path []byte) {
		in := string(path) // Verify must not keep or change path; compare against a copy
		l, err := s.Verify(path, now)
		switch {
		case err == nil, errors.Is(err, signing.ErrExpired):
			if err := l.Validate(); err != nil {
				t.Fatalf("Verify(%q) accepted %+v: Validate got %v, want nil", in, l, err)
			}
			if a, b := cur.Path(l), old.Path(l); a != in && b != in {
				t.Fatalf("Verify(%q) accepted %+v: Path got %q and %q, want the input", in, l, a, b)
			}
			if (err != nil) != (l.Expires != 0 && now.Unix() >= l.Expires) {
				t.Fatalf("Verify(%q): got error %v for expiry %d at %d", in, err, l.Expires, now.Unix())
			}
		case errors.Is(err, signing.ErrSignature), errors.Is(err, signing.ErrMalformed):
			if l != (signing.Link{}) {
				t.Fatalf("Verify(%q): got link %+v with %v, want the zero link", in, l, err)
			}
		default:
			t.Fatalf("Verify(%q): got error %v, want nil, ErrExpired, ErrSignature or ErrMalformed", in, err)
		}
		if string(path) != in {
			t.Fatalf("Verify changed its input: got %q, want %q", path, in)
		}
	})
}

// FuzzPathRoundTrip signs arbitrary links: every valid one must verify to itself, and no
// invalid one may produce a path that verifies.
func FuzzPathRoundTrip(f *testing.F) {
	s := newSigner(f, keyA)
	f.Add(testID, 200, int64(0))
	f.Add("a", 0, now.Unix()+1) // too short for an id
	f.Add("a/b", 10001, int64(-1))
	f.Add("a\nh200", 0, int64(0))
	f.Fuzz(func(t *testing.T, id string, height int, exp int64) {
		l := signing.Link{ImageID: id, Variant: signing.Thumbnail(height), Expires: exp}
		path := s.Path(l)
		got, err := s.Verify([]byte(path), time.Unix(0, 0))
		if l.Validate() != nil {
			if err == nil || errors.Is(err, signing.ErrExpired) {
				t.Fatalf("invalid link %+v signed to %q: Verify got %+v, %v, want an error", l, path, got, err)
			}
			return
		}
		if err != nil || got != l {
			t.Fatalf("Verify(Path(%+v)) = Verify(%q): got %+v, %v, want the link", l, path, got, err)
		}
	})
}
