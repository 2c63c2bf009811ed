package main

import (
	"context"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
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

// awaitEvents checks that a room holds want events of a type. A server
// that stores asynchronously (Dendrite's sync API reads what its room
// server wrote from a queue) shows an acknowledged event a moment later:
// it has up to 10 s.
func awaitEvents(ctx context.Context, c *client, roomID, typ string, want int) error {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got, err := countEvents(ctx, c, roomID, typ)
		if err != nil {
			return err
		}
		if got == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("room %s holds %d events, %d were acknowledged", roomID, got, want)
		}
	}
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
			dbBefore := diskSize(cfg.db)
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
			cpuSeconds += settled(cfg.pid).cpuSeconds - before.cpuSeconds
			dbGrowth += diskSize(cfg.db) - dbBefore
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
				if err := awaitEvents(ctx, reader[r], r, "m.room.encrypted", w); err != nil {
					return rows, err
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

// settled waits until the server's CPU time stops growing (for up to
// 10 s) and returns its figures then, so that what a server does after
// acknowledging (Dendrite hands events on through a queue) counts too.
func settled(pid int) procSnapshot {
	s := procStats(pid)
	for deadline := time.Now().Add(10 * time.Second); pid != 0 && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		n := procStats(pid)
		if n.cpuSeconds-s.cpuSeconds < 0.01 {
			return n
		}
		s = n
	}
	return s
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

// diskSize is what a server keeps on disk: a database file with its WAL,
// or every file under a data directory (a server with several databases,
// Dendrite's, keeps them and its message log there).
func diskSize(path string) int64 {
	if path == "" {
		return 0
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	if !fi.IsDir() {
		wal, _ := os.Stat(path + "-wal")
		if wal != nil {
			return fi.Size() + wal.Size()
		}
		return fi.Size()
	}
	var n int64
	filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
