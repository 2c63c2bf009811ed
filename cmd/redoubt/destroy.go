package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/internal/shred"
)

// destroy deletes everything an instance keeps: the database file with its
// WAL and shared-memory files (users, rooms, keys, the server's signing
// key and, unless media.path is set, media), the media directory, the
// local backups (backup.dir) and the log files. Each file is overwritten before it is unlinked. The
// configuration file stays: it is the operator's.
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
	if running(cfg.Listen) {
		return fmt.Errorf("refusing: a server answers on %s; stop it first", cfg.Listen)
	}
	var files int
	var bytes int64
	report := func(path string, size int64) {
		files++
		bytes += size
		fmt.Fprintf(stdout, "removed %s (%d bytes overwritten)\n", path, size)
	}
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		path := cfg.Database + suffix
		n, err := shred.File(path)
		if err != nil {
			return err
		}
		if n > 0 || suffix == "" {
			report(path, n)
		}
	}
	if cfg.Media.Path != "" {
		if err := shred.Tree(cfg.Media.Path, report); err != nil {
			return err
		}
	}
	if cfg.Backup.Dir != "" {
		if err := shred.Tree(cfg.Backup.Dir, report); err != nil {
			return err
		}
	}
	if cfg.Log.File != "" {
		logs, _ := filepath.Glob(cfg.Log.File + ".*")
		for _, path := range append(logs, cfg.Log.File) {
			n, err := shred.File(path)
			if err != nil {
				return err
			}
			report(path, n)
		}
	}
	fmt.Fprintf(stdout, "instance %s destroyed: %d files, %d bytes overwritten and removed; the configuration file %s is left\n",
		cfg.ServerName, files, bytes, *cfgPath)
	return nil
}

// running reports whether a Matrix server answers on the listen address.
func running(listen string) bool {
	conn, err := net.DialTimeout("tcp", listen, 300*time.Millisecond)
	if err != nil {
		return false
	}
	conn.Close()
	c := http.Client{Timeout: time.Second}
	res, err := c.Get("http://" + listen + "/_matrix/client/versions")
	if err != nil {
		return true // something listens; do not guess it is not us
	}
	res.Body.Close()
	return true
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
