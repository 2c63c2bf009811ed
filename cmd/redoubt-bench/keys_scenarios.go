package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
)

// benchKeys: 100 devices upload 50 one-time keys each; then claims and
// queries.
func benchKeys(ctx context.Context, cfg *config) ([]row, error) {
	devices, perDevice := 100, 50
	if cfg.quick {
		devices = 10
	}
	users, err := cfg.users(ctx, "keys", devices)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	uploadLat, err := parallel(users, func(i int, c *client) ([]time.Duration, error) {
		keys := map[string]any{}
		for k := range perDevice {
			keys[fmt.Sprintf("signed_curve25519:%d", k)] = map[string]any{"key": fmt.Sprintf("%s-%d", c.Device, k),
				"signatures": map[string]any{c.UserID: map[string]string{"ed25519:" + c.Device: "sig"}}}
		}
		t0 := time.Now()
		res, err := c.do(ctx, "POST", "/_matrix/client/v3/keys/upload", map[string]any{"one_time_keys": keys})
		if err == nil && res.Get("one_time_key_counts.signed_curve25519").Int() != int64(perDevice) {
			err = fmt.Errorf("upload counted %d keys", res.Get("one_time_key_counts.signed_curve25519").Int())
		}
		return []time.Duration{time.Since(t0)}, err
	})
	uploadElapsed := time.Since(start)
	if err != nil {
		return nil, err
	}
	rows := []row{{fmt.Sprintf("/keys/upload, %d devices × %d keys", devices, perDevice), "uploads/s",
		fmt.Sprintf("%.0f", float64(devices)/uploadElapsed.Seconds())}}
	rows = append(rows, latencyRows(fmt.Sprintf("/keys/upload, %d devices × %d keys", devices, perDevice), uploadLat)...)

	// Each user claims one key of every device, concurrently: every key
	// handed out must be distinct.
	claimers := users[:min(10, len(users))]
	var mu sync.Mutex
	seen := map[string]bool{}
	start = time.Now()
	claimLat, err := parallel(claimers, func(_ int, c *client) ([]time.Duration, error) {
		var lat []time.Duration
		for _, target := range users {
			t0 := time.Now()
			res, err := c.do(ctx, "POST", "/_matrix/client/v3/keys/claim", map[string]any{"one_time_keys": map[string]any{
				target.UserID: map[string]string{target.Device: "signed_curve25519"}}})
			lat = append(lat, time.Since(t0))
			if err != nil {
				return lat, err
			}
			for id, k := range res.Get("one_time_keys." + gjsonEsc(target.UserID) + "." + target.Device).Map() {
				mu.Lock()
				dup := seen[id+k.Raw]
				seen[id+k.Raw] = true
				mu.Unlock()
				if dup {
					return lat, fmt.Errorf("key %s claimed twice", id)
				}
			}
		}
		return lat, nil
	})
	claimElapsed := time.Since(start)
	if err != nil {
		return rows, err
	}
	if len(seen) != len(claimers)*len(users) {
		return rows, fmt.Errorf("%d keys claimed, want %d", len(seen), len(claimers)*len(users))
	}
	rows = append(rows, row{"/keys/claim (one key per request)", "claims/s", fmt.Sprintf("%.0f", float64(len(seen))/claimElapsed.Seconds())})
	rows = append(rows, latencyRows("/keys/claim (one key per request)", claimLat)...)

	all := map[string][]string{}
	for _, u := range users {
		all[u.UserID] = []string{}
	}
	queries := 50
	if cfg.quick {
		queries = len(claimers)
	}
	start = time.Now()
	queryLat, err := parallel(claimers, func(_ int, c *client) ([]time.Duration, error) {
		var lat []time.Duration
		for range queries / len(claimers) {
			t0 := time.Now()
			res, err := c.do(ctx, "POST", "/_matrix/client/v3/keys/query", map[string]any{"device_keys": all})
			lat = append(lat, time.Since(t0))
			if err != nil {
				return lat, err
			}
			if n := len(res.Get("device_keys").Map()); n != len(users) {
				return lat, fmt.Errorf("query answered for %d users, want %d", n, len(users))
			}
		}
		return lat, nil
	})
	if err != nil {
		return rows, err
	}
	name := fmt.Sprintf("/keys/query of %d users", len(users))
	rows = append(rows, row{name, "queries/s", fmt.Sprintf("%.0f", float64(len(queryLat))/time.Since(start).Seconds())})
	return append(rows, latencyRows(name, queryLat)...), nil
}

func gjsonEsc(s string) string {
	return strings.NewReplacer(".", `\.`, "*", `\*`, "?", `\?`).Replace(s)
}

// benchToDevice: one request sends a message to 100 waiting devices; each
// device's /sync return is timed from the send's response.
func benchToDevice(ctx context.Context, cfg *config) ([]row, error) {
	n := 100
	if cfg.quick {
		n = 10
	}
	targets, err := cfg.users(ctx, "todevice", n)
	if err != nil {
		return nil, err
	}
	sender, err := register(ctx, cfg.url, cfg.secret, cfg.prefix+"-tdsender", cfg.http)
	if err != nil {
		return nil, err
	}
	tokens := make([]string, n)
	for i, t := range targets {
		res, err := t.sync(ctx, "timeout=0")
		if err != nil {
			return nil, err
		}
		tokens[i] = res.Get("next_batch").Str
	}
	wait := longPoll(ctx, targets, tokens, "", func(res gjson.Result) bool {
		for _, e := range res.Get("to_device.events").Array() {
			if e.Get("content.bench").Str == cfg.prefix {
				return true
			}
		}
		return false
	})
	time.Sleep(500*time.Millisecond + time.Duration(n)*2*time.Millisecond)
	messages := map[string]any{}
	for _, t := range targets {
		messages[t.UserID] = map[string]any{t.Device: map[string]any{"bench": cfg.prefix, "ciphertext": strings.Repeat("x", 400)}}
	}
	t0 := time.Now()
	if _, err := sender.do(ctx, "PUT", "/_matrix/client/v3/sendToDevice/m.room.encrypted/"+txn(), map[string]any{"messages": messages}); err != nil {
		return nil, err
	}
	sendTook := time.Since(t0)
	sent := time.Now()
	returned, err := wait()
	if err != nil {
		return nil, err
	}
	var lat []time.Duration
	for i, at := range returned {
		if at.IsZero() {
			return nil, fmt.Errorf("device %d never received the message", i)
		}
		lat = append(lat, max(at.Sub(sent), 0))
	}
	name := fmt.Sprintf("to-device to %d devices", n)
	rows := []row{{name, "sendToDevice request", fmt.Sprintf("%.2f ms", float64(sendTook.Microseconds())/1000)}}
	return append(rows, latencyRows(name+", delivery delay", lat)...), nil
}
