package syncapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/config"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

// BenchmarkWakeLatency: 100 users long-poll one room; one message is sent.
// It reports the delay from the send's response to each /sync returning
// with the message, as p50 and p99 over all wake-ups.
func BenchmarkWakeLatency(b *testing.B) {
	wakeBench(b,
		func(u *ts.Client) string {
			return u.MustDo(b, "GET", v3+"/sync?timeout=0", nil, 200).Get("next_batch").Str
		},
		func(base, token string) *http.Request {
			req, _ := http.NewRequest("GET", base+v3+"/sync?timeout=30000&since="+url.QueryEscape(token), nil)
			return req
		},
		func(r gjson.Result) (string, bool) {
			return r.Get("next_batch").Str, r.Get("rooms.join.*.timeline.events.#").Int() == 1
		})
}

// BenchmarkSlidingWakeLatency is BenchmarkWakeLatency for 100 sliding sync
// connections on one room.
func BenchmarkSlidingWakeLatency(b *testing.B) {
	body := map[string]any{"lists": map[string]any{"all": map[string]any{"ranges": [][]int{{0, 19}}, "timeline_limit": 1}}}
	raw, _ := json.Marshal(body)
	wakeBench(b,
		func(u *ts.Client) string { return u.MustDo(b, "POST", ssPath, body, 200).Get("pos").Str },
		func(base, pos string) *http.Request {
			req, _ := http.NewRequest("POST", base+ssPath+"?timeout=30000&pos="+url.QueryEscape(pos), bytes.NewReader(raw))
			return req
		},
		func(r gjson.Result) (string, bool) { return r.Get("pos").Str, r.Get("rooms.*.timeline.#").Int() == 1 })
}

// wakeBench measures wake-ups: 100 users join one room and take a
// position (first, after every join, so none is behind); each iteration
// they all long-poll (poll), one message is sent, and each answer must
// carry it (next reads the new position and whether it did).
func wakeBench(b *testing.B, first func(u *ts.Client) string, poll func(url, pos string) *http.Request,
	next func(r gjson.Result) (string, bool)) {
	const waiters = 100
	// Presence off: each waiter's first sync would otherwise announce it
	// online to the others, and this measures wake-ups by a message.
	srv := ts.Start(b, func(c *config.Config) { c.Presence.Enabled = false })
	sender := srv.Register(b, "sender")
	room := sender.CreateRoom(b, map[string]any{"preset": "public_chat"})
	users := make([]*ts.Client, waiters)
	pos := make([]string, waiters)
	for i := range users {
		users[i] = srv.Register(b, fmt.Sprintf("waiter%d", i))
		users[i].Join(b, room)
	}
	for i, u := range users {
		pos[i] = first(u)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: waiters + 10}}
	var latencies []time.Duration
	b.ResetTimer()
	for n := range b.N {
		returned := make([]time.Time, waiters)
		var wg sync.WaitGroup
		for i, u := range users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := poll(srv.URL, pos[i])
				req.Header.Set("Authorization", "Bearer "+u.Token)
				res, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				defer res.Body.Close()
				body, _ := io.ReadAll(res.Body)
				returned[i] = time.Now()
				p, ok := next(gjson.ParseBytes(body))
				if !ok {
					b.Errorf("waiter %d woke without the message: %s", i, body)
				}
				pos[i] = p
			}()
		}
		for deadline := time.Now().Add(10 * time.Second); srv.Notifier.Waiting() < waiters; {
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d requests are waiting", srv.Notifier.Waiting(), waiters)
			}
			time.Sleep(100 * time.Microsecond)
		}
		sender.Send(b, room, fmt.Sprintf("wake %d", n))
		sent := time.Now()
		wg.Wait()
		for _, r := range returned {
			latencies = append(latencies, r.Sub(sent))
		}
	}
	b.StopTimer()
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(float64(len(latencies)-1)*p)].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkInitialSync: the first /sync of a user in 50 rooms of 100
// messages each (timelines of 20), as the load tool's initial-sync
// scenario.
func BenchmarkInitialSync(b *testing.B) {
	srv := ts.Start(b, func(c *config.Config) { c.Presence.Enabled = false })
	alice := srv.Register(b, "alice")
	for range 50 {
		room := alice.CreateRoom(b, nil)
		for i := range 100 {
			alice.Send(b, room, fmt.Sprintf("message %d of a room's history", i))
		}
	}
	filter := url.QueryEscape(`{"room":{"timeline":{"limit":20}}}`)
	b.ResetTimer()
	for range b.N {
		alice.MustDo(b, "GET", v3+"/sync?filter="+filter, nil, 200)
	}
}

// BenchmarkNothingNew: a /sync with the latest token and no timeout, in
// ten rooms, presence on, with a token past a to-device message (the first
// request deletes it, the others check that none is left): what a
// client's next long-poll costs before it waits.
func BenchmarkNothingNew(b *testing.B) {
	srv := ts.Start(b)
	alice := srv.Register(b, "alice")
	for range 10 {
		alice.Send(b, alice.CreateRoom(b, nil), "hello")
	}
	alice.MustDo(b, "PUT", v3+"/sendToDevice/m.test/t1", map[string]any{"messages": map[string]any{alice.UserID: map[string]any{alice.DeviceID: map[string]any{"n": 1}}}}, 200)
	since := alice.MustDo(b, "GET", v3+"/sync?timeout=0", nil, 200).Get("next_batch").Str
	path := v3 + "/sync?timeout=0&since=" + url.QueryEscape(since)
	b.ResetTimer()
	for range b.N {
		alice.MustDo(b, "GET", path, nil, 200)
	}
}
