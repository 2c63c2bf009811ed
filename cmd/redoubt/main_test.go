package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/server"
)

func writeConfig(t *testing.T, body string) (cfgPath, dbPath string) {
	t.Helper()
	dir := t.TempDir()
	dbPath = filepath.Join(dir, "tenant.db")
	cfgPath = filepath.Join(dir, "redoubt.yaml")
	if err := os.WriteFile(cfgPath, []byte("server_name: example.org\ndatabase: "+dbPath+"\n"+body), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, dbPath
}

func TestUserAdd(t *testing.T) {
	cfgPath, _ := writeConfig(t, "")
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("correct horse battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run([]string{"user", "add", "root", "--admin", "--password-file", pw, "--config", cfgPath}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "@root:example.org (admin)") {
		t.Fatalf("output: %q", out.String())
	}
	if err := run([]string{"user", "add", "root", "--password-file", pw, "--config", cfgPath}, &out, &out); err == nil {
		t.Fatal("adding the same user twice succeeded")
	}
	if err := run([]string{"user", "add", "Bad Name", "--password-file", pw, "--config", cfgPath}, &out, &out); err == nil {
		t.Fatal("invalid name accepted")
	}
	short := filepath.Join(t.TempDir(), "short")
	_ = os.WriteFile(short, []byte("abc"), 0o600)
	if err := run([]string{"user", "add", "shorty", "--password-file", short, "--config", cfgPath}, &out, &out); err == nil {
		t.Fatal("short password accepted")
	}

	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(context.Background(), cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Auth.VerifyPassword(context.Background(), "@root:example.org", "correct horse battery"); err != nil {
		t.Fatalf("login as the new user: %v", err)
	}
	u, err := srv.DB.R().User(context.Background(), "@root:example.org")
	if err != nil || !u.IsAdmin {
		t.Fatalf("user: %+v %v", u, err)
	}
}

func TestBadInvocations(t *testing.T) {
	var out bytes.Buffer
	for _, args := range [][]string{
		{"frobnicate"},
		{"user"},
		{"user", "remove", "x"},
		{"user", "add"},
		{"--config", "/does/not/exist.yaml"},
		{"--no-such-flag"},
	} {
		if err := run(args, &out, &out); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	cfgPath, _ := writeConfig(t, "rate_limits: {enabeld: false}\n")
	err := run([]string{"--config", cfgPath}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "enabeld") {
		t.Fatalf("unknown key: %v", err)
	}
}
