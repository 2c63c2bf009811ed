package pushapi_test

import (
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tidwall/gjson"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

const rules = "/_matrix/client/v3/pushrules"

func unread(t *testing.T, c *ts.Client, roomID string) gjson.Result {
	t.Helper()
	res := c.MustDo(t, "GET", "/_matrix/client/v3/sync", nil, 200)
	return res.Get("rooms.join." + strings.NewReplacer(".", `\.`).Replace(roomID) + ".unread_notifications")
}

func send(t *testing.T, c *ts.Client, roomID, typ string, content map[string]any) string {
	t.Helper()
	return c.MustDo(t, "PUT", "/_matrix/client/v3/rooms/"+ts.PathEscape(roomID)+"/send/"+typ+"/"+ts.PathEscape(typ)+randomSuffix(), content, 200).Get("event_id").Str
}

var txn atomic.Int64

func randomSuffix() string { return strconv.FormatInt(txn.Add(1), 10) }

func TestDefaultRules(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	res := alice.MustDo(t, "GET", rules+"/", nil, 200)
	g := res.Get("global")
	for _, id := range []string{".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me", ".m.rule.member_event",
		".m.rule.is_user_mention", ".m.rule.is_room_mention", ".m.rule.tombstone", ".m.rule.reaction"} {
		if !g.Get(`override.#(rule_id=="` + id + `")`).Exists() {
			t.Errorf("override lacks %s", id)
		}
	}
	if g.Get(`content.0.pattern`).Str != "alice" {
		t.Errorf("contains_user_name pattern: %s", g.Get("content").Raw)
	}
	if g.Get(`override.#(rule_id==".m.rule.invite_for_me").conditions.2.pattern`).Str != alice.UserID {
		t.Errorf("invite_for_me not bound to the user")
	}
	for _, id := range []string{".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one", ".m.rule.message", ".m.rule.encrypted"} {
		if !g.Get(`underride.#(rule_id=="` + id + `")`).Exists() {
			t.Errorf("underride lacks %s", id)
		}
	}
	if got := alice.MustDo(t, "GET", rules+"/global/", nil, 200); got.Get("override").Raw != g.Get("override").Raw {
		t.Error("/pushrules/global/ differs")
	}
	if got := alice.MustDo(t, "GET", rules+"/global/override/.m.rule.master/enabled", nil, 200); got.Get("enabled").Bool() {
		t.Error("master rule enabled by default")
	}
}

// Push rules decide what counts: one-to-one messages, encrypted ones,
// mentions (highlight), notices (nothing), reactions (nothing), invites.
func TestCounts(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	send(t, alice, room, "m.room.message", map[string]any{"msgtype": "m.text", "body": "hi"})
	send(t, alice, room, "m.room.encrypted", map[string]any{"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "xyz"})
	send(t, alice, room, "m.room.message", map[string]any{"msgtype": "m.notice", "body": "bot says"})
	send(t, alice, room, "m.reaction", map[string]any{})
	send(t, alice, room, "m.room.message", map[string]any{"msgtype": "m.text", "body": "x", "m.mentions": map[string]any{"user_ids": []string{bob.UserID}}})
	send(t, alice, room, "m.room.message", map[string]any{"msgtype": "m.text", "body": "@room everyone", "m.mentions": map[string]any{"room": true}})
	u := unread(t, bob, room)
	if u.Get("notification_count").Int() != 4 || u.Get("highlight_count").Int() != 2 {
		t.Fatalf("counts: %s", u.Raw)
	}
	// The sender is never notified of their own events.
	if u := unread(t, alice, room); u.Get("notification_count").Int() != 0 {
		t.Fatalf("sender's own count: %s", u.Raw)
	}
	// Bob (power 0) cannot notify the room with @room; only a mention counts.
	send(t, bob, room, "m.room.message", map[string]any{"msgtype": "m.text", "body": "@room hello", "m.mentions": map[string]any{"room": true}})
	if u := unread(t, alice, room); u.Get("highlight_count").Int() != 0 || u.Get("notification_count").Int() != 1 {
		t.Fatalf("@room without permission: %s", u.Raw)
	}
	// An invite notifies its target.
	alice.MustDo(t, "POST", "/_matrix/client/v3/rooms/"+ts.PathEscape(room)+"/invite", map[string]any{"user_id": carol.UserID}, 200)
	notifs := carol.MustDo(t, "GET", "/_matrix/client/v3/notifications", nil, 200)
	if notifs.Get("notifications.0.event.content.membership").Str != "invite" || notifs.Get("notifications.0.read").Bool() {
		t.Fatalf("invite notification: %s", notifs.Raw)
	}
}

func TestRuleChanges(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	srv.Register(t, "carol").Join(t, room) // a group room, not one-to-one

	// Disabling .m.rule.message silences ordinary messages in group rooms.
	bob.MustDo(t, "PUT", rules+"/global/underride/.m.rule.message/enabled", map[string]any{"enabled": false}, 200)
	if got := bob.MustDo(t, "GET", rules+"/global/underride/.m.rule.message/enabled", nil, 200); got.Get("enabled").Bool() {
		t.Fatal("rule still enabled")
	}
	send(t, alice, room, "m.room.message", map[string]any{"msgtype": "m.text", "body": "quiet"})
	if u := unread(t, bob, room); u.Get("notification_count").Int() != 0 {
		t.Fatalf("disabled rule still notifies: %s", u.Raw)
	}
	// The change reaches sync's account data.
	if ad := bob.MustDo(t, "GET", "/_matrix/client/v3/sync", nil, 200).Get(`account_data.events.#(type=="m.push_rules").content.global.underride.#(rule_id==".m.rule.message").enabled`); !ad.Exists() || ad.Bool() {
		t.Fatalf("m.push_rules account data: %s", ad.Raw)
	}

	// A room rule that notifies loudly, then is deleted.
	bob.MustDo(t, "PUT", rules+"/global/room/"+ts.PathEscape(room), map[string]any{"actions": []any{"notify", map[string]any{"set_tweak": "highlight"}}}, 200)
	send(t, alice, room, "m.room.message", map[string]any{"msgtype": "m.text", "body": "loud"})
	if u := unread(t, bob, room); u.Get("highlight_count").Int() != 1 {
		t.Fatalf("room rule: %s", u.Raw)
	}
	if got := bob.MustDo(t, "GET", rules+"/global/room/"+ts.PathEscape(room), nil, 200); got.Get("rule_id").Str != room {
		t.Fatalf("get rule: %s", got.Raw)
	}
	bob.MustDo(t, "PUT", rules+"/global/room/"+ts.PathEscape(room)+"/actions", map[string]any{"actions": []any{}}, 200)
	if got := bob.MustDo(t, "GET", rules+"/global/room/"+ts.PathEscape(room)+"/actions", nil, 200); got.Get("actions.#").Int() != 0 {
		t.Fatalf("actions: %s", got.Raw)
	}
	bob.MustDo(t, "DELETE", rules+"/global/room/"+ts.PathEscape(room), nil, 200)
	bob.MustFail(t, "GET", rules+"/global/room/"+ts.PathEscape(room), nil, 404, "M_NOT_FOUND")

	// Custom override and content rules, with ordering.
	bob.MustDo(t, "PUT", rules+"/global/override/first", map[string]any{"actions": []any{}, "conditions": []any{map[string]any{"kind": "event_match", "key": "type", "pattern": "x.y"}}}, 200)
	bob.MustDo(t, "PUT", rules+"/global/override/second?after=first", map[string]any{"actions": []any{"notify"}}, 200)
	bob.MustDo(t, "PUT", rules+"/global/override/zeroth?before=first", map[string]any{"actions": []any{"notify"}}, 200)
	ov := bob.MustDo(t, "GET", rules+"/global/", nil, 200).Get("override.#.rule_id").Array()
	if ov[0].Str != ".m.rule.master" || ov[1].Str != "zeroth" || ov[2].Str != "first" || ov[3].Str != "second" {
		t.Fatalf("override order: %v", ov)
	}
	bob.MustDo(t, "PUT", rules+"/global/content/kw", map[string]any{"actions": []any{"notify", map[string]any{"set_tweak": "highlight"}}, "pattern": "deploy"}, 200)

	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		errcode      string
	}{
		{"PUT", "/global/override/.m.rule.mine", map[string]any{"actions": []any{}}, 400, "M_INVALID_PARAM"},
		{"DELETE", "/global/override/.m.rule.master", nil, 400, "M_INVALID_PARAM"},
		{"PUT", "/global/bogus/x", map[string]any{"actions": []any{}}, 400, "M_INVALID_PARAM"},
		{"PUT", "/device/override/x", map[string]any{"actions": []any{}}, 400, "M_INVALID_PARAM"},
		{"PUT", "/global/override/x", map[string]any{}, 400, "M_MISSING_PARAM"},
		{"PUT", "/global/override/x", map[string]any{"actions": []any{"explode"}}, 400, "M_BAD_JSON"},
		{"PUT", "/global/override/x", map[string]any{"actions": "notify"}, 400, "M_BAD_JSON"},
		{"PUT", "/global/content/x", map[string]any{"actions": []any{}}, 400, "M_MISSING_PARAM"},
		{"PUT", "/global/override/x?before=nope", map[string]any{"actions": []any{}}, 404, "M_NOT_FOUND"},
		{"GET", "/global/override/nope", nil, 404, "M_NOT_FOUND"},
		{"DELETE", "/global/override/nope", nil, 404, "M_NOT_FOUND"},
		{"PUT", "/global/override/nope/enabled", map[string]any{"enabled": true}, 404, "M_NOT_FOUND"},
		{"PUT", "/global/override/first/enabled", map[string]any{}, 400, "M_MISSING_PARAM"},
		{"PUT", "/global/override/first/actions", map[string]any{}, 400, "M_MISSING_PARAM"},
	} {
		bob.MustFail(t, tc.method, rules+tc.path, tc.body, tc.status, tc.errcode)
	}
	// Rules are per user.
	if alice.MustDo(t, "GET", rules+"/", nil, 200).Get(`global.override.#(rule_id=="first")`).Exists() {
		t.Fatal("bob's rule visible to alice")
	}
	srv.Anon().MustFail(t, "GET", rules+"/", nil, 401, "M_MISSING_TOKEN")
}

func TestNotificationsEndpoint(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	var ids []string
	for i := range 5 {
		body := "plain"
		if i == 2 {
			body = "ping bob"
		}
		ids = append(ids, send(t, alice, room, "m.room.message", map[string]any{"msgtype": "m.text", "body": body}))
	}
	bob.MustDo(t, "POST", "/_matrix/client/v3/rooms/"+ts.PathEscape(room)+"/receipt/m.read/"+ids[1], map[string]any{}, 200)
	page := bob.MustDo(t, "GET", "/_matrix/client/v3/notifications?limit=3", nil, 200)
	list := page.Get("notifications").Array()
	if len(list) != 3 || list[0].Get("event.event_id").Str != ids[4] || list[0].Get("read").Bool() || list[0].Get("room_id").Str != room {
		t.Fatalf("page 1: %s", page.Raw)
	}
	next := bob.MustDo(t, "GET", "/_matrix/client/v3/notifications?limit=3&from="+page.Get("next_token").Str, nil, 200)
	rest := next.Get("notifications").Array()
	if len(rest) != 2 || rest[0].Get("event.event_id").Str != ids[1] || !rest[0].Get("read").Bool() {
		t.Fatalf("page 2: %s", next.Raw)
	}
	hl := bob.MustDo(t, "GET", "/_matrix/client/v3/notifications?only=highlight", nil, 200).Get("notifications").Array()
	if len(hl) != 1 || hl[0].Get("event.event_id").Str != ids[2] {
		t.Fatalf("highlights: %v", hl)
	}
	bob.MustFail(t, "GET", "/_matrix/client/v3/notifications?limit=x", nil, 400, "M_INVALID_PARAM")
	bob.MustFail(t, "GET", "/_matrix/client/v3/notifications?from=x", nil, 400, "M_INVALID_PARAM")
	bob.MustFail(t, "GET", "/_matrix/client/v3/notifications?only=all", nil, 400, "M_INVALID_PARAM")
}

// Messages are evaluated against the members their room's head keeps
// (rooms/heads.go); whoever joins, leaves or changes name is counted as the
// room is when the next message is sent.
func TestCountsFollowMembership(t *testing.T) {
	srv := ts.Start(t)
	alice, bob, carol := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	text := func(body string) map[string]any { return map[string]any{"msgtype": "m.text", "body": body} }
	send(t, alice, room, "m.room.message", text("first"))
	carol.Join(t, room)
	send(t, alice, room, "m.room.message", text("second"))
	if u := unread(t, carol, room); u.Get("notification_count").Int() != 1 {
		t.Fatalf("a member who joined between messages: %s", u.Raw)
	}
	bob.MustDo(t, "POST", "/_matrix/client/v3/rooms/"+ts.PathEscape(room)+"/leave", map[string]any{}, 200)
	send(t, alice, room, "m.room.message", text("third"))
	if n := bob.MustDo(t, "GET", "/_matrix/client/v3/notifications", nil, 200).Get("notifications.#").Int(); n != 2 {
		t.Fatalf("bob has %d notifications, want 2 (the messages before he left)", n)
	}
	carol.MustDo(t, "PUT", "/_matrix/client/v3/rooms/"+ts.PathEscape(room)+"/state/m.room.member/"+ts.PathEscape(carol.UserID),
		map[string]any{"membership": "join", "displayname": "Caroline"}, 200)
	send(t, alice, room, "m.room.message", text("hello Caroline"))
	if u := unread(t, carol, room); u.Get("highlight_count").Int() != 1 {
		t.Fatalf("a display name set between messages is not mentioned: %s", u.Raw)
	}
}
