//go:build goolm

package e2e

import (
	"bytes"
	"context"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/redoubt-systems/redoubt/backup"
	"github.com/redoubt-systems/redoubt/config"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

// After a restore, no one-time key from the backup is handed out again
// (the keys were uploaded before it, and could have been claimed after it),
// and two clients with encryption keep exchanging messages they decrypt.
func TestEncryptionAfterRestore(t *testing.T) {
	srv, alice, bob := aliceAndBob(t)
	room := newEncryptedRoom(t, alice, bob)
	ctx := context.Background()
	if got := bob.decrypt(t, alice.sendEncrypted(t, room, "before the backup")); got != "before the backup" {
		t.Fatalf("bob decrypted %q", got)
	}
	// The one-time keys the backup will hold.
	old := map[string]bool{}
	rows, err := srv.DB.R().OneTimeKeyIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range rows {
		old[k] = true
	}
	if len(old) == 0 {
		t.Fatal("no one-time keys uploaded: the test proves nothing")
	}
	identity, _ := age.GenerateX25519Identity()
	var buf bytes.Buffer
	if _, err := backup.Write(ctx, srv.DB, srv.Cfg.Database, "", srv.Cfg.ServerName, []age.Recipient{identity.Recipient()}, &buf, time.Now()); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	dir := t.TempDir()
	if _, err := backup.Restore(ctx, &buf, []age.Identity{identity}, dir, false); err != nil {
		t.Fatal(err)
	}
	restored := ts.Start(t, func(c *config.Config) { c.Database = filepath.Join(dir, "redoubt.db") })
	u, _ := url.Parse(restored.URL)
	for _, c := range []*cryptoClient{alice, bob} {
		c.HomeserverURL = u
		c.sync(t) // sees a one-time key count of zero
		if err := c.mach.ShareKeys(ctx, 0); err != nil {
			t.Fatalf("upload fresh keys: %v", err)
		}
	}
	// A third party claims keys of both devices: none is from the backup.
	carol := restored.Register(t, "carol")
	for _, c := range []*cryptoClient{alice, bob} {
		claimed := 0
		for range 3 {
			res := carol.MustDo(t, "POST", "/_matrix/client/v3/keys/claim", map[string]any{"one_time_keys": map[string]any{
				string(c.UserID): map[string]string{string(c.DeviceID): "signed_curve25519"}}}, 200)
			for keyID := range res.Get("one_time_keys." + ts.Esc(string(c.UserID)) + "." + ts.Esc(string(c.DeviceID))).Map() {
				claimed++
				if old[string(c.UserID)+"|"+string(c.DeviceID)+"|"+keyID] {
					t.Fatalf("restored instance handed out %s of %s from the backup", keyID, c.UserID)
				}
			}
		}
		if claimed == 0 {
			t.Fatalf("no key of %s claimed: the test proves nothing", c.UserID)
		}
	}
	// Both directions still work: new Megolm sessions, shared over Olm.
	if got := alice.decrypt(t, bob.sendEncrypted(t, room, "after the restore, from bob")); got != "after the restore, from bob" {
		t.Fatalf("alice decrypted %q", got)
	}
	if got := bob.decrypt(t, alice.sendEncrypted(t, room, "after the restore, from alice")); got != "after the restore, from alice" {
		t.Fatalf("bob decrypted %q", got)
	}
}
