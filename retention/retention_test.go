package retention_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/config"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
	"github.com/redoubt-systems/redoubt/retention"
)

const day = 24 * time.Hour

func roomPath(roomID, rest string) string {
	return "/_matrix/client/v3/rooms/" + ts.PathEscape(roomID) + rest
}

// bodies lists the message bodies /messages returns, newest first.
func bodies(t *testing.T, c *ts.Client, roomID, from string) []string {
	t.Helper()
	path := roomPath(roomID, "/messages?dir=b&limit=100")
	if from != "" {
		path += "&from=" + from
	}
	var out []string
	for _, e := range c.MustDo(t, "GET", path, nil, 200).Get("chunk").Array() {
		if e.Get("type").Str == "m.room.message" {
			out = append(out, e.Get("content.body").Str)
		}
	}
	return out
}

func count(t *testing.T, srv *ts.Server, query string, args ...any) int {
	t.Helper()
	var n int
	if err := srv.DB.RawRead(t.Context(), fmt.Sprintf(query, args...), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func prune(t *testing.T, srv *ts.Server) retention.Stats {
	t.Helper()
	st, err := srv.Retention.Prune(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func retentionCfg(c *config.Config) {
	c.Retention.DefaultMaxLifetime = config.Duration(30 * day)
	c.Retention.MinLifetime = config.Duration(day)
	c.Retention.MaxLifetime = config.Duration(60 * day)
	c.Retention.MediaMaxLifetime = config.Duration(90 * day)
}

// A room's m.room.retention max_lifetime (ms) replaces the default within
// the configured bounds.
func TestLifetimeClamped(t *testing.T) {
	srv := ts.Start(t, retentionCfg)
	for _, tc := range []struct {
		content string
		want    time.Duration
	}{
		{"", 30 * day}, // no policy: the default
		{`{"content":{"max_lifetime":3600000}}`, day}, // an hour: raised to the minimum
		{`{"content":{"max_lifetime":864000000}}`, 10 * day},
		{`{"content":{"max_lifetime":31536000000}}`, 60 * day}, // a year: cut to the maximum
		{`{"content":{}}`, 60 * day},                           // "forever": the maximum
		{`{"content":{"max_lifetime":"soon"}}`, 60 * day},      // nonsense: as absent
	} {
		var content []byte
		if tc.content != "" {
			content = []byte(tc.content)
		}
		if got := srv.Retention.Lifetime(content); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.content, got, tc.want)
		}
	}
	// Unbounded, without a default: forever unless a room asks.
	srv = ts.Start(t)
	if got := srv.Retention.Lifetime(nil); got != 0 {
		t.Errorf("no retention configured: %v", got)
	}
	if got := srv.Retention.Lifetime([]byte(`{"content":{"max_lifetime":7200000}}`)); got != 2*time.Hour {
		t.Errorf("room policy without bounds: %v", got)
	}
	alice := srv.Register(t, "alice")
	cfg := alice.MustDo(t, "GET", "/_matrix/client/unstable/org.matrix.msc1763/retention/configuration", nil, 200)
	if cfg.Get("default_max_lifetime").Type != gjson.Null {
		t.Errorf("configuration %s", cfg.Raw)
	}
	srv.Anon().MustFail(t, "GET", "/_matrix/client/unstable/org.matrix.msc1763/retention/configuration", nil, 401, "M_MISSING_TOKEN")
}

// Messages past the lifetime are gone, newer ones stay; the room's latest
// message goes too while its current state stays and the room keeps
// working; a room's own policy applies; clients never see pruned events
// again, not even with tokens from before the pruning.
func TestPrune(t *testing.T) {
	srv := ts.Start(t, retentionCfg)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "name": "Old room"})
	bob.Join(t, room)
	short := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	alice.MustDo(t, "PUT", roomPath(short, "/state/m.room.retention/"), map[string]any{"max_lifetime": 2 * day.Milliseconds()}, 200)
	bob.Join(t, short)
	before := bob.MustDo(t, "GET", "/_matrix/client/v3/sync", nil, 200).Get("next_batch").Str

	var old []string
	for i := range 5 {
		old = append(old, alice.Send(t, room, fmt.Sprintf("old %d", i)))
	}
	alice.MustDo(t, "PUT", roomPath(room, "/state/m.room.topic/"), map[string]any{"topic": "first topic"}, 200)
	alice.MustDo(t, "PUT", roomPath(room, "/state/m.room.topic/"), map[string]any{"topic": "current topic"}, 200)
	alice.Send(t, short, "short-lived")
	srv.Clock.Advance(20 * day)
	alice.Send(t, room, "recent")
	alice.Send(t, short, "still fresh")
	srv.Clock.Advance(11 * day) // "old" messages are 31 days old, "recent" 11

	st := prune(t, srv)
	// 5 old messages and the replaced topic in the room; the short room's
	// first message (31 days > 2), not its fresh one (11 days > 2: also).
	if st.Events < 6 {
		t.Fatalf("pruned %+v", st)
	}
	if got := bodies(t, bob, room, ""); len(got) != 1 || got[0] != "recent" {
		t.Fatalf("/messages after pruning: %v", got)
	}
	if got := bodies(t, bob, short, ""); len(got) != 0 {
		t.Fatalf("room with a 2-day policy: %v", got)
	}
	for _, id := range old {
		bob.MustFail(t, "GET", roomPath(room, "/event/"+id), nil, 404, "M_NOT_FOUND")
		bob.MustFail(t, "GET", roomPath(room, "/context/"+id), nil, 404, "M_NOT_FOUND")
	}
	// Current state stayed: the name, the current topic, the members.
	if n := bob.MustDo(t, "GET", roomPath(room, "/state/m.room.name/"), nil, 200).Get("name").Str; n != "Old room" {
		t.Fatalf("name %q", n)
	}
	if tp := bob.MustDo(t, "GET", roomPath(room, "/state/m.room.topic/"), nil, 200).Get("topic").Str; tp != "current topic" {
		t.Fatalf("topic %q", tp)
	}
	// A token from before the pruning: /sync and /messages skip what is gone.
	res := bob.MustDo(t, "GET", "/_matrix/client/v3/sync?since="+before, nil, 200)
	for _, r := range []string{room, short} {
		for _, e := range res.Get("rooms.join." + ts.Esc(r) + ".timeline.events").Array() {
			if b := e.Get("content.body").Str; strings.HasPrefix(b, "old") || b == "short-lived" || b == "still fresh" {
				t.Fatalf("sync since a pre-pruning token returned %q", b)
			}
		}
		prev := res.Get("rooms.join." + ts.Esc(r) + ".timeline.prev_batch").Str
		for _, b := range bodies(t, bob, r, prev) {
			if strings.HasPrefix(b, "old") || b == "short-lived" {
				t.Fatalf("/messages from prev_batch returned %q", b)
			}
		}
	}
	if strings.Contains(bob.MustDo(t, "GET", "/_matrix/client/v3/sync", nil, 200).Raw, "old 1") {
		t.Fatal("initial sync returned a pruned event")
	}

	// The short room's latest message was pruned; the room still works.
	srv.Clock.Advance(3 * day)
	prune(t, srv)
	if got := bodies(t, bob, short, ""); len(got) != 0 {
		t.Fatalf("latest message survived: %v", got)
	}
	carol := srv.Register(t, "carol")
	carol.Join(t, short)
	alice.Send(t, short, "after the pruning")
	if got := bodies(t, carol, short, ""); len(got) != 1 || got[0] != "after the pruning" {
		t.Fatalf("room after pruning its latest message: %v", got)
	}
	next := carol.MustDo(t, "GET", "/_matrix/client/v3/sync", nil, 200).Get("next_batch").Str
	alice.Send(t, short, "and another")
	res = carol.MustDo(t, "GET", "/_matrix/client/v3/sync?timeout=5000&since="+next, nil, 200)
	if b := res.Get("rooms.join." + ts.Esc(short) + ".timeline.events.#(type==\"m.room.message\").content.body").Str; b != "and another" {
		t.Fatalf("sync after pruning: %s", res.Get("rooms.join").Raw)
	}
}

