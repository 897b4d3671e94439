// Package service implements the domain's services (tierpix.TierService, UserService and
// ImageService) over the store: every rule of who may do what, the admin rules, purging the
// origin's caches after a delete and forgetting a changed password is written here once, and
// the adapters (api, web, the command line) only call it.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/imaging"
	"github.com/tierpix/tierpix/signin"
	"github.com/tierpix/tierpix/store"
	"golang.org/x/crypto/bcrypt"
)

// Purger drops every cached render of an image; the origin implements it.
type Purger interface {
	Purge(id string)
}

// Config holds the services' settings. Zero values take the defaults.
type Config struct {
	BcryptCost   int             // of the passwords set through the services; default bcrypt.DefaultCost
	MaxPixels    int64           // an upload's pixel cap; default DefaultMaxPixels
	DecodeBudget *imaging.Budget // admits upload validations, shared with the origin; nil admits all
}

// DefaultMaxPixels is the default pixel cap of an upload.
const DefaultMaxPixels = 50_000_000

// Service implements the domain's services.
type Service struct {
	cfg    Config
	st     *store.Store
	signin *signin.Service
	purger Purger
	logger *slog.Logger
}

var (
	_ tierpix.TierService  = (*Service)(nil)
	_ tierpix.UserService  = (*Service)(nil)
	_ tierpix.ImageService = (*Service)(nil)
)

