package server_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/redoubt-systems/redoubt/config"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
	"github.com/redoubt-systems/redoubt/ratelimit"
)

func limited(rules map[string]ratelimit.Rule) func(*config.Config) {
	return func(c *config.Config) {
		c.RateLimits.Enabled = true
		c.RateLimits.Rules = map[string]ratelimit.Rule{"shared_secret_register": {PerSecond: 100, Burst: 1000},
			"registration_nonce": {PerSecond: 100, Burst: 1000}, "login": {PerSecond: 100, Burst: 1000}}
		for k, v := range rules {
			c.RateLimits.Rules[k] = v
		}
	}
}

// Each bucket: the request past the burst gets 429 M_LIMIT_EXCEEDED with a
// retry hint, in the body and the header; after the wait it works again.
func TestRateLimits(t *testing.T) {
	rule := ratelimit.Rule{PerSecond: 0.5, Burst: 2}
	n := 0
	next := func() int { n++; return n }
	for _, tc := range []struct {
		bucket string
		do     func(t *testing.T, srv *ts.Server, c *ts.Client) (int, string)
	}{
		{"send", func(t *testing.T, srv *ts.Server, c *ts.Client) (int, string) {
			code, res := c.Do(t, "PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/t%d", ts.PathEscape(c.CreateRoomOnce(t)), next()), map[string]any{"body": "x"})
			return code, res.Raw
		}},
		{"create_room", func(t *testing.T, srv *ts.Server, c *ts.Client) (int, string) {
			code, res := c.Do(t, "POST", "/_matrix/client/v3/createRoom", map[string]any{})
			return code, res.Raw
		}},
		{"to_device", func(t *testing.T, srv *ts.Server, c *ts.Client) (int, string) {
			code, res := c.Do(t, "PUT", fmt.Sprintf("/_matrix/client/v3/sendToDevice/m.test/t%d", next()), map[string]any{"messages": map[string]any{}})
			return code, res.Raw
		}},
		{"media", func(t *testing.T, srv *ts.Server, c *ts.Client) (int, string) {
			code, res := c.Do(t, "POST", "/_matrix/media/v1/create", nil)
			return code, res.Raw
		}},
		{"login", func(t *testing.T, srv *ts.Server, c *ts.Client) (int, string) {
			code, res := srv.Anon().Do(t, "POST", "/_matrix/client/v3/login", map[string]any{"type": "m.login.password",
				"identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": ts.Password("alice")})
			return code, res.Raw
		}},
		{"register", func(t *testing.T, srv *ts.Server, c *ts.Client) (int, string) {
			code, res := srv.Anon().Do(t, "POST", "/_matrix/client/v3/register", map[string]any{"username": fmt.Sprintf("u%d", next()), "password": "long-enough-password",
				"auth": map[string]any{"type": "m.login.dummy"}})
			return code, res.Raw
		}},
		{"registration_nonce", func(t *testing.T, srv *ts.Server, c *ts.Client) (int, string) {
			code, res := srv.Anon().Do(t, "GET", "/_synapse/admin/v1/register", nil)
			return code, res.Raw
		}},
	} {
		t.Run(tc.bucket, func(t *testing.T) {
			srv := ts.Start(t, limited(map[string]ratelimit.Rule{tc.bucket: rule}), func(c *config.Config) { c.Registration.Open = true })
			alice := srv.Register(t, "alice")
			srv.Clock.Advance(10 * time.Second) // a full bucket, whatever alice's registration took
			for i := range 2 {
				if code, body := tc.do(t, srv, alice); code != 200 {
					t.Fatalf("request %d within the burst: %d %s", i, code, body)
				}
			}
			code, body := tc.do(t, srv, alice)
			if code != 429 {
				t.Fatalf("past the burst: %d %s", code, body)
			}
			// The header too, on a raw request of the same kind.
			srv.Clock.Advance(3 * time.Second) // one token back
			tc.do(t, srv, alice)
			res := rawSameBucket(t, srv, alice, tc.bucket)
			if res != nil {
				if res.StatusCode != 429 || res.Header.Get("Retry-After") == "" {
					t.Fatalf("raw: %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
				}
				if s, _ := strconv.Atoi(res.Header.Get("Retry-After")); s < 1 {
					t.Fatalf("Retry-After %q", res.Header.Get("Retry-After"))
				}
			}
			srv.Clock.Advance(10 * time.Second)
			if code, body := tc.do(t, srv, alice); code != 200 {
				t.Fatalf("after the wait: %d %s", code, body)
			}
		})
	}
}

// rawSameBucket makes a raw request that the bucket counts, to read headers.
func rawSameBucket(t *testing.T, srv *ts.Server, c *ts.Client, bucket string) *http.Response {
	if bucket != "create_room" {
		return nil
	}
	req, _ := http.NewRequest("POST", srv.URL+"/_matrix/client/v3/createRoom", bytes.NewReader([]byte("{}")))
	req.Header.Set("Authorization", "Bearer "+c.Token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res
}

// Failed logins on one account back off, whoever makes them.
func TestFailedLoginBackoff(t *testing.T) {
	srv := ts.Start(t, limited(nil))
	srv.Register(t, "alice")
	login := func(pw string) (int, int64) {
		code, res := srv.Anon().Do(t, "POST", "/_matrix/client/v3/login", map[string]any{"type": "m.login.password",
			"identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": pw})
		return code, res.Get("retry_after_ms").Int()
	}
	for range 6 {
		if code, _ := login("wrong"); code != 403 {
			t.Fatalf("wrong password: %d", code)
		}
	}
	code, wait := login(ts.Password("alice"))
	if code != 429 || wait <= 0 {
		t.Fatalf("after 6 failures: %d, retry_after_ms %d", code, wait)
	}
	srv.Clock.Advance(time.Duration(wait)*time.Millisecond + time.Second)
	if code, _ := login(ts.Password("alice")); code != 200 {
		t.Fatalf("after the wait: %d", code)
	}
	// Success reset it.
	if code, _ := login("wrong"); code != 403 {
		t.Fatalf("fresh failure: %d", code)
	}
}
