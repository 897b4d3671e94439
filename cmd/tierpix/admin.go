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
	"path/filepath"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/service"
	"github.com/tierpix/tierpix/signin"
	"github.com/tierpix/tierpix/store"
	"golang.org/x/crypto/bcrypt"
)

// adminTier is the tier of admins that tierpix creates itself; admins are trusted with
// everything, so they get the widest builtin tier.
const adminTier = "Enterprise"

// storeConfig is the store's part of the configuration.
func storeConfig(cfg config) store.Config {
	return store.Config{
		DatabaseURL:         cfg.DatabaseURL,
		DataDir:             cfg.DataDir,
		Originals:           cfg.Originals,
		S3:                  cfg.S3,
		OriginalsCacheBytes: cfg.OriginalsCache,
		Timeout:             cfg.DBTimeout,
		MinFreeBytes:        cfg.MinFreeBytes,
	}
}

func openStore(ctx context.Context, cfg config) (*store.Store, error) {
	st, err := store.Open(ctx, storeConfig(cfg))
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
	return withOperator(ctx, cfg, func(svc *service.Service) error {
		u, err := svc.CreateUser(ctx, nil, tierpix.NewUser{Username: fs.Arg(0), Password: pw, Tier: *tier, IsAdmin: *admin})
		if err != nil {
			return describe(err)
		}
		fmt.Fprintf(stdout, "created user %s (tier %s, admin %t)\n", u.Username, u.TierName, u.IsAdmin)
		if generated {
			fmt.Fprintf(stdout, "password: %s\n", pw)
		}
		return nil
	})
}

func cmdSetTier(ctx context.Context, cfg config, args []string, stdout io.Writer) error {
	if len(args) != 2 {
		return errors.New("usage: tierpix set-tier USERNAME TIER")
	}
	return withOperator(ctx, cfg, func(svc *service.Service) error {
		u, err := svc.UpdateUser(ctx, nil, args[0], tierpix.UserUpdate{Tier: &args[1]})
		if err != nil {
			return describe(err)
		}
		fmt.Fprintf(stdout, "user %s is now on tier %s\n", u.Username, u.TierName)
		return nil
	})
}

// cmdSetPassword sets a user's password as an admin would (their sessions end): how an
// operator recovers a lost admin password.
func cmdSetPassword(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("set-password", flag.ContinueOnError)
	fs.SetOutput(stderr)
	password := fs.String("password", "", "the new password (default: generate one and print it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: tierpix set-password [-password P] USERNAME")
	}
	pw, generated := *password, false
	if pw == "" {
		pw, generated = randomPassword(), true
	}
	return withOperator(ctx, cfg, func(svc *service.Service) error {
		u, err := svc.UpdateUser(ctx, nil, fs.Arg(0), tierpix.UserUpdate{Password: &pw})
		if err != nil {
			return describe(err)
		}
		fmt.Fprintf(stdout, "set the password of %s; their browser sessions have ended\n", u.Username)
		if generated {
			fmt.Fprintf(stdout, "password: %s\n", pw)
		}
		return nil
	})
}

func cmdMintToken(ctx context.Context, cfg config, args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: tierpix mint-token USERNAME")
	}
	return withOperator(ctx, cfg, func(svc *service.Service) error {
		_, _, tok, err := svc.CreateToken(ctx, nil, args[0])
		if err != nil {
			return describe(err)
		}
		fmt.Fprintln(stdout, tok)
		return nil
	})
}

// cmdMigrateOriginals copies a directory of originals into the bucket of TIERPIX_ORIGINALS,
// so that a deployment on one disk can move to a bucket; the store does the copy and its
// checks, and this prints its progress and the outcome.
func cmdMigrateOriginals(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate-originals", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the directory of originals to copy (default <data dir>/originals)")
	workers := fs.Int("workers", store.DefaultCopyWorkers, "originals copied at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *workers < 1 {
		return errors.New("usage: tierpix migrate-originals [-from DIR] [-workers N] (N at least 1)")
	}
	dir := *from
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, "originals")
	}
	// Checked before the store opens: with originals in a directory it would create one.
	if _, _, ok, _ := store.ParseOriginals(cfg.Originals); !ok {
		return fmt.Errorf("migrate-originals copies into a bucket: set TIERPIX_ORIGINALS=s3://BUCKET/PREFIX and the S3 settings (see 'tierpix env'); TIERPIX_ORIGINALS is %q", cfg.Originals)
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()

	last := time.Now() // the first line after a second, when the rate means something
	res, err := st.CopyOriginalsFrom(ctx, dir, store.CopyOptions{
		Workers: *workers,
		Progress: func(r store.CopyResult, id string, err error) {
			if err != nil {
				fmt.Fprintf(stderr, "migrate-originals: failed %s: %v\n", id, err)
			}
			if time.Since(last) >= time.Second {
				last = time.Now()
				fmt.Fprintln(stderr, copyProgress(r))
			}
		},
	})
	if res.Files > 0 || err == nil {
		fmt.Fprintln(stderr, copyProgress(res))
		fmt.Fprintf(stdout, "%d of %d originals in %s now in %s: %d copied (%s in %s, %.1f MiB/s), %d already there, %d deleted meanwhile, %d failed\n",
			res.Copied+res.Skipped, res.Files, dir, st.Originals(), res.Copied, mib(res.BytesCopied), res.Elapsed.Round(time.Second), res.Rate(), res.Skipped, res.Gone, res.Failed)
		fmt.Fprintf(stdout, "the files in %s are kept: once a run ends without failures, set TIERPIX_ORIGINALS=%s on every node, restart, then remove the directory\n", dir, cfg.Originals)
	}
	if err != nil {
		return fmt.Errorf("migrate-originals: %w", err)
	}
	return nil
}

