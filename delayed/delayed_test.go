package delayed_test

import (
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/config"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

const (
	v3  = "/_matrix/client/v3"
	api = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events"
)

func roomPath(roomID, rest string) string { return v3 + "/rooms/" + ts.PathEscape(roomID) + rest }

// eventually polls until ok, for what the scheduler does in its own time.
func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting: %s", what)
}

func pending(t *testing.T, c *ts.Client) gjson.Result {
	t.Helper()
	return c.MustDo(t, "GET", api, nil, 200).Get("delayed_events")
}

func TestScheduleAndSend(t *testing.T) {
	srv := ts.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)

	// A message, sent when due; its transaction is idempotent.
	path := roomPath(room, "/send/m.room.message/d1?org.matrix.msc4140.delay=200")
	id := alice.MustDo(t, "PUT", path, map[string]any{"body": "later"}, 200).Get("delay_id").Str
	if again := alice.MustDo(t, "PUT", path, nil, 200).Get("delay_id").Str; id == "" || again != id {
		t.Fatalf("delay IDs %q then %q", id, again)
	}
	list := pending(t, alice)
	if list.Get("#").Int() != 1 || list.Get("0.delay_id").Str != id || list.Get("0.content").Raw != `{"body":"later"}` ||
		list.Get("0.delay").Int() != 200 || list.Get("0.state_key").Exists() || !list.Get("0.running_since").Exists() {
		t.Fatalf("pending: %s", list.Raw)
	}
	if n := pending(t, bob).Get("#").Int(); n != 0 {
		t.Fatalf("bob sees %d of alice's delayed events", n)
	}
	eventually(t, "the message sent", func() bool {
		return bob.MustDo(t, "GET", roomPath(room, "/messages?dir=b&limit=5"), nil, 200).Get(`chunk.#(content.body=="later")`).Exists()
	})
	if n := pending(t, alice).Get("#").Int(); n != 0 {
		t.Fatalf("%d still pending after sending", n)
	}

	// State, sent on request before its time; restarted; cancelled.
	state := func(key string, delay string) string {
		return alice.MustDo(t, "PUT", roomPath(room, "/state/org.example.call/"+key+"?org.matrix.msc4140.delay="+delay),
			map[string]any{"left": key}, 200).Get("delay_id").Str
	}
	now := state("now", "100000")
	alice.MustFail(t, "GET", roomPath(room, "/state/org.example.call/now"), nil, 404, "M_NOT_FOUND")
	srv.Anon().MustDo(t, "POST", api+"/"+now+"/send", map[string]any{}, 200)
	if got := alice.MustDo(t, "GET", roomPath(room, "/state/org.example.call/now"), nil, 200); got.Get("left").Str != "now" {
		t.Fatalf("sent on request: %s", got.Raw)
	}
	never := state("never", "100000")
	srv.Anon().MustDo(t, "POST", api+"/"+never, map[string]any{"action": "cancel"}, 200)
	restarted := state("restarted", "400")
	time.Sleep(250 * time.Millisecond)
	srv.Anon().MustDo(t, "POST", api+"/"+restarted+"/restart", map[string]any{}, 200)
	time.Sleep(250 * time.Millisecond)
	alice.MustFail(t, "GET", roomPath(room, "/state/org.example.call/restarted"), nil, 404, "M_NOT_FOUND")
	eventually(t, "the restarted event sent", func() bool {
		code, _ := alice.Do(t, "GET", roomPath(room, "/state/org.example.call/restarted"), nil)
		return code == 200
	})
	alice.MustFail(t, "GET", roomPath(room, "/state/org.example.call/never"), nil, 404, "M_NOT_FOUND")

	// An event the room no longer accepts when due is dropped.
	bobs := bob.MustDo(t, "PUT", roomPath(room, "/send/m.room.message/b1?org.matrix.msc4140.delay=200"), map[string]any{"body": "gone"}, 200)
	bob.MustDo(t, "POST", roomPath(room, "/leave"), map[string]any{}, 200)
	eventually(t, "bob's event dropped", func() bool { return pending(t, bob).Get("#").Int() == 0 })
	if bob.MustDo(t, "GET", roomPath(room, "/messages?dir=b&limit=5"), nil, 200).Get(`chunk.#(content.body=="gone")`).Exists() {
		t.Fatalf("event from a user who left was sent (%s)", bobs.Raw)
	}
}

