package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// benchFanout: n clients long-poll one room; one message is sent; each
// /sync's return is timed from the send's response. Every client must
// receive the message.
func benchFanout(ctx context.Context, cfg *config) ([]row, error) {
	var rows []row
	sizes, rounds := []int{10, 100, 1000}, 5
	if cfg.quick {
		sizes, rounds = []int{10}, 2
	}
	for _, n := range sizes {
		sender, err := register(ctx, cfg.url, cfg.secret, fmt.Sprintf("%s-fansender%d", cfg.prefix, n), cfg.http)
		if err != nil {
			return rows, err
		}
		room, err := sender.createRoom(ctx, true)
		if err != nil {
			return rows, err
		}
		waiters, err := cfg.users(ctx, fmt.Sprintf("fan%d", n), n)
		if err != nil {
			return rows, err
		}
		tokens := make([]string, n)
		filter := url.QueryEscape(`{"presence":{"types":[]},"room":{"timeline":{"limit":5}}}`)
		for _, w := range waiters {
			if err := w.join(ctx, room); err != nil {
				return rows, err
			}
		}
		for i, w := range waiters {
			res, err := w.sync(ctx, "timeout=0&filter="+filter)
			if err != nil {
				return rows, err
			}
			tokens[i] = res.Get("next_batch").Str
		}
		var lat []time.Duration
		misses := 0
		// The CPU each wake-up costs the server and this tool, which share
		// the machine: what bounds the latency from below.
		var serverCPU, toolCPU float64
		for r := range rounds {
			marker := fmt.Sprintf(`"fanout round %d"`, r)
			wait := longPoll(ctx, waiters, tokens, "filter="+filter, func(res gjson.Result) bool {
				return strings.Contains(res.Get("rooms.join").Raw, marker)
			})
			// Give every request time to reach its wait.
			time.Sleep(500*time.Millisecond + time.Duration(n)*2*time.Millisecond)
			server, tool := procStats(cfg.pid), procStats(os.Getpid())
			if _, err := sender.do(ctx, "PUT", roomPath(room, "/send/m.room.message/"+txn()), map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("fanout round %d", r)}); err != nil {
				return rows, err
			}
			sent := time.Now()
			returned, err := wait()
			if err != nil {
				return rows, err
			}
			serverCPU += procStats(cfg.pid).cpuSeconds - server.cpuSeconds
			toolCPU += procStats(os.Getpid()).cpuSeconds - tool.cpuSeconds
			for _, at := range returned {
				if at.IsZero() {
					misses++
					continue
				}
				lat = append(lat, max(at.Sub(sent), 0))
			}
		}
		name := fmt.Sprintf("sync fan-out, %d clients", n)
		rows = append(rows, latencyRows(name, lat)...)
		if cfg.pid != 0 {
			wakes := float64(n * rounds)
			rows = append(rows, row{name, "CPU per wake-up, server / load tool", fmt.Sprintf("%.0f / %.0f µs", serverCPU/wakes*1e6, toolCPU/wakes*1e6)})
		}
		rows = append(rows, row{name, "misses", strconv.Itoa(misses)})
		if misses > 0 {
			return rows, fmt.Errorf("%d of %d wake-ups missed", misses, n*rounds)
		}
	}
	return rows, nil
}

// benchInitialSync: a user in 50 rooms of 100 events each syncs from
// scratch, plainly and with lazy-loaded members.
func benchInitialSync(ctx context.Context, cfg *config) ([]row, error) {
	nRooms, perRoom, reps := 50, 100, 5
	if cfg.quick {
		nRooms, perRoom, reps = 5, 10, 2
	}
	users, err := cfg.users(ctx, "initial", 2)
	if err != nil {
		return nil, err
	}
	owner, other := users[0], users[1]
	body := encryptedBody(cfg.rng)
	for range nRooms {
		room, err := owner.createRoom(ctx, true)
		if err != nil {
			return nil, err
		}
		if err := other.join(ctx, room); err != nil {
			return nil, err
		}
		for j := range perRoom {
			sender := owner
			if j%2 == 1 {
				sender = other
			}
			if _, err := sender.send(ctx, room, body); err != nil {
				return nil, err
			}
		}
	}
	var rows []row
	for _, v := range []struct{ name, filter string }{
		{"plain", `{"room":{"timeline":{"limit":20}}}`},
		{"lazy-loading members", `{"room":{"timeline":{"limit":20},"state":{"lazy_load_members":true}}}`},
	} {
		var lat []time.Duration
		for range reps {
			t0 := time.Now()
			res, err := owner.sync(ctx, "timeout=0&filter="+url.QueryEscape(v.filter))
			lat = append(lat, time.Since(t0))
			if err != nil {
				return rows, err
			}
			if n := len(res.Get("rooms.join").Map()); n != nRooms {
				return rows, fmt.Errorf("initial sync has %d rooms, want %d", n, nRooms)
			}
		}
		name := fmt.Sprintf("initial sync, %d rooms × %d events, %s", nRooms, perRoom, v.name)
		rows = append(rows, latencyRows(name, lat)...)
	}
	return rows, nil
}

// benchMessages: back-paginate a room of 10,000 events.
func benchMessages(ctx context.Context, cfg *config) ([]row, error) {
	total := 10000
	if cfg.quick {
		total = 200
	}
	users, err := cfg.users(ctx, "messages", 8)
	if err != nil {
		return nil, err
	}
	room, err := users[0].createRoom(ctx, true)
	if err != nil {
		return nil, err
	}
	for _, u := range users[1:] {
		if err := u.join(ctx, room); err != nil {
			return nil, err
		}
	}
	body := encryptedBody(cfg.rng)
	if _, err := parallel(users, func(i int, c *client) ([]time.Duration, error) {
		for range total / len(users) {
			if _, err := c.send(ctx, room, body); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}); err != nil {
		return nil, err
	}
	want := total / len(users) * len(users)
	if err := awaitEvents(ctx, users[0], room, "m.room.encrypted", want); err != nil {
		return nil, err
	}
	start := time.Now()
	got, err := countEvents(ctx, users[0], room, "m.room.encrypted")
	elapsed := time.Since(start)
	if err != nil {
		return nil, err
	}
	return []row{{fmt.Sprintf("/messages back-pagination, %d events, pages of 1,000", got), "events/s",
		fmt.Sprintf("%.0f", float64(got)/elapsed.Seconds())}}, nil
}