func TestPruneMediaAndConnectionRecords(t *testing.T) {
	srv := ts.Start(t, retentionCfg)
	alice := srv.Register(t, "alice")
	upload := func() string {
		req, _ := http.NewRequest("POST", srv.URL+"/_matrix/media/v3/upload", bytes.NewReader(bytes.Repeat([]byte("m"), 700<<10)))
		req.Header.Set("Authorization", "Bearer "+alice.Token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return strings.TrimPrefix(gjson.GetBytes(b, "content_uri").Str, "mxc://")
	}
	old := upload()
	srv.Clock.Advance(60 * day)
	upload() // fresh
	if n := count(t, srv, `SELECT COUNT(*) FROM devices WHERE last_seen_ip IS NOT NULL`); n != 1 {
		t.Fatalf("%d connection records before", n)
	}
	srv.Clock.Advance(31 * day) // old media 91 days, fresh 31; alice seen 31 days ago
	st := prune(t, srv)
	if st.Media != 1 || st.Connections != 1 {
		t.Fatalf("pruned %+v", st)
	}
	if n := count(t, srv, `SELECT COUNT(*) FROM devices WHERE last_seen_ip IS NOT NULL OR last_seen_ua IS NOT NULL OR last_seen_ts IS NOT NULL`); n != 0 {
		t.Fatalf("%d connection records kept past privacy.ip_retention", n)
	}
	alice.MustFail(t, "GET", "/_matrix/client/v1/media/download/"+old, nil, 404, "M_NOT_FOUND")
	id := strings.TrimPrefix(old, "test.local/")
	if n := count(t, srv, `SELECT COUNT(*) FROM media_chunks WHERE media_id = '%s'`, id); n != 0 {
		t.Fatalf("%d chunks of pruned media left", n)
	}
	if n := count(t, srv, `SELECT COUNT(*) FROM media_chunks`); n != 3 {
		t.Fatalf("%d chunks of the fresh media", n)
	}
}

func TestNoConnectionRecordsWhenOff(t *testing.T) {
	srv := ts.Start(t, func(c *config.Config) { c.Privacy.RecordIPs = false })
	alice := srv.Register(t, "alice")
	alice.MustDo(t, "GET", "/_matrix/client/v3/account/whoami", nil, 200)
	if n := count(t, srv, `SELECT COUNT(*) FROM devices WHERE last_seen_ip IS NOT NULL OR last_seen_ua IS NOT NULL`); n != 0 {
		t.Fatalf("%d connection records with record_ips off", n)
	}
	if d := alice.MustDo(t, "GET", "/_matrix/client/v3/devices", nil, 200).Get("devices.0"); d.Get("last_seen_ip").Exists() {
		t.Fatalf("device %s", d.Raw)
	}
}

// Canaries: a unique message body is gone from the database file and its
// WAL within a second of (b) retention pruning and (c) account erasure.
// (a), redaction, is clientapi's TestRedactionErasesContentFromFile.
func TestCanaryPruned(t *testing.T) {
	srv := ts.Start(t, retentionCfg)
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(t, nil)
	canary := "canary-prune-" + "0b5e41d7"
	for range 20 {
		alice.Send(t, room, "filler")
	}
	alice.Send(t, room, canary)
	checkCanary(t, srv, canary, true)
	srv.Clock.Advance(31 * day)
	prune(t, srv)
	checkCanary(t, srv, canary, false)
}

// checkCanary checks that the database file or its WAL holds canary, or
// that within a second neither does.
func checkCanary(t *testing.T, srv *ts.Server, canary string, present bool) {
	t.Helper()
	if !present {
		srv.Forgotten(t, canary)
	} else if !srv.InFiles(t, canary) {
		t.Fatal("canary not in the database file or its WAL: the test would prove nothing")
	}
}