// Scheduled events are in the database: after a restart they are still
// there, and those that came due while the server was down go out at once.
func TestSurvivesRestart(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(t, nil)
	alice.MustDo(t, "PUT", roomPath(room, "/state/org.example.call/soon?org.matrix.msc4140.delay=300"), map[string]any{"k": 1}, 200)
	alice.MustDo(t, "PUT", roomPath(room, "/state/org.example.call/later?org.matrix.msc4140.delay=100000"), map[string]any{"k": 2}, 200)
	srv.Stop()
	time.Sleep(400 * time.Millisecond)
	srv.Restart()
	eventually(t, "the overdue event sent after the restart", func() bool {
		code, _ := alice.Do(t, "GET", roomPath(room, "/state/org.example.call/soon"), nil)
		return code == 200
	})
	if list := pending(t, alice); list.Get("#").Int() != 1 || list.Get("0.state_key").Str != "later" {
		t.Fatalf("pending after restart: %s", list.Raw)
	}
}

func TestErrors(t *testing.T) {
	srv := ts.Start(t, func(c *config.Config) {
		c.DelayedEvents.MaxDelay = config.Duration(time.Hour)
		c.DelayedEvents.MaxPerUser = 2
	})
	alice, eve := srv.Register(t, "alice"), srv.Register(t, "eve")
	room := alice.CreateRoom(t, nil)
	send := func(txn, delay string) string {
		return roomPath(room, "/send/m.room.message/"+txn+"?org.matrix.msc4140.delay="+delay)
	}
	for _, tc := range []struct {
		name, delay string
		body        any
		errcode     string
	}{
		{"not a number", "soon", map[string]any{}, "M_INVALID_PARAM"},
		{"zero", "0", map[string]any{}, "M_INVALID_PARAM"},
		{"negative", "-5", map[string]any{}, "M_INVALID_PARAM"},
		{"past the maximum", "3600001", map[string]any{}, "M_UNKNOWN"},
		{"float in content", "1000", `{"n":1.5}`, "M_BAD_JSON"},
		{"invalid UTF-8", "1000", "{\"body\":\"\xff\"}", "M_NOT_JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := alice.MustFail(t, "PUT", send("e-"+tc.name, tc.delay), tc.body, 400, tc.errcode)
			if tc.name == "past the maximum" && (res.Get("org\\.matrix\\.msc4140\\.errcode").Str != "M_MAX_DELAY_EXCEEDED" ||
				res.Get("org\\.matrix\\.msc4140\\.max_delay").Int() != 3600000) {
				t.Fatalf("max delay error: %s", res.Raw)
			}
		})
	}
	eve.MustFail(t, "PUT", send("eve", "1000"), map[string]any{}, 403, "M_FORBIDDEN")
	srv.Anon().MustFail(t, "PUT", send("anon", "1000"), map[string]any{}, 401, "M_MISSING_TOKEN")
	if n := pending(t, alice).Get("#").Int() + pending(t, eve).Get("#").Int(); n != 0 {
		t.Fatalf("refused requests scheduled %d events", n)
	}
	alice.MustDo(t, "PUT", send("a1", "100000"), map[string]any{}, 200)
	alice.MustDo(t, "PUT", send("a2", "100000"), map[string]any{}, 200)
	alice.MustFail(t, "PUT", send("a3", "100000"), map[string]any{}, 429, "M_LIMIT_EXCEEDED")

	srv.Anon().MustFail(t, "GET", api, nil, 401, "M_MISSING_TOKEN")
	for _, action := range []string{"cancel", "restart", "send"} {
		srv.Anon().MustFail(t, "POST", api+"/syd_nope/"+action, map[string]any{}, 404, "M_NOT_FOUND")
	}
	srv.Anon().MustFail(t, "POST", api+"/syd_nope/oops", map[string]any{}, 404, "M_UNRECOGNIZED")
	srv.Anon().MustFail(t, "POST", api+"/syd_nope", map[string]any{}, 400, "M_MISSING_PARAM")
	srv.Anon().MustFail(t, "POST", api+"/syd_nope", map[string]any{"action": "later"}, 400, "M_INVALID_PARAM")

	// Off: scheduling and the management endpoints are gone.
	off := ts.Start(t, func(c *config.Config) { c.DelayedEvents.MaxDelay = 0 })
	carol := off.Register(t, "carol")
	r := carol.CreateRoom(t, nil)
	carol.MustFail(t, "PUT", roomPath(r, "/send/m.room.message/x?org.matrix.msc4140.delay=1000"), map[string]any{}, 404, "M_UNRECOGNIZED")
	carol.MustFail(t, "GET", api, nil, 404, "M_UNRECOGNIZED")
}
