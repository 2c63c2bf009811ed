package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redoubt-systems/redoubt/internal/instancelock"
	"github.com/redoubt-systems/redoubt/storage"
)

// A newer binary opening a database an older one left sends a snapshot of
// it, at the old schema, to the destinations before migrating; with no
// destination answering it migrates nothing and says why. A start with
// nothing to migrate sends nothing.
func TestUpgradeBacksUpFirst(t *testing.T) {
	root, cfgPath, _, eu, us := offsiteInstance(t, "")
	ctx := context.Background()
	latest := schemaVersion(t, filepath.Join(t.TempDir(), "new.db"), 0)
	dbPath := filepath.Join(root, "tenant.db")
	old := latest - 1
	schemaVersion(t, dbPath, old) // as the binary before this one left it

	cmd := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(args, &out, &out)
		return out.String(), err
	}
	eu.Stop()
	us.Stop()
	if out, err := cmd("user", "list", "--config", cfgPath); err == nil || !strings.Contains(err.Error(), "no backup before migrating") {
		t.Fatalf("started with no store to back up to: %v\n%s", err, out)
	}
	if db, err := storage.OpenAt(ctx, dbPath, old); err != nil {
		t.Fatalf("migrated without a backup: %v", err)
	} else {
		db.Close()
	}

	eu.Start()
	us.Start()
	if out, err := cmd("user", "list", "--config", cfgPath); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if v := schemaVersion(t, dbPath, 0); v != latest {
		t.Fatalf("schema %d after the upgrade, want %d", v, latest)
	}
	for _, store := range []string{"eu", "us"} {
		out, err := cmd("backup", "list", "--config", cfgPath, "--from", store)
		if err != nil || !strings.Contains(out, "1 snapshots") || !strings.Contains(out, fmt.Sprintf("schema %d ", old)) {
			t.Fatalf("%s: %v\n%s", store, err, out)
		}
	}
	if out, err := cmd("user", "list", "--config", cfgPath); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, _ := cmd("backup", "list", "--config", cfgPath, "--from", "eu"); !strings.Contains(out, "1 snapshots") {
		t.Fatalf("a start with nothing to migrate sent a snapshot:\n%s", out)
	}
}

// schemaVersion opens the database at path, migrating it to version (0:
// the latest), and returns the version it is at.
func schemaVersion(t *testing.T, path string, version int) int {
	t.Helper()
	db, err := storage.OpenAt(context.Background(), path, version)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, err := db.SchemaVersion(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A command run while a server serves the instance (the server's lock is
// held) recovers nothing the server is in the middle of, and migrates
// nothing under it; run alone, it does both as a start does.
func TestCommandBesideServer(t *testing.T) {
	root := t.TempDir()
	dbPath, mediaDir := filepath.Join(root, "redoubt.db"), filepath.Join(root, "media")
	cfgPath := filepath.Join(root, "redoubt.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf("server_name: example.org\ndatabase: %q\nmedia: {path: %q}\n", dbPath, mediaDir)), 0o600); err != nil {
		t.Fatal(err)
	}
	latest := schemaVersion(t, filepath.Join(t.TempDir(), "new.db"), 0)
	schemaVersion(t, dbPath, latest-1)
	upload := filepath.Join(mediaDir, "ab", ".upload-123")
	if err := os.MkdirAll(filepath.Dir(upload), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(upload, []byte("half an upload"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := func() (string, error) {
		var out bytes.Buffer
		err := run([]string{"user", "list", "--config", cfgPath}, &out, &out)
		return out.String(), err
	}

	lock, err := instancelock.Acquire(dbPath) // as serve holds it
	if err != nil {
		t.Fatal(err)
	}
	if out, err := cmd(); err == nil || !strings.Contains(err.Error(), "the server serving this instance runs schema") {
		t.Fatalf("migrated under a running server: %v\n%s", err, out)
	}
	if v := schemaVersion(t, dbPath, latest-1); v != latest-1 {
		t.Fatalf("schema %d", v)
	}
	if _, err := os.Stat(upload); err != nil {
		t.Fatalf("the running server's upload was removed: %v", err)
	}
	lock.Release()

	if out, err := cmd(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if v := schemaVersion(t, dbPath, 0); v != latest {
		t.Fatalf("schema %d after a command alone, want %d", v, latest)
	}
	if _, err := os.Stat(upload); !os.IsNotExist(err) {
		t.Fatalf("an upload a stop cut off is still there: %v", err)
	}
}
