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
