package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/redoubt-systems/redoubt/backup"
	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/internal/s3test"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
	"github.com/redoubt-systems/redoubt/objectstore"
)

// offsite starts an instance backing up to two stores, as two regions.
func offsite(t *testing.T, edit ...func(*config.Config)) (*ts.Server, *age.X25519Identity, []*s3test.Store, []*objectstore.Store) {
	t.Helper()
	id := identity(t)
	s3 := []*s3test.Store{s3test.Start(t, "eu-backups"), s3test.Start(t, "us-backups")}
	ds := []config.Destination{s3[0].Destination("eu", "eu-backups", "tenant-acme"), s3[1].Destination("us", "us-backups", "")}
	srv := ts.Start(t, append([]func(*config.Config){func(c *config.Config) {
		c.Backup.Recipients = []string{id.Recipient().String()}
		c.Backup.Destinations = ds
	}}, edit...)...)
	stores, err := objectstore.OpenAll(ds)
	if err != nil {
		t.Fatal(err)
	}
	return srv, id, s3, stores
}

func take(t *testing.T, srv *ts.Server, stores []*objectstore.Store, now time.Time) backup.Taken {
	t.Helper()
	taken, err := backup.Take(context.Background(), srv.Cfg, srv.DB, "", stores, now)
	if err != nil {
		t.Fatal(err)
	}
	return taken
}

func restoreFrom(t *testing.T, s *objectstore.Store, at time.Time, id age.Identity, dir string) error {
	t.Helper()
	ctx := context.Background()
	point, err := backup.Choose(ctx, s, at)
	if err != nil {
		return err
	}
	_, err = backup.RestorePoint(ctx, s, point, []age.Identity{id}, dir, false)
	return err
}

// A backup goes to both stores in parts small enough to need several, and
// each restores on its own to an instance that serves what was sent.
func TestOffsiteRoundTrip(t *testing.T) {
	defer func(n int) { backup.PartSize = n }(backup.PartSize)
	backup.PartSize = 16 << 10
	srv, id, _, stores := offsite(t)
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(t, nil)
	var sent []string
	for i := range 200 {
		sent = append(sent, alice.Send(t, room, strings.Repeat("x", 500)+string(rune('a'+i%26))))
	}
	taken := take(t, srv, stores, time.Now())
	for _, s := range taken.Sent {
		if s.Err != nil || s.PruneErr != nil {
			t.Fatalf("%s: %v %v", s.Store, s.Err, s.PruneErr)
		}
		snaps, err := backup.Snapshots(context.Background(), s.Store)
		if err != nil || len(snaps) != 1 || !snaps[0].Complete || len(snaps[0].Parts) < 2 {
			t.Fatalf("%s: %+v %v", s.Store, snaps, err)
		}
		dir := t.TempDir()
		if err := restoreFrom(t, s.Store, time.Time{}, id, dir); err != nil {
			t.Fatalf("restore from %s: %v", s.Store, err)
		}
		restored := ts.Start(t, func(c *config.Config) { c.Database = filepath.Join(dir, "redoubt.db") })
		reader := restored.Login(t, "alice")
		for _, ev := range sent {
			reader.MustDo(t, "GET", "/_matrix/client/v3/rooms/"+ts.PathEscape(room)+"/event/"+ts.PathEscape(ev), nil, 200)
		}
	}
}

// Nothing readable reaches the store: no object holds the instance's
// content or its server name in the clear except the manifest's name.
func TestOffsiteEncrypted(t *testing.T) {
	srv, _, s3, stores := offsite(t)
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(t, nil)
	alice.Send(t, room, "a secret plan nobody may read")
	take(t, srv, stores, time.Now())
	filepath.WalkDir(filepath.Join(s3[0].Dir, "data"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(path)
			if strings.Contains(string(b), "secret plan") || strings.Contains(string(b), "@alice") {
				t.Errorf("%s holds plaintext", path)
			}
		}
		return nil
	})
}

// A part altered or cut short, a manifest missing, and a wrong key are
// each refused with a clear error, and the target stays empty.
func TestOffsiteRestoreRefuses(t *testing.T) {
	defer func(n int) { backup.PartSize = n }(backup.PartSize)
	backup.PartSize = 4 << 10
	srv, id, s3, stores := offsite(t)
	alice := srv.Register(t, "alice")
	alice.CreateRoom(t, nil)
	taken := take(t, srv, stores, time.Now())
	name := taken.Sent[0].Snapshot
	part := s3[0].Object("eu-backups", "tenant-acme/snapshots/"+name+"/part-000001")
	orig, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		damage func()
		id     age.Identity
		want   string
	}{
		{"altered part", func() { b := []byte(string(orig)); b[100] ^= 1; os.WriteFile(part, b, 0o600) }, id, "does not match its manifest"},
		{"truncated part", func() { os.WriteFile(part, orig[:len(orig)/2], 0o600) }, id, "does not match its manifest"},
		{"missing part", func() { os.Remove(part) }, id, "part-000001"},
		{"wrong key", func() {}, identity(t), "not encrypted to the given identity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.damage()
			defer os.WriteFile(part, orig, 0o600)
			dir := t.TempDir()
			err := restoreFrom(t, stores[0], time.Time{}, tc.id, dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("target not untouched: %v", entries)
			}
		})
	}
	// Without its manifest a snapshot is incomplete: never restored.
	if err := os.Remove(s3[0].Object("eu-backups", "tenant-acme/snapshots/"+name+"/manifest.json")); err != nil {
		t.Fatal(err)
	}
	if err := restoreFrom(t, stores[0], time.Time{}, id, t.TempDir()); err == nil || !strings.Contains(err.Error(), "no complete snapshot") {
		t.Fatalf("restored a snapshot without its manifest: %v", err)
	}
}

