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
	"strconv"
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
		s.logger.Warn(op+": originals left in storage for the sweep", "err", err)
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
	c := &tierpix.Change{Action: tierpix.ActionCreate, ObjectType: tierpix.ObjectTier}
	err := s.audited(ctx, actor, c, func(ctx context.Context) error {
		if err := s.st.CreateTier(ctx, &t); err != nil {
			return err
		}
		c.ObjectID, c.ObjectRepr = t.Name, t.Name
		c.Fields = tierFields(nil, &t)
		return nil
	})
	if err != nil {
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
	var t, old tierpix.Tier
	c := &tierpix.Change{Action: tierpix.ActionUpdate, ObjectType: tierpix.ObjectTier}
	err := s.audited(ctx, actor, c, func(ctx context.Context) error {
		var err error
		t, err = s.st.ModifyTier(ctx, name, func(t *tierpix.Tier) error {
			old = *t
			return applyTier(upd, t)
		})
		if err != nil {
			return err
		}
		c.ObjectID, c.ObjectRepr = t.Name, t.Name
		c.Fields = tierFields(&old, &t)
		return nil
	})
	if err != nil {
		return tierpix.Tier{}, notFound(err, tierNotFound, fmt.Sprintf("update tier %q", name))
	}
	return t, nil
}

// applyTier sets the fields upd holds on t.
func applyTier(upd tierpix.TierUpdate, t *tierpix.Tier) error {
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
}

// CheckDeleteTier returns the tier named name and why it cannot be deleted, if it cannot.
func (s *Service) CheckDeleteTier(ctx context.Context, actor *tierpix.Identity, name string) (tierpix.Tier, error) {
	if err := tierpix.RequireAdmin(actor); err != nil {
		return tierpix.Tier{}, err
	}
	t, err := s.FindTier(ctx, name)
	if err != nil {
		return tierpix.Tier{}, err
	}
	return t, s.deleteTierRefusal(ctx, &t)
}

