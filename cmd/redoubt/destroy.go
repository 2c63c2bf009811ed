package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redoubt-systems/redoubt/backup"
	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/export"
	"github.com/redoubt-systems/redoubt/internal/instancelock"
	"github.com/redoubt-systems/redoubt/internal/shred"
	"github.com/redoubt-systems/redoubt/objectstore"
)

// location is one place an instance writes: paths are files or
// directories, patterns glob for files a crash may have left.
type location struct {
	what, where string // where, if set, names the location in the report
	paths       []string
	patterns    []string
}

// locations are every place an instance writes, wherever configured: the
// database with its WAL, shared memory and lock; what backups, exports and
// restores leave beside it while running; the admin API's exports; media;
// local backups; logs; the ACME certificate cache.
func locations(cfg *config.Config) []location {
	db, data := cfg.Database, cfg.DataDir()
	locs := []location{
		{what: "database", where: db + " (and -wal, -shm, -journal, .lock)", paths: []string{db, db + "-wal", db + "-shm", db + "-journal", instancelock.Path(db)}},
		{what: "temporary files", patterns: append([]string{export.TempFiles}, backup.TempFiles...)},
		{what: "exports", paths: []string{cfg.ExportDir()}},
		{what: "ACME certificate cache", paths: []string{cfg.ACMECacheDir()}},
	}
	for i, p := range locs[1].patterns {
		locs[1].patterns[i] = filepath.Join(data, p)
	}
	if cfg.Media.Path != "" {
		locs = append(locs, location{what: "media", paths: []string{cfg.Media.Path}})
	}
	if cfg.Backup.Dir != "" {
		locs = append(locs, location{what: "local backups", paths: []string{cfg.Backup.Dir}})
	}
	if cfg.Log.File != "" {
		locs = append(locs, location{what: "logs", paths: []string{cfg.Log.File}, patterns: []string{cfg.Log.File + ".*"}})
	}
	return locs
}

// destroy deletes everything the instance wrote, in every location it
// writes, and reports each location with what was removed there. Each
// file is overwritten before it is unlinked. The configuration file stays:
// it is the operator's, as are copies made elsewhere (redoubt export --out,
// backups copied off the machine).
func destroy(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("destroy", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the instance's configuration file")
	confirm := fs.String("confirm", "", "the instance's server_name, to confirm")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return errors.New("usage: redoubt destroy --config FILE --confirm SERVER_NAME")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if *confirm != cfg.ServerName {
		return fmt.Errorf("refusing: --confirm %q is not this instance's server_name", *confirm)
	}
	// Held until the end, so no server starts on a half-destroyed instance.
	lock, err := instancelock.Acquire(cfg.Database)
	switch {
	case err == nil:
		defer lock.Release()
	case errors.Is(err, os.ErrNotExist): // no data directory: nothing serves it
	default:
		return fmt.Errorf("refusing: %w", err)
	}
	var files int
	var bytes int64
	for _, loc := range locations(cfg) {
		var lines []string
		report := func(path string, size int64) {
			files++
			bytes += size
			lines = append(lines, fmt.Sprintf("  %s (%d bytes)", path, size))
		}
		paths := loc.paths
		for _, p := range loc.patterns {
			found, _ := filepath.Glob(p)
			paths = append(paths, found...)
		}
		for _, p := range paths {
			if err := remove(p, report); err != nil {
				return err
			}
		}
		where := loc.where
		if where == "" {
			where = strings.Join(append(loc.paths, loc.patterns...), ", ")
		}
		if len(lines) == 0 {
			fmt.Fprintf(stdout, "%s (%s): nothing there\n", loc.what, where)
			continue
		}
		fmt.Fprintf(stdout, "%s (%s): %d files overwritten and removed\n%s\n", loc.what, where, len(lines), strings.Join(lines, "\n"))
	}
	fmt.Fprintf(stdout, "instance %s destroyed here: %d files, %d bytes overwritten and removed; the configuration file %s is left\n",
		cfg.ServerName, files, bytes, *cfgPath)
	return destroyOffsite(cfg, stdout)
}

// destroyOffsite deletes every object of the instance at every backup
// destination and reports the counts. A destination that cannot be reached
// is reported with what is left there, and makes destroy fail: run it
// again when the store is back, or destroy the age identity, which makes
// every copy anywhere unreadable.
func destroyOffsite(cfg *config.Config, stdout io.Writer) error {
	ctx := context.Background()
	var left []string
	for _, d := range cfg.Backup.Destinations {
		s, err := objectstore.Open(d)
		var objects []objectstore.Object
		if err == nil {
			objects, err = s.List(ctx, "")
		}
		var n int
		var size int64
		for _, o := range objects {
			if err = s.Delete(ctx, o.Key); err != nil {
				break
			}
			n, size = n+1, size+o.Size
		}
		if err != nil {
			left = append(left, d.Name)
			fmt.Fprintf(stdout, "backup destination %s (%s): NOT DESTROYED: %v; %d objects (%d bytes) deleted, %d left\n",
				d.Name, d.URL, err, n, size, len(objects)-n)
			continue
		}
		fmt.Fprintf(stdout, "backup destination %s (%s): %d objects (%d bytes) deleted\n", d.Name, d.URL, n, size)
	}
	if len(left) > 0 {
		return fmt.Errorf("destroy: backups are left at %s: run destroy again when they can be reached, or destroy the age identity of backup.recipients (every copy becomes unreadable)",
			strings.Join(left, ", "))
	}
	return nil
}

// remove shreds a file, or a directory and everything below it.
func remove(path string, report func(string, int64)) error {
	info, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case info.IsDir():
		return shred.Tree(path, report)
	}
	n, err := shred.File(path)
	if err == nil {
		report(path, n)
	}
	return err
}

// healthCmd checks a running instance's /health, for container health
// checks: redoubt health --config FILE.
func healthCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the instance's configuration file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	scheme := "http"
	c := http.Client{Timeout: 3 * time.Second}
	if cfg.TLS.Enabled() {
		// The certificate is for the public name, not the listen address;
		// this checks liveness, not identity.
		scheme = "https"
		c.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec
	}
	host, port, _ := net.SplitHostPort(cfg.Listen)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	res, err := c.Get(scheme + "://" + net.JoinHostPort(host, port) + "/health")
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s", res.Status)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}
