package clientapi_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

var txnCounter atomic.Int64

func sendContent(t *testing.T, c *ts.Client, room, typ string, content map[string]any) string {
	t.Helper()
	return c.MustDo(t, "PUT", roomPath(room, fmt.Sprintf("/send/%s/c%d", typ, txnCounter.Add(1))), content, 200).Get("event_id").Str
}

func TestRelationsAndThreads(t *testing.T) {
	srv := ts.Start(t)
	alice, bob, eve := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "eve")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	root := alice.Send(t, room, "thread root")
	var replies []string
	for i := range 3 {
		replies = append(replies, sendContent(t, bob, room, "m.room.message", map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("reply %d", i),
			"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root}}))
	}
	reaction := sendContent(t, bob, room, "m.reaction", map[string]any{"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": root, "key": "👍"}})
	edit := sendContent(t, alice, room, "m.room.message", map[string]any{"msgtype": "m.text", "body": "* edited root",
		"m.new_content": map[string]any{"msgtype": "m.text", "body": "edited root"}, "m.relates_to": map[string]any{"rel_type": "m.replace", "event_id": root}})
	// An edit by someone else is not an edit.
	sendContent(t, bob, room, "m.room.message", map[string]any{"msgtype": "m.text", "body": "* hijack",
		"m.new_content": map[string]any{"body": "hijack"}, "m.relates_to": map[string]any{"rel_type": "m.replace", "event_id": root}})
	// A reaction to a reply: found by recursion.
	nested := sendContent(t, alice, room, "m.reaction", map[string]any{"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": replies[0], "key": "🎉"}})

	rel := "/_matrix/client/v1/rooms/" + ts.PathEscape(room) + "/relations/" + ts.PathEscape(root)
	all := bob.MustDo(t, "GET", rel, nil, 200)
	if n := all.Get("chunk.#").Int(); n != 6 {
		t.Fatalf("%d relations: %s", n, all.Raw)
	}
	if all.Get("chunk.0.event_id").Str == replies[0] {
		t.Fatal("not newest first")
	}
	if got := bob.MustDo(t, "GET", rel+"/m.thread", nil, 200).Get("chunk.#.event_id").Raw; got != fmt.Sprintf(`["%s","%s","%s"]`, replies[2], replies[1], replies[0]) {
		t.Fatalf("thread replies: %s", got)
	}
	if got := bob.MustDo(t, "GET", rel+"/m.annotation/m.reaction", nil, 200).Get("chunk.#.event_id").Raw; got != `["`+reaction+`"]` {
		t.Fatalf("reactions: %s", got)
	}
	if got := bob.MustDo(t, "GET", rel+"/m.thread?dir=f&limit=2", nil, 200); got.Get("chunk.#.event_id").Raw != fmt.Sprintf(`["%s","%s"]`, replies[0], replies[1]) || got.Get("next_batch").Str == "" {
		t.Fatalf("forward page: %s", got.Raw)
	} else {
		next := bob.MustDo(t, "GET", rel+"/m.thread?dir=f&limit=2&from="+got.Get("next_batch").Str, nil, 200)
		if next.Get("chunk.#.event_id").Raw != `["`+replies[2]+`"]` || next.Get("next_batch").Exists() {
			t.Fatalf("second forward page: %s", next.Raw)
		}
	}
	first := bob.MustDo(t, "GET", rel+"/m.thread?limit=2", nil, 200)
	second := bob.MustDo(t, "GET", rel+"/m.thread?limit=2&from="+first.Get("next_batch").Str, nil, 200)
	if second.Get("chunk.#.event_id").Raw != `["`+replies[0]+`"]` {
		t.Fatalf("second backward page: %s then %s", first.Raw, second.Raw)
	}
	rec := bob.MustDo(t, "GET", rel+"?recurse=true", nil, 200)
	if n := rec.Get("chunk.#").Int(); n != 7 || rec.Get(`chunk.#(event_id=="`+nested+`")`).Raw == "" || rec.Get("recursion_depth").Int() != 2 {
		t.Fatalf("recursive: %s", rec.Raw)
	}

	// Bundled aggregations on the root, wherever it is served.
	ev := bob.MustDo(t, "GET", roomPath(room, "/event/"+root), nil, 200)
	th := ev.Get(`unsigned.m\.relations.m\.thread`)
	if th.Get("count").Int() != 3 || th.Get("latest_event.event_id").Str != replies[2] || !th.Get("current_user_participated").Bool() {
		t.Fatalf("thread bundle: %s", ev.Get("unsigned").Raw)
	}
	if got := ev.Get(`unsigned.m\.relations.m\.replace.event_id`).Str; got != edit {
		t.Fatalf("edit bundle %q, want %q", got, edit)
	}
	if p := alice.MustDo(t, "GET", roomPath(room, "/event/"+root), nil, 200).Get(`unsigned.m\.relations.m\.thread.current_user_participated`); !p.Bool() {
		t.Fatal("alice started the thread: she took part")
	}
	carol := srv.Register(t, "carol")
	carol.Join(t, room)
	if p := carol.MustDo(t, "GET", roomPath(room, "/event/"+root), nil, 200).Get(`unsigned.m\.relations.m\.thread.current_user_participated`); p.Bool() {
		t.Fatal("carol did not take part")
	}

	// Threads: all, and participated.
	threads := "/_matrix/client/v1/rooms/" + ts.PathEscape(room) + "/threads"
	other := alice.Send(t, room, "second root")
	sendContent(t, alice, room, "m.room.message", map[string]any{"msgtype": "m.text", "body": "alone",
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": other}})
	if got := bob.MustDo(t, "GET", threads, nil, 200).Get("chunk.#.event_id").Raw; got != `["`+other+`","`+root+`"]` {
		t.Fatalf("threads: %s", got)
	}
	if got := bob.MustDo(t, "GET", threads+"?include=participated", nil, 200).Get("chunk.#.event_id").Raw; got != `["`+root+`"]` {
		t.Fatalf("participated: %s", got)
	}
	page := bob.MustDo(t, "GET", threads+"?limit=1", nil, 200)
	if next := bob.MustDo(t, "GET", threads+"?limit=1&from="+page.Get("next_batch").Str, nil, 200); next.Get("chunk.0.event_id").Str != root {
		t.Fatalf("threads page 2: %s", next.Raw)
	}

	// A redacted reply leaves the thread.
	bob.MustDo(t, "PUT", roomPath(room, "/redact/"+replies[2]+"/r1"), map[string]any{}, 200)
	if n := bob.MustDo(t, "GET", rel+"/m.thread", nil, 200).Get("chunk.#").Int(); n != 2 {
		t.Fatalf("%d thread replies after a redaction", n)
	}

	// Outsiders see nothing; bad input is refused.
	private := alice.CreateRoom(t, nil)
	secret := alice.Send(t, private, "secret")
	eve.MustFail(t, "GET", "/_matrix/client/v1/rooms/"+ts.PathEscape(private)+"/relations/"+ts.PathEscape(secret), nil, 403, "M_FORBIDDEN")
	eve.MustFail(t, "GET", "/_matrix/client/v1/rooms/"+ts.PathEscape(private)+"/threads", nil, 403, "M_FORBIDDEN")
	bob.MustFail(t, "GET", "/_matrix/client/v1/rooms/"+ts.PathEscape(room)+"/relations/$nope", nil, 404, "M_NOT_FOUND")
	bob.MustFail(t, "GET", rel+"?dir=x", nil, 400, "M_INVALID_PARAM")
	bob.MustFail(t, "GET", rel+"?limit=-1", nil, 400, "M_INVALID_PARAM")
	bob.MustFail(t, "GET", rel+"?from=garbage", nil, 400, "M_INVALID_PARAM")
	bob.MustFail(t, "GET", threads+"?include=some", nil, 400, "M_INVALID_PARAM")
}