// deleteTierRefusal is the rule of which tiers stay: builtin ones, and those users are on
// (the store's foreign key also refuses the latter, should a user join meanwhile).
func (s *Service) deleteTierRefusal(ctx context.Context, t *tierpix.Tier) error {
	if err := tierpix.BuiltinRefusal(t); err != nil {
		return err
	}
	n, err := s.st.CountTierUsers(ctx, t.Name)
	if err != nil {
		return fmt.Errorf("count users of tier %q: %w", t.Name, err)
	}
	if n > 0 {
		return tierpix.Errorf(tierpix.ECONFLICT, "The tier %s has %s. Move them to another tier first.", t.Name, plural(n, "user", "users"))
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// DeleteTier deletes a tier no user is on.
func (s *Service) DeleteTier(ctx context.Context, actor *tierpix.Identity, name string) error {
	t, err := s.CheckDeleteTier(ctx, actor, name)
	if err != nil {
		return err
	}
	c := &tierpix.Change{Action: tierpix.ActionDelete, ObjectType: tierpix.ObjectTier,
		ObjectID: t.Name, ObjectRepr: t.Name, Fields: tierFields(&t, nil)}
	err = s.audited(ctx, actor, c, func(ctx context.Context) error {
		return s.st.DeleteTier(ctx, t.Name)
	})
	if err != nil {
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
		// Name every field at fault at once: a taken username too, not only on the next try.
		if fields["username"] == "" {
			if _, err := s.st.FindUser(ctx, nu.Username); err == nil {
				fields["username"] = fmt.Sprintf("The user %q already exists.", nu.Username)
			}
		}
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
	c := &tierpix.Change{Action: tierpix.ActionCreate, ObjectType: tierpix.ObjectUser}
	err = s.audited(ctx, actor, c, func(ctx context.Context) error {
		if err := s.st.CreateUser(ctx, &u); err != nil {
			return err
		}
		c.ObjectID, c.ObjectRepr = userObject(&u)
		c.Fields = append(userFields(nil, &u), tierpix.FieldChange{Field: "password", Note: "set"})
		return nil
	})
	if err != nil {
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
	var u, old tierpix.User
	c := &tierpix.Change{Action: tierpix.ActionUpdate, ObjectType: tierpix.ObjectUser}
	err := s.audited(ctx, actor, c, func(ctx context.Context) error {
		var err error
		u, err = s.st.ModifyUser(ctx, username, func(u *tierpix.User) error {
			old = *u
			return applyUser(actor, upd, hash, u)
		})
		if err != nil {
			return err
		}
		c.ObjectID, c.ObjectRepr = userObject(&u)
		c.Fields = userFields(&old, &u)
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

// applyUser sets the fields upd holds on u, a new password as its hash, for actor.
func applyUser(actor *tierpix.Identity, upd tierpix.UserUpdate, hash string, u *tierpix.User) error {
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
}

// ChangePassword changes the actor's own password, given the current one, with the rules of
// an admin's change: the length rules, and every session of the user ends (the caller signs
// the browser it came from in again). A wrong current password is EINVALID on the field
// "current_password", and counts as a failed sign-in from addr (the client's address) for
// the throttle.
func (s *Service) ChangePassword(ctx context.Context, actor *tierpix.Identity, current, next, addr string) error {
	if actor == nil {
		return tierpix.Errorf(tierpix.EINVALID, "The command line sets passwords with set-password.")
	}
	fields := map[string]string{}
	if current == "" {
		fields["current_password"] = "This field is required."
	}
	if err := tierpix.ValidatePassword(next); err != nil {
		fields["new_password"] = tierpix.ErrorFields(err)["password"]
	}
	if len(fields) > 0 {
		return &tierpix.Error{Code: tierpix.EINVALID, Message: "The request has invalid fields.", Fields: fields}
	}
	if _, err := s.signin.SignIn(ctx, actor.User.Username, current, addr); err != nil {
		if tierpix.ErrorCode(err) == tierpix.EUNAUTHORIZED {
			return tierpix.Invalid("current_password", "This is not your current password.")
		}
		return err
	}
	hash, err := s.signin.HashPassword(ctx, next, s.cfg.BcryptCost)
	if err != nil {
		return err
	}
	c := &tierpix.Change{Action: tierpix.ActionPassword, ObjectType: tierpix.ObjectUser}
	err = s.audited(ctx, actor, c, func(ctx context.Context) error {
		u, err := s.st.ModifyUser(ctx, actor.User.Username, func(u *tierpix.User) error {
			u.PasswordHash = hash
			return nil
		})
		if err != nil {
			return err
		}
		c.ObjectID, c.ObjectRepr = userObject(&u)
		c.Fields = []tierpix.FieldChange{{Field: "password", Note: "changed"}}
		return nil
	})
	if err != nil {
		return notFound(err, userNotFound, fmt.Sprintf("change password of %q", actor.User.Username))
	}
	s.signin.Forget(actor.User.Username)
	return nil
}

// PlanDeleteUser counts what deleting the user takes along and says whether the delete
// would be refused.
func (s *Service) PlanDeleteUser(ctx context.Context, actor *tierpix.Identity, username string) (tierpix.UserDeletion, error) {
	target, err := s.adminFind(ctx, actor, username)
	if err != nil {
		return tierpix.UserDeletion{}, err
	}
	d := tierpix.UserDeletion{User: target, Refusal: tierpix.SelfDeleteRefusal(actor, &target)}
	if d.Images, d.Tokens, d.Sessions, err = s.st.UserCounts(ctx, target.ID); err != nil {
		return tierpix.UserDeletion{}, fmt.Errorf("count what %q owns: %w", target.Username, err)
	}
	if d.Refusal == nil && target.IsAdmin {
		admins, err := s.st.CountAdmins(ctx)
		if err != nil {
			return tierpix.UserDeletion{}, fmt.Errorf("count admins: %w", err)
		}
		if admins == 1 {
			d.Refusal = tierpix.Errorf(tierpix.ECONFLICT, "You cannot delete the last admin.")
		}
	}
	return d, nil
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
	var ids []string
	c := &tierpix.Change{Action: tierpix.ActionDelete, ObjectType: tierpix.ObjectUser}
	c.ObjectID, c.ObjectRepr = userObject(&target)
	c.Fields = userFields(&target, nil)
	err = s.audited(ctx, actor, c, func(ctx context.Context) error {
		var err error
		ids, err = s.st.DeleteUser(ctx, target.Username)
		if err != nil {
			return err
		}
		c.Fields = append(c.Fields, tierpix.FieldChange{Field: "images", Old: strconv.Itoa(len(ids))})
		return nil
	})
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
	var t tierpix.Token
	var secret string
	c := &tierpix.Change{Action: tierpix.ActionMintToken, ObjectType: tierpix.ObjectUser}
	c.ObjectID, c.ObjectRepr = userObject(&target)
	err = s.audited(ctx, actor, c, func(ctx context.Context) error {
		var err error
		if t, secret, err = s.st.CreateToken(ctx, target.ID); err != nil {
			return err
		}
		c.Fields = []tierpix.FieldChange{{Field: "token", New: strconv.FormatInt(t.ID, 10)}}
		return nil
	})
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
	c := &tierpix.Change{Action: tierpix.ActionRevokeToken, ObjectType: tierpix.ObjectUser,
		Fields: []tierpix.FieldChange{{Field: "token", Old: strconv.FormatInt(tokenID, 10)}}}
	c.ObjectID, c.ObjectRepr = userObject(&target)
	err = s.audited(ctx, actor, c, func(ctx context.Context) error {
		return s.st.DeleteToken(ctx, target.ID, tokenID)
	})
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
	var n int
	c := &tierpix.Change{Action: tierpix.ActionEndSessions, ObjectType: tierpix.ObjectUser}
	c.ObjectID, c.ObjectRepr = userObject(&target)
	err = s.audited(ctx, actor, c, func(ctx context.Context) error {
		var err error
		if n, err = s.st.DeleteUserSessions(ctx, target.ID); err != nil {
			return err
		}
		c.Fields = []tierpix.FieldChange{{Field: "sessions", Old: strconv.Itoa(n), New: "0"}}
		return nil
	})
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

// ListImagesOldest returns a page of the actor's images, oldest first, after the sequence
// number after.
func (s *Service) ListImagesOldest(ctx context.Context, actor *tierpix.Identity, after int64, limit int) ([]tierpix.Image, error) {
	imgs, err := s.st.ListImagesOldest(ctx, actor.User.ID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list images of user %d, oldest first: %w", actor.User.ID, err)
	}
	return imgs, nil
}

// AddImage validates the upload spooled at tmpPath (size bytes, a PNG or JPEG within the
// pixel cap, decoded within the decode budget) and makes it the actor's image named name. The
// store puts the original in place, then the row goes in with its audit entry; on an error
// the original is removed and the caller removes the temp file (which is gone on success).
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
	// The original goes in place first, outside the transaction: an upload to a bucket
	// takes as long as its bytes do, and must not hold the database meanwhile.
	staged, err := s.st.StageOriginal(ctx, tmpPath)
	if err != nil {
		return tierpix.Image{}, fmt.Errorf("store original: %w", err)
	}
	c := &tierpix.Change{Action: tierpix.ActionCreate, ObjectType: tierpix.ObjectImage}
	err = s.audited(ctx, actor, c, func(ctx context.Context) error {
		if err := s.st.InsertImage(ctx, &img, staged); err != nil {
			return err
		}
		c.ObjectID, c.ObjectRepr = img.ID, img.Name
		c.Fields = imageFields(&img, actor.User.Username, false)
		return nil
	})
	if err != nil {
		s.st.DiscardStaged(ctx, staged)
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
	img, err := s.FindImage(ctx, actor, id)
	if err != nil {
		return err
	}
	return s.deleteImage(ctx, actor, tierpix.OwnedImage{Image: img, Owner: actor.User.Username})
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

// ListAllImagesOldest returns a page of every user's images (or ownerID's), oldest first,
// for admins.
func (s *Service) ListAllImagesOldest(ctx context.Context, actor *tierpix.Identity, ownerID int64, after int64, limit int) ([]tierpix.OwnedImage, error) {
	if err := tierpix.RequireAdmin(actor); err != nil {
		return nil, err
	}
	imgs, err := s.st.ListAllImagesOldest(ctx, ownerID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list all images, oldest first: %w", err)
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
	img, err := s.FindAnyImage(ctx, actor, id)
	if err != nil {
		return err
	}
	return s.deleteImage(ctx, actor, img)
}

// deleteImage removes the row and the original and purges every cached render, so the
// image's links stop working on this node at once.
func (s *Service) deleteImage(ctx context.Context, actor *tierpix.Identity, img tierpix.OwnedImage) error {
	c := &tierpix.Change{Action: tierpix.ActionDelete, ObjectType: tierpix.ObjectImage,
		ObjectID: img.ID, ObjectRepr: img.Name, Fields: imageFields(&img.Image, img.Owner, true)}
	err := s.audited(ctx, actor, c, func(ctx context.Context) error {
		return s.st.DeleteImage(ctx, img.OwnerID, img.ID)
	})
	if tierpix.ErrorCode(err) == tierpix.ENOTFOUND {
		return errNoImage()
	}
	// Purge even on another error: whether the row went or not, a purge costs one render.
	s.purger.Purge(img.ID)
	if err := s.kept("delete image "+img.ID, err); err != nil {
		return fmt.Errorf("delete image %q: %w", img.ID, err)
	}
	return nil
}
