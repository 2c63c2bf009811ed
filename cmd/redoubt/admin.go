package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redoubt-systems/redoubt/adminapi"
	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/internal/instancelock"
	"github.com/redoubt-systems/redoubt/server"
	"github.com/redoubt-systems/redoubt/storage"
)

// The operator's admin commands: what the admin API does, for operators
// without HTTP access. They open the instance's database directly (a
// running server may share it) and are recorded in the audit log as done
// by the operator.

const operator = "operator (command line)"

const userUsage = `usage:
  redoubt user add NAME [--admin] [--password-file F] [--config FILE]
  redoubt user list [--deactivated] [--config FILE]
  redoubt user deactivate NAME [--erase] [--config FILE]
  redoubt user reset-password NAME [--password-file F] [--config FILE]`

const tokenUsage = `usage:
  redoubt token create [--uses N] [--expires DURATION] [--token T] [--config FILE]
  redoubt token list [--config FILE]
  redoubt token delete TOKEN [--config FILE]`

// parseArgs parses flags that may come before or after one positional
// argument (a user name or token).
func parseArgs(fs *flag.FlagSet, args []string) (string, error) {
	var pos string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pos, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if pos == "" && fs.NArg() > 0 {
		pos = fs.Arg(0)
	}
	return pos, nil
}

// open starts the instance's services on its database, without serving.
func open(cfgPath string) (*server.Server, error) {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	// A command may run while a server serves the instance; it asks the
	// server's lock to know. Free, the lock is kept while the database is
	// opened (migrated, uploads recovered), so no server starts under that,
	// and let go after.
	var held *instancelock.HeldError
	lock, err := instancelock.Acquire(cfg.Database)
	if err == nil {
		defer lock.Release()
	}
	return server.New(context.Background(), cfg, server.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), BesideServer: errors.As(err, &held)})
}

func userID(srv *server.Server, name string) (string, error) {
	return srv.Auth.UserID(strings.TrimPrefix(strings.SplitN(name, ":", 2)[0], "@"))
}

func userCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(userUsage)
	}
	fs := flag.NewFlagSet("user "+args[0], flag.ContinueOnError)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	admin := fs.Bool("admin", false, "make the user an administrator (add)")
	pwFile := fs.String("password-file", "", "read the password from this file (default: prompt)")
	erase := fs.Bool("erase", false, "also erase the user's data (deactivate)")
	deactivated := fs.Bool("deactivated", false, "include deactivated users (list)")
	name, err := parseArgs(fs, args[1:])
	if err != nil {
		return err
	}
	cmd := args[0]
	if cmd != "list" && name == "" || cmd != "add" && cmd != "list" && cmd != "deactivate" && cmd != "reset-password" {
		return errors.New(userUsage)
	}
	var password string
	if cmd == "add" || cmd == "reset-password" {
		if password, err = readPassword(*pwFile); err != nil {
			return err
		}
	}
	srv, err := open(*cfgPath)
	if err != nil {
		return err
	}
	defer srv.Close()
	ctx := context.Background()
	if cmd == "list" {
		f := storage.UserFilter{Limit: 1 << 30, Deactivated: new(false)}
		if *deactivated {
			f.Deactivated = nil // everyone
		}
		users, _, err := srv.DB.R().ListUsers(ctx, f)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "USER\tDISPLAY NAME\tADMIN\tSTATUS\tCREATED")
		for _, u := range users {
			st := "active"
			if u.Deactivated {
				st = map[bool]string{true: "deactivated, erased", false: "deactivated"}[u.Erased]
			}
			fmt.Fprintf(w, "%s\t%s\t%v\t%s\t%s\n", u.UserID, u.DisplayName, u.IsAdmin, st, time.UnixMilli(u.CreatedTS).UTC().Format(time.DateOnly))
		}
		return w.Flush()
	}
	id, err := userID(srv, name)
	if err != nil {
		return err
	}
	if cmd != "add" {
		if ok, err := srv.DB.R().UserExists(ctx, id); err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("no user %s", id)
			}
			return err
		}
	}
	switch cmd {
	case "add":
		if err := srv.Auth.CheckPasswordPolicy(password); err != nil {
			return err
		}
		if err := srv.Auth.CreateUser(ctx, id, password, *admin); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created %s%s\n", id, map[bool]string{true: " (admin)", false: ""}[*admin])
		return srv.Admin.Record(ctx, operator, "create_user", id, map[bool]string{true: "admin=true", false: ""}[*admin])
	case "deactivate":
		if err := srv.Admin.DeactivateUser(ctx, id, *erase); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deactivated %s%s\n", id, map[bool]string{true: " and erased their data", false: ""}[*erase])
		return srv.Admin.Record(ctx, operator, "deactivate_user", id, fmt.Sprintf("erase=%v", *erase))
	default: // reset-password
		if err := srv.Auth.SetPassword(ctx, id, password, true, ""); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "reset the password of %s and logged out their devices\n", id)
		return srv.Admin.Record(ctx, operator, "reset_password", id, "logout_devices=true")
	}
}

func tokenCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(tokenUsage)
	}
	fs := flag.NewFlagSet("token "+args[0], flag.ContinueOnError)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	uses := fs.Int64("uses", -1, "how many registrations the token allows (default: unlimited)")
	expires := fs.String("expires", "", "how long the token is valid, e.g. 7d (default: forever)")
	custom := fs.String("token", "", "the token itself (default: 16 random characters)")
	name, err := parseArgs(fs, args[1:])
	if err != nil {
		return err
	}
	cmd := args[0]
	if cmd != "create" && cmd != "list" && cmd != "delete" || cmd == "delete" && name == "" {
		return errors.New(tokenUsage)
	}
	srv, err := open(*cfgPath)
	if err != nil {
		return err
	}
	defer srv.Close()
	ctx := context.Background()
	switch cmd {
	case "create":
		req := adminapi.TokenRequest{Token: *custom}
		if *uses >= 0 {
			req.UsesAllowed = uses
		}
		if *expires != "" {
			d, err := config.ParseDuration(*expires)
			if err != nil {
				return err
			}
			exp := time.Now().Add(d).UnixMilli()
			req.ExpiryTime = &exp
		}
		t, err := adminapi.CreateToken(ctx, srv.Admin.DB, time.Now(), req)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, t.Token)
		return srv.Admin.Record(ctx, operator, "create_registration_token", t.Token, "")
	case "list":
		tokens, err := srv.DB.R().RegistrationTokens(ctx, nil, time.Now().UnixMilli())
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "TOKEN\tUSES ALLOWED\tCOMPLETED\tEXPIRES\tVALID")
		for _, t := range tokens {
			allowed, exp := "unlimited", "never"
			if t.UsesAllowed != nil {
				allowed = fmt.Sprint(*t.UsesAllowed)
			}
			if t.ExpiryTime != nil {
				exp = time.UnixMilli(*t.ExpiryTime).UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%v\n", t.Token, allowed, t.Completed, exp, t.Valid(time.Now().UnixMilli()))
		}
		return w.Flush()
	default: // delete
		err := srv.DB.Write(ctx, func(q storage.Q) error { return q.DeleteRegistrationToken(ctx, name) })
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("no token %q", name)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted %s\n", name)
		return srv.Admin.Record(ctx, operator, "delete_registration_token", name, "")
	}
}
