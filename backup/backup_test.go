package backup_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/redoubt-systems/redoubt/backup"
	"github.com/redoubt-systems/redoubt/config"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

func identity(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func write(t testing.TB, srv *ts.Server, id *age.X25519Identity) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := backup.Write(context.Background(), srv.DB, srv.Cfg.Database, srv.Cfg.Media.Path, srv.Cfg.ServerName,
		[]age.Recipient{id.Recipient()}, &buf, time.Now()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func restore(data []byte, id age.Identity, dir string, force bool) error {
	_, err := backup.Restore(context.Background(), bytes.NewReader(data), []age.Identity{id}, dir, force)
	return err
}

// A backup taken while 8 clients send holds every event acknowledged
// before it began; the restored instance serves them and passes its
// integrity check.
func TestBackupWhileSending(t *testing.T) {
	srv := ts.Start(t)
	id := identity(t)
	type ack struct {
		id string
		at time.Time
	}
	var mu sync.Mutex
	var acked []ack
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var room string
	for i := range 8 {
		c := srv.Register(t, fmt.Sprintf("sender%d", i))
		if i == 0 {
			room = c.CreateRoom(t, map[string]any{"preset": "public_chat"})
		} else {
			c.Join(t, room)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				eventID := c.Send(t, room, fmt.Sprintf("message %d from %s", n, c.UserID))
				mu.Lock()
				acked = append(acked, ack{eventID, time.Now()})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	began := time.Now()
	data := write(t, srv, id)
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()

	dir := t.TempDir()
	if err := restore(data, id, dir, false); err != nil {
		t.Fatal(err)
	}
	if problems, err := backup.Check(context.Background(), filepath.Join(dir, "redoubt.db")); err != nil || len(problems) > 0 {
		t.Fatalf("integrity: %v %v", problems, err)
	}
	restored := ts.Start(t, func(c *config.Config) { c.Database = filepath.Join(dir, "redoubt.db") })
	reader := restored.Login(t, "sender0")
	want := 0
	for _, a := range acked {
		if a.at.Before(began) {
			want++
			reader.MustDo(t, "GET", "/_matrix/client/v3/rooms/"+ts.PathEscape(room)+"/event/"+ts.PathEscape(a.id), nil, 200)
		}
	}
	if want < 20 {
		t.Fatalf("only %d events before the backup: the test proves little", want)
	}
	t.Logf("%d events acknowledged before the backup, all restored; %d sent in all", want, len(acked))
}

// A wrong identity, a truncated backup, a flipped byte and an existing
// instance without --force each fail with a clear error and leave the
// target as it was.
func TestRestoreRefuses(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	alice.CreateRoom(t, nil)
	id := identity(t)
	data := write(t, srv, id)
	flipped := bytes.Clone(data)
	flipped[len(flipped)/2] ^= 0x01
	for _, tc := range []struct {
		name string
		data []byte
		id   age.Identity
		want string
	}{
		{"wrong identity", data, identity(t), "not encrypted to the given identity"},
		{"truncated", data[:len(data)/2], id, "truncated"},
		{"cut at the end", data[:len(data)-10], id, "backup"},
		{"one byte flipped", flipped, id, "damaged"},
		{"not a backup", []byte("hello"), id, "not a readable backup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := restore(tc.data, tc.id, dir, false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("target not untouched: %v", entries)
			}
		})
	}
	// An existing instance stays unless --force.
	dir := t.TempDir()
	target := filepath.Join(dir, "redoubt.db")
	if err := os.WriteFile(target, []byte("the instance already here"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := restore(data, id, dir, false); !errors.Is(err, backup.ErrExists) {
		t.Fatalf("restore over an instance: %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "the instance already here" {
		t.Fatal("existing instance touched")
	}
	// A damaged backup with --force also leaves it.
	if err := restore(flipped, id, dir, true); err == nil {
		t.Fatal("damaged backup restored")
	}
	if b, _ := os.ReadFile(target); string(b) != "the instance already here" {
		t.Fatal("existing instance touched by a failed forced restore")
	}
	if err := restore(data, id, dir, true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); bytes.HasPrefix(b, []byte("the instance")) {
		t.Fatal("--force did not replace the instance")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("restore left files behind: %v", entries)
	}
}

// Restored instances hand out none of the one-time keys the backup held.
func TestRestoreDropsOneTimeKeys(t *testing.T) {
	srv := ts.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	keys := map[string]any{}
	for i := range 5 {
		keys[fmt.Sprintf("signed_curve25519:K%d", i)] = map[string]any{"key": fmt.Sprintf("key-%d", i)}
	}
	alice.MustDo(t, "POST", "/_matrix/client/v3/keys/upload", map[string]any{"one_time_keys": keys}, 200)
	id := identity(t)
	data := write(t, srv, id)
	dir := t.TempDir()
	if err := restore(data, id, dir, false); err != nil {
		t.Fatal(err)
	}
	restored := ts.Start(t, func(c *config.Config) { c.Database = filepath.Join(dir, "redoubt.db") })
	bob = restored.Login(t, "bob")
	claim := bob.MustDo(t, "POST", "/_matrix/client/v3/keys/claim", map[string]any{"one_time_keys": map[string]any{
		alice.UserID: map[string]string{alice.DeviceID: "signed_curve25519"}}}, 200)
	if k := claim.Get("one_time_keys"); len(k.Get(ts.Esc(alice.UserID)).Map()) != 0 {
		t.Fatalf("a restored instance handed out a one-time key from the backup: %s", claim.Raw)
	}
	// alice's device learns it has none, so it uploads fresh ones.
	aliceAgain := restored.As(alice.Token)
	count := aliceAgain.MustDo(t, "GET", "/_matrix/client/v3/sync", nil, 200).Get("device_one_time_keys_count.signed_curve25519").Int()
	if count != 0 {
		t.Fatalf("one-time key count after restore: %d", count)
	}
}

// Media kept in media.path goes into the backup and comes back.
func TestBackupMediaDirectory(t *testing.T) {
	media := t.TempDir()
	srv := ts.Start(t, func(c *config.Config) { c.Media.Path = media })
	if err := os.MkdirAll(filepath.Join(media, "ab"), 0o700); err != nil {
		t.Fatal(err)
	}
	content := bytes.Repeat([]byte("media bytes "), 1000)
	if err := os.WriteFile(filepath.Join(media, "ab", "abcdef"), content, 0o600); err != nil {
		t.Fatal(err)
	}
	id := identity(t)
	data := write(t, srv, id)
	if bytes.Contains(data, []byte("media bytes")) {
		t.Fatal("backup holds plaintext")
	}
	dir := t.TempDir()
	if err := restore(data, id, dir, false); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "media", "ab", "abcdef"))
	if err != nil || sha256.Sum256(got) != sha256.Sum256(content) {
		t.Fatalf("media after restore: %v", err)
	}
}