// New returns the services over st. Passwords are hashed within si's bcrypt slots; deletes
// purge through purger. libvips must be started (imaging.Start) before an upload is added.
func New(cfg Config, st *store.Store, si *signin.Service, purger Purger, logger *slog.Logger) (*Service, error) {
	if st == nil || si == nil || purger == nil {
		return nil, errors.New("service: store, sign-in and purger are required")
	}
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = bcrypt.DefaultCost
	}
	if cfg.BcryptCost < bcrypt.MinCost || cfg.BcryptCost > bcrypt.MaxCost {
		return nil, fmt.Errorf("service: bcrypt cost %d must be between %d and %d", cfg.BcryptCost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	if cfg.MaxPixels == 0 {
		cfg.MaxPixels = DefaultMaxPixels
	}
	if cfg.MaxPixels < 0 {
		return nil, fmt.Errorf("service: max pixels %d must be positive", cfg.MaxPixels)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, st: st, signin: si, purger: purger, logger: logger}, nil
}

// validate checks an upload with libvips.
func (s *Service) validate(ctx context.Context, path string) (imaging.Info, error) {
	return imaging.Validate(ctx, path, s.cfg.MaxPixels, s.cfg.DecodeBudget)
}

// notFound keeps the store's ENOTFOUND as the adapters' message and wraps anything else.
func notFound(err error, message, op string) error {
	if tierpix.ErrorCode(err) == tierpix.ENOTFOUND {
		return tierpix.Errorf(tierpix.ENOTFOUND, "%s", message)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// kept logs a delete whose rows are gone but whose originals stayed on disk for the sweep:
// the delete happened, so it is no error for the caller.
func (s *Service) kept(op string, err error) error {
	if errors.Is(err, store.ErrOriginalKept) {
		s.logger.Warn(op+": originals left on disk for the sweep", "err", err)
		return nil
	}
	return err
}

// ListTiers returns every tier.
func (s *Service) ListTiers(ctx context.Context) ([]tierpix.Tier, error) {
	tiers, err := s.st.ListTiers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tiers: %w", err)
	}
	return tiers, nil
}

const tierNotFound = "The tier does not exist."

// FindTier returns the tier named name, matched case-insensitively.
func (s *Service) FindTier(ctx context.Context, name string) (tierpix.Tier, error) {
	t, err := s.st.FindTier(ctx, name)
	if err != nil {
		return tierpix.Tier{}, notFound(err, tierNotFound, fmt.Sprintf("find tier %q", name))
	}
	return t, nil
}

// CreateTier normalizes, checks and adds t.
func (s *Service) CreateTier(ctx context.Context, actor *tierpix.Identity, t tierpix.Tier) (tierpix.Tier, error) {
	if err := tierpix.RequireAdmin(actor); err != nil {
		return tierpix.Tier{}, err
	}
	t.Builtin = false
	t.ThumbnailHeights = append([]int(nil), t.ThumbnailHeights...)
	t.Normalize()
	if err := t.Validate(); err != nil {
		return tierpix.Tier{}, err
	}
	if err := s.st.CreateTier(ctx, &t); err != nil {
		return tierpix.Tier{}, fmt.Errorf("create tier %q: %w", t.Name, err)
	}
	return t, nil
}

// UpdateTier changes the fields upd holds. A new height applies at once to every existing
// image, as the origin renders lazily.
func (s *Service) UpdateTier(ctx context.Context, actor *tierpix.Identity, name string, upd tierpix.TierUpdate) (tierpix.Tier, error) {
	if err := tierpix.RequireAdmin(actor); err != nil {
		return tierpix.Tier{}, err
	}
	t, err := s.st.ModifyTier(ctx, name, func(t *tierpix.Tier) error {
		if upd.Name != nil && !strings.EqualFold(*upd.Name, t.Name) {
			return tierpix.Invalid("name", "cannot be changed; create a new tier and move its users")
		}
		if upd.ThumbnailHeights != nil {
			t.ThumbnailHeights = append([]int(nil), (*upd.ThumbnailHeights)...)
		}
		if upd.OriginalLink != nil {
			t.OriginalLink = *upd.OriginalLink
		}
		if upd.ExpiringLinks != nil {
			t.ExpiringLinks = *upd.ExpiringLinks
		}
		return nil
	})
	if err != nil {
		return tierpix.Tier{}, notFound(err, tierNotFound, fmt.Sprintf("update tier %q", name))
	}
	return t, nil
}

// DeleteTier deletes a tier no user is on.
func (s *Service) DeleteTier(ctx context.Context, actor *tierpix.Identity, name string) error {
	if err := tierpix.RequireAdmin(actor); err != nil {
		return err
	}
	t, err := s.FindTier(ctx, name)
	if err != nil {
		return err
	}
	if err := tierpix.BuiltinRefusal(&t); err != nil {
		return err
	}
	if err := s.st.DeleteTier(ctx, t.Name); err != nil {
		return notFound(err, tierNotFound, fmt.Sprintf("delete tier %q", t.Name))
	}
	return nil
}

const userNotFound = "The user does not exist."

// ListUsers returns a page of the users q asks for, to admins, once q is valid.
func (s *Service) ListUsers(ctx context.Context, actor *tierpix.Identity, q tierpix.UserQuery) (tierpix.UserPage, error) {
	if err := tierpix.RequireAdmin(actor); err != nil {
		return tierpix.UserPage{}, err
	}
	if err := q.Validate(); err != nil {
		return tierpix.UserPage{}, err
	}
	p, err := s.st.ListUsers(ctx, q)
	if err != nil {
		return tierpix.UserPage{}, fmt.Errorf("list users: %w", err)
	}
	return p, nil
}

// FindUser returns the user named username with their tier: any user to an admin, only
// themselves to anyone else.
func (s *Service) FindUser(ctx context.Context, actor *tierpix.Identity, username string) (tierpix.Identity, error) {
	if actor != nil && !actor.User.IsAdmin && actor.User.Username != username {
		return tierpix.Identity{}, tierpix.RequireAdmin(actor)
	}
	id, err := s.st.FindUser(ctx, username)
	if err != nil {
		return tierpix.Identity{}, notFound(err, userNotFound, fmt.Sprintf("find user %q", username))
	}
	return id, nil
}

// CreateUser adds a user.
func (s *Service) CreateUser(ctx context.Context, actor *tierpix.Identity, nu tierpix.NewUser) (tierpix.User, error) {
	if err := tierpix.RequireAdmin(actor); err != nil {
		return tierpix.User{}, err
	}
	fields := map[string]string{}
	if err := tierpix.ValidateUsername(nu.Username); err != nil {
		fields["username"] = tierpix.ErrorFields(err)["username"]
	}
	if err := tierpix.ValidatePassword(nu.Password); err != nil {
		fields["password"] = tierpix.ErrorFields(err)["password"]
	}
	if len(fields) > 0 {
		return tierpix.User{}, &tierpix.Error{Code: tierpix.EINVALID, Message: "The request has invalid fields.", Fields: fields}
	}
	u := tierpix.User{Username: nu.Username, TierName: nu.Tier, IsAdmin: nu.IsAdmin}
	if u.TierName == "" {
		u.TierName = tierpix.DefaultTier
	}
	hash, err := s.signin.HashPassword(ctx, nu.Password, s.cfg.BcryptCost)
	if err != nil {
		return tierpix.User{}, err
	}
	u.PasswordHash = hash
	if err := s.st.CreateUser(ctx, &u); err != nil {
		return tierpix.User{}, fmt.Errorf("create user %q: %w", u.Username, err)
	}
	return u, nil
}

// UpdateUser changes the fields upd holds. A new password or tier applies to the user's next
// request, since every request reads the user afresh.
func (s *Service) UpdateUser(ctx context.Context, actor *tierpix.Identity, username string, upd tierpix.UserUpdate) (tierpix.User, error) {
	if err := tierpix.RequireAdmin(actor); err != nil {
		return tierpix.User{}, err
	}
	// Hash first: bcrypt is slow, and the store holds its users lock while the change is
	// applied.
	var hash string
	if upd.Password != nil {
		var err error
		if hash, err = s.signin.HashPassword(ctx, *upd.Password, s.cfg.BcryptCost); err != nil {
			return tierpix.User{}, err
		}
	}
	u, err := s.st.ModifyUser(ctx, username, func(u *tierpix.User) error {
		if upd.Username != nil && *upd.Username != u.Username {
			return tierpix.Invalid("username", "cannot be changed")
		}
		if upd.IsAdmin != nil && !*upd.IsAdmin && u.IsAdmin && actor != nil && u.ID == actor.User.ID {
			return tierpix.Errorf(tierpix.ECONFLICT, "You cannot demote yourself.")
		}
		if upd.Tier != nil {
			u.TierName = *upd.Tier
		}
		if upd.IsAdmin != nil {
			u.IsAdmin = *upd.IsAdmin
		}
		if hash != "" {
			u.PasswordHash = hash
		}
		return nil
	})
	if err != nil {
		return tierpix.User{}, notFound(err, userNotFound, fmt.Sprintf("update user %q", username))
	}
	if hash != "" {
		s.signin.Forget(u.Username)
	}
	return u, nil
}

// DeleteUser deletes a user and everything they own.
func (s *Service) DeleteUser(ctx context.Context, actor *tierpix.Identity, username string) error {
	target, err := s.adminFind(ctx, actor, username)
	if err != nil {
		return err
	}
	if err := tierpix.SelfDeleteRefusal(actor, &target); err != nil {
		return err
	}
	ids, err := s.st.DeleteUser(ctx, target.Username)
	// The images of ids are gone even when originals stayed on disk: purge them either way.
	for _, id := range ids {
		s.purger.Purge(id)
	}
	if err := s.kept("delete user "+target.Username, err); err != nil {
		return notFound(err, userNotFound, fmt.Sprintf("delete user %q", target.Username))
	}
	s.signin.Forget(target.Username)
	return nil
}

// ListTokens returns the user and their API tokens.
func (s *Service) ListTokens(ctx context.Context, actor *tierpix.Identity, username string) (tierpix.User, []tierpix.Token, error) {
	target, err := s.adminFind(ctx, actor, username)
	if err != nil {
		return tierpix.User{}, nil, err
	}
	tokens, err := s.st.ListTokens(ctx, target.ID)
	if err != nil {
		return tierpix.User{}, nil, fmt.Errorf("list tokens of %q: %w", target.Username, err)
	}
	return target, tokens, nil
}

// CreateToken mints an API token for the user.
func (s *Service) CreateToken(ctx context.Context, actor *tierpix.Identity, username string) (tierpix.User, tierpix.Token, string, error) {
	target, err := s.adminFind(ctx, actor, username)
	if err != nil {
		return tierpix.User{}, tierpix.Token{}, "", err
	}
	t, secret, err := s.st.CreateToken(ctx, target.ID)
	if err != nil {
		return tierpix.User{}, tierpix.Token{}, "", fmt.Errorf("create token for %q: %w", target.Username, err)
	}
	return target, t, secret, nil
}

// DeleteToken revokes one of the user's tokens: it stops authenticating at once, on every
// node, as tokens are looked up on every request.
func (s *Service) DeleteToken(ctx context.Context, actor *tierpix.Identity, username string, tokenID int64) error {
	target, err := s.adminFind(ctx, actor, username)
	if err != nil {
		return err
	}
	if tokenID < 1 {
		return tierpix.Errorf(tierpix.ENOTFOUND, "The user has no token %d.", tokenID)
	}
	err = s.st.DeleteToken(ctx, target.ID, tokenID)
	if tierpix.ErrorCode(err) == tierpix.ENOTFOUND {
		return tierpix.Errorf(tierpix.ENOTFOUND, "The user has no token %d.", tokenID)
	} else if err != nil {
		return fmt.Errorf("delete token %d of %q: %w", tokenID, target.Username, err)
	}
	return nil
}

// ListSessions returns the user's sessions seen since idleSince.
func (s *Service) ListSessions(ctx context.Context, actor *tierpix.Identity, username string, idleSince time.Time) ([]tierpix.Session, error) {
	target, err := s.adminFind(ctx, actor, username)
	if err != nil {
		return nil, err
	}
	sessions, err := s.st.ListUserSessions(ctx, target.ID, idleSince)
	if err != nil {
		return nil, fmt.Errorf("list sessions of %q: %w", target.Username, err)
	}
	return sessions, nil
}

// EndSessions signs the user out of every browser; their tokens and password stay.
func (s *Service) EndSessions(ctx context.Context, actor *tierpix.Identity, username string) (int, error) {
	target, err := s.adminFind(ctx, actor, username)
	if err != nil {
		return 0, err
	}
	n, err := s.st.DeleteUserSessions(ctx, target.ID)
	if err != nil {
		return 0, fmt.Errorf("delete sessions of %q: %w", target.Username, err)
	}
	return n, nil
}

// adminFind is FindUser for the admin-only operations on a user's tokens and sessions.
func (s *Service) adminFind(ctx context.Context, actor *tierpix.Identity, username string) (tierpix.User, error) {
	if err := tierpix.RequireAdmin(actor); err != nil {
		return tierpix.User{}, err
	}
	id, err := s.FindUser(ctx, actor, username)
	return id.User, err
}

const imageNotFound = "The image does not exist."

// errNoImage is the one answer to an image that is missing or not the actor's to see.
func errNoImage() error { return tierpix.Errorf(tierpix.ENOTFOUND, imageNotFound) }

// ListImages returns a page of the actor's images, newest first, before the sequence number
// before (0: from the newest).
func (s *Service) ListImages(ctx context.Context, actor *tierpix.Identity, before int64, limit int) ([]tierpix.Image, error) {
	imgs, err := s.st.ListImages(ctx, actor.User.ID, before, limit)
	if err != nil {
		return nil, fmt.Errorf("list images of user %d: %w", actor.User.ID, err)
	}
	return imgs, nil
}

// AddImage validates the upload spooled at tmpPath (size bytes, a PNG or JPEG within the
// pixel cap, decoded within the decode budget) and makes it the actor's image named name. The
// store moves the file into place only once the row is in; on an error the caller removes
// the temp file.
func (s *Service) AddImage(ctx context.Context, actor *tierpix.Identity, tmpPath, name string, size int64) (tierpix.Image, error) {
	info, err := s.validate(ctx, tmpPath)
	if err != nil {
		var e *tierpix.Error
		if errors.As(err, &e) {
			return tierpix.Image{}, err
		}
		return tierpix.Image{}, fmt.Errorf("validate upload: %w", err)
	}
	img := tierpix.Image{
		OwnerID:   actor.User.ID,
		Name:      name,
		Format:    info.Format,
		Width:     info.Width,
		Height:    info.Height,
		SizeBytes: size,
	}
	if err := s.st.CreateImage(ctx, &img, tmpPath); err != nil {
		return tierpix.Image{}, fmt.Errorf("create image: %w", err)
	}
	return img, nil
}

// FindImage returns one of the actor's own images. Another user's image is as absent as a
// missing one, so ids cannot be probed.
func (s *Service) FindImage(ctx context.Context, actor *tierpix.Identity, id string) (tierpix.Image, error) {
	if !tierpix.ValidImageID(id) {
		return tierpix.Image{}, errNoImage()
	}
	img, err := s.st.FindImage(ctx, id)
	if err == nil && img.OwnerID != actor.User.ID {
		return tierpix.Image{}, errNoImage()
	}
	if err != nil {
		return tierpix.Image{}, notFound(err, imageNotFound, fmt.Sprintf("find image %q", id))
	}
	return img, nil
}

// DeleteImage deletes one of the actor's own images.
func (s *Service) DeleteImage(ctx context.Context, actor *tierpix.Identity, id string) error {
	return s.deleteImage(ctx, actor.User.ID, id)
}

// ListAllImages returns a page of every user's images, or of the user ownerID's when it is
// not 0, newest first, for admins.
func (s *Service) ListAllImages(ctx context.Context, actor *tierpix.Identity, ownerID int64, before int64, limit int) ([]tierpix.OwnedImage, error) {
	if err := tierpix.RequireAdmin(actor); err != nil {
		return nil, err
	}
	imgs, err := s.st.ListAllImages(ctx, ownerID, before, limit)
	if err != nil {
		return nil, fmt.Errorf("list all images: %w", err)
	}
	return imgs, nil
}

// FindAnyImage returns any user's image with its owner's username, for admins.
func (s *Service) FindAnyImage(ctx context.Context, actor *tierpix.Identity, id string) (tierpix.OwnedImage, error) {
	if err := tierpix.RequireAdmin(actor); err != nil {
		return tierpix.OwnedImage{}, err
	}
	if !tierpix.ValidImageID(id) {
		return tierpix.OwnedImage{}, errNoImage()
	}
	img, err := s.st.FindImage(ctx, id)
	if err != nil {
		return tierpix.OwnedImage{}, notFound(err, imageNotFound, fmt.Sprintf("find image %q", id))
	}
	owner, err := s.st.FindUserByID(ctx, img.OwnerID)
	if err != nil {
		// The owner went between the two reads, and their images with them.
		return tierpix.OwnedImage{}, notFound(err, imageNotFound, fmt.Sprintf("find owner of image %q", id))
	}
	return tierpix.OwnedImage{Image: img, Owner: owner.User.Username}, nil
}

// DeleteAnyImage deletes any user's image, as its owner would, for admins.
func (s *Service) DeleteAnyImage(ctx context.Context, actor *tierpix.Identity, id string) error {
	if err := tierpix.RequireAdmin(actor); err != nil {
		return err
	}
	if !tierpix.ValidImageID(id) {
		return errNoImage()
	}
	img, err := s.st.FindImage(ctx, id)
	if err != nil {
		return notFound(err, imageNotFound, fmt.Sprintf("find image %q", id))
	}
	return s.deleteImage(ctx, img.OwnerID, id)
}

// deleteImage removes the row and the original and purges every cached render, so the
// image's links stop working on this node at once.
func (s *Service) deleteImage(ctx context.Context, owner int64, id string) error {
	err := s.st.DeleteImage(ctx, owner, id)
	if tierpix.ErrorCode(err) == tierpix.ENOTFOUND {
		return errNoImage()
	}
	// Purge even on another error: whether the row went or not, a purge costs one render.
	s.purger.Purge(id)
	if err := s.kept("delete image "+id, err); err != nil {
		return fmt.Errorf("delete image %q: %w", id, err)
	}
	return nil
}
