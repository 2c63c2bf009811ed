package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/redoubt-systems/redoubt/internal/instancelock"
)

// destroy after a stop, or after a kill -9, leaves nothing of the instance
// anywhere it wrote: every kind of file the real binary writes is made
// first (media on disk or in the database file, an export finished and
// one cut off, a backup, logs with a rotated one, the ACME cache, the
// temporary files a killed backup, export or restore leaves), and
// afterwards the whole tree holds only the configuration file.
func TestDestroyLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		mediaOnDisk bool
		stop        syscall.Signal
	}{
		{"media on disk then stop", true, syscall.SIGTERM},
		{"media in the file then kill -9", false, syscall.SIGKILL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			data, logs, backups := filepath.Join(root, "data"), filepath.Join(root, "logs"), filepath.Join(root, "backups")
			os.MkdirAll(data, 0o700)
			os.MkdirAll(logs, 0o700)
			addr := freePort(t)
			cfgPath := filepath.Join(root, "redoubt.yaml")
			cfg := fmt.Sprintf("server_name: example.org\nlisten: %s\ndatabase: %q\nregistration: {open: true}\n"+
				"rate_limits: {enabled: false}\nlog: {file: %q}\nbackup: {dir: %q, recipients: [%s]}\n",
				addr, filepath.Join(data, "tenant.db"), filepath.Join(logs, "redoubt.log"), backups, id.Recipient())
			if tc.mediaOnDisk {
				cfg += fmt.Sprintf("media: {path: %q}\n", filepath.Join(root, "media"))
			}
			if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			canary := fmt.Sprintf("canary-%d", time.Now().UnixNano())
			server := exec.Command(bin, "serve", "--config", cfgPath)
			server.Stderr = os.Stderr
			if err := server.Start(); err != nil {
				t.Fatal(err)
			}
			defer server.Process.Kill()
			base := "http://" + addr
			waitUp(t, http.DefaultClient, base+"/health").Body.Close()

			pw := filepath.Join(t.TempDir(), "pw")
			os.WriteFile(pw, []byte("long-enough-password"), 0o600)
			var out bytes.Buffer
			if err := run([]string{"user", "add", "root", "--admin", "--password-file", pw, "--config", cfgPath}, &out, &out); err != nil {
				t.Fatalf("user add: %v %s", err, out.String())
			}
			call := func(method, path, token string, body any) map[string]any {
				t.Helper()
				var r io.Reader
				if b, ok := body.([]byte); ok {
					r = bytes.NewReader(b)
				} else {
					b, _ := json.Marshal(body)
					r = bytes.NewReader(b)
				}
				req, _ := http.NewRequest(method, base+path, r)
				req.Header.Set("Authorization", "Bearer "+token)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				var got map[string]any
				json.NewDecoder(res.Body).Decode(&got)
				if res.StatusCode != 200 {
					t.Fatalf("%s %s: %d %v", method, path, res.StatusCode, got)
				}
				return got
			}
			token := call("POST", "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.password",
				"identifier": map[string]any{"type": "m.id.user", "user": "root"}, "password": "long-enough-password"})["access_token"].(string)
			room := call("POST", "/_matrix/client/v3/createRoom", token, map[string]any{})["room_id"].(string)
			call("PUT", "/_matrix/client/v3/rooms/"+room+"/send/m.room.message/1", token, map[string]any{"msgtype": "m.text", "body": canary})
			call("POST", "/_matrix/media/v3/upload", token, []byte(canary+" in a file"))
			export := func() string {
				return call("POST", "/_redoubt/admin/v1/export", token, map[string]any{})["export_id"].(string)
			}
			finished := export()
			for call("GET", "/_redoubt/admin/v1/export/"+finished, token, nil)["status"] == "running" {
				time.Sleep(10 * time.Millisecond)
			}
			if err := run([]string{"backup", "--config", cfgPath, "--to", backups}, &out, &out); err != nil {
				t.Fatalf("backup beside the server: %v", err)
			}
			export() // cut off by the stop, or by the kill
			// What a backup, an export and a restore killed half-way
			// leave beside the database, and what ACME caches: made by
			// hand, as neither a kill at that instant nor an ACME server
			// can be had in a test.
			db, _ := os.ReadFile(filepath.Join(data, "tenant.db"))
			for name, body := range map[string][]byte{
				".backup-1765000000000000000.db":       db,
				".export-events-123.jsonl":             []byte(canary),
				".restore-456/redoubt.db":              db,
				"acme/acme_account+key":                []byte("key"),
				"../logs/redoubt.log.2026-11-30":       []byte(canary),
				"../backups/redoubt-x.tar.age.partial": []byte("partial"),
			} {
				path := filepath.Join(data, name)
				os.MkdirAll(filepath.Dir(path), 0o700)
				if err := os.WriteFile(path, body, 0o600); err != nil {
					t.Fatal(err)
				}
			}

			server.Process.Signal(tc.stop)
			server.Wait()
			// A stop shreds the exports no one downloaded; a kill leaves
			// them for destroy (or the next start).
			if left := files(t, filepath.Join(data, "exports")); (len(left) == 0) != (tc.stop == syscall.SIGTERM) {
				t.Fatalf("exports after %v: %v", tc.stop, left)
			}
			out.Reset()
			if err := run([]string{"destroy", "--config", cfgPath, "--confirm", "example.org"}, &out, &out); err != nil {
				t.Fatalf("destroy: %v\n%s", err, out.String())
			}
			if left := files(t, root); len(left) != 1 || left[0] != cfgPath {
				t.Fatalf("left behind: %v\nreport:\n%s", left, out.String())
			}
			for _, what := range []string{"database (", "temporary files (", "exports (", "ACME certificate cache (", "local backups (", "logs ("} {
				if !strings.Contains(out.String(), what) {
					t.Errorf("the report does not name %q:\n%s", what, out.String())
				}
			}
		})
	}
}

