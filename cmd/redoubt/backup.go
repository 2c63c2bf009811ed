package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/redoubt-systems/redoubt/backup"
	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/internal/instancelock"
	"github.com/redoubt-systems/redoubt/objectstore"
	"github.com/redoubt-systems/redoubt/storage"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// redoubt backup --config FILE [--to DIR|-|DESTINATION] [--recipient age1...]
// redoubt backup list --config FILE --from DESTINATION|s3://BUCKET/PREFIX
func backupCmd(args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "list" {
		return backupListCmd(args[1:], stdout)
	}
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the instance's configuration file")
	to := fs.String("to", "", "directory to write the backup into, - for standard output, or a destination's name (default: every destination)")
	var extra multiFlag
	fs.Var(&extra, "recipient", "age public key to encrypt to (repeatable; added to backup.recipients)")
	if err := fs.Parse(args); err != nil {
		return err
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
	switch {
	case *to == "-":
		recipients, err := backup.Recipients(srv.Cfg.Backup.Recipients)
		if err != nil {
			return err
		}
		if _, err := backup.Write(ctx, srv.DB, srv.Cfg.Database, srv.Cfg.Media.Path, srv.Cfg.ServerName, recipients, stdout, now); err != nil {
			return err
		}
		return srv.DB.Write(ctx, func(q storage.Q) error { return q.SetInstanceState(ctx, "last_backup_ts", now.UnixMilli()) })
	case *to == "" && len(srv.Cfg.Backup.Destinations) == 0:
		return errors.New("usage: redoubt backup --config FILE --to DIR|-|DESTINATION (no backup.destinations are configured)")
	case *to != "" && srv.Cfg.Backup.Destination(*to) == nil:
		path, err := backup.ToDir(ctx, srv.Cfg, srv.DB, *to, now)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, path)
		return nil
	}
	ds := srv.Cfg.Backup.Destinations
	if *to != "" {
		ds = []config.Destination{*srv.Cfg.Backup.Destination(*to)}
	}
	stores, err := objectstore.OpenAll(ds)
	if err != nil {
		return err
	}
	t, err := backup.Take(ctx, srv.Cfg, srv.DB, "", stores, now)
	var failed int
	for _, s := range t.Sent {
		if s.Err != nil {
			failed++
			fmt.Fprintf(stdout, "%s: FAILED: %v\n", s.Store, s.Err)
			continue
		}
		fmt.Fprintf(stdout, "%s: snapshot %s\n", s.Store, s.Snapshot)
		if s.PruneErr != nil {
			fmt.Fprintf(stdout, "%s: old snapshots not removed: %v\n", s.Store, s.PruneErr)
		}
	}
	if err == nil && failed > 0 {
		err = fmt.Errorf("backup: %d of %d destinations failed", failed, len(t.Sent))
	}
	return err
}

// openDestination opens a destination of the configuration at cfgPath,
// named by its name or URL (its endpoint and credentials are there).
func openDestination(cfgPath, from string) (*objectstore.Store, error) {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	return openConfigured(cfg, from, cfgPath)
}

// openConfigured opens the destination of cfg named by its name or URL.
func openConfigured(cfg *config.Config, from, where string) (*objectstore.Store, error) {
	d := cfg.Backup.Destination(from)
	if d == nil {
		return nil, fmt.Errorf("%s is not one of backup.destinations in %s", from, where)
	}
	return objectstore.Open(*d)
}

