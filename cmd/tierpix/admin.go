package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/store"
	"golang.org/x/crypto/bcrypt"
)

// adminTier is the tier of admins that tierpix creates itself; admins are trusted with
// everything, so they get the widest builtin tier.
const adminTier = "Enterprise"

func openStore(ctx context.Context, cfg config) (*store.Store, error) {
	st, err := store.Open(ctx, store.Config{DatabaseURL: cfg.DatabaseURL, DataDir: cfg.DataDir,
		Timeout: cfg.DBTimeout, MinFreeBytes: cfg.MinFreeBytes})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return st, nil
}

func cmdMigrate(ctx context.Context, cfg config, stdout io.Writer) error {
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintf(stdout, "migrations applied (%s)\n", st.Dialect())
	return nil
}

func cmdCreateUser(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("create-user", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tier := fs.String("tier", "Basic", "the user's tier")
	admin := fs.Bool("admin", false, "make the user an admin")
	password := fs.String("password", "", "the password (default: generate one and print it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: tierpix create-user [-tier T] [-admin] [-password P] USERNAME")
	}
	pw, generated := *password, false
	if pw == "" {
		pw, generated = randomPassword(), true
	}
	hash, err := store.HashPassword(pw, bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	u := tierpix.User{Username: fs.Arg(0), PasswordHash: hash, TierName: *tier, IsAdmin: *admin}
	if err := st.CreateUser(ctx, &u); err != nil {
		return describe(err)
	}
	fmt.Fprintf(stdout, "created user %s (tier %s, admin %t)\n", u.Username, u.TierName, u.IsAdmin)
	if generated {
		fmt.Fprintf(stdout, "password: %s\n", pw)
	}
	return nil
}

func cmdSetTier(ctx context.Context, cfg config, args []string, stdout io.Writer) error {
	if len(args) != 2 {
		return errors.New("usage: tierpix set-tier USERNAME TIER")
	}
	return withUser(ctx, cfg, args[0], func(st *store.Store, u *tierpix.User) error {
		u.TierName = args[1]
		if err := st.UpdateUser(ctx, u); err != nil {
			return describe(err)
		}
		fmt.Fprintf(stdout, "user %s is now on tier %s\n", u.Username, u.TierName)
		return nil
	})
}

func cmdMintToken(ctx context.Context, cfg config, args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: tierpix mint-token USERNAME")
	}
	return withUser(ctx, cfg, args[0], func(st *store.Store, u *tierpix.User) error {
		_, tok, err := st.CreateToken(ctx, u.ID)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, tok)
		return nil
	})
}

// withUser opens the store, finds a user by name and hands both to fn.
func withUser(ctx context.Context, cfg config, username string, fn func(*store.Store, *tierpix.User) error) error {
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	id, err := st.FindUser(ctx, username)
	if err != nil {
		return describe(err)
	}
	return fn(st, &id.User)
}

// ensureAdmin makes sure someone can administer the service: the configured admin is created
// or updated (password, admin flag), and when none is configured and no admin exists, an
// "admin" with a random password is created and its password printed once.
//
// Replicas starting together on a fresh database race to create that admin; the one that
// loses sees a conflict and looks again, so every replica starts.
func ensureAdmin(ctx context.Context, st *store.Store, cfg config, logger *slog.Logger, out io.Writer) error {
	if cfg.AdminUsername != "" {
		err := ensureConfiguredAdmin(ctx, st, cfg, logger)
		if tierpix.ErrorCode(err) == tierpix.ECONFLICT {
			// Another replica created the admin between our lookup and our insert.
			err = ensureConfiguredAdmin(ctx, st, cfg, logger)
		}
		return err
	}
	n, err := st.CountAdmins(ctx)
	if err != nil {
		return fmt.Errorf("count admins: %w", err)
	}
	if n > 0 {
		return nil
	}
	pw := randomPassword()
	hash, err := store.HashPassword(pw, bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	u := tierpix.User{Username: "admin", PasswordHash: hash, TierName: adminTier, IsAdmin: true}
	if err := st.CreateUser(ctx, &u); err != nil {
		if tierpix.ErrorCode(err) == tierpix.ECONFLICT {
			// Another replica won the race and printed its password; an "admin" that is not
			// an admin is still an error.
			if n, cerr := st.CountAdmins(ctx); cerr == nil && n > 0 {
				return nil
			}
		}
		return fmt.Errorf("create the first admin: %w", describe(err))
	}
	fmt.Fprintf(out, "\n  tierpix: created the first admin.\n    username: admin\n    password: %s\n  This password is shown only once.\n\n", pw)
	return nil
}

// ensureConfiguredAdmin creates or updates TIERPIX_ADMIN_USERNAME. A conflict comes back as
// ECONFLICT (not described), for ensureAdmin to retry.
func ensureConfiguredAdmin(ctx context.Context, st *store.Store, cfg config, logger *slog.Logger) error {
	hash, err := store.HashPassword(cfg.AdminPassword, bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("TIERPIX_ADMIN_PASSWORD: %w", describe(err))
	}
	id, err := st.FindUser(ctx, cfg.AdminUsername)
	switch {
	case err == nil:
		if bcrypt.CompareHashAndPassword([]byte(id.User.PasswordHash), []byte(cfg.AdminPassword)) == nil && id.User.IsAdmin {
			return nil
		}
		id.User.PasswordHash, id.User.IsAdmin = hash, true
		if err := st.UpdateUser(ctx, &id.User); err != nil {
			return fmt.Errorf("update admin %s: %w", cfg.AdminUsername, err)
		}
		logger.Info("admin updated from the environment", "username", cfg.AdminUsername)
		return nil
	case tierpix.ErrorCode(err) == tierpix.ENOTFOUND:
		u := tierpix.User{Username: cfg.AdminUsername, PasswordHash: hash, TierName: adminTier, IsAdmin: true}
		if err := st.CreateUser(ctx, &u); err != nil {
			if tierpix.ErrorCode(err) == tierpix.ECONFLICT {
				return err
			}
			return fmt.Errorf("create admin %s: %w", cfg.AdminUsername, describe(err))
		}
		logger.Info("admin created from the environment", "username", cfg.AdminUsername)
		return nil
	default:
		return fmt.Errorf("find admin %s: %w", cfg.AdminUsername, err)
	}
}

// randomPassword returns 128 random bits as text.
func randomPassword() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// describe turns a client-facing error into a readable one for the command line.
func describe(err error) error {
	var e *tierpix.Error
	if !errors.As(err, &e) {
		return err
	}
	msg := e.Message
	for f, m := range e.Fields {
		msg += fmt.Sprintf(" %s: %s.", f, m)
	}
	return errors.New(msg)
}
