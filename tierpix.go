// Package tierpix is the domain: the types every part speaks (Tier, User, Image, Identity),
// the one error type, the rules that belong to the types themselves (validation, what a
// tier's links reach), and the services the adapters call (TierService, UserService,
// ImageService), implemented once in package service. docs/ARCHITECTURE.md maps the rest.
package tierpix

import (
	"fmt"
	"regexp"
	"slices"
	"time"
)

// Limits on what a tier may hold. They keep a tier's link set small enough to sign for every
// image of a list page and keep renders bounded.
const (
	MaxThumbnailHeight  = 10000
	MaxThumbnailHeights = 16
	MinExpirySeconds    = 300
	MaxExpirySeconds    = 30000
)

// Tier is an account tier: the thumbnail heights its users get links to, and whether they get
// the original and expiring links. Tier names are matched case-insensitively.
type Tier struct {
	Name             string
	ThumbnailHeights []int // ascending, unique
	OriginalLink     bool
	ExpiringLinks    bool
	Builtin          bool // Basic, Premium, Enterprise: seeded by migration
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

var tierNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// Normalize sorts the thumbnail heights and removes duplicates.
func (t *Tier) Normalize() {
	slices.Sort(t.ThumbnailHeights)
	t.ThumbnailHeights = slices.Compact(t.ThumbnailHeights)
	if t.ThumbnailHeights == nil {
		t.ThumbnailHeights = []int{}
	}
}

// Validate reports every field at fault in one EINVALID error.
func (t *Tier) Validate() error {
	fields := map[string]string{}
	if !tierNameRE.MatchString(t.Name) {
		fields["name"] = "must be 1 to 64 letters, digits, '-' or '_', starting with a letter or digit"
	} else if slices.Contains(reservedNames, t.Name) {
		fields["name"] = fmt.Sprintf("%q is reserved", t.Name)
	}
	if len(t.ThumbnailHeights) > MaxThumbnailHeights {
		fields["thumbnail_heights"] = fmt.Sprintf("at most %d heights", MaxThumbnailHeights)
	}
	for _, h := range t.ThumbnailHeights {
		if h < 1 || h > MaxThumbnailHeight {
			fields["thumbnail_heights"] = fmt.Sprintf("each height must be between 1 and %d", MaxThumbnailHeight)
			break
		}
	}
	if len(fields) > 0 {
		return &Error{Code: EINVALID, Message: "The tier is not valid.", Fields: fields}
	}
	return nil
}

// AllowsHeight reports whether the tier lists h among its thumbnail heights.
func (t *Tier) AllowsHeight(h int) bool {
	_, ok := slices.BinarySearch(t.ThumbnailHeights, h)
	return ok
}

// User is an account. PasswordHash is a bcrypt hash; it never leaves the server.
type User struct {
	ID           int64
	Username     string
	PasswordHash string
	TierName     string
	IsAdmin      bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

var usernameRE = regexp.MustCompile(`^[A-Za-z0-9.@+_-]{1,150}$`)

// reservedNames cannot be usernames or tier names: "." and ".." because clients and
// proxies normalise them out of URL paths such as /api/admin/users/{username}, and "new"
// because the admin UI's /admin/users/new and /admin/tiers/new are the forms that add one.
var reservedNames = []string{".", "..", "new"}

// ValidateUsername checks a username against the allowed alphabet and length.
func ValidateUsername(name string) error {
	if !usernameRE.MatchString(name) {
		return Invalid("username", "must be 1 to 150 letters, digits or . @ + _ -")
	}
	if slices.Contains(reservedNames, name) {
		return Invalid("username", fmt.Sprintf("%q is reserved", name))
	}
	return nil
}

// Password length bounds. bcrypt reads at most 72 bytes, so longer passwords are refused
// rather than silently truncated.
const (
	MinPasswordLength = 8
	MaxPasswordLength = 72
)

// ValidatePassword checks a password's length in bytes.
func ValidatePassword(pw string) error {
	if len(pw) < MinPasswordLength || len(pw) > MaxPasswordLength {
		return Invalid("password", fmt.Sprintf("must be %d to %d bytes long", MinPasswordLength, MaxPasswordLength))
	}
	return nil
}

// Identity is an authenticated user together with their tier as it is now.
type Identity struct {
	User User
	Tier Tier
}

// Image formats: JPEG and PNG are accepted for upload; the origin renders thumbnails in the
// original's format or, for clients that take it, in WebP.
const (
	FormatJPEG = "jpeg"
	FormatPNG  = "png"
	FormatWebP = "webp"
)

// ContentTypeOf returns the media type of a format.
func ContentTypeOf(format string) string {
	switch format {
	case FormatJPEG:
		return "image/jpeg"
	case FormatPNG:
		return "image/png"
	case FormatWebP:
		return "image/webp"
	}
	return "application/octet-stream"
}

// ImageIDLength is the length of every image id: 15 random bytes in lowercase base32.
const ImageIDLength = 24

// ValidImageID reports whether id has the shape of an image id: ImageIDLength characters of
// a-z and 2-7. It is the one definition: the store refuses anything else before a query or a
// file path, the link parser (on bytes, without allocating) before a signature check.
func ValidImageID[T ~string | ~[]byte](id T) bool {
	if len(id) != ImageIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// Image is an uploaded original. Width and Height are as displayed, after EXIF orientation.
// Seq orders a user's images newest first and serves as the pagination key; ID is random so
// that ids reveal nothing about other users' uploads.
type Image struct {
	ID        string
	Seq       int64
	OwnerID   int64
	Name      string
	Format    string // FormatJPEG or FormatPNG
	Width     int
	Height    int
	SizeBytes int64
	CreatedAt time.Time
}

// ContentType returns the media type of the original.
func (i *Image) ContentType() string { return ContentTypeOf(i.Format) }
