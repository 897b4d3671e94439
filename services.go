package tierpix

import (
	"context"
	"time"
)

// The services below are what the adapters (the REST API, the admin pages, the command line)
// call to read and change accounts, tiers and images. Each rule of the service (who may do
// what, the admin rules, purging caches after a delete, forgetting a changed password) lives
// once, in their implementation (package service); an adapter parses a request, calls one of
// them and renders the answer. The actor is the caller; nil stands for the operator at the
// command line, who may do everything an admin may.

// TierService manages tiers. Changes are for admins only.
type TierService interface {
	ListTiers(ctx context.Context) ([]Tier, error)
	// FindTier: ENOTFOUND "The tier does not exist."
	FindTier(ctx context.Context, name string) (Tier, error)
	CreateTier(ctx context.Context, actor *Identity, t Tier) (Tier, error)
	// UpdateTier reads and writes in one transaction, so concurrent updates keep each
	// other's changes. The name cannot change.
	UpdateTier(ctx context.Context, actor *Identity, name string, upd TierUpdate) (Tier, error)
	// DeleteTier refuses builtin tiers and tiers users are on (ECONFLICT).
	DeleteTier(ctx context.Context, actor *Identity, name string) error
	// CheckDeleteTier returns the tier and why DeleteTier would refuse it (ECONFLICT), or
	// nil: the admin pages ask before they offer a confirmation.
	CheckDeleteTier(ctx context.Context, actor *Identity, name string) (Tier, error)
}

// TierUpdate holds the fields of a tier to change; nil leaves a field as it is. Name, when
// set, must be the tier's own (names do not change).
type TierUpdate struct {
	Name             *string
	ThumbnailHeights *[]int
	OriginalLink     *bool
	ExpiringLinks    *bool
}

// UserService manages accounts, their API tokens and their web sessions. Everything but a
// user's own reads is for admins only.
type UserService interface {
	// ListUsers returns a page of users, filtered and ordered as q asks (EINVALID for a query
	// that is not valid, see UserQuery.Validate).
	ListUsers(ctx context.Context, actor *Identity, q UserQuery) (UserPage, error)
	// FindUser: ENOTFOUND "The user does not exist."
	FindUser(ctx context.Context, actor *Identity, username string) (Identity, error)
	// CreateUser checks the username and password together (one EINVALID naming each field
	// at fault), puts a user without a tier on DefaultTier and hashes the password within
	// the bcrypt budget.
	CreateUser(ctx context.Context, actor *Identity, nu NewUser) (User, error)
	// UpdateUser reads and writes in one transaction. An admin cannot demote themselves and
	// the last admin stays; a new password ends the user's sessions.
	UpdateUser(ctx context.Context, actor *Identity, username string, upd UserUpdate) (User, error)
	// DeleteUser removes the user with their tokens, sessions, images and originals, and
	// purges every cached render of those images. An admin cannot delete themselves, and
	// the last admin stays.
	DeleteUser(ctx context.Context, actor *Identity, username string) error
	// PlanDeleteUser says what deleting the user would take along and whether it would be
	// refused, without deleting anything: the confirmation shows it.
	PlanDeleteUser(ctx context.Context, actor *Identity, username string) (UserDeletion, error)
	// ChangePassword changes the actor's own password given the current one (checked as a
	// sign-in from addr, throttled alike) and ends every session of theirs, as an admin's
	// change does.
	ChangePassword(ctx context.Context, actor *Identity, current, next, addr string) error

	ListTokens(ctx context.Context, actor *Identity, username string) (User, []Token, error)
	// CreateToken returns the token and its secret, shown once and kept only as a hash.
	CreateToken(ctx context.Context, actor *Identity, username string) (User, Token, string, error)
	DeleteToken(ctx context.Context, actor *Identity, username string, tokenID int64) error
	ListSessions(ctx context.Context, actor *Identity, username string, idleSince time.Time) ([]Session, error)
	// EndSessions signs the user out of every browser and says how many sessions ended.
	EndSessions(ctx context.Context, actor *Identity, username string) (int, error)
}

