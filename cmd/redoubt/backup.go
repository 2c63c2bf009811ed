package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/redoubt-systems/redoubt/backup"
	"github.com/redoubt-systems/redoubt/internal/instancelock"
	"github.com/redoubt-systems/redoubt/storage"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// redoubt backup --config FILE --to DIR|- [--recipient age1...]
func backupCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the instance's configuration file")
	to := fs.String("to", "", "directory to write the backup into, or - for standard output")
	var extra multiFlag
	fs.Var(&extra, "recipient", "age public key to encrypt to (repeatable; added to backup.recipients)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *to == "" {
		return errors.New("usage: redoubt backup --config FILE --to DIR|- [--recipient age1...]")
	}
	srv, err := open(*cfgPath)
	if err != nil {
		return err
	}
	defer srv.Close()
	srv.Cfg.Backup.Recipients = append(srv.Cfg.Backup.Recipients, extra...)
	if len(srv.Cfg.Backup.Recipients) == 0 {
		return errors.New("backup: no recipients: set backup.recipients or give --recipient")
	}
	ctx, now := context.Background(), time.Now()
	if *to == "-" {
		recipients, err := backup.Recipients(srv.Cfg.Backup.Recipients)
		if err != nil {
			return err
		}
		if _, err := backup.Write(ctx, srv.DB, srv.Cfg.Database, srv.Cfg.Media.Path, srv.Cfg.ServerName, recipients, stdout, now); err != nil {
			return err
		}
		return srv.DB.Write(ctx, func(q storage.Q) error { return q.SetInstanceState(ctx, "last_backup_ts", now.UnixMilli()) })
	}
	path, err := backup.ToDir(ctx, srv.Cfg, srv.DB, *to, now)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, path)
	return nil
}

// redoubt restore --from FILE --identity KEYFILE --data DIR [--force]
func restoreCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	from := fs.String("from", "", "the backup file (- for standard input)")
	identity := fs.String("identity", "", "file with the age private key (AGE-SECRET-KEY-1...)")
	data := fs.String("data", "", "directory to restore into: DIR/redoubt.db and DIR/media")
	force := fs.Bool("force", false, "replace an instance already in DIR")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" || *identity == "" || *data == "" {
		return errors.New("usage: redoubt restore --from FILE --identity KEYFILE --data DIR [--force]")
	}
	// Not under a server: the lock is held until the database is in place.
	if _, err := os.Stat(*data); err == nil {
		lock, err := instancelock.Acquire(backup.DatabaseFile(*data))
		if err != nil {
			return fmt.Errorf("refusing: %w", err)
		}
		defer lock.Release()
	}
	keyFile, err := os.Open(*identity)
	if err != nil {
		return err
	}
	identities, err := age.ParseIdentities(keyFile)
	keyFile.Close()
	if err != nil {
		return fmt.Errorf("restore: %s holds no age identity: %w", *identity, err)
	}
	var in io.Reader = os.Stdin
	if *from != "-" {
		f, err := os.Open(*from)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	m, err := backup.Restore(context.Background(), in, identities, *data, *force)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s as of %s (%d files) into %s; point database (and media.path, if used) there\n",
		m.ServerName, time.UnixMilli(m.CreatedTS).UTC().Format(time.RFC3339), len(m.Files), *data)
	return nil
}

// redoubt verify --config FILE
func verifyCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the instance's configuration file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if _, err := os.Stat(cfg.Database); err != nil {
		return err
	}
	problems, err := backup.Check(context.Background(), cfg.Database)
	if err != nil {
		return err
	}
	for _, p := range problems {
		fmt.Fprintln(stdout, "problem:", p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("verify: %d problems in %s", len(problems), cfg.Database)
	}
	fmt.Fprintf(stdout, "%s: integrity and foreign keys ok\n", cfg.Database)
	return nil
}
