package clientapi_test

import (
	"testing"

	"github.com/tidwall/gjson"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

func search(t *testing.T, c *ts.Client, body map[string]any) gjson.Result {
	t.Helper()
	return c.MustDo(t, "POST", "/_matrix/client/v3/search", map[string]any{"search_categories": map[string]any{"room_events": body}}, 200).
		Get("search_categories.room_events")
}

func TestSearch(t *testing.T) {
	srv := ts.Start(t)
	alice, bob, eve := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "eve")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "name": "Gardening club", "topic": "tomatoes and roses"})
	bob.Join(t, room)
	alice.Send(t, room, "the tomatoes are ripening nicely")
	bob.Send(t, room, "roses need pruning in March")
	wanted := alice.Send(t, room, "tomatoes again: a bumper crop")
	private := alice.CreateRoom(t, nil)
	alice.Send(t, private, "secret tomatoes recipe")
	encrypted := alice.CreateRoom(t, map[string]any{"initial_state": []any{map[string]any{"type": "m.room.encryption", "state_key": "",
		"content": map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}}}})
	alice.MustDo(t, "PUT", roomPath(encrypted, "/send/m.room.encrypted/e1"), map[string]any{"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "tomatoes"}, 200)

	// By default the body, name and topic: two messages and the topic.
	res := search(t, bob, map[string]any{"search_term": "tomatoes"})
	if res.Get("count").Int() != 3 || res.Get("results.#").Int() != 3 {
		t.Fatalf("bob's search: %s", res.Raw)
	}
	for _, r := range res.Get("results").Array() {
		if r.Get("result.room_id").Str != room {
			t.Fatalf("a room bob is not in leaked: %s", r.Raw)
		}
	}
	// Alice is in all three rooms; the encrypted one holds only ciphertext.
	if n := search(t, alice, map[string]any{"search_term": "tomatoes", "keys": []string{"content.body"}}).Get("count").Int(); n != 3 {
		t.Fatalf("alice finds %d", n)
	}
	recent := search(t, bob, map[string]any{"search_term": "tomatoes", "keys": []string{"content.body"}, "order_by": "recent", "filter": map[string]any{"limit": 1}})
	if recent.Get("results.0.result.event_id").Str != wanted || recent.Get("next_batch").Str != "1" {
		t.Fatalf("recent: %s", recent.Raw)
	}
	next := bob.MustDo(t, "POST", "/_matrix/client/v3/search?next_batch=1", map[string]any{"search_categories": map[string]any{"room_events": map[string]any{
		"search_term": "tomatoes", "keys": []string{"content.body"}, "order_by": "recent", "filter": map[string]any{"limit": 1}}}}, 200)
	if next.Get("search_categories.room_events.results.#").Int() != 1 || next.Get("search_categories.room_events.next_batch").Str != "2" {
		t.Fatalf("next batch: %s", next.Raw)
	}
	// A full page says where to go on, as on Synapse; the page after the
	// last result is empty and ends the paging.
	last := bob.MustDo(t, "POST", "/_matrix/client/v3/search?next_batch=2", map[string]any{"search_categories": map[string]any{"room_events": map[string]any{
		"search_term": "tomatoes", "keys": []string{"content.body"}, "order_by": "recent", "filter": map[string]any{"limit": 1}}}}, 200)
	if last.Get("search_categories.room_events.results.#").Int() != 0 || last.Get("search_categories.room_events.next_batch").Exists() {
		t.Fatalf("past the last result: %s", last.Raw)
	}
	if n := search(t, bob, map[string]any{"search_term": "gardening", "keys": []string{"content.name"}}).Get("count").Int(); n != 1 {
		t.Fatalf("room name search: %d", n)
	}
	if n := search(t, bob, map[string]any{"search_term": "tomatoes", "keys": []string{"content.topic"}}).Get("count").Int(); n != 1 {
		t.Fatalf("topic search: %d", n)
	}
	ctx := search(t, bob, map[string]any{"search_term": "pruning", "event_context": map[string]any{"before_limit": 1, "after_limit": 1, "include_profile": true}})
	if ctx.Get("results.0.context.events_before.#").Int() != 1 || ctx.Get("results.0.context.events_after.#").Int() != 1 ||
		!ctx.Get("results.0.context.profile_info").Exists() {
		t.Fatalf("context: %s", ctx.Raw)
	}
	// Syntax in the term is just text.
	search(t, bob, map[string]any{"search_term": `tomatoes" OR NEAR(*) {body}:`})
	if n := search(t, eve, map[string]any{"search_term": "tomatoes"}).Get("count").Int(); n != 0 {
		t.Fatalf("eve, in no room, finds %d", n)
	}
	// A redacted message is gone from the index at once.
	alice.MustDo(t, "PUT", roomPath(room, "/redact/"+wanted+"/r1"), map[string]any{}, 200)
	if n := search(t, bob, map[string]any{"search_term": "bumper"}).Get("count").Int(); n != 0 {
		t.Fatalf("redacted message still found: %d", n)
	}
	for _, bad := range []map[string]any{
		{}, {"search_term": 5}, {"search_term": "x", "order_by": "size"}, {"search_term": "x", "keys": []string{"content.secret"}},
		{"search_term": "x", "filter": map[string]any{"limit": -1}},
	} {
		code, res := bob.Do(t, "POST", "/_matrix/client/v3/search", map[string]any{"search_categories": map[string]any{"room_events": bad}})
		if code != 400 {
			t.Errorf("%v: %d %s", bad, code, res.Raw)
		}
	}
	bob.MustFail(t, "POST", "/_matrix/client/v3/search?next_batch=x", map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "x"}}}, 400, "M_INVALID_PARAM")
}

// The search index holds no message text after redaction, and none of an
// erased user's.
func TestSearchIndexErased(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(t, nil)
	for range 30 {
		alice.Send(t, room, "filler words here")
	}
	id := alice.Send(t, room, "zanzibarcanary quux")
	var n int
	if err := srv.DB.RawRead(t.Context(), `SELECT COUNT(*) FROM event_search WHERE event_search MATCH 'zanzibarcanary'`, &n); err != nil || n != 1 {
		t.Fatalf("indexed: %d %v", n, err)
	}
	alice.MustDo(t, "PUT", roomPath(room, "/redact/"+id+"/r"), map[string]any{}, 200)
	if err := srv.DB.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := srv.DB.RawRead(t.Context(), `SELECT COUNT(*) FROM event_search WHERE event_search MATCH 'zanzibarcanary'`, &n); err != nil || n != 0 {
		t.Fatalf("after redaction: %d %v", n, err)
	}
	for _, f := range []string{srv.Cfg.Database, srv.Cfg.Database + "-wal"} {
		if ts.FileContains(t, f, "zanzibarcanary") {
			var inIndex, inEvents int
			srv.DB.RawRead(t.Context(), `SELECT COUNT(*) FROM event_search_data WHERE instr(block, 'zanzibarcanary') > 0`, &inIndex)
			srv.DB.RawRead(t.Context(), `SELECT COUNT(*) FROM events WHERE instr(json, 'zanzibarcanary') > 0`, &inEvents)
			t.Fatalf("%s holds the redacted word (index blocks %d, events %d)", f, inIndex, inEvents)
		}
	}
}
