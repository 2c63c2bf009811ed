package server_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

// After some traffic /metrics has the expected series, and no user ID,
// room ID or address in them.
func TestMetrics(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(t, nil)
	alice.Send(t, room, "hello")
	alice.MustDo(t, "GET", "/_matrix/client/v3/sync", nil, 200)
	alice.Do(t, "GET", "/_matrix/client/v3/rooms/"+ts.PathEscape(room)+"/event/$nope", nil)
	if _, err := srv.Retention.Prune(t.Context()); err != nil {
		t.Fatal(err)
	}
	m := httptest.NewServer(srv.Metrics.Handler())
	defer m.Close()
	res, err := m.Client().Get(m.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	out := string(b)
	for _, want := range []string{
		`redoubt_http_requests_total{method="PUT",route="/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}",status="200"} 1`,
		`redoubt_http_requests_total{method="GET",route="/_matrix/client/v3/rooms/{roomId}/event/{eventId}",status="404"} 1`,
		`redoubt_http_request_duration_seconds_bucket{method="GET",route="/_matrix/client/v3/sync"`,
		"redoubt_db_commit_duration_seconds_count", "redoubt_db_writes_total", "redoubt_sync_waiting 0", "redoubt_db_write_queue 0",
		"go_goroutines",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, secret := range []string{alice.UserID, room, "127.0.0.1", "test.local"} {
		if strings.Contains(out, secret) {
			t.Errorf("metrics hold %q", secret)
		}
	}
}