// files lists the files below dir.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// One server per instance: a second serve on the same database refuses,
// naming the first; destroy and restore refuse while it runs; backup,
// export and verify, which only read, run beside it. After the stop the
// next serve starts.
func TestOneServerPerInstance(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "redoubt.db")
	config := func(name, listen string) string {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte("server_name: example.org\ndatabase: "+dbPath+"\nlisten: "+listen+"\n"), 0o600)
		return path
	}
	listen, listen2 := freePort(t), freePort(t)
	first, second := config("first.yaml", listen), config("second.yaml", listen2)
	stop := serving(t, first)
	waitUp(t, http.DefaultClient, "http://"+listen+"/health").Body.Close()

	err := serveUntil(context.Background(), []string{"--config", second}, io.Discard)
	var held *instancelock.HeldError
	if !errors.As(err, &held) || !strings.Contains(err.Error(), fmt.Sprintf("redoubt process %d is serving %s", os.Getpid(), dbPath)) {
		t.Fatalf("second serve: %v", err)
	}
	var out bytes.Buffer
	for _, args := range [][]string{
		{"destroy", "--config", first, "--confirm", "example.org"},
		{"restore", "--from", "x", "--identity", "y", "--data", dir, "--force"},
	} {
		if err := run(args, &out, &out); err == nil || !strings.Contains(err.Error(), "is serving") {
			t.Fatalf("%s beside a server: %v", args[0], err)
		}
	}
	if _, err := os.Stat(dbPath); err != nil {
		t.Fatal("database removed while serving")
	}
	id, _ := age.GenerateX25519Identity()
	for _, args := range [][]string{
		{"verify", "--config", first},
		{"export", "--config", first, "--out", filepath.Join(t.TempDir(), "e.tar.zst")},
		{"backup", "--config", first, "--to", t.TempDir(), "--recipient", id.Recipient().String()},
	} {
		if err := run(args, &out, &out); err != nil {
			t.Fatalf("%s beside a server: %v", args[0], err)
		}
	}
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
	stop = serving(t, second)
	waitUp(t, http.DefaultClient, "http://"+listen2+"/health").Body.Close()
	if _, err := stop(); err != nil {
		t.Fatalf("serve after the first stopped: %v", err)
	}
}
