package syncapi_test

import (
	"testing"
	"time"

	"github.com/tidwall/gjson"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

func TestTyping(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	eve := srv.Register(t, "eve")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	since := doSync(t, bob).Get("next_batch").Str
	path := roomPath(room, "/typing/"+alice.UserID)

	alice.MustDo(t, "PUT", path, map[string]any{"typing": true, "timeout": 30000}, 200)
	res := doSync(t, bob, "since", since)
	typing := joined(res, room).Get(`ephemeral.events.#(type=="m.typing").content.user_ids`)
	if len(typing.Array()) != 1 || typing.Array()[0].Str != alice.UserID {
		t.Fatalf("typing: %s", joined(res, room).Raw)
	}
	since = res.Get("next_batch").Str
	alice.MustDo(t, "PUT", path, map[string]any{"typing": false}, 200)
	res = doSync(t, bob, "since", since)
	if n := joined(res, room).Get(`ephemeral.events.#(type=="m.typing").content.user_ids.#`).Int(); n != 0 {
		t.Fatalf("stopped typing: %s", joined(res, room).Raw)
	}
	since = res.Get("next_batch").Str

	// Typing expires by itself, and the expiry wakes waiting syncs.
	alice.MustDo(t, "PUT", path, map[string]any{"typing": true, "timeout": 50}, 200)
	res = doSync(t, bob, "since", since)
	since = res.Get("next_batch").Str
	res = doSync(t, bob, "since", since, "timeout", "10000")
	if n := joined(res, room).Get(`ephemeral.events.#(type=="m.typing").content.user_ids.#`); !n.Exists() || n.Int() != 0 {
		t.Fatalf("typing did not expire: %s", res.Raw)
	}

	bob.MustFail(t, "PUT", path, map[string]any{"typing": true}, 403, "M_FORBIDDEN")
	eve.MustFail(t, "PUT", roomPath(room, "/typing/"+eve.UserID), map[string]any{"typing": true}, 403, "M_FORBIDDEN")
	alice.MustFail(t, "PUT", path, map[string]any{}, 400, "M_MISSING_PARAM")
	alice.MustFail(t, "PUT", path, map[string]any{"typing": "yes"}, 400, "M_BAD_JSON")
	alice.MustFail(t, "PUT", path, map[string]any{"typing": true, "timeout": -1}, 400, "M_INVALID_PARAM")
	if srv.Sync.Typing.Users(room) != nil && len(srv.Sync.Typing.Users(room)) != 0 {
		t.Fatal("refused typing requests took effect")
	}
}

func TestReceiptsAndUnreadCounts(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	eve := srv.Register(t, "eve")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	var ids []string
	for range 3 {
		ids = append(ids, alice.Send(t, room, "hello"))
	}
	mention := alice.Send(t, room, "hey bob, look")
	res := doSync(t, bob)
	unread := joined(res, room).Get("unread_notifications")
	if unread.Get("notification_count").Int() != 4 || unread.Get("highlight_count").Int() != 1 {
		t.Fatalf("unread: %s", unread.Raw)
	}
	since := res.Get("next_batch").Str

	bob.MustDo(t, "POST", roomPath(room, "/receipt/m.read/"+ids[1]), map[string]any{}, 200)
	res = doSync(t, bob, "since", since)
	jr := joined(res, room)
	if jr.Get("unread_notifications.notification_count").Int() != 2 || jr.Get("unread_notifications.highlight_count").Int() != 1 {
		t.Fatalf("unread after receipt: %s", jr.Get("unread_notifications").Raw)
	}
	if jr.Get(`ephemeral.events.#(type=="m.receipt").content.`+ts.Esc(ids[1])+`.m\.read.`+ts.Esc(bob.UserID)+`.ts`).Int() == 0 {
		t.Fatalf("receipt not synced: %s", jr.Get("ephemeral").Raw)
	}
	// Alice sees Bob's public receipt.
	if !joined(doSync(t, alice), room).Get(`ephemeral.events.#(type=="m.receipt").content.` + ts.Esc(ids[1])).Exists() {
		t.Fatal("public receipt not shared")
	}
	aliceSince := doSync(t, alice).Get("next_batch").Str
	// A private receipt counts for Bob but is not shown to Alice.
	bob.MustDo(t, "POST", roomPath(room, "/receipt/m.read.private/"+mention), map[string]any{}, 200)
	if jr := joined(doSync(t, bob), room); jr.Get("unread_notifications.notification_count").Int() != 0 ||
		!jr.Get(`ephemeral.events.#(type=="m.receipt").content.`+ts.Esc(mention)+`.m\.read\.private`).Exists() {
		t.Fatalf("private receipt: %s", jr.Raw)
	}
	if res := doSync(t, alice, "since", aliceSince); joined(res, room).Get(`ephemeral.events.#(type=="m.receipt").content.` + ts.Esc(mention)).Exists() {
		t.Fatal("private receipt leaked")
	}
	// An older receipt does not move the marker back.
	bob.MustDo(t, "POST", roomPath(room, "/receipt/m.read.private/"+ids[0]), map[string]any{}, 200)
	if n := joined(doSync(t, bob), room).Get("unread_notifications.notification_count").Int(); n != 0 {
		t.Fatalf("receipt moved back: %d unread", n)
	}

	// read_markers: m.fully_read becomes room account data.
	bob.MustDo(t, "POST", roomPath(room, "/read_markers"), map[string]any{"m.fully_read": ids[2], "m.read": ids[2]}, 200)
	if got := bob.MustDo(t, "GET", v3+"/user/"+bob.UserID+"/rooms/"+ts.PathEscape(room)+"/account_data/m.fully_read", nil, 200); got.Get("event_id").Str != ids[2] {
		t.Fatalf("fully read marker: %s", got.Raw)
	}

	other := alice.CreateRoom(t, nil)
	otherMsg := alice.Send(t, other, "x")
	for _, tc := range []struct {
		c       *ts.Client
		path    string
		body    any
		status  int
		errcode string
	}{
		{bob, roomPath(room, "/receipt/m.read/$nope"), map[string]any{}, 404, "M_NOT_FOUND"},
		{bob, roomPath(room, "/receipt/m.read/"+otherMsg), map[string]any{}, 404, "M_NOT_FOUND"},
		{bob, roomPath(room, "/receipt/m.seen/"+ids[0]), map[string]any{}, 400, "M_INVALID_PARAM"},
		{bob, roomPath(room, "/receipt/m.read/"+ids[0]), map[string]any{"thread_id": 5}, 400, "M_BAD_JSON"},
		{bob, roomPath(room, "/receipt/m.fully_read/"+ids[0]), map[string]any{"thread_id": "main"}, 400, "M_INVALID_PARAM"},
		{eve, roomPath(room, "/receipt/m.read/"+ids[0]), map[string]any{}, 403, "M_FORBIDDEN"},
		{eve, roomPath(room, "/read_markers"), map[string]any{"m.read": ids[0]}, 403, "M_FORBIDDEN"},
		{bob, roomPath(room, "/read_markers"), map[string]any{"m.read": 5}, 400, "M_BAD_JSON"},
		{bob, roomPath(room, "/read_markers"), map[string]any{"m.fully_read": "$nope"}, 404, "M_NOT_FOUND"},
	} {
		tc.c.MustFail(t, "POST", tc.path, tc.body, tc.status, tc.errcode)
	}
}

func TestThreadedUnreadCounts(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	root := alice.Send(t, room, "thread root")
	for range 2 {
		alice.MustDo(t, "PUT", roomPath(room, "/send/m.room.message/"+ts.PathEscape(root)+time.Now().Format("150405.000000000")), map[string]any{
			"msgtype": "m.text", "body": "in thread",
			"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root},
		}, 200)
	}
	filter := `{"room":{"timeline":{"unread_thread_notifications":true}}}`
	jr := joined(doSync(t, bob, "filter", filter), room)
	if jr.Get("unread_notifications.notification_count").Int() != 1 || jr.Get("unread_thread_notifications."+ts.Esc(root)+".notification_count").Int() != 2 {
		t.Fatalf("thread counts: %s", jr.Raw)
	}
	// Without the flag, threads count in the room total.
	if n := joined(doSync(t, bob), room).Get("unread_notifications.notification_count").Int(); n != 3 {
		t.Fatalf("total without thread flag: %d", n)
	}
	// A threaded receipt clears that thread only.
	last := joined(doSync(t, bob), room).Get("timeline.events.@reverse.0.event_id").Str
	bob.MustDo(t, "POST", roomPath(room, "/receipt/m.read/"+last), map[string]any{"thread_id": root}, 200)
	jr = joined(doSync(t, bob, "filter", filter), room)
	if jr.Get("unread_notifications.notification_count").Int() != 1 || jr.Get("unread_thread_notifications."+ts.Esc(root)).Exists() {
		t.Fatalf("after threaded receipt: %s", jr.Raw)
	}
}

func TestPresenceAPI(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	eve := srv.Register(t, "eve")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	since := doSync(t, bob).Get("next_batch").Str
	path := v3 + "/presence/" + alice.UserID + "/status"
	alice.MustDo(t, "PUT", path, map[string]any{"presence": "unavailable", "status_msg": "at lunch"}, 200)
	p := bob.MustDo(t, "GET", path, nil, 200)
	if p.Get("presence").Str != "unavailable" || p.Get("status_msg").Str != "at lunch" || !p.Get("last_active_ago").Exists() {
		t.Fatalf("presence: %s", p.Raw)
	}
	res := doSync(t, bob, "since", since, "timeout", "5000")
	if res.Get(`presence.events.#(sender=="`+alice.UserID+`").content.status_msg`).Str != "at lunch" {
		t.Fatalf("presence in sync: %s", res.Get("presence").Raw)
	}
	alice.MustDo(t, "GET", path, nil, 200)
	eve.MustFail(t, "GET", path, nil, 403, "M_FORBIDDEN")
	bob.MustFail(t, "GET", v3+"/presence/@ghost:test.local/status", nil, 404, "M_NOT_FOUND")
	bob.MustFail(t, "PUT", path, map[string]any{"presence": "online"}, 403, "M_FORBIDDEN")
	alice.MustFail(t, "PUT", path, map[string]any{"presence": "busy"}, 400, "M_INVALID_PARAM")
	alice.MustFail(t, "PUT", path, map[string]any{}, 400, "M_MISSING_PARAM")
	alice.MustFail(t, "PUT", path, map[string]any{"presence": "online", "status_msg": 7}, 400, "M_BAD_JSON")
	if p := bob.MustDo(t, "GET", path, nil, 200); p.Get("presence").Str != "unavailable" {
		t.Fatalf("refused presence change took effect: %s", p.Raw)
	}
	// set_presence on sync.
	doSync(t, alice, "set_presence", "offline")
	if p := bob.MustDo(t, "GET", path, nil, 200); p.Get("presence").Str != "offline" {
		t.Fatalf("set_presence: %s", p.Raw)
	}
}

// Someone who comes to share a room is told of with their presence as it is,
// in an incremental sync, though it did not change since the token; and so
// are the members of a room one joins.
func TestPresenceOfNewMembers(t *testing.T) {
	srv := ts.Start(t)
	alice, bob, carol := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
	for _, c := range []*ts.Client{alice, bob, carol} {
		c.MustDo(t, "PUT", v3+"/presence/"+c.UserID+"/status", map[string]any{"presence": "online", "status_msg": c.UserID}, 200)
	}
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	aliceSince := doSync(t, alice).Get("next_batch").Str
	bobSince := doSync(t, bob).Get("next_batch").Str
	bob.Join(t, room)
	hasPresence := func(res gjson.Result, user string) bool {
		return res.Get(`presence.events.#(sender=="` + user + `")`).Exists()
	}
	if res := doSync(t, alice, "since", aliceSince); !hasPresence(res, bob.UserID) {
		t.Fatalf("alice not told of bob's presence: %s", res.Get("presence").Raw)
	}
	res := doSync(t, bob, "since", bobSince)
	if !hasPresence(res, alice.UserID) || hasPresence(res, carol.UserID) {
		t.Fatalf("bob, newly joined: %s", res.Get("presence").Raw)
	}
	// Nothing new after that.
	if again := doSync(t, bob, "since", res.Get("next_batch").Str); again.Get("presence.events.#").Int() != 0 {
		t.Fatalf("presence again: %s", again.Get("presence").Raw)
	}
}

// An incremental sync carries the presence changes of users sharing a room
// with the user and no others; a filter that leaves out m.presence leaves
// out the whole section.
func TestPresenceChangesSeen(t *testing.T) {
	srv := ts.Start(t)
	alice, bob, carol := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	since := doSync(t, alice).Get("next_batch").Str
	for _, c := range []*ts.Client{bob, carol} {
		c.MustDo(t, "PUT", v3+"/presence/"+c.UserID+"/status", map[string]any{"presence": "unavailable", "status_msg": "away"}, 200)
	}
	for _, tc := range []struct {
		filter  string
		wantBob bool
	}{
		{"", true},
		{`{"presence":{"senders":["` + bob.UserID + `","` + carol.UserID + `"]}}`, true},
		{`{"presence":{"types":[]}}`, false},
		{`{"presence":{"not_types":["m.*"]}}`, false},
		{`{"presence":{"not_senders":["` + bob.UserID + `"]}}`, false},
	} {
		params := []string{"since", since}
		if tc.filter != "" {
			params = append(params, "filter", tc.filter)
		}
		p := doSync(t, alice, params...).Get("presence.events")
		if got := p.Get(`#(sender=="`+bob.UserID+`").content.status_msg`).Str == "away"; got != tc.wantBob {
			t.Errorf("filter %s: bob's change seen %v: %s", tc.filter, got, p.Raw)
		}
		if p.Get(`#(sender=="` + carol.UserID + `")`).Exists() {
			t.Errorf("filter %s: presence of a user sharing no room: %s", tc.filter, p.Raw)
		}
	}
}
