package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/redoubt-systems/redoubt/internal/s3test"
	"github.com/redoubt-systems/redoubt/storage"
)

// The operator's commands against two object stores: backup sends to
// both, list shows the snapshot, restore takes it back by URL, and destroy
// empties both buckets; with one store down, destroy says what is left
// there and fails, and run again once it is back, it finishes.
func TestOffsiteCommands(t *testing.T) {
	root, cfgPath, keyFile, eu, us := offsiteInstance(t, "listen: "+freePort(t)+"\n")
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
	// A container's first start restores; its next ones leave the instance.
	if out := must("restore", "--config", cfgPath, "--from", "us", "--identity", keyFile, "--data", filepath.Join(root, "restored"), "--if-empty"); !strings.Contains(out, "nothing restored") {
		t.Fatalf("restore --if-empty over an instance:\n%s", out)
	}
	if out := must("restore", "--config", cfgPath, "--from", "us", "--identity", keyFile, "--data", filepath.Join(root, "fresh"), "--if-empty"); !strings.Contains(out, "restored example.org") {
		t.Fatalf("restore --if-empty into nothing:\n%s", out)
	}
	if out, err := cmd("restore", "--config", cfgPath, "--from", "s3://elsewhere", "--identity", keyFile, "--data", t.TempDir()); err == nil {
		t.Fatalf("restored from a destination not configured:\n%s", out)
	}

	// An export to a destination: encrypted there, opened with the key;
	// destroy reaches it with the backups.
	if out := must("export", "--config", cfgPath, "--to", "eu"); !strings.Contains(out, "to s3://eu-backups/acme/exports/redoubt-export-example.org-") {
		t.Fatalf("export:\n%s", out)
	}
	exported := files(t, eu.Object("eu-backups", "acme/exports"))
	if len(exported) != 1 {
		t.Fatalf("exports at eu: %v", exported)
	}
	if b := decrypt(t, keyFile, exported[0]); !bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Fatalf("the export is not a zstd archive once decrypted: % x", b[:min(len(b), 8)])
	}
	for _, args := range [][]string{{"--to", "nowhere"}, {"--to", "eu", "--out", filepath.Join(root, "x.tar.zst")}} {
		if out, err := cmd(append([]string{"export", "--config", cfgPath}, args...)...); err == nil {
			t.Fatalf("export %v: no error\n%s", args, out)
		}
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

// The real binary replicates continuously to two stores while clients
// send; it is killed with SIGKILL, and the instance restored from either
// store alone holds every event acknowledged more than the RPO (ten
// seconds, the bound; about one second is expected) before the kill.
func TestContinuousSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary")
	}
	addr := freePort(t)
	root, cfgPath, keyFile, _, _ := offsiteInstance(t, "listen: "+addr+"\nregistration: {open: true}\nrate_limits: {enabled: false}\nlog: {level: error}\n")
	bin := buildBinary(t)
	serve := exec.Command(bin, "serve", "--config", cfgPath)
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	waitUp(t, http.DefaultClient, "http://"+addr+"/health").Body.Close()
	call := caller("http://" + addr)
	type ack struct {
		id string
		at time.Time
	}
	var mu sync.Mutex
	var acked []ack
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	for w := range 4 {
		code, res := call("POST", "/_matrix/client/v3/register", "", map[string]any{"username": fmt.Sprintf("w%d", w),
			"password": "long-enough-password", "auth": map[string]any{"type": "m.login.dummy"}})
		if code != 200 {
			t.Fatalf("register: %d %v", code, res)
		}
		token := res["access_token"].(string)
		_, res = call("POST", "/_matrix/client/v3/createRoom", token, map[string]any{})
		room := res["room_id"].(string)
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				code, res := call("PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/n%d", room, n), token,
					map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("writer %d message %d", w, n)})
				if code == 200 {
					mu.Lock()
					acked = append(acked, ack{res["event_id"].(string), time.Now()})
					mu.Unlock()
				}
			}
		})
	}
	// At a moment not tied to the replicator's once-a-second rounds.
	time.Sleep(5*time.Second + rand.N(time.Second))
	serve.Process.Signal(syscall.SIGKILL)
	serve.Wait()
	killed := time.Now()
	cancel()
	wg.Wait()

	for _, from := range []string{"eu", "us"} {
		dir := filepath.Join(root, "restored-"+from)
		var out bytes.Buffer
		if err := run([]string{"restore", "--config", cfgPath, "--from", from, "--identity", keyFile, "--data", dir}, &out, &out); err != nil {
			t.Fatalf("restore from %s: %v\n%s", from, err, out.String())
		}
		db, err := storage.Open(context.Background(), filepath.Join(dir, "redoubt.db"))
		if err != nil {
			t.Fatal(err)
		}
		var lost []ack
		for _, a := range acked {
			var n int
			if err := db.RawRead(context.Background(), "SELECT count(*) FROM events WHERE event_id = '"+a.id+"'", &n); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				lost = append(lost, a)
			}
		}
		db.Close()
		rpo := time.Duration(0)
		if len(lost) > 0 {
			rpo = killed.Sub(lost[0].at)
		}
		t.Logf("%s: %s%d events acknowledged in 5-6 s of sending, %d lost: the oldest lost was acknowledged %v before the kill",
			from, out.String(), len(acked), len(lost), rpo.Round(time.Millisecond))
		if rpo > 10*time.Second {
			t.Fatalf("%s: lost an event acknowledged %v before the kill", from, rpo)
		}
	}
}

// offsiteInstance writes the configuration of an instance backing up to two
// stores (settings adds to it) and the age key it is encrypted to.
func offsiteInstance(t *testing.T, settings string) (root, cfgPath, keyFile string, eu, us *s3test.Store) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	eu, us = s3test.Start(t, "eu-backups"), s3test.Start(t, "us-backups")
	access, secret := eu.Credentials(t)
	root = t.TempDir()
	cfg := fmt.Sprintf("server_name: example.org\ndatabase: %q\n%sbackup:\n  recipients: [%s]\n  destinations:\n",
		filepath.Join(root, "tenant.db"), settings, id.Recipient())
	for _, d := range []struct{ name, url, addr string }{{"eu", "s3://eu-backups/acme", eu.Addr}, {"us", "s3://us-backups", us.Addr}} {
		cfg += fmt.Sprintf("    - {name: %s, url: %q, endpoint: \"http://%s\", region: us-east-1, access_key_file: %q, secret_key_file: %q}\n",
			d.name, d.url, d.addr, access, secret)
	}
	cfgPath, keyFile = filepath.Join(root, "redoubt.yaml"), filepath.Join(root, "key.txt")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return root, cfgPath, keyFile, eu, us
}

// decrypt reads the age-encrypted file at path with the identity in keyFile.
func decrypt(t *testing.T, keyFile, path string) []byte {
	t.Helper()
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	id, err := age.ParseX25519Identity(strings.TrimSpace(string(key)))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := age.Decrypt(f, id)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
