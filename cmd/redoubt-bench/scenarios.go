package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
)

func (cfg *config) users(ctx context.Context, tag string, n int) ([]*client, error) {
	out := make([]*client, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := register(ctx, cfg.url, cfg.secret, fmt.Sprintf("%s-%s-%d", cfg.prefix, tag, i), cfg.http)
			if err != nil {
				errs <- err
				return
			}
			out[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	return out, <-errs
}

// parallel runs fn for each client at once and collects per-call latencies.
func parallel(clients []*client, fn func(i int, c *client) ([]time.Duration, error)) ([]time.Duration, error) {
	var mu sync.Mutex
	var all []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat, err := fn(i, c)
			mu.Lock()
			defer mu.Unlock()
			all = append(all, lat...)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	return all, firstErr
}

// countEvents pages back through a room and counts events of a type.
func countEvents(ctx context.Context, c *client, roomID, typ string) (int, error) {
	n, from := 0, ""
	for {
		path := roomPath(roomID, "/messages?dir=b&limit=1000")
		if from != "" {
			path += "&from=" + url.QueryEscape(from)
		}
		res, err := c.do(ctx, "GET", path, nil)
		if err != nil {
			return 0, err
		}
		for _, e := range res.Get("chunk").Array() {
			if e.Get("type").Str == typ {
				n++
			}
		}
		if !res.Get("end").Exists() {
			return n, nil
		}
		from = res.Get("end").Str
	}
}

// benchSend: 1, 8 and 32 clients sending ~600-byte encrypted events, each
// in its own room and all in one room.
func benchSend(ctx context.Context, cfg *config) ([]row, error) {
	var rows []row
	total := 3000
	if cfg.quick {
		total = 60
	}
	// CPU and disk are counted over the sending only, not the set-up
	// (registration hashes passwords, which is deliberately costly).
	var cpuEvents int
	var cpuSeconds float64
	var dbGrowth int64
	for _, n := range []int{1, 8, 32} {
		for _, shared := range []bool{false, true} {
			if n == 1 && shared {
				continue
			}
			clients, err := cfg.users(ctx, fmt.Sprintf("send%d%v", n, shared), n)
			if err != nil {
				return rows, err
			}
			rooms := make([]string, n)
			for i, c := range clients {
				if shared && i > 0 {
					rooms[i] = rooms[0]
					if err := c.join(ctx, rooms[0]); err != nil {
						return rows, err
					}
					continue
				}
				if rooms[i], err = c.createRoom(ctx, true); err != nil {
					return rows, err
				}
			}
			per := total / n
			bodies := make([]map[string]any, per)
			for i := range bodies {
				bodies[i] = encryptedBody(cfg.rng)
			}
			before := procStats(cfg.pid)
			dbBefore := fileSize(cfg.db) + fileSize(cfg.db+"-wal")
			start := time.Now()
			lat, err := parallel(clients, func(i int, c *client) ([]time.Duration, error) {
				var lat []time.Duration
				for j := range per {
					t0 := time.Now()
					if _, err := c.send(ctx, rooms[i], bodies[j]); err != nil {
						return lat, err
					}
					lat = append(lat, time.Since(t0))
				}
				return lat, nil
			})
			elapsed := time.Since(start)
			cpuSeconds += procStats(cfg.pid).cpuSeconds - before.cpuSeconds
			dbGrowth += fileSize(cfg.db) + fileSize(cfg.db+"-wal") - dbBefore
			if err != nil {
				return rows, err
			}
			// Validate: every acknowledged event is in its room.
			want := map[string]int{}
			reader := map[string]*client{}
			for i, r := range rooms {
				want[r] += per
				reader[r] = clients[i]
			}
			for r, w := range want {
				got, err := countEvents(ctx, reader[r], r, "m.room.encrypted")
				if err != nil {
					return rows, err
				}
				if got != w {
					return rows, fmt.Errorf("room %s holds %d events, %d were acknowledged", r, got, w)
				}
			}
			cpuEvents += per * n
			name := fmt.Sprintf("send, %d client(s), %s", n, map[bool]string{true: "one shared room", false: "own rooms"}[shared])
			if n == 1 {
				name = "send, 1 client (sequential)"
			}
			rows = append(rows, row{name, "events/s", fmt.Sprintf("%.0f", float64(per*n)/elapsed.Seconds())})
			rows = append(rows, latencyRows(name, lat)...)
		}
	}
	if cfg.pid != 0 {
		rows = append(rows, row{"send (all of the above)", "server CPU-seconds per 1,000 events",
			fmt.Sprintf("%.3f", cpuSeconds/float64(cpuEvents)*1000)})
	}
	if cfg.db != "" {
		rows = append(rows, row{"send (all of the above)", "database bytes per event (file + WAL growth)",
			fmt.Sprintf("%.0f", float64(dbGrowth)/float64(cpuEvents))})
	}
	return rows, nil
}

// benchRedact: 8 clients send ~600-byte events in their own rooms while a
// ninth sends and redacts, one message after the other, for as long as
// they send: the cost redactions put on everyone's sends (each makes the
// server clear the WAL of the removed content soon after).
func benchRedact(ctx context.Context, cfg *config) ([]row, error) {
	const n = 8
	total := 3000
	if cfg.quick {
		total = 60
	}
	clients, err := cfg.users(ctx, "redact", n+1)
	if err != nil {
		return nil, err
	}
	rooms := make([]string, n+1)
	for i, c := range clients {
		if rooms[i], err = c.createRoom(ctx, true); err != nil {
			return nil, err
		}
	}
	redactor, senders := clients[n], clients[:n]
	per := total / n
	body := encryptedBody(cfg.rng)
	stop := make(chan struct{})
	type result struct {
		lat []time.Duration
		err error
	}
	redactions := make(chan result, 1)
	go func() {
		var r result
		for i := 0; ; i++ {
			select {
			case <-stop:
				redactions <- r
				return
			default:
			}
			id, err := redactor.send(ctx, rooms[n], map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("to be redacted %d", i)})
			if err != nil {
				r.err = err
				redactions <- r
				return
			}
			t0 := time.Now()
			if _, err := redactor.do(ctx, "PUT", roomPath(rooms[n], "/redact/"+id+"/"+txn()), map[string]any{}); err != nil {
				r.err = err
				redactions <- r
				return
			}
			r.lat = append(r.lat, time.Since(t0))
		}
	}()
	start := time.Now()
	lat, err := parallel(senders, func(i int, c *client) ([]time.Duration, error) {
		var lat []time.Duration
		for range per {
			t0 := time.Now()
			if _, err := c.send(ctx, rooms[i], body); err != nil {
				return lat, err
			}
			lat = append(lat, time.Since(t0))
		}
		return lat, nil
	})
	elapsed := time.Since(start)
	close(stop)
	red := <-redactions
	if err != nil {
		return nil, err
	}
	if red.err != nil {
		return nil, red.err
	}
	name := fmt.Sprintf("send, %d clients, own rooms, beside a redacting client", n)
	rows := []row{{name, "events/s", fmt.Sprintf("%.0f", float64(per*n)/elapsed.Seconds())}}
	rows = append(rows, latencyRows(name, lat)...)
	rows = append(rows, row{"redact (the ninth client)", "redactions/s", fmt.Sprintf("%.0f", float64(len(red.lat))/elapsed.Seconds())})
	rows = append(rows, latencyRows("redact (the ninth client)", red.lat)...)
	return rows, nil
}

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
		for r := range rounds {
			marker := fmt.Sprintf(`"fanout round %d"`, r)
			wait := longPoll(ctx, waiters, tokens, "filter="+filter, func(res gjson.Result) bool {
				return strings.Contains(res.Get("rooms.join").Raw, marker)
			})
			// Give every request time to reach its wait.
			time.Sleep(500*time.Millisecond + time.Duration(n)*2*time.Millisecond)
			if _, err := sender.do(ctx, "PUT", roomPath(room, "/send/m.room.message/"+txn()), map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("fanout round %d", r)}); err != nil {
				return rows, err
			}
			sent := time.Now()
			returned, err := wait()
			if err != nil {
				return rows, err
			}
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
	start := time.Now()
	got, err := countEvents(ctx, users[0], room, "m.room.encrypted")
	elapsed := time.Since(start)
	if err != nil {
		return nil, err
	}
	if want := total / len(users) * len(users); got != want {
		return nil, fmt.Errorf("paginated %d events, %d were sent", got, want)
	}
	return []row{{fmt.Sprintf("/messages back-pagination, %d events, pages of 1,000", got), "events/s",
		fmt.Sprintf("%.0f", float64(got)/elapsed.Seconds())}}, nil
}

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

