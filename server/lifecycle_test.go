package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"filippo.io/age"
	"go.uber.org/goleak"

	"github.com/redoubt-systems/redoubt/config"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

// After Close nothing the server started is left running: with the
// pruner and the backup schedule started, push deliveries (one failing, so
// queued), a delayed event, an admin export, long-polls and sliding sync
// all under way when it stops.
func TestNoGoroutineOutlivesClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Error(w, "later", http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	id, _ := age.GenerateX25519Identity()
	srv := ts.Start(t, func(c *config.Config) {
		c.Push.GatewayAllowList = []string{failing.URL + "/"}
		c.Backup = config.Backup{Interval: config.Duration(time.Hour), Dir: t.TempDir(), Recipients: []string{id.Recipient().String()}, Keep: 1}
	})
	// What serve starts besides what the test server does.
	srv.Retention.Start(t.Context())
	srv.Backups.Start(t.Context())
	srv.Calls.Start(t.Context())
	root := srv.RegisterAdmin(t, "root")
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	bob.MustDo(t, "POST", "/_matrix/client/v3/pushers/set", map[string]any{"app_id": "app", "pushkey": "phone", "kind": "http",
		"app_display_name": "A", "device_display_name": "D", "lang": "en", "data": map[string]any{"url": failing.URL + "/_matrix/push/v1/notify"}}, 200)
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	alice.Send(t, room, "wakes a push")
	alice.MustDo(t, "PUT", "/_matrix/client/v3/rooms/"+room+"/send/m.room.message/later?org.matrix.msc4140.delay=3600000",
		map[string]any{"body": "in an hour"}, 200)
	root.MustDo(t, "POST", "/_redoubt/admin/v1/export", map[string]any{}, 200)
	alice.MustDo(t, "POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync", map[string]any{
		"lists": map[string]any{"all": map[string]any{"ranges": [][]int{{0, 10}}, "timeline_limit": 1}}}, 200)
	done := make(chan struct{})
	go func() { // a long-poll that the stop must end
		defer close(done)
		bob.Do(t, "GET", "/_matrix/client/v3/sync?timeout=30000&since="+bob.MustDo(t, "GET", "/_matrix/client/v3/sync", nil, 200).Get("next_batch").Str, nil)
	}()
	time.Sleep(100 * time.Millisecond)
	srv.Stop()
	<-done
	http.DefaultClient.CloseIdleConnections()
}
