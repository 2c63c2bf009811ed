package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/redoubt-systems/redoubt/internal/s3test"
)

// The operator's commands against two object stores: backup sends to
// both, list shows the snapshot, restore takes it back by URL, and destroy
// empties both buckets; with one store down, destroy says what is left
// there and fails, and run again once it is back, it finishes.
func TestOffsiteCommands(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	eu, us := s3test.Start(t, "eu-backups"), s3test.Start(t, "us-backups")
	access, secret := eu.Credentials(t)
	root := t.TempDir()
	cfgPath := filepath.Join(root, "redoubt.yaml")
	cfg := fmt.Sprintf("server_name: example.org\nlisten: %s\ndatabase: %q\nbackup:\n  recipients: [%s]\n  destinations:\n",
		freePort(t), filepath.Join(root, "tenant.db"), id.Recipient())
	for _, d := range []struct{ name, url, addr string }{{"eu", "s3://eu-backups/acme", eu.Addr}, {"us", "s3://us-backups", us.Addr}} {
		cfg += fmt.Sprintf("    - {name: %s, url: %q, endpoint: \"http://%s\", region: us-east-1, access_key_file: %q, secret_key_file: %q}\n",
			d.name, d.url, d.addr, access, secret)
	}
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(root, "key.txt")
	if err := os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(args, &out, &out)
		return out.String(), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := cmd(args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return out
	}
	pw := filepath.Join(root, "pw")
	if err := os.WriteFile(pw, []byte("correct horse battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	must("user", "add", "root", "--password-file", pw, "--config", cfgPath)
	if out := must("backup", "--config", cfgPath); strings.Count(out, "snapshot ") != 2 {
		t.Fatalf("backup:\n%s", out)
	}
	if out := must("backup", "list", "--config", cfgPath, "--from", "us"); !strings.Contains(out, "1 snapshots") || !strings.Contains(out, "restorable") {
		t.Fatalf("list:\n%s", out)
	}
	must("restore", "--config", cfgPath, "--from", "s3://eu-backups/acme", "--identity", keyFile, "--data", filepath.Join(root, "restored"))
	if _, err := os.Stat(filepath.Join(root, "restored", "redoubt.db")); err != nil {
		t.Fatal(err)
	}
	if out, err := cmd("restore", "--config", cfgPath, "--from", "s3://elsewhere", "--identity", keyFile, "--data", t.TempDir()); err == nil {
		t.Fatalf("restored from a destination not configured:\n%s", out)
	}

	us.Stop()
	out, err := cmd("destroy", "--config", cfgPath, "--confirm", "example.org")
	if err == nil || !strings.Contains(err.Error(), "left at us") || !strings.Contains(out, "backup destination us (s3://us-backups): NOT DESTROYED") {
		t.Fatalf("destroy with a store down: %v\n%s", err, out)
	}
	if left := files(t, eu.Object("eu-backups", "")); len(left) != 0 {
		t.Fatalf("left at eu: %v", left)
	}
	us.Start()
	if left := files(t, us.Object("us-backups", "")); len(left) == 0 {
		t.Fatal("the store that was down lost its objects anyway")
	}
	out = must("destroy", "--config", cfgPath, "--confirm", "example.org")
	if !strings.Contains(out, "backup destination us (s3://us-backups): ") || !strings.Contains(out, "objects (") {
		t.Fatalf("destroy:\n%s", out)
	}
	if left := files(t, us.Object("us-backups", "")); len(left) != 0 {
		t.Fatalf("left at us: %v", left)
	}
}
