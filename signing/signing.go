// Package signing makes and verifies the HMAC-signed paths of image links.
//
// A link path is /i/{sig}/{id}/{variant} for a permanent link and
// /i/{sig}/{id}/{variant}/{exp} for one that expires at the Unix time exp (seconds). The
// signature is the unpadded base64url encoding of the full HMAC-SHA256, under the signer's key,
// of the canonical string
//
//	"tierpix/v1\n" + id + "\n" + variant + "\n" + exp
//
// with exp "0" for a permanent link. The canonical string is unambiguous because every
// component has a restricted alphabet without "\n" (ids are [a-z0-9], variants "original",
// "h<N>" or "h<N>.<format>", exp decimal digits), and Verify accepts only the one spelling of each component that
// Path produces: so a path verifies only if it is byte for byte the path Path makes for the
// link it carries. The "tierpix/v1" prefix keeps these MACs apart from anything else the same
// key might ever sign and lets the format change without old links verifying as new ones.
//
// The origin serves these paths without credentials, so the signature is the only thing
// between a guessed URL and an image: Verify parses strictly, compares MACs in constant time
// against every key, and decides expiry only after the signature holds, so that a tampered
// expired link reads as forged (403), not as expired (410).
package signing

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tierpix/tierpix"
)

// Errors returned by Verify. ErrMalformed: the path is not a link at all (404);
// ErrSignature: a link whose signature does not verify under any key (403);
// ErrExpired: a correctly signed link past its expiry (410).
var (
	ErrMalformed = errors.New("signing: malformed link")
	ErrSignature = errors.New("signing: bad signature")
	ErrExpired   = errors.New("signing: link expired")
)

// MaxHeight bounds a link's height like a tier's thumbnail heights. An image id is checked
// by tierpix.ValidImageID.
const MaxHeight = tierpix.MaxThumbnailHeight

const (
	pathPrefix      = "/i/"
	canonicalPrefix = "tierpix/v1\n"
	originalSegment = "original"

	// sigLength is the length of an unpadded base64url HMAC-SHA256.
	sigLength = (sha256.Size*8 + 5) / 6

	// maxFormatLength bounds a variant's format suffix ("webp"), so that a path that is not
	// a link is refused before any MAC is computed.
	maxFormatLength = 5
	// maxVariantLength is "h10000." and a format.
	maxVariantLength = len("h10000.") + maxFormatLength
	// maxExpLength is the number of decimal digits of the largest int64.
	maxExpLength = 19

	maxPathLength      = len(pathPrefix) + sigLength + 1 + tierpix.ImageIDLength + 1 + maxVariantLength + 1 + maxExpLength
	maxCanonicalLength = len(canonicalPrefix) + tierpix.ImageIDLength + 1 + maxVariantLength + 1 + maxExpLength
)

// sigEncoding is unpadded base64url. Signatures are compared in their encoded form, never
// decoded, so the decoder's leniencies (ignored newlines, non-zero trailing bits) cannot make
// two spellings of one signature.
var sigEncoding = base64.RawURLEncoding

// Variant names what a link serves: a thumbnail of a given height, or the original (Height 0).
// A thumbnail's Format is "" for the format the origin negotiates (the original's, or WebP
// for a client that accepts it), or a fixed format (tierpix.FormatWebP) whatever the client
// accepts, for caches that cannot vary on Accept. The format is part of the signed segment,
// so a link's format cannot be changed without breaking its signature.
type Variant struct {
	Height int
	Format string
}

// Original is the variant that serves the uploaded bytes.
var Original = Variant{}

// Thumbnail returns the variant for a thumbnail of height h in the negotiated format.
func Thumbnail(h int) Variant { return Variant{Height: h} }

// ThumbnailAs returns the variant for a thumbnail of height h always served in format
// (tierpix.FormatWebP).
func ThumbnailAs(h int, format string) Variant { return Variant{Height: h, Format: format} }