// redoubt backup list --config FILE --from DESTINATION|s3://BUCKET/PREFIX
func backupListCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("backup list", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the instance's configuration file (where the destination is configured)")
	from := fs.String("from", "", "a destination's name or URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" {
		return errors.New("usage: redoubt backup list --config FILE --from DESTINATION|s3://BUCKET/PREFIX")
	}
	store, err := openDestination(*cfgPath, *from)
	if err != nil {
		return err
	}
	snaps, err := backup.Snapshots(context.Background(), store)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d snapshots\n", store, len(snaps))
	for _, sn := range snaps {
		if !sn.Complete {
			fmt.Fprintf(stdout, "  %s  incomplete (%d bytes; cut off while being sent, never restored)\n", sn.Name, sn.Size)
			continue
		}
		fmt.Fprintf(stdout, "  %s  %s  schema %d  %d bytes in %d parts\n", sn.Name,
			time.UnixMilli(sn.CreatedTS).UTC().Format(time.RFC3339), sn.SchemaVersion, sn.Size, len(sn.Parts))
	}
	gens, err := backup.Generations(context.Background(), store)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d generations (continuous backup)\n", len(gens))
	for _, g := range gens {
		from, to := g.Restorable()
		if from == 0 {
			fmt.Fprintf(stdout, "  %s  incomplete (being sent, or cut off; never restored)\n", g.Name)
			continue
		}
		fmt.Fprintf(stdout, "  %s  base %d bytes, %d segments, restorable %s to %s\n", g.Name, g.Base.Size, len(g.Segments), stamp(from), stamp(to))
	}
	var times []int64
	for _, sn := range snaps {
		if sn.Complete {
			times = append(times, sn.CreatedTS)
		}
	}
	for _, g := range gens {
		if from, to := g.Restorable(); from != 0 {
			times = append(times, from, to)
		}
	}
	if len(times) > 0 {
		fmt.Fprintf(stdout, "restorable: %s to %s (each snapshot's time, and any time within a generation)\n", stamp(slices.Min(times)), stamp(slices.Max(times)))
	}
	return nil
}

func stamp(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) }

// redoubt restore --from FILE|-|DESTINATION|s3://BUCKET/PREFIX [--config FILE] [--at TIME] --identity KEYFILE --data DIR [--force|--if-empty]
func restoreCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	from := fs.String("from", "", "the backup file (- for standard input), or a destination's name or URL")
	cfgPath := fs.String("config", "", "configuration file where the destination is configured (to restore from one)")
	at := fs.String("at", "", "restore the instance as it was at this time (RFC 3339, to the second with continuous backup; from a destination)")
	identity := fs.String("identity", "", "file with the age private key (AGE-SECRET-KEY-1...)")
	data := fs.String("data", "", "directory to restore into: DIR/redoubt.db and DIR/media")
	force := fs.Bool("force", false, "replace an instance already in DIR")
	ifEmpty := fs.Bool("if-empty", false, "restore only if DIR holds no instance; leave one that is there (a container's first start)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" || *identity == "" || *data == "" {
		return errors.New("usage: redoubt restore --from FILE|-|DESTINATION|s3://BUCKET/PREFIX [--config FILE] [--at TIME] --identity KEYFILE --data DIR [--force|--if-empty]")
	}
	var atTime time.Time
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return fmt.Errorf("restore: --at %q is not an RFC 3339 time (2026-12-06T16:00:00Z)", *at)
		}
		atTime = t
	}
	ctx := context.Background()
	var in io.Reader = os.Stdin
	var store *objectstore.Store
	switch {
	case *cfgPath != "" || strings.HasPrefix(*from, "s3://"):
		if *cfgPath == "" {
			return errors.New("restore: give --config, where the destination's endpoint and credentials are")
		}
		s, err := openDestination(*cfgPath, *from)
		if err != nil {
			return err
		}
		store = s
	case *at != "":
		return errors.New("restore: --at picks a time among a destination's snapshots and generations; a file is one backup")
	}
	// Not under a server: the lock is held until the database is in place.
	if _, err := os.Stat(*data); err == nil {
		lock, err := instancelock.Acquire(backup.DatabaseFile(*data))
		if err != nil {
			return fmt.Errorf("refusing: %w", err)
		}
		defer lock.Release()
	}
	if *ifEmpty && !*force {
		if _, err := os.Stat(backup.DatabaseFile(*data)); err == nil {
			fmt.Fprintf(stdout, "an instance is already in %s: nothing restored\n", *data)
			return nil
		}
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
	if store == nil && *from != "-" {
		f, err := os.Open(*from)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	var m backup.Manifest
	if store != nil {
		point, err := backup.Choose(ctx, store, atTime)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "restoring %s from %s\n", point, store)
		m, err = backup.RestorePoint(ctx, store, point, identities, *data, *force)
		if err != nil {
			return err
		}
		if len(m.MediaMissing) > 0 {
			fmt.Fprintf(stdout, "%d media files stored in the last moments before that time had not reached %s; they are left out: %s\n",
				len(m.MediaMissing), store.Name, strings.Join(m.MediaMissing, ", "))
		}
	} else if m, err = backup.Restore(ctx, in, identities, *data, *force); err != nil {
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
