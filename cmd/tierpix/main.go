// Command tierpix is the tierpix server and its admin tool.
//
//	tierpix serve                                   run the API and the image origin
//	tierpix migrate                                 apply database migrations and exit
//	tierpix create-user [-tier T] [-admin] [-password P] USERNAME
//	tierpix set-tier USERNAME TIER
//	tierpix set-password [-password P] USERNAME
//	tierpix mint-token USERNAME
//	tierpix migrate-originals [-from DIR] [-workers N]
//
// Every command reads its configuration from the environment (see the README).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "tierpix:", err)
		}
		os.Exit(2)
	}
}

const usage = `usage: tierpix <command> [arguments]

commands:
  serve                                    run the API and the image origin
  migrate                                  apply database migrations and exit
  create-user [-tier T] [-admin] [-password P] USERNAME
                                           create a user (a password is generated and printed
                                           when -password is not given)
  set-tier USERNAME TIER                   move a user to a tier
  set-password [-password P] USERNAME      set a user's password (a lost admin password too;
                                           generated and printed when -password is not given)
  mint-token USERNAME                      mint an API token and print it once
  migrate-originals [-from DIR] [-workers N]
                                           copy the originals in DIR (default <data dir>/originals)
                                           into the bucket of TIERPIX_ORIGINALS=s3://...; resumable
  env                                      list the environment variables tierpix reads

Configuration comes from the environment; see 'tierpix env'.
`

// run is the whole program behind main, with its inputs passed in so tests can call it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, args := args[0], args[1:]
	if cmd == "help" || cmd == "-h" || cmd == "--help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	if cmd == "env" {
		for _, v := range envVars {
			fmt.Fprintf(stdout, "%-28s default %-24q %s\n", v.name, v.def, v.doc)
		}
		return nil
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	switch cmd {
	case "serve":
		if err := noArgs("serve", args); err != nil {
			return err
		}
		return serve(ctx, cfg, nil, logger, stderr)
	case "migrate":
		if err := noArgs("migrate", args); err != nil {
			return err
		}
		return cmdMigrate(ctx, cfg, stdout)
	case "create-user":
		return cmdCreateUser(ctx, cfg, args, stdout, stderr)
	case "set-tier":
		return cmdSetTier(ctx, cfg, args, stdout)
	case "set-password":
		return cmdSetPassword(ctx, cfg, args, stdout, stderr)
	case "mint-token":
		return cmdMintToken(ctx, cfg, args, stdout)
	case "migrate-originals":
		return cmdMigrateOriginals(ctx, cfg, args, stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func noArgs(cmd string, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%s takes no arguments; configure it through the environment", cmd)
	}
	return nil
}