// IsOriginal reports whether v is the original.
func (v Variant) IsOriginal() bool { return v.Height == 0 }

// String returns the variant's path segment: "original", "h<height>" or
// "h<height>.<format>", e.g. "h200" or "h200.webp".
func (v Variant) String() string {
	return string(v.appendSegment(make([]byte, 0, maxVariantLength)))
}

// appendSegment appends the variant's path segment to dst.
func (v Variant) appendSegment(dst []byte) []byte {
	if v.IsOriginal() {
		dst = append(dst, originalSegment...)
	} else {
		dst = strconv.AppendInt(append(dst, 'h'), int64(v.Height), 10)
	}
	if v.Format != "" {
		dst = append(append(dst, '.'), v.Format...)
	}
	return dst
}

// Validate reports whether v can appear in a link: the original or a height of 1 to
// MaxHeight, and a format only on a thumbnail, only tierpix.FormatWebP (originals are
// never converted). The error wraps ErrMalformed.
func (v Variant) Validate() error {
	if v.Height < 0 || v.Height > MaxHeight {
		return fmt.Errorf("%w: height must be between 1 and %d", ErrMalformed, MaxHeight)
	}
	if v.Format != "" && (v.IsOriginal() || v.Format != tierpix.FormatWebP) {
		return fmt.Errorf("%w: only a thumbnail may name a format, and only %q", ErrMalformed, tierpix.FormatWebP)
	}
	return nil
}

// parseVariant parses a path segment made by String. It accepts only what String makes, so
// "h0200" or "h0" are refused rather than taken as other spellings of a valid variant.
//
// A suffix of up to maxFormatLength lower-case letters parses whatever it names, so that a
// link whose format was edited ("h200.webp" to "h200.png") fails on its signature (403)
// rather than reading as no link at all; only a format Validate accepts is ever signed.
func parseVariant[T ~string | ~[]byte](s T) (Variant, bool) {
	if string(s) == originalSegment {
		return Original, true
	}
	if len(s) < 2 || s[0] != 'h' {
		return Variant{}, false
	}
	digits, format := s[1:], s[:0]
	for i := 1; i < len(s); i++ {
		if s[i] == '.' {
			digits, format = s[1:i], s[i+1:]
			if len(format) == 0 || len(format) > maxFormatLength {
				return Variant{}, false
			}
			for j := 0; j < len(format); j++ {
				if format[j] < 'a' || format[j] > 'z' {
					return Variant{}, false
				}
			}
			break
		}
	}
	h, ok := parseDecimal(digits, MaxHeight)
	if !ok {
		return Variant{}, false
	}
	v := Thumbnail(int(h))
	if len(format) > 0 {
		v.Format = knownFormat(format)
	}
	return v, true
}

// knownFormat returns the format named by b without allocating for tierpix.FormatWebP.
func knownFormat[T ~string | ~[]byte](b T) string {
	if string(b) == tierpix.FormatWebP {
		return tierpix.FormatWebP
	}
	return string(b)
}

