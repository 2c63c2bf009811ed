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

// destroy refuses a wrong name and a running server, and otherwise leaves
// no file of the instance behind: database, WAL, media directory, logs.
func TestDestroy(t *testing.T) {
	dir := t.TempDir()
	media, logPath := filepath.Join(dir, "media"), filepath.Join(dir, "logs", "redoubt.log")
	cfgPath, dbPath := writeConfig(t, "listen: 127.0.0.1:1\nmedia: {path: "+media+"}\nlog: {file: "+logPath+"}\n")
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(context.Background(), cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	for _, f := range []string{filepath.Join(media, "ab", "abcdef"), logPath, logPath + ".2026-11-24", dbPath + "-wal"} {
		os.MkdirAll(filepath.Dir(f), 0o700)
		if err := os.WriteFile(f, []byte("tenant data"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	instance := func() []string {
		var left []string
		for _, root := range []string{filepath.Dir(dbPath), filepath.Dir(logPath)} {
			filepath.WalkDir(root, func(p string, d os.DirEntry, _ error) error {
				if d != nil && !d.IsDir() && p != cfgPath {
					left = append(left, p)
				}
				return nil
			})
		}
		return left
	}
	before := instance()
	var out bytes.Buffer
	for _, args := range [][]string{
		{"destroy", "--config", cfgPath},
		{"destroy", "--config", cfgPath, "--confirm", "example.com"},
		{"destroy", "--confirm", "example.org"},
	} {
		if err := run(args, &out, &out); err == nil {
			t.Fatalf("%v succeeded", args)
		}
	}
	if left := instance(); len(left) != len(before) {
		t.Fatalf("a refused destroy removed files: %v", left)
	}
	if err := run([]string{"destroy", "--config", cfgPath, "--confirm", "example.org"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if left := instance(); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
	if _, err := os.Stat(media); !os.IsNotExist(err) {
		t.Fatalf("media directory: %v", err)
	}
	if !strings.Contains(out.String(), "instance example.org destroyed") || !strings.Contains(out.String(), dbPath) {
		t.Fatalf("report: %s", out.String())
	}
}

func TestUserAndTokenCommands(t *testing.T) {
	cfgPath, _ := writeConfig(t, "")
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("correct horse battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runOK := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(append(args, "--config", cfgPath), &out, &out); err != nil {
			t.Fatalf("%v: %v (%s)", args, err, out.String())
		}
		return out.String()
	}
	runOK("user", "add", "ann", "--password-file", pw)
	runOK("user", "add", "ben", "--password-file", pw)
	if out := runOK("user", "list"); !strings.Contains(out, "@ann:example.org") || !strings.Contains(out, "@ben:example.org") {
		t.Fatalf("list: %s", out)
	}
	runOK("user", "reset-password", "ann", "--password-file", pw)
	if out := runOK("user", "deactivate", "ben", "--erase"); !strings.Contains(out, "erased") {
		t.Fatalf("deactivate: %s", out)
	}
	if out := runOK("user", "list"); strings.Contains(out, "@ben") {
		t.Fatalf("deactivated user listed by default: %s", out)
	}
	if out := runOK("user", "list", "--deactivated"); !strings.Contains(out, "deactivated, erased") {
		t.Fatalf("list --deactivated: %s", out)
	}
	token := strings.TrimSpace(runOK("token", "create", "--uses", "3", "--expires", "7d"))
	if len(token) != 16 {
		t.Fatalf("token %q", token)
	}
	if out := runOK("token", "list"); !strings.Contains(out, token) || !strings.Contains(out, "3") {
		t.Fatalf("token list: %s", out)
	}
	runOK("token", "delete", token)
	var out bytes.Buffer
	for _, args := range [][]string{{"user"}, {"user", "frobnicate", "x"}, {"user", "deactivate"}, {"user", "deactivate", "nobody"},
		{"token", "delete", "nope"}, {"token", "create", "--expires", "soon"}} {
		if err := run(append(args, "--config", cfgPath), &out, &out); err == nil {
			t.Errorf("%v succeeded", args)
		}
	}
	// The operator's actions are in the audit log.
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(context.Background(), cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	entries, _, err := srv.DB.R().Audit(context.Background(), 0, 100)
	if err != nil || len(entries) != 6 || entries[0].Action != "delete_registration_token" || entries[0].Admin != "operator (command line)" {
		t.Fatalf("audit: %+v %v", entries, err)
	}
}

// help lists every command; the first-start hint fits how the server was
// started and says where the panel is.
func TestHelpAndFirstStartHint(t *testing.T) {
	for _, arg := range []string{"help", "--help", "-h"} {
		var out bytes.Buffer
		if err := run([]string{arg}, &out, &out); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []string{"serve", "user", "token", "backup", "restore", "verify", "export", "health", "destroy"} {
			if !strings.Contains(out.String(), "redoubt "+cmd) && !strings.Contains(out.String(), "["+cmd+"]") {
				t.Errorf("%s does not list %s:\n%s", arg, cmd, out.String())
			}
		}
	}
	cfg := config.Default()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if h := firstStartHint("/tmp/go-build123/b001/exe/redoubt", "", cfg); !strings.Contains(h, "go run ./cmd/redoubt user add NAME --admin") ||
		!strings.Contains(h, "http://127.0.0.1:8008/admin") {
		t.Errorf("hint under go run: %s", h)
	}
	if h := firstStartHint("/usr/local/bin/redoubt", "/etc/redoubt/a.yaml", cfg); !strings.Contains(h, "  redoubt user add NAME --admin --config /etc/redoubt/a.yaml") {
		t.Errorf("hint: %s", h)
	}
}