// copyProgress is the progress line of migrate-originals.
func copyProgress(r store.CopyResult) string {
	eta := "ETA unknown"
	if d, ok := r.ETA(); ok {
		eta = "ETA " + d.String()
	}
	return fmt.Sprintf("migrate-originals: %d/%d files, %s copied, %d skipped (already there), %d failed, %.1f MiB/s, %s",
		r.Done, r.Files, mib(r.BytesCopied), r.Skipped, r.Failed, r.Rate(), eta)
}

// mib writes a byte count in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// noPurge stands for the origin at the command line, which runs none: the command line
// deletes no images, and a running server's origin is told by the change epoch.
type noPurge struct{}

func (noPurge) Purge(string) {}

// operator returns the services as the command line and start-up use them: the actor is nil,
// the operator, and the rules are those of the API and the admin pages.
func operator(st *store.Store) (*service.Service, error) {
	si, err := signin.New(signin.Config{}, st, nil)
	if err != nil {
		return nil, err
	}
	return service.New(service.Config{}, st, si, noPurge{}, nil)
}

// withOperator opens the store and hands the operator's services to fn.
func withOperator(ctx context.Context, cfg config, fn func(*service.Service) error) error {
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	svc, err := operator(st)
	if err != nil {
		return err
	}
	return fn(svc)
}

// ensureAdmin makes sure someone can administer the service: the configured admin is created
// or updated (password, admin flag), and when none is configured and no admin exists, an
// "admin" with a random password is created and its password printed once.
//
// Replicas starting together on a fresh database race to create that admin; the one that
// loses sees a conflict and looks again, so every replica starts.
func ensureAdmin(ctx context.Context, st *store.Store, cfg config, logger *slog.Logger, out io.Writer) error {
	svc, err := operator(st)
	if err != nil {
		return err
	}
	if cfg.AdminUsername != "" {
		err := ensureConfiguredAdmin(ctx, svc, cfg, logger)
		if tierpix.ErrorCode(err) == tierpix.ECONFLICT {
			// Another replica created the admin between our lookup and our insert.
			err = ensureConfiguredAdmin(ctx, svc, cfg, logger)
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
	if _, err := svc.CreateUser(ctx, nil, tierpix.NewUser{Username: "admin", Password: pw, Tier: adminTier, IsAdmin: true}); err != nil {
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
func ensureConfiguredAdmin(ctx context.Context, svc *service.Service, cfg config, logger *slog.Logger) error {
	if err := tierpix.ValidatePassword(cfg.AdminPassword); err != nil {
		return fmt.Errorf("TIERPIX_ADMIN_PASSWORD: %w", describe(err))
	}
	id, err := svc.FindUser(ctx, nil, cfg.AdminUsername)
	switch {
	case err == nil:
		if bcrypt.CompareHashAndPassword([]byte(id.User.PasswordHash), []byte(cfg.AdminPassword)) == nil && id.User.IsAdmin {
			return nil
		}
		admin := true
		if _, err := svc.UpdateUser(ctx, nil, cfg.AdminUsername, tierpix.UserUpdate{Password: &cfg.AdminPassword, IsAdmin: &admin}); err != nil {
			return fmt.Errorf("update admin %s: %w", cfg.AdminUsername, err)
		}
		logger.Info("admin updated from the environment", "username", cfg.AdminUsername)
		return nil
	case tierpix.ErrorCode(err) == tierpix.ENOTFOUND:
		nu := tierpix.NewUser{Username: cfg.AdminUsername, Password: cfg.AdminPassword, Tier: adminTier, IsAdmin: true}
		if _, err := svc.CreateUser(ctx, nil, nu); err != nil {
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