// parseDecimal parses a positive decimal number without sign or leading zeros that is at
// most limit. Accepting one spelling per number keeps signed paths unique.
func parseDecimal[T ~string | ~[]byte](s T, limit int64) (int64, bool) {
	if len(s) == 0 || len(s) > maxExpLength || s[0] == '0' {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (limit-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// validSig reports whether sig has the length and alphabet of an encoded HMAC-SHA256.
func validSig(sig []byte) bool {
	if len(sig) != sigLength {
		return false
	}
	for _, c := range sig {
		if (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// Link is what a signed path carries. Expires is a Unix time in seconds; 0 means never.
type Link struct {
	ImageID string
	Variant Variant
	Expires int64
}

// Validate reports whether l can be signed into a path that Verify accepts. Path does not
// check (signing happens for every link of every list page, from ids the store made), so
// callers that build links from client input validate first. The error wraps ErrMalformed.
func (l Link) Validate() error {
	if !tierpix.ValidImageID(l.ImageID) {
		return fmt.Errorf("%w: image id must be %d characters of a-z and 2-7", ErrMalformed, tierpix.ImageIDLength)
	}
	if err := l.Variant.Validate(); err != nil {
		return err
	}
	if l.Expires < 0 {
		return fmt.Errorf("%w: expiry must not be negative", ErrMalformed)
	}
	return nil
}

// Signer signs with its first key and verifies with any of its keys, so keys can be rotated:
// put the new key first, keep the old ones until the links they signed are no longer needed.
//
// A Signer is safe for concurrent use. It keeps a pool of HMAC states per key because a list
// page signs a few hundred links and a fresh HMAC costs several allocations.
type Signer struct {
	keys  [][]byte
	pools []sync.Pool // pools[i] holds *macState for keys[i]
}

// macState is one key's HMAC together with the buffers it reads and writes. The buffers live
// here, on the heap once per pooled state, because anything handed to hash.Hash escapes.
type macState struct {
	h         hash.Hash
	canonical [maxCanonicalLength]byte
	sum       [sha256.Size]byte
	sig       [sigLength]byte
}

// MinKeyLength is the shortest key accepted, in bytes.
const MinKeyLength = 32

// New returns a Signer. It needs at least one key, each at least MinKeyLength bytes.
func New(keys [][]byte) (*Signer, error) {
	if len(keys) == 0 {
		return nil, errors.New("signing: no signing key")
	}
	s := &Signer{keys: make([][]byte, len(keys)), pools: make([]sync.Pool, len(keys))}
	for i, k := range keys {
		if len(k) < MinKeyLength {
			return nil, fmt.Errorf("signing: key %d is %d bytes, want at least %d", i+1, len(k), MinKeyLength)
		}
		key := append([]byte(nil), k...)
		s.keys[i] = key
		s.pools[i].New = func() any { return &macState{h: hmac.New(sha256.New, key)} }
	}
	return s, nil
}

// GenerateKey returns a new random key in its text form (as kept in the key file and accepted
// by ParseKeys).
func GenerateKey() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("signing: generate key: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// ParseKeys splits a comma-separated list of keys (as in TIERPIX_SIGNING_KEY) into keys,
// trimming spaces; each key's bytes are the key.
//
// Empty entries are skipped so that a trailing comma left while rotating keys is harmless.
// Errors name a key by its position among the non-empty entries and never include key text,
// since they end up in logs.
func ParseKeys(s string) ([][]byte, error) {
	var keys [][]byte
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if len(part) < MinKeyLength {
			return nil, fmt.Errorf("signing: key %d is %d bytes, want at least %d", len(keys)+1, len(part), MinKeyLength)
		}
		keys = append(keys, []byte(part))
	}
	if len(keys) == 0 {
		return nil, errors.New("signing: no signing key")
	}
	return keys, nil
}

// Path returns the signed path of l, starting with "/i/".
func (s *Signer) Path(l Link) string {
	var buf [maxPathLength]byte
	return string(s.AppendPath(buf[:0], l))
}

// AppendPath appends the signed path of l to dst, for callers that sign many links at once.
// With enough room in dst it does not allocate.
//
// l is not validated (see Link.Validate); a link Verify would refuse signs into a path Verify
// rejects as ErrMalformed.
func (s *Signer) AppendPath(dst []byte, l Link) []byte {
	st := s.pools[0].Get().(*macState)
	defer s.pools[0].Put(st)

	c := append(st.canonical[:0], canonicalPrefix...)
	c = append(c, l.ImageID...)
	c = append(c, '\n')
	c = l.Variant.appendSegment(c)
	c = append(c, '\n')
	c = strconv.AppendInt(c, l.Expires, 10)
	st.h.Reset()
	st.h.Write(c)
	sum := st.h.Sum(st.sum[:0])

	dst = append(dst, pathPrefix...)
	dst = sigEncoding.AppendEncode(dst, sum)
	dst = append(dst, '/')
	dst = append(dst, l.ImageID...)
	dst = append(dst, '/')
	dst = l.Variant.appendSegment(dst)
	if l.Expires != 0 {
		dst = append(dst, '/')
		dst = strconv.AppendInt(dst, l.Expires, 10)
	}
	return dst
}

// Verify parses a path made by Path and checks its signature, then its expiry against now.
//
// path is the request path alone, without query. Anything that is not exactly the shape of a
// link gives ErrMalformed; a link whose signature matches no key gives ErrSignature; only a
// correctly signed link is checked for expiry, giving ErrExpired once now reaches Expires.
// With ErrExpired the link is returned as well, for logging; with the other errors it is zero.
func (s *Signer) Verify(path []byte, now time.Time) (Link, error) {
	if len(path) > maxPathLength || !bytes.HasPrefix(path, []byte(pathPrefix)) {
		return Link{}, ErrMalformed
	}

	// Split into sig, id, variant and an optional exp; a fifth segment is not a link.
	var segs [4][]byte
	n := 0
	for rest := path[len(pathPrefix):]; ; n++ {
		if n == len(segs) {
			return Link{}, ErrMalformed
		}
		i := bytes.IndexByte(rest, '/')
		if i < 0 {
			segs[n] = rest
			n++
			break
		}
		segs[n], rest = rest[:i], rest[i+1:]
	}
	if n < 3 {
		return Link{}, ErrMalformed
	}
	sig, id, variantSeg := segs[0], segs[1], segs[2]
	if !validSig(sig) || !tierpix.ValidImageID(id) {
		return Link{}, ErrMalformed
	}
	variant, ok := parseVariant(variantSeg)
	if !ok {
		return Link{}, ErrMalformed
	}
	var exp int64
	expSeg := []byte("0")
	if n == 4 {
		expSeg = segs[3]
		if exp, ok = parseDecimal(expSeg, math.MaxInt64); !ok {
			return Link{}, ErrMalformed
		}
	}

	// The strict parse above admits one spelling per link, so the segments are already the
	// canonical components. Every key is tried, so timing does not tell which one matched.
	match := 0
	for i := range s.pools {
		st := s.pools[i].Get().(*macState)
		c := append(st.canonical[:0], canonicalPrefix...)
		c = append(c, id...)
		c = append(c, '\n')
		c = append(c, variantSeg...)
		c = append(c, '\n')
		c = append(c, expSeg...)
		st.h.Reset()
		st.h.Write(c)
		sigEncoding.Encode(st.sig[:], st.h.Sum(st.sum[:0]))
		match |= subtle.ConstantTimeCompare(st.sig[:], sig) // hmac.Equal, without the branch
		s.pools[i].Put(st)
	}
	if match == 0 {
		return Link{}, ErrSignature
	}

	// Only a format Validate accepts is ever signed by a caller that validates; one that
	// signed another is refused here, after the MAC, like any other path that is no link.
	if variant.Format != "" && variant.Format != tierpix.FormatWebP {
		return Link{}, ErrMalformed
	}
	l := Link{ImageID: string(id), Variant: variant, Expires: exp}
	if exp != 0 && now.Unix() >= exp {
		return l, ErrExpired
	}
	return l, nil
}

// DeriveKey returns a 32-byte key for another purpose than link signatures (sealing list
// cursors, say), derived from the signing key: every node of a deployment derives the same
// key and none has to be configured. It changes when the first signing key changes.
func (s *Signer) DeriveKey(purpose string) []byte {
	m := hmac.New(sha256.New, s.keys[0])
	m.Write([]byte("tierpix/v1 derived key\n"))
	m.Write([]byte(purpose))
	return m.Sum(nil)
}
