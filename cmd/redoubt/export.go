package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/redoubt-systems/redoubt/export"
)

// redoubt export --config FILE --out FILE.tar.zst [--user @alice:server] [--include-secrets]
func exportCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the instance's configuration file")
	out := fs.String("out", "", "the archive to write (FILE.tar.zst), or - for standard output")
	user := fs.String("user", "", "export only what concerns this user (a data-access request)")
	secrets := fs.Bool("include-secrets", false, "include password hashes and access token hashes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("usage: redoubt export --config FILE --out FILE.tar.zst [--user @alice:server] [--include-secrets]")
	}
	srv, err := open(*cfgPath)
	if err != nil {
		return err
	}
	defer srv.Close()
	ctx := context.Background()
	if *user != "" {
		if ok, err := srv.DB.R().UserExists(ctx, *user); err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("export: no user %s", *user)
			}
			return err
		}
	}
	opts := export.Options{UserID: *user, IncludeSecrets: *secrets}
	spool := filepath.Dir(srv.Cfg.Database)
	if *out == "-" {
		_, err := export.Write(ctx, srv.DB, srv.Media, srv.Cfg.ServerName, opts, spool, stdout, time.Now())
		return err
	}
	f, err := os.OpenFile(*out+".partial", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	m, err := export.Write(ctx, srv.DB, srv.Media, srv.Cfg.ServerName, opts, spool, f, time.Now())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(*out+".partial", *out)
	}
	if err != nil {
		os.Remove(*out + ".partial")
		return err
	}
	fmt.Fprintf(stdout, "exported %s (%s): %d users, %d rooms, %d events, %d media files to %s\n", m.ServerName, m.Scope,
		m.Counts["users"], m.Counts["rooms"], m.Counts["events"], m.Counts["media"], *out)
	return srv.Admin.Record(ctx, operator, "export", map[bool]string{true: *user, false: "instance"}[*user != ""],
		fmt.Sprintf("include_secrets=%v", *secrets))
}