// One store down during a backup: the other gets it, the failure is
// reported, and once back the store gets the next one.
func TestOffsiteDestinationDown(t *testing.T) {
	defer func(a int, d time.Duration) { backup.Retry.Attempts, backup.Retry.Delay = a, d }(backup.Retry.Attempts, backup.Retry.Delay)
	backup.Retry.Attempts, backup.Retry.Delay = 2, 10*time.Millisecond
	srv, id, s3, stores := offsite(t)
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(t, nil)
	s3[1].Stop()
	taken := take(t, srv, stores, time.Now())
	if taken.Sent[0].Err != nil || taken.Sent[1].Err == nil {
		t.Fatalf("sent: %+v", taken.Sent)
	}
	// The admin summary (and the panel) shows each destination's last.
	summary := srv.RegisterAdmin(t, "admin").MustDo(t, "GET", "/_redoubt/admin/v1/summary", nil, 200)
	if d := summary.Get("backup_destinations"); d.Get("#").Int() != 2 || d.Get("0.name").String() != "eu" ||
		!d.Get("0.last_backup_ts").Exists() || d.Get("0.last_backup_ts").Type == 0 || d.Get("1.last_backup_ts").Type != 0 {
		t.Fatalf("summary: %s", d.Raw)
	}
	s3[1].Start()
	later := alice.Send(t, room, "after the store came back")
	taken = take(t, srv, stores, time.Now().Add(time.Second))
	for _, s := range taken.Sent {
		if s.Err != nil {
			t.Fatalf("%s: %v", s.Store, s.Err)
		}
	}
	dir := t.TempDir()
	if err := restoreFrom(t, stores[1], time.Time{}, id, dir); err != nil {
		t.Fatal(err)
	}
	restored := ts.Start(t, func(c *config.Config) { c.Database = filepath.Join(dir, "redoubt.db") })
	restored.Login(t, "alice").MustDo(t, "GET", "/_matrix/client/v3/rooms/"+ts.PathEscape(room)+"/event/"+ts.PathEscape(later), nil, 200)
}

// Each destination keeps its number of snapshots, removes what a cut-off
// upload left, and restores the newest taken at or before a time.
func TestOffsiteKeepAndPointInTime(t *testing.T) {
	srv, id, _, stores := offsite(t)
	srv.Cfg.Backup.Destinations[0].Keep = 2
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(t, nil)
	base := time.Now().Add(-time.Hour)
	var events []string
	for i := range 4 {
		events = append(events, alice.Send(t, room, "message before snapshot"))
		take(t, srv, stores[:1], base.Add(time.Duration(i)*time.Minute))
	}
	ctx := context.Background()
	snaps, err := backup.Snapshots(ctx, stores[0])
	if err != nil || len(snaps) != 2 || snaps[0].CreatedTS != base.Add(2*time.Minute).UnixMilli() {
		t.Fatalf("kept %+v %v", snaps, err)
	}
	// The third snapshot (index 2) holds events 0-2, not 3.
	dir := t.TempDir()
	if err := restoreFrom(t, stores[0], base.Add(2*time.Minute+30*time.Second), id, dir); err != nil {
		t.Fatal(err)
	}
	restored := ts.Start(t, func(c *config.Config) { c.Database = filepath.Join(dir, "redoubt.db") })
	reader := restored.Login(t, "alice")
	reader.MustDo(t, "GET", "/_matrix/client/v3/rooms/"+ts.PathEscape(room)+"/event/"+ts.PathEscape(events[2]), nil, 200)
	reader.MustFail(t, "GET", "/_matrix/client/v3/rooms/"+ts.PathEscape(room)+"/event/"+ts.PathEscape(events[3]), nil, 404, "M_NOT_FOUND")
	if err := restoreFrom(t, stores[0], base, id, t.TempDir()); err == nil || !strings.Contains(err.Error(), "at or before") {
		t.Fatalf("restore before the oldest kept snapshot: %v", err)
	}
}
