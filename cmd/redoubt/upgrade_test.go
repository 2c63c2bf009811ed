package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

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