// ImageService adds, reads and deletes images. A user reaches only their own images: another
// user's is as absent (ENOTFOUND) as a missing one, so ids cannot be probed. The "Any"
// operations are for admins.
type ImageService interface {
	ListImages(ctx context.Context, actor *Identity, before int64, limit int) ([]Image, error)
	// ListImagesOldest is ListImages oldest first, after the sequence number after.
	ListImagesOldest(ctx context.Context, actor *Identity, after int64, limit int) ([]Image, error)
	// AddImage validates the upload spooled at tmpPath and makes it the actor's image.
	AddImage(ctx context.Context, actor *Identity, tmpPath, name string, size int64) (Image, error)
	FindImage(ctx context.Context, actor *Identity, id string) (Image, error)
	// DeleteImage removes the row and the original and purges every cached render.
	DeleteImage(ctx context.Context, actor *Identity, id string) error
	// ListAllImages lists every user's images, or the user ownerID's when it is not 0.
	ListAllImages(ctx context.Context, actor *Identity, ownerID int64, before int64, limit int) ([]OwnedImage, error)
	// ListAllImagesOldest is ListAllImages oldest first, after the sequence number after.
	ListAllImagesOldest(ctx context.Context, actor *Identity, ownerID int64, after int64, limit int) ([]OwnedImage, error)
	FindAnyImage(ctx context.Context, actor *Identity, id string) (OwnedImage, error)
	DeleteAnyImage(ctx context.Context, actor *Identity, id string) error
}

// Services is every service an adapter may call.
type Services interface {
	TierService
	UserService
	ImageService
	AuditService
}

// UserDeletion is what deleting a user takes along, and why it would be refused, if it would.
type UserDeletion struct {
	User                     User
	Images, Tokens, Sessions int
	Refusal                  error // ECONFLICT: the actor's own account, or the last admin
}

// DefaultTier is the tier of a user created without one.
const DefaultTier = "Basic"

// NewUser is what creating a user takes. Tier empty means DefaultTier.
type NewUser struct {
	Username string
	Password string
	Tier     string
	IsAdmin  bool
}

// UserUpdate holds the fields of a user to change; nil leaves a field as it is. Username,
// when set, must be the user's own (usernames do not change).
type UserUpdate struct {
	Username *string
	Password *string
	Tier     *string
	IsAdmin  *bool
}

// Token is an API token as listed: never its secret.
type Token struct {
	ID        int64
	UserID    int64
	Hint      string // "tpx_AbCd": the prefix and the first 4 characters of the secret; "" for tokens minted before hints
	CreatedAt time.Time
}

// Session is a signed-in browser: the web UI's server-side session. Its token lives only in
// the browser's cookie; the store keeps its SHA-256, like API tokens.
type Session struct {
	ID         int64
	UserID     int64
	CSRFToken  string    // random, per session; forms carry it and it is compared in constant time
	CreatedAt  time.Time // absolute expiry counts from here
	LastSeenAt time.Time // idle expiry counts from here; refreshed at most once a minute
	ExpiresAt  time.Time // absolute expiry, fixed at creation
	UserAgent  string    // as sent at sign-in, cut to 256 bytes, for the admin's session list
	Address    string    // client address at sign-in, cut to 256 bytes
	Flash      string    // a notice for the session's next page, as the web UI keeps it; "" for none
}

// OwnedImage is an image with its owner's username.
type OwnedImage struct {
	Image
	Owner string
}

// RequireAdmin is the rule for admin-only operations: an admin or the operator (nil).
func RequireAdmin(actor *Identity) error {
	if actor != nil && !actor.User.IsAdmin {
		return Errorf(EFORBIDDEN, "The admin API is for admins only.")
	}
	return nil
}

// BuiltinRefusal is the rule that builtin tiers stay: why t cannot be deleted, or nil. The
// admin pages show it before anyone asks.
func BuiltinRefusal(t *Tier) error {
	if t.Builtin {
		return Errorf(ECONFLICT, "The %s tier is builtin and cannot be deleted.", t.Name)
	}
	return nil
}

// SelfDeleteRefusal is the rule that an admin cannot delete their own account: why actor
// cannot delete target, or nil. The admin pages show it before anyone asks.
func SelfDeleteRefusal(actor *Identity, target *User) error {
	if actor != nil && actor.User.ID == target.ID {
		return Errorf(ECONFLICT, "You cannot delete your own account.")
	}
	return nil
}

// LinkRefusal names the right a link needs that its owner's tier lacks; the zero value
// means the tier grants the link.
type LinkRefusal int

const (
	LinkGranted     LinkRefusal = iota
	NoExpiringLinks             // the link expires and the tier has no expiring links
	NoOriginal                  // the link is to the original and the tier has no original link
	NoHeight                    // the tier does not list the link's height
)

// Grants is the one rule of what a tier's links may reach: the API checks it before handing
// a link out, the origin before serving one (links outlive tier changes). height 0 is the
// original. Each caller words the refusal for its audience: the owner, or a link's holder.
func (t *Tier) Grants(height int, expiring bool) LinkRefusal {
	switch {
	case expiring && !t.ExpiringLinks:
		return NoExpiringLinks
	case height == 0 && !t.OriginalLink:
		return NoOriginal
	case height != 0 && !t.AllowsHeight(height):
		return NoHeight
	}
	return LinkGranted
}