// longPoll has each client long-poll /sync from its token (kept up to date
// in tokens) until match accepts a response: a sync may return early with
// something else. wait returns when every client is done, with the time
// each one's matching response arrived.
func longPoll(ctx context.Context, clients []*client, tokens []string, query string, match func(gjson.Result) bool) (wait func() ([]time.Time, error)) {
	returned := make([]time.Time, len(clients))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				res, err := c.sync(ctx, query+"&timeout=60000&since="+url.QueryEscape(tokens[i]))
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				tokens[i] = res.Get("next_batch").Str
				if match(res) {
					returned[i] = time.Now()
					return
				}
			}
		}()
	}
	return func() ([]time.Time, error) {
		wg.Wait()
		return returned, firstErr
	}
}

type procSnapshot struct {
	cpuSeconds, rssMB, peakMB float64
}

// procStats reads a process's CPU time and memory from /proc.
func procStats(pid int) procSnapshot {
	var s procSnapshot
	if pid == 0 {
		return s
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the command name (which may contain spaces).
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if len(fields) > 12 {
			ut, _ := strconv.ParseFloat(fields[11], 64)
			st, _ := strconv.ParseFloat(fields[12], 64)
			s.cpuSeconds = (ut + st) / 100 // USER_HZ
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			kb, _ := strconv.ParseFloat(f[1], 64)
			switch f[0] {
			case "VmRSS:":
				s.rssMB = kb / 1024
			case "VmHWM:":
				s.peakMB = kb / 1024
			}
		}
	}
	return s
}

func fileSize(path string) int64 {
	if path == "" {
		return 0
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
