package clientapi_test

import (
	"fmt"
	"slices"
	"strings"
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
	// A room named twice in the filter is searched once.
	if n := search(t, bob, map[string]any{"search_term": "tomatoes", "filter": map[string]any{"rooms": []string{room, room}}}).Get("count").Int(); n != 3 {
		t.Fatalf("a room named twice: %d", n)
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

// searchAll pages through a search with a small limit, in both orders, and
// checks that the pages walk exactly the wanted events: count is theirs,
// no page is empty while some remain, and the paging then ends.
func searchAll(t *testing.T, c *ts.Client, term string, want []string) {
	t.Helper()
	for _, order := range []string{"rank", "recent"} {
		for _, limit := range []int{1, 2} {
			body := map[string]any{"search_categories": map[string]any{"room_events": map[string]any{
				"search_term": term, "order_by": order, "filter": map[string]any{"limit": limit}}}}
			var got []string
			path := "/_matrix/client/v3/search"
			for pages := 0; ; pages++ {
				if pages > len(want)+1 {
					t.Fatalf("%s by %s, limit %d: more pages than matches", term, order, limit)
				}
				res := c.MustDo(t, "POST", path, body, 200).Get("search_categories.room_events")
				if n := int(res.Get("count").Int()); n != len(want) {
					t.Errorf("%s by %s, limit %d: count %d, want %d", term, order, limit, n, len(want))
				}
				n := int(res.Get("results.#").Int())
				if n == 0 && len(got) < len(want) {
					t.Fatalf("%s by %s, limit %d: empty page after %d of %d: %s", term, order, limit, len(got), len(want), res.Raw)
				}
				for _, r := range res.Get("results.#.result.event_id").Array() {
					got = append(got, r.Str)
				}
				next := res.Get("next_batch").Str
				if next == "" {
					break
				}
				path = "/_matrix/client/v3/search?next_batch=" + next
			}
			if !sameSet(got, want) {
				t.Errorf("%s by %s, limit %d: found %d events %v, want %d %v", term, order, limit, len(got), got, len(want), want)
			}
		}
	}
}

// sameSet is whether a and b hold the same strings, each once.
func sameSet(a, b []string) bool {
	seen := map[string]bool{}
	for _, s := range a {
		if seen[s] {
			return false
		}
		seen[s] = true
	}
	if len(seen) != len(b) {
		return false
	}
	for _, s := range b {
		if !seen[s] {
			return false
		}
	}
	return true
}

// A search counts, ranks and pages only over the events the searcher may
// see: history from before they could see the room is neither returned nor
// counted, and pages are never short of visible matches.
func TestSearchHistoryVisibility(t *testing.T) {
	srv := ts.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	send := func(room, words string, n int) []string {
		var ids []string
		for i := range n {
			ids = append(ids, alice.Send(t, room, fmt.Sprintf("%s every %d", words, i)))
		}
		return ids
	}
	var everyRoom []string // every message of the four rooms bob may see
	for _, tc := range []struct {
		visibility            string
		seesEarly, seesInvite bool
	}{
		{"world_readable", true, true},
		{"shared", true, true},
		{"invited", false, true},
		{"joined", false, false},
	} {
		t.Run(tc.visibility, func(t *testing.T) {
			// Words of this room alone, as bob stays in the others.
			w := func(word string) string { return word + strings.ReplaceAll(tc.visibility, "_", "") }
			room := alice.CreateRoom(t, map[string]any{"initial_state": []map[string]any{
				{"type": "m.room.history_visibility", "content": map[string]any{"history_visibility": tc.visibility}}}})
			early := send(room, w("aardvark")+" "+w("all"), 3)
			alice.Invite(t, room, bob.UserID)
			invited := send(room, w("bison")+" "+w("all"), 2)
			bob.Join(t, room)
			later := send(room, w("coyote")+" "+w("all"), 3)
			var all []string
			for _, c := range []struct {
				word string
				ids  []string
				sees bool
			}{{"aardvark", early, tc.seesEarly}, {"bison", invited, tc.seesInvite}, {"coyote", later, true}} {
				var want []string
				if c.sees {
					want = c.ids
				}
				searchAll(t, bob, w(c.word), want)
				all = append(all, want...)
			}
			searchAll(t, bob, w("all"), all)
			searchAll(t, alice, w("all"), slices.Concat(early, invited, later))
			everyRoom = append(everyRoom, all...)
		})
	}
	// Across rooms of each setting at once.
	searchAll(t, bob, "every", everyRoom)

	// A room one has left is not searched at all, even the history one
	// could see while in it.
	t.Run("left", func(t *testing.T) {
		room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
		bob.Join(t, room)
		send(room, "dingo", 2)
		bob.MustDo(t, "POST", roomPath(room, "/leave"), map[string]any{}, 200)
		searchAll(t, bob, "dingo", nil)
	})

	// Messages of a user one ignores are not counted; their state events
	// (here a topic) are, as the room's state stays whole.
	t.Run("ignored", func(t *testing.T) {
		eve := srv.Register(t, "eve")
		room := alice.CreateRoom(t, map[string]any{"preset": "public_chat",
			"power_level_content_override": map[string]any{"events": map[string]any{"m.room.topic": 0}}})
		bob.Join(t, room)
		eve.Join(t, room)
		bob.MustDo(t, "PUT", v3+"/user/"+bob.UserID+"/account_data/m.ignored_user_list",
			map[string]any{"ignored_users": map[string]any{eve.UserID: map[string]any{}}}, 200)
		var want []string
		for i := range 3 {
			eve.Send(t, room, fmt.Sprintf("emu %d", i))
			want = append(want, alice.Send(t, room, fmt.Sprintf("emu from alice %d", i)))
		}
		topic := eve.MustDo(t, "PUT", roomPath(room, "/state/m.room.topic/"), map[string]any{"topic": "emu facts"}, 200).Get("event_id").Str
		searchAll(t, bob, "emu", append(want, topic))
	})
}
