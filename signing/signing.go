// Package signing makes and verifies the HMAC-signed paths of image links.
//
// SKELETON: the exported API below is fixed; the bodies are to be written.
package signing

import (
	"errors"
	"time"
)

// Errors returned by Verify. ErrMalformed: the path is not a link at all (404);
// ErrSignature: a link whose signature does not verify under any key (403);
// ErrExpired: a correctly signed link past its expiry (410).
var (
	ErrMalformed = errors.New("signing: malformed link")
	ErrSignature = errors.New("signing: bad signature")
	ErrExpired   = errors.New("signing: link expired")
)

// Variant names what a link serves: a thumbnail of a given height, or the original (Height 0).
type Variant struct {
	Height int
}

// Original is the variant that serves the uploaded bytes.
var Original = Variant{}

// Thumbnail returns the variant for a thumbnail of height h.
func Thumbnail(h int) Variant { return Variant{Height: h} }

// IsOriginal reports whether v is the original.
func (v Variant) IsOriginal() bool { return v.Height == 0 }

// String returns the variant's path segment: "original" or "h<height>", e.g. "h200".
func (v Variant) String() string { panic("unimplemented") }

// ParseVariant parses a path segment made by String.
func ParseVariant(s string) (Variant, error) { panic("unimplemented") }

// Link is what a signed path carries. Expires is a Unix time in seconds; 0 means never.
type Link struct {
	ImageID string
	Variant Variant
	Expires int64
}

// Signer signs with its first key and verifies with any of its keys, so keys can be rotated:
// put the new key first, keep the old ones until the links they signed are no longer needed.
type Signer struct {
	keys [][]byte
}

// MinKeyLength is the shortest key accepted, in bytes.
const MinKeyLength = 32

// New returns a Signer. It needs at least one key, each at least MinKeyLength bytes.
func New(keys [][]byte) (*Signer, error) { panic("unimplemented") }

// GenerateKey returns a new random key in its text form (as kept in the key file and accepted
// by ParseKeys).
func GenerateKey() (string, error) { panic("unimplemented") }

// ParseKeys splits a comma-separated list of keys (as in TIERPIX_SIGNING_KEY) into keys,
// trimming spaces; each key's bytes are the key.
func ParseKeys(s string) ([][]byte, error) { panic("unimplemented") }

// Path returns the signed path of l, starting with "/i/".
func (s *Signer) Path(l Link) string { panic("unimplemented") }

// AppendPath appends the signed path of l to dst, for callers that sign many links at once.
func (s *Signer) AppendPath(dst []byte, l Link) []byte { panic("unimplemented") }

// Verify parses a path made by Path and checks its signature, then its expiry against now.
func (s *Signer) Verify(path []byte, now time.Time) (Link, error) { panic("unimplemented") }
