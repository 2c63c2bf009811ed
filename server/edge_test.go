package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/redoubt-systems/redoubt/config"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

// X-Forwarded-For is believed only from trusted proxies.
func TestTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		trusted []string
		want    string
	}{
		{nil, "127.0.0.1"},
		{[]string{"127.0.0.0/8"}, "203.0.113.7"},
	} {
		srv := ts.Start(t, func(c *config.Config) { c.TrustedProxies = tc.trusted })
		alice := srv.Register(t, "alice")
		req, _ := http.NewRequest("GET", srv.URL+"/_matrix/client/v3/account/whoami", nil)
		req.Header.Set("Authorization", "Bearer "+alice.Token)
		req.Header.Set("X-Forwarded-For", "198.51.100.1, 203.0.113.7")
		srv.Clock.Advance(2 * time.Minute) // past the last-seen write's minute
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		var got string
		if err := srv.DB.RawRead(t.Context(), `SELECT last_seen_ip FROM devices WHERE user_id = '@alice:test.local'`, &got); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("trusted %v: last_seen_ip %q, want %q", tc.trusted, got, tc.want)
		}
	}
}

// Older clients (matrix-nio, Hydrogen) speak r0: the r0 paths serve what
// their v3 equivalents serve.
func TestR0Paths(t *testing.T) {
	srv := ts.Start(t)
	srv.Register(t, "alice")
	anon := srv.Anon()
	if flows := anon.MustDo(t, "GET", "/_matrix/client/r0/login", nil, 200); flows.Get("flows.0.type").Str != "m.login.password" {
		t.Fatalf("r0 login flows: %s", flows.Raw)
	}
	login := anon.MustDo(t, "POST", "/_matrix/client/r0/login", ts.PasswordAuth("alice"), 200)
	alice := srv.As(login.Get("access_token").Str)
	room := alice.MustDo(t, "POST", "/_matrix/client/r0/createRoom", map[string]any{}, 200).Get("room_id").Str
	alice.MustDo(t, "PUT", "/_matrix/client/r0/rooms/"+ts.PathEscape(room)+"/send/m.room.message/t1",
		map[string]any{"msgtype": "m.text", "body": "hi"}, 200)
	sync := alice.MustDo(t, "GET", "/_matrix/client/r0/sync", nil, 200)
	if !sync.Get("rooms.join." + ts.Esc(room)).Exists() {
		t.Fatalf("r0 sync: %s", sync.Raw)
	}
	alice.MustDo(t, "GET", "/_matrix/media/r0/config", nil, 200)
	// Paths that never existed stay unknown.
	alice.MustFail(t, "GET", "/_matrix/client/r0/no/such/thing", nil, 404, "M_UNRECOGNIZED")
	alice.MustFail(t, "GET", "/_matrix/client/r1/sync", nil, 404, "M_UNRECOGNIZED")
}
