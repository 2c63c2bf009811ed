package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redoubt-systems/redoubt/backup"
	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/export"
)

// redoubt export --config FILE --out FILE.tar.zst|--to DESTINATION [--user @alice:server] [--include-secrets]
func exportCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the instance's configuration file")
	out := fs.String("out", "", "the archive to write (FILE.tar.zst), or - for standard output")
	to := fs.String("to", "", "or a backup destination's name: the archive goes there under exports/, encrypted to backup.recipients")
	user := fs.String("user", "", "export only what concerns this user (a data-access request)")
	secrets := fs.Bool("include-secrets", false, "include password hashes and access token hashes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*out == "") == (*to == "") {
		return errors.New("usage: redoubt export --config FILE --out FILE.tar.zst|--to DESTINATION [--user @alice:server] [--include-secrets]")
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
	write := func(w io.Writer) (export.Manifest, error) {
		return export.Write(ctx, srv.DB, srv.Media, srv.Cfg.ServerName, opts, spool, w, time.Now())
	}
	var m export.Manifest
	switch {
	case *to != "":
		if m, *out, err = exportTo(ctx, srv.Cfg, *to, write); err != nil {
			return err
		}
	case *out == "-":
		_, err := write(stdout)
		return err
	default:
		if m, err = exportFile(*out, write); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "exported %s (%s): %d users, %d rooms, %d events, %d media files to %s\n", m.ServerName, m.Scope,
		m.Counts["users"], m.Counts["rooms"], m.Counts["events"], m.Counts["media"], *out)
	return srv.Admin.Record(ctx, operator, "export", map[bool]string{true: *user, false: "instance"}[*user != ""],
		fmt.Sprintf("include_secrets=%v", *secrets))
}

// exportFile writes the archive to path, under a temporary name until it
// is complete.
func exportFile(path string, write func(io.Writer) (export.Manifest, error)) (export.Manifest, error) {
	f, err := os.OpenFile(path+".partial", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return export.Manifest{}, err
	}
	m, err := write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(path+".partial", path)
	}
	if err != nil {
		os.Remove(path + ".partial")
	}
	return m, err
}

// exportTo streams the archive, encrypted to backup.recipients, to a
// destination's exports/ (where destroy reaches it too), and returns where
// it went. The store holds no plaintext; the tenant's age identity opens
// it (age -d -i KEY FILE > export.tar.zst).
func exportTo(ctx context.Context, cfg *config.Config, name string, write func(io.Writer) (export.Manifest, error)) (export.Manifest, string, error) {
	recipients, err := backup.Recipients(cfg.Backup.Recipients)
	if err != nil {
		return export.Manifest{}, "", err
	}
	if len(recipients) == 0 {
		return export.Manifest{}, "", errors.New("export: --to needs backup.recipients to encrypt to")
	}
	store, err := openConfigured(cfg, name, "the configuration")
	if err != nil {
		return export.Manifest{}, "", fmt.Errorf("export: %w", err)
	}
	key := "exports/" + strings.Replace(backup.FileName(cfg.ServerName, time.Now()), "redoubt-", "redoubt-export-", 1)
	var m export.Manifest
	body := backup.Encrypting(recipients, func(w io.Writer) (err error) {
		m, err = write(w)
		return err
	})
	err = store.PutStream(ctx, key, body)
	body.Close() // waits for write: m is whole once the store read it all
	if err != nil {
		_ = store.Delete(ctx, key)
		return export.Manifest{}, "", fmt.Errorf("export: %w", err)
	}
	return m, fmt.Sprintf("%s/%s", strings.TrimRight(cfg.Backup.Destination(name).URL, "/"), key), nil
}
