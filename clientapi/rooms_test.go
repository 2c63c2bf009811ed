package clientapi_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

func roomPath(roomID, rest string) string { return v3 + "/rooms/" + ts.PathEscape(roomID) + rest }

func stateContent(t *testing.T, c *ts.Client, roomID, typ, key string) gjson.Result {
	t.Helper()
	return c.MustDo(t, "GET", roomPath(roomID, "/state/"+typ+"/"+key), nil, 200)
}

func TestCreateRoomPresets(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	for _, tc := range []struct {
		preset, visibility, joinRule, guest string
		invite                              int64
		bobLevel                            int64
	}{
		{"private_chat", "", "invite", "can_join", 0, 0},
		{"trusted_private_chat", "", "invite", "can_join", 0, 100},
		{"public_chat", "", "public", "forbidden", 50, 0},
		{"", "public", "public", "forbidden", 50, 0},
		{"", "", "invite", "can_join", 0, 0},
	} {
		t.Run(tc.preset+tc.visibility, func(t *testing.T) {
			body := map[string]any{"invite": []string{bob.UserID}}
			if tc.preset != "" {
				body["preset"] = tc.preset
			}
			if tc.visibility != "" {
				body["visibility"] = tc.visibility
			}
			room := alice.CreateRoom(t, body)
			if jr := stateContent(t, alice, room, "m.room.join_rules", ""); jr.Get("join_rule").Str != tc.joinRule {
				t.Errorf("join_rule: %s", jr.Raw)
			}
			if hv := stateContent(t, alice, room, "m.room.history_visibility", ""); hv.Get("history_visibility").Str != "shared" {
				t.Errorf("history_visibility: %s", hv.Raw)
			}
			if ga := stateContent(t, alice, room, "m.room.guest_access", ""); ga.Get("guest_access").Str != tc.guest {
				t.Errorf("guest_access: %s", ga.Raw)
			}
			pl := stateContent(t, alice, room, "m.room.power_levels", "")
			if pl.Get("users."+strings.ReplaceAll(alice.UserID, ".", `\.`)).Int() != 100 || pl.Get("invite").Int() != tc.invite ||
				pl.Get("users."+strings.ReplaceAll(bob.UserID, ".", `\.`)).Int() != tc.bobLevel {
				t.Errorf("power_levels: %s", pl.Raw)
			}
			if m := stateContent(t, alice, room, "m.room.member", bob.UserID); m.Get("membership").Str != "invite" {
				t.Errorf("invite: %s", m.Raw)
			}
		})
	}
}

func TestCreateRoomOptions(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{
		"name": "Project X", "topic": "Secret stuff", "room_alias_name": "projectx", "is_direct": true,
		"invite":                       []string{bob.UserID},
		"creation_content":             map[string]any{"m.federate": false, "type": "m.space"},
		"power_level_content_override": map[string]any{"events_default": 10, "users": map[string]any{alice.UserID: 100, bob.UserID: 20}},
		"initial_state": []map[string]any{
			{"type": "m.room.encryption", "state_key": "", "content": map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}},
			{"type": "m.room.history_visibility", "content": map[string]any{"history_visibility": "joined"}},
			{"type": "m.room.name", "content": map[string]any{"name": "overridden by name"}},
		},
	})
	if !strings.HasPrefix(room, "!") || !strings.HasSuffix(room, ":test.local") {
		t.Fatalf("room ID %q", room)
	}
	create := stateContent(t, alice, room, "m.room.create", "")
	if create.Get("room_version").Str != "11" || create.Get("type").Str != "m.space" || create.Get(`m\.federate`).Bool() || create.Get("creator").Exists() {
		t.Errorf("create: %s", create.Raw)
	}
	if n := stateContent(t, alice, room, "m.room.name", ""); n.Get("name").Str != "Project X" {
		t.Errorf("name: %s", n.Raw)
	}
	if n := stateContent(t, alice, room, "m.room.topic", ""); n.Get("topic").Str != "Secret stuff" || n.Get(`m\.topic.m\.text.0.body`).Str != "Secret stuff" {
		t.Errorf("topic: %s", n.Raw)
	}
	if n := stateContent(t, alice, room, "m.room.encryption", ""); n.Get("algorithm").Str != "m.megolm.v1.aes-sha2" {
		t.Errorf("encryption: %s", n.Raw)
	}
	if n := stateContent(t, alice, room, "m.room.history_visibility", ""); n.Get("history_visibility").Str != "joined" {
		t.Errorf("initial_state did not override the preset: %s", n.Raw)
	}
	if n := stateContent(t, alice, room, "m.room.canonical_alias", ""); n.Get("alias").Str != "#projectx:test.local" {
		t.Errorf("canonical alias: %s", n.Raw)
	}
	pl := stateContent(t, alice, room, "m.room.power_levels", "")
	if pl.Get("events_default").Int() != 10 || pl.Get("users.@bob:test\\.local").Int() != 20 || pl.Get("state_default").Int() != 50 {
		t.Errorf("power levels override: %s", pl.Raw)
	}
	if m := stateContent(t, alice, room, "m.room.member", bob.UserID); !m.Get("is_direct").Bool() {
		t.Errorf("is_direct: %s", m.Raw)
	}
	if r := alice.MustDo(t, "GET", v3+"/directory/room/%23projectx:test.local", nil, 200); r.Get("room_id").Str != room {
		t.Errorf("alias: %s", r.Raw)
	}
	// Events come in the spec's order: create, creator's join, power levels first.
	msgs := alice.MustDo(t, "GET", roomPath(room, "/messages?dir=f&limit=20"), nil, 200)
	types := []string{}
	for _, e := range msgs.Get("chunk").Array() {
		types = append(types, e.Get("type").Str)
	}
	if len(types) < 3 || types[0] != "m.room.create" || types[1] != "m.room.member" || types[2] != "m.room.power_levels" {
		t.Errorf("event order: %v", types)
	}
}

// Every stable room version can be created, joined, written, redacted in
// and upgraded from; the event formats and redaction rules differ by version.
func TestCreateRoomVersions(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	for v := 1; v <= 12; v++ {
		v := strconv.Itoa(v)
		t.Run("v"+v, func(t *testing.T) {
			room := alice.CreateRoom(t, map[string]any{"room_version": v, "preset": "public_chat", "name": "v" + v})
			create := stateContent(t, alice, room, "m.room.create", "")
			if create.Get("room_version").Str != v {
				t.Fatalf("create: %s", create.Raw)
			}
			if v == "12" && strings.Contains(room, ":") {
				t.Fatalf("v12 room ID has a domain: %s", room)
			}
			if n, _ := strconv.Atoi(v); (n <= 10) != (create.Get("creator").Str == alice.UserID) {
				t.Fatalf("v%s create content: %s", v, create.Raw)
			}
			bob.Join(t, room)
			id := bob.Send(t, room, "hello in v"+v)
			// Version 3's event IDs are standard base64, with '/' and '+'.
			alice.MustDo(t, "PUT", roomPath(room, "/redact/"+ts.PathEscape(id)+"/r1"), map[string]any{"reason": "mod"}, 200)
			ev := bob.MustDo(t, "GET", roomPath(room, "/event/"+ts.PathEscape(id)), nil, 200)
			if ev.Get("content.body").Exists() || ev.Get("unsigned.redacted_because.sender").Str != alice.UserID {
				t.Fatalf("redacted event: %s", ev.Raw)
			}
			// Bob, without power, cannot rename the room.
			bob.MustFail(t, "PUT", roomPath(room, "/state/m.room.name/"), map[string]any{"name": "mine"}, 403, "M_FORBIDDEN")
			alice.MustDo(t, "PUT", roomPath(room, "/state/m.room.name/"), map[string]any{"name": "renamed"}, 200)
			msgs := bob.MustDo(t, "GET", roomPath(room, "/messages?dir=b&limit=50"), nil, 200)
			if n := len(msgs.Get("chunk").Array()); n < 8 {
				t.Fatalf("v%s history has %d events: %s", v, n, msgs.Raw)
			}
			newRoom := alice.MustDo(t, "POST", roomPath(room, "/upgrade"), map[string]any{"new_version": "12"}, 200).Get("replacement_room").Str
			bob.Join(t, newRoom)
		})
	}
	alice.MustFail(t, "POST", v3+"/createRoom", map[string]any{"room_version": "13"}, 400, "M_UNSUPPORTED_ROOM_VERSION")
	alice.MustFail(t, "POST", v3+"/createRoom", map[string]any{"room_version": "banana"}, 400, "M_UNSUPPORTED_ROOM_VERSION")
}

func TestCreateRoomErrors(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	alice.CreateRoom(t, map[string]any{"room_alias_name": "taken"})
	before := countRooms(t, srv)
	for _, tc := range []struct {
		name    string
		body    any
		status  int
		errcode string
	}{
		{"alias taken", map[string]any{"room_alias_name": "taken"}, 400, "M_ROOM_IN_USE"},
		{"bad alias", map[string]any{"room_alias_name": "a:b"}, 400, "M_INVALID_PARAM"},
		{"unknown preset", map[string]any{"preset": "party"}, 400, "M_BAD_JSON"},
		{"bad visibility", map[string]any{"visibility": "secret"}, 400, "M_BAD_JSON"},
		{"name not string", map[string]any{"name": 5}, 400, "M_BAD_JSON"},
		{"invite not list", map[string]any{"invite": "bob"}, 400, "M_BAD_JSON"},
		{"invite unknown user", map[string]any{"invite": []string{"@nobody:test.local"}}, 404, "M_NOT_FOUND"},
		{"invite remote user", map[string]any{"invite": []string{"@bob:matrix.org"}}, 403, "M_FORBIDDEN"},
		{"invite not a user ID", map[string]any{"invite": []string{"bob"}}, 400, "M_INVALID_PARAM"},
		{"creation_content not object", map[string]any{"creation_content": []int{1}}, 400, "M_BAD_JSON"},
		{"additional_creators wrong type", map[string]any{"room_version": "12", "creation_content": map[string]any{"additional_creators": 5}}, 400, "M_BAD_JSON"},
		{"power override wrong type", map[string]any{"power_level_content_override": map[string]any{"ban": "high"}}, 400, "M_BAD_JSON"},
		{"initial_state without type", map[string]any{"initial_state": []map[string]any{{"content": map[string]any{}}}}, 400, "M_BAD_JSON"},
		{"initial_state create", map[string]any{"initial_state": []map[string]any{{"type": "m.room.create", "content": map[string]any{}}}}, 400, "M_BAD_JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alice.MustFail(t, "POST", v3+"/createRoom", tc.body, tc.status, tc.errcode)
		})
	}
	if after := countRooms(t, srv); after != before {
		t.Fatalf("refused createRoom requests left %d rooms behind", after-before)
	}
	srv.Anon().MustFail(t, "POST", v3+"/createRoom", map[string]any{}, 401, "M_MISSING_TOKEN")
}

func countRooms(t *testing.T, srv *ts.Server) int {
	t.Helper()
	var n int
	if err := srv.DB.RawRead(t.Context(), "SELECT COUNT(*) FROM rooms", &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMembership(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	room := alice.CreateRoom(t, map[string]any{"preset": "private_chat"})
	member := func(user string) string {
		return stateContent(t, alice, room, "m.room.member", user).Get("membership").Str
	}

	// Invite-only: joining uninvited fails and stores nothing.
	bob.MustFail(t, "POST", v3+"/join/"+ts.PathEscape(room), map[string]any{}, 403, "M_FORBIDDEN")
	alice.MustFail(t, "GET", roomPath(room, "/state/m.room.member/"+bob.UserID), nil, 404, "M_NOT_FOUND")
	// Non-members cannot invite.
	carol.MustFail(t, "POST", roomPath(room, "/invite"), map[string]any{"user_id": bob.UserID}, 403, "M_FORBIDDEN")
	alice.MustFail(t, "POST", roomPath(room, "/invite"), map[string]any{}, 400, "M_MISSING_PARAM")
	alice.MustFail(t, "POST", roomPath(room, "/invite"), map[string]any{"user_id": "@ghost:test.local"}, 404, "M_NOT_FOUND")
	alice.MustFail(t, "POST", roomPath(room, "/invite"), map[string]any{"user_id": "@ghost:other.org"}, 403, "M_FORBIDDEN")

	alice.Invite(t, room, bob.UserID)
	if member(bob.UserID) != "invite" {
		t.Fatal("not invited")
	}
	alice.MustFail(t, "POST", roomPath(room, "/kick"), map[string]any{"user_id": carol.UserID}, 403, "M_FORBIDDEN")
	bob.MustDo(t, "POST", roomPath(room, "/join"), map[string]any{}, 200)
	if member(bob.UserID) != "join" {
		t.Fatal("not joined")
	}
	// Joining twice changes nothing.
	before := alice.MustDo(t, "GET", roomPath(room, "/messages?dir=b&limit=1"), nil, 200).Get("chunk.0.event_id").Str
	bob.Join(t, room)
	if after := alice.MustDo(t, "GET", roomPath(room, "/messages?dir=b&limit=1"), nil, 200).Get("chunk.0.event_id").Str; after != before {
		t.Fatal("a second join sent a new event")
	}
	alice.MustFail(t, "POST", roomPath(room, "/invite"), map[string]any{"user_id": bob.UserID}, 403, "M_FORBIDDEN")

	// Bob (power 0) may not kick or ban Alice.
	bob.MustFail(t, "POST", roomPath(room, "/kick"), map[string]any{"user_id": alice.UserID}, 403, "M_FORBIDDEN")
	bob.MustFail(t, "POST", roomPath(room, "/ban"), map[string]any{"user_id": alice.UserID}, 403, "M_FORBIDDEN")
	alice.MustDo(t, "POST", roomPath(room, "/kick"), map[string]any{"user_id": bob.UserID, "reason": "spam"}, 200)
	m := stateContent(t, alice, room, "m.room.member", bob.UserID)
	if m.Get("membership").Str != "leave" || m.Get("reason").Str != "spam" {
		t.Fatalf("kick: %s", m.Raw)
	}
	// A kicked user may still read the state from before they left, not after.
	alice.MustDo(t, "PUT", roomPath(room, "/state/m.room.topic/"), map[string]any{"topic": "after bob left"}, 200)
	bob.MustFail(t, "GET", roomPath(room, "/state/m.room.topic/"), nil, 404, "M_NOT_FOUND")
	bob.MustFail(t, "PUT", roomPath(room, "/send/m.room.message/t1"), map[string]any{"body": "x"}, 403, "M_FORBIDDEN")
	// What else a join request carries goes into the member event; the
	// fields the server sets cannot be overridden.
	alice.Invite(t, room, bob.UserID)
	bob.MustDo(t, "POST", v3+"/join/"+ts.PathEscape(room), map[string]any{"foo": "bar", "membership": "ban", "displayname": "Evil"}, 200)
	if m := stateContent(t, alice, room, "m.room.member", bob.UserID); m.Get("foo").Str != "bar" || m.Get("membership").Str != "join" || m.Get("displayname").Str != "bob" {
		t.Fatalf("join with extra content: %s", m.Raw)
	}
	alice.MustDo(t, "POST", roomPath(room, "/kick"), map[string]any{"user_id": bob.UserID}, 200)

	alice.MustDo(t, "POST", roomPath(room, "/ban"), map[string]any{"user_id": bob.UserID}, 200)
	if member(bob.UserID) != "ban" {
		t.Fatal("not banned")
	}
	alice.MustFail(t, "POST", roomPath(room, "/invite"), map[string]any{"user_id": bob.UserID}, 403, "M_FORBIDDEN")
	bob.MustFail(t, "POST", roomPath(room, "/join"), map[string]any{}, 403, "M_FORBIDDEN")
	alice.MustFail(t, "POST", roomPath(room, "/unban"), map[string]any{"user_id": carol.UserID}, 403, "M_FORBIDDEN")
	alice.MustDo(t, "POST", roomPath(room, "/unban"), map[string]any{"user_id": bob.UserID}, 200)
	if member(bob.UserID) != "leave" {
		t.Fatal("not unbanned")
	}

	// Rejecting an invite is leaving; leaving twice is fine; leaving a room
	// one was never in is not.
	alice.Invite(t, room, carol.UserID)
	carol.MustDo(t, "POST", roomPath(room, "/leave"), map[string]any{}, 200)
	carol.MustDo(t, "POST", roomPath(room, "/leave"), map[string]any{}, 200)
	if member(carol.UserID) != "leave" {
		t.Fatal("invite not rejected")
	}
	other := alice.CreateRoom(t, nil)
	bob.MustFail(t, "POST", roomPath(other, "/leave"), map[string]any{}, 403, "M_FORBIDDEN")
	bob.MustFail(t, "POST", roomPath("!unknown:test.local", "/leave"), map[string]any{}, 404, "M_NOT_FOUND")
	bob.MustFail(t, "POST", roomPath("not-a-room", "/leave"), map[string]any{}, 400, "M_INVALID_PARAM")

	// Forget: only after leaving.
	alice.MustFail(t, "POST", roomPath(room, "/forget"), map[string]any{}, 400, "M_UNKNOWN")
	bob.MustDo(t, "POST", roomPath(room, "/forget"), map[string]any{}, 200)
	bob.MustFail(t, "POST", roomPath(other, "/forget"), map[string]any{}, 404, "M_NOT_FOUND")

	// Public rooms can be joined by alias.
	pub := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "room_alias_name": "lobby"})
	res := carol.MustDo(t, "POST", v3+"/join/%23lobby:test.local", map[string]any{}, 200)
	if res.Get("room_id").Str != pub {
		t.Fatalf("join by alias: %s", res.Raw)
	}
	carol.MustFail(t, "POST", v3+"/join/%23nope:test.local", map[string]any{}, 404, "M_NOT_FOUND")
	carol.MustFail(t, "POST", v3+"/join/lobby", map[string]any{}, 400, "M_INVALID_PARAM")

	joined := carol.MustDo(t, "GET", v3+"/joined_rooms", nil, 200)
	if joined.Get("joined_rooms.#").Int() != 1 || joined.Get("joined_rooms.0").Str != pub {
		t.Fatalf("joined_rooms: %s", joined.Raw)
	}
}

func TestStateEvents(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	eve := srv.Register(t, "eve")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "name": "first"})
	bob.Join(t, room)

	id := alice.MustDo(t, "PUT", roomPath(room, "/state/m.room.topic"), map[string]any{"topic": "no trailing slash"}, 200).Get("event_id").Str
	if !strings.HasPrefix(id, "$") {
		t.Fatalf("event_id %q", id)
	}
	// The same state again from the same sender is the same event.
	if again := alice.MustDo(t, "PUT", roomPath(room, "/state/m.room.topic/"), map[string]any{"topic": "no trailing slash"}, 200).Get("event_id").Str; again != id {
		t.Fatalf("identical state PUT gave %s, then %s", id, again)
	}
	alice.MustDo(t, "PUT", roomPath(room, "/state/org.example.custom/some%2Fkey"), map[string]any{"v": 1}, 200)
	if c := stateContent(t, bob, room, "org.example.custom", "some%2Fkey"); c.Get("v").Int() != 1 {
		t.Fatalf("state key with a slash: %s", c.Raw)
	}
	if c := bob.MustDo(t, "GET", roomPath(room, "/state/m.room.topic"), nil, 200); c.Get("topic").Str != "no trailing slash" {
		t.Fatalf("topic: %s", c.Raw)
	}
	state := bob.MustDo(t, "GET", roomPath(room, "/state"), nil, 200)
	types := map[string]bool{}
	for _, e := range state.Array() {
		types[e.Get("type").Str] = true
		if e.Get("event_id").Str == "" || e.Get("sender").Str == "" || !e.Get("state_key").Exists() || e.Get("room_id").Str != room {
			t.Fatalf("state event fields: %s", e.Raw)
		}
	}
	for _, want := range []string{"m.room.create", "m.room.member", "m.room.power_levels", "m.room.join_rules", "m.room.name", "m.room.topic", "org.example.custom"} {
		if !types[want] {
			t.Errorf("state lacks %s", want)
		}
	}

	bob.MustFail(t, "PUT", roomPath(room, "/state/m.room.power_levels/"), map[string]any{"users": map[string]any{bob.UserID: 100}}, 403, "M_FORBIDDEN")
	eve.MustFail(t, "PUT", roomPath(room, "/state/m.room.topic/"), map[string]any{"topic": "eve was here"}, 403, "M_FORBIDDEN")
	eve.MustFail(t, "GET", roomPath(room, "/state"), nil, 403, "M_FORBIDDEN")
	eve.MustFail(t, "GET", roomPath(room, "/state/m.room.topic/"), nil, 403, "M_FORBIDDEN")
	alice.MustFail(t, "GET", roomPath(room, "/state/m.room.avatar/"), nil, 404, "M_NOT_FOUND")
	alice.MustFail(t, "PUT", roomPath(room, "/state/m.room.topic/"), `["x"]`, 400, "M_BAD_JSON")
	alice.MustFail(t, "PUT", roomPath(room, "/state/m.room.topic/"), `{`, 400, "M_NOT_JSON")
	alice.MustFail(t, "GET", roomPath("!nope:test.local", "/state"), nil, 403, "M_FORBIDDEN")
	if c := bob.MustDo(t, "GET", roomPath(room, "/state/m.room.topic"), nil, 200); c.Get("topic").Str != "no trailing slash" {
		t.Fatalf("refused state change took effect: %s", c.Raw)
	}
	// Oversized state is refused and not stored.
	alice.MustFail(t, "PUT", roomPath(room, "/state/m.room.topic/"), map[string]any{"topic": strings.Repeat("x", 70000)}, 413, "M_TOO_LARGE")
}

func TestSendAndIdempotency(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(t, nil)
	path := roomPath(room, "/send/m.room.message/txn-1")
	body := map[string]any{"msgtype": "m.text", "body": "once"}
	first := alice.MustDo(t, "PUT", path, body, 200).Get("event_id").Str
	second := alice.MustDo(t, "PUT", path, body, 200).Get("event_id").Str
	if first == "" || first != second {
		t.Fatalf("duplicate txnId gave %q then %q", first, second)
	}
	msgs := alice.MustDo(t, "GET", roomPath(room, "/messages?dir=b&limit=50"), nil, 200)
	if n := len(msgs.Get(`chunk.#(content.body=="once")#`).Array()); n != 1 {
		t.Fatalf("%d copies stored", n)
	}
	if msgs.Get("chunk.0.unsigned.transaction_id").Str != "txn-1" {
		t.Fatalf("transaction_id not echoed to the sender: %s", msgs.Get("chunk.0").Raw)
	}
	// The same txnId from another device is another event.
	other := srv.As(srv.Anon().MustDo(t, "POST", v3+"/login", passwordLogin("alice", ts.Password("alice")), 200).Get("access_token").Str)
	third := other.MustDo(t, "PUT", path, body, 200).Get("event_id").Str
	if third == first {
		t.Fatal("txnId shared across devices")
	}
	// ... and is not echoed to a device that did not send it.
	ev := other.MustDo(t, "GET", roomPath(room, "/event/"+first), nil, 200)
	if ev.Get("unsigned.transaction_id").Exists() || ev.Get("unsigned.age").Int() < 0 {
		t.Fatalf("event for another device: %s", ev.Raw)
	}
	// Same txnId on send and redact are different transactions.
	red := alice.MustDo(t, "PUT", roomPath(room, "/redact/"+third+"/txn-1"), map[string]any{}, 200).Get("event_id").Str
	if red == first {
		t.Fatal("redact reused the send's transaction")
	}

	bob.MustFail(t, "PUT", roomPath(room, "/send/m.room.message/b1"), body, 403, "M_FORBIDDEN")
	bob.MustFail(t, "PUT", roomPath("!nope:test.local", "/send/m.room.message/b1"), body, 404, "M_NOT_FOUND")
	alice.MustFail(t, "PUT", roomPath(room, "/send/m.room.message/big"), map[string]any{"body": strings.Repeat("x", 66000)}, 413, "M_TOO_LARGE")
	alice.MustFail(t, "PUT", roomPath(room, "/send/m.room.message/arr"), `[1]`, 400, "M_BAD_JSON")
	alice.MustFail(t, "PUT", roomPath(room, "/send/m.room.message/nj"), `{"body":`, 400, "M_NOT_JSON")
	alice.MustFail(t, "PUT", roomPath(room, "/send/"+strings.Repeat("t", 300)+"/long"), body, 400, "M_INVALID_PARAM")
	srv.Anon().MustFail(t, "PUT", roomPath(room, "/send/m.room.message/anon"), body, 401, "M_MISSING_TOKEN")
	for _, txn := range []string{"big", "arr", "nj"} {
		if _, err := srv.DB.R().EventIDByTxn(t.Context(), room, alice.UserID, alice.DeviceID, "s:"+txn); err == nil {
			t.Fatalf("refused send %s was stored", txn)
		}
	}
	// Power levels: raise events_default above bob's level.
	room2 := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "power_level_content_override": map[string]any{"events_default": 50}})
	bob.Join(t, room2)
	bob.MustFail(t, "PUT", roomPath(room2, "/send/m.room.message/b2"), body, 403, "M_FORBIDDEN")
	alice.MustDo(t, "PUT", roomPath(room2, "/send/m.room.message/a2"), body, 200)
}

// Event content must be what canonical JSON can carry, in valid UTF-8: one
// message with invalid UTF-8 or a float would make every member's /sync
// invalid for strict clients, or fail to sign. Refused, and nothing stored.
func TestEventContentIsCanonical(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(t, nil)
	for i, tc := range []struct {
		name, body string
		errcode    string
	}{
		{"invalid UTF-8", "{\"msgtype\":\"m.text\",\"body\":\"caf\xe9\"}", "M_NOT_JSON"},
		{"invalid UTF-8 in a key", "{\"b\xffody\":\"x\"}", "M_NOT_JSON"},
		{"lone high surrogate", `{"body":"\ud800"}`, "M_NOT_JSON"},
		{"lone low surrogate", `{"body":"a\udc00b"}`, "M_NOT_JSON"},
		{"high surrogate then text", `{"body":"\ud800\u0041"}`, "M_NOT_JSON"},
		{"past 2^53", `{"body":"x","n":9007199254740993}`, "M_BAD_JSON"},
		{"below -2^53", `{"body":"x","n":-9007199254740993}`, "M_BAD_JSON"},
		{"exponent", `{"body":"x","n":1e400}`, "M_BAD_JSON"},
		{"small exponent", `{"body":"x","n":1e2}`, "M_BAD_JSON"},
		{"fraction", `{"body":"x","n":1.5}`, "M_BAD_JSON"},
		{"negative zero", `{"body":"x","n":-0}`, "M_BAD_JSON"},
		{"nested fraction", `{"body":"x","a":[{"n":0.5}]}`, "M_BAD_JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			txn := fmt.Sprintf("bad%d", i)
			alice.MustFail(t, "PUT", roomPath(room, "/send/m.room.message/"+txn), tc.body, 400, tc.errcode)
			alice.MustFail(t, "PUT", roomPath(room, "/state/org.example.bad/"+txn), tc.body, 400, tc.errcode)
			if _, err := srv.DB.R().EventIDByTxn(t.Context(), room, alice.UserID, alice.DeviceID, "s:"+txn); err == nil {
				t.Fatal("refused event was stored")
			}
			alice.MustFail(t, "GET", roomPath(room, "/state/org.example.bad/"+txn), nil, 404, "M_NOT_FOUND")
		})
	}
	// What canonical JSON allows is accepted: the limits themselves, and a
	// surrogate pair written as escapes.
	alice.MustDo(t, "PUT", roomPath(room, "/send/m.room.message/ok"),
		`{"body":"\ud83d\ude00","max":9007199254740991,"min":-9007199254740991,"zero":0}`, 200)
	srv.Anon().MustFail(t, "POST", v3+"/login", "{\"type\":\"m.login.password\",\"user\":\"caf\xe9\"}", 400, "M_NOT_JSON")
}

func TestRedaction(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	aliceMsg := alice.Send(t, room, "alice's words")
	bobMsg := bob.Send(t, room, "bob's words")

	// Bob may redact his own event, not Alice's.
	bob.MustFail(t, "PUT", roomPath(room, "/redact/"+aliceMsg+"/r1"), map[string]any{}, 403, "M_FORBIDDEN")
	if ev := alice.MustDo(t, "GET", roomPath(room, "/event/"+aliceMsg), nil, 200); ev.Get("content.body").Str != "alice's words" {
		t.Fatalf("refused redaction took effect: %s", ev.Raw)
	}
	rid := bob.MustDo(t, "PUT", roomPath(room, "/redact/"+bobMsg+"/r2"), map[string]any{"reason": "typo"}, 200).Get("event_id").Str
	ev := alice.MustDo(t, "GET", roomPath(room, "/event/"+bobMsg), nil, 200)
	if ev.Get("content").Raw != "{}" || ev.Get("unsigned.redacted_because.event_id").Str != rid ||
		ev.Get("unsigned.redacted_because.content.reason").Str != "typo" {
		t.Fatalf("redacted: %s", ev.Raw)
	}
	red := alice.MustDo(t, "GET", roomPath(room, "/event/"+rid), nil, 200)
	if red.Get("redacts").Str != bobMsg || red.Get("content.redacts").Str != bobMsg {
		t.Fatalf("redaction event: %s", red.Raw)
	}
	// Alice (moderator) may redact Bob's.
	bobMsg2 := bob.Send(t, room, "more")
	alice.MustDo(t, "PUT", roomPath(room, "/redact/"+bobMsg2+"/r3"), map[string]any{}, 200)
	// Unknown events, events of other rooms, and bad IDs.
	other := alice.CreateRoom(t, nil)
	otherMsg := alice.Send(t, other, "elsewhere")
	alice.MustFail(t, "PUT", roomPath(room, "/redact/$nope/r4"), map[string]any{}, 404, "M_NOT_FOUND")
	alice.MustFail(t, "PUT", roomPath(room, "/redact/"+otherMsg+"/r5"), map[string]any{}, 404, "M_NOT_FOUND")
	alice.MustFail(t, "PUT", roomPath(room, "/redact/nope/r6"), map[string]any{}, 400, "M_INVALID_PARAM")
	alice.MustFail(t, "PUT", roomPath(room, "/redact/"+aliceMsg+"/r7"), map[string]any{"reason": 5}, 400, "M_BAD_JSON")
	// Redacting a state event redacts the current state too, keeping what
	// the algorithm keeps.
	topic := alice.MustDo(t, "PUT", roomPath(room, "/state/m.room.topic/"), map[string]any{"topic": "secret topic"}, 200).Get("event_id").Str
	alice.MustDo(t, "PUT", roomPath(room, "/redact/"+topic+"/r8"), map[string]any{}, 200)
	if c := stateContent(t, alice, room, "m.room.topic", ""); c.Raw != "{}" {
		t.Fatalf("redacted topic state: %s", c.Raw)
	}
	jr := alice.MustDo(t, "GET", roomPath(room, "/state/m.room.join_rules/?format=event"), nil, 200).Get("event_id").Str
	alice.MustDo(t, "PUT", roomPath(room, "/redact/"+jr+"/r9"), map[string]any{}, 200)
	if c := stateContent(t, alice, room, "m.room.join_rules", ""); c.Get("join_rule").Str != "public" {
		t.Fatalf("redaction removed a protected key: %s", c.Raw)
	}
	srv.Register(t, "carol").Join(t, room) // the room still works as public
}

func TestMessagesPagination(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	var sent []string
	for i := range 25 {
		c := alice
		if i%2 == 1 {
			c = bob
		}
		sent = append(sent, c.Send(t, room, fmt.Sprintf("message %d", i)))
	}
	// Backwards in pages of 7 from the newest.
	var got []string
	from := ""
	for {
		path := roomPath(room, "/messages?dir=b&limit=7&filter="+urlQuery(`{"types":["m.room.message"]}`))
		if from != "" {
			path += "&from=" + from
		}
		res := bob.MustDo(t, "GET", path, nil, 200)
		for _, e := range res.Get("chunk").Array() {
			got = append(got, e.Get("event_id").Str)
		}
		if !res.Get("end").Exists() {
			break
		}
		if res.Get("start").Str == "" {
			t.Fatal("no start token")
		}
		from = res.Get("end").Str
	}
	if len(got) != len(sent) {
		t.Fatalf("paginated %d events, sent %d", len(got), len(sent))
	}
	for i := range sent {
		if got[len(got)-1-i] != sent[i] {
			t.Fatalf("order differs at %d", i)
		}
	}
	// Forwards from the oldest, with a sender filter.
	res := bob.MustDo(t, "GET", roomPath(room, "/messages?dir=f&limit=100&filter="+urlQuery(`{"senders":["`+bob.UserID+`"],"types":["m.room.message"]}`)), nil, 200)
	if n := res.Get("chunk.#").Int(); n != 12 {
		t.Fatalf("bob's messages: %d", n)
	}
	// Without dir, forwards, as Synapse takes it.
	if noDir := bob.MustDo(t, "GET", roomPath(room, "/messages?limit=100&filter="+urlQuery(`{"senders":["`+bob.UserID+`"],"types":["m.room.message"]}`)), nil, 200); noDir.Get("chunk.#").Int() != 12 ||
		noDir.Get("chunk.0.event_id").Str != res.Get("chunk.0.event_id").Str {
		t.Fatalf("without dir: %s", noDir.Raw)
	}
	// As Synapse does, a page with events says where to go on; the page
	// after the end of history is empty and has no end.
	last := bob.MustDo(t, "GET", roomPath(room, "/messages?dir=f&limit=100&from="+res.Get("end").Str), nil, 200)
	if last.Get("chunk.#").Int() != 0 || last.Get("end").Exists() {
		t.Fatalf("past the end of history: %s", last.Raw)
	}
	// "to" bounds the page.
	first := bob.MustDo(t, "GET", roomPath(room, "/messages?dir=b&limit=3"), nil, 200)
	bounded := bob.MustDo(t, "GET", roomPath(room, "/messages?dir=b&limit=50&to="+first.Get("end").Str), nil, 200)
	if bounded.Get("chunk.#").Int() != 3 {
		t.Fatalf("to: %s", bounded.Raw)
	}
	// lazy_load_members returns the senders' member events.
	lazy := bob.MustDo(t, "GET", roomPath(room, "/messages?dir=b&limit=2&filter="+urlQuery(`{"lazy_load_members":true}`)), nil, 200)
	if lazy.Get("state.#").Int() != 2 || lazy.Get("state.0.type").Str != "m.room.member" {
		t.Fatalf("lazy members: %s", lazy.Get("state").Raw)
	}

	eve := srv.Register(t, "eve")
	private := alice.CreateRoom(t, nil)
	for _, tc := range []struct {
		c       *ts.Client
		path    string
		status  int
		errcode string
	}{
		{bob, "/messages?dir=x", 400, "M_INVALID_PARAM"},
		{bob, "/messages?dir=b&limit=abc", 400, "M_INVALID_PARAM"},
		{bob, "/messages?dir=b&from=garbage", 400, "M_INVALID_PARAM"},
		{bob, "/messages?dir=b&filter=notjson", 400, "M_INVALID_PARAM"},
	} {
		tc.c.MustFail(t, "GET", roomPath(room, tc.path), nil, tc.status, tc.errcode)
	}
	eve.MustFail(t, "GET", roomPath(private, "/messages?dir=b"), nil, 403, "M_FORBIDDEN")
	eve.MustFail(t, "GET", roomPath("!nope:test.local", "/messages?dir=b"), nil, 403, "M_FORBIDDEN")
}

func urlQuery(s string) string {
	return strings.NewReplacer("{", "%7B", "}", "%7D", `"`, "%22", "[", "%5B", "]", "%5D", ":", "%3A", ",", "%2C", "@", "%40").Replace(s)
}

func TestHistoryVisibility(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	for _, tc := range []struct {
		visibility  string
		seesEarlier bool
		seesInvited bool
	}{
		{"shared", true, true},
		{"invited", false, true},
		{"joined", false, false},
		{"world_readable", true, true},
	} {
		t.Run(tc.visibility, func(t *testing.T) {
			room := alice.CreateRoom(t, map[string]any{"initial_state": []map[string]any{
				{"type": "m.room.history_visibility", "content": map[string]any{"history_visibility": tc.visibility}}}})
			early := alice.Send(t, room, "before the invite")
			alice.Invite(t, room, bob.UserID)
			invited := alice.Send(t, room, "while invited")
			bob.Join(t, room)
			joined := alice.Send(t, room, "after joining")
			for _, c := range []struct {
				id   string
				want bool
			}{{early, tc.seesEarlier}, {invited, tc.seesInvited}, {joined, true}} {
				code, _ := bob.Do(t, "GET", roomPath(room, "/event/"+c.id), nil)
				if (code == 200) != c.want {
					t.Errorf("event %s: status %d, want visible=%v", c.id, code, c.want)
				}
			}
			res := bob.MustDo(t, "GET", roomPath(room, "/messages?dir=b&limit=100&filter="+urlQuery(`{"types":["m.room.message"]}`)), nil, 200)
			want := 1
			if tc.seesEarlier {
				want++
			}
			if tc.seesInvited {
				want++
			}
			if n := int(res.Get("chunk.#").Int()); n != want {
				t.Errorf("messages: %d visible, want %d", n, want)
			}
			// After leaving, later events are hidden.
			bob.MustDo(t, "POST", roomPath(room, "/leave"), map[string]any{}, 200)
			later := alice.Send(t, room, "after bob left")
			code, _ := bob.Do(t, "GET", roomPath(room, "/event/"+later), nil)
			if (code == 200) != (tc.visibility == "world_readable") {
				t.Errorf("event after leaving: %d", code)
			}
		})
	}
}

func TestContextAndEvent(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	eve := srv.Register(t, "eve")
	room := alice.CreateRoom(t, map[string]any{"name": "ctx"})
	var ids []string
	for i := range 9 {
		ids = append(ids, alice.Send(t, room, fmt.Sprintf("m%d", i)))
	}
	res := alice.MustDo(t, "GET", roomPath(room, "/context/"+ids[4]+"?limit=4"), nil, 200)
	if res.Get("event.event_id").Str != ids[4] || res.Get("events_before.#").Int() != 2 || res.Get("events_after.#").Int() != 2 {
		t.Fatalf("context: %s", res.Raw)
	}
	if res.Get("events_before.0.event_id").Str != ids[3] || res.Get("events_after.0.event_id").Str != ids[5] {
		t.Fatalf("context order: %s", res.Raw)
	}
	if res.Get(`state.#(type=="m.room.name").content.name`).Str != "ctx" || res.Get("start").Str == "" || res.Get("end").Str == "" {
		t.Fatalf("context state/tokens: %s", res.Raw)
	}
	// The tokens continue the pagination.
	more := alice.MustDo(t, "GET", roomPath(room, "/messages?dir=b&limit=1&from="+res.Get("start").Str), nil, 200)
	if more.Get("chunk.0.event_id").Str != ids[1] {
		t.Fatalf("start token: %s", more.Raw)
	}
	more = alice.MustDo(t, "GET", roomPath(room, "/messages?dir=f&limit=1&from="+res.Get("end").Str), nil, 200)
	if more.Get("chunk.0.event_id").Str != ids[7] {
		t.Fatalf("end token: %s", more.Raw)
	}
	alice.MustFail(t, "GET", roomPath(room, "/context/$nope"), nil, 404, "M_NOT_FOUND")
	alice.MustFail(t, "GET", roomPath(room, "/context/"+ids[0]+"?limit=-1"), nil, 400, "M_INVALID_PARAM")
	eve.MustFail(t, "GET", roomPath(room, "/context/"+ids[0]), nil, 403, "M_FORBIDDEN")
	// An event one may not see is not found: a 403 would confirm it exists.
	eve.MustFail(t, "GET", roomPath(room, "/event/"+ids[0]), nil, 404, "M_NOT_FOUND")
	alice.MustFail(t, "GET", roomPath(room, "/event/$nope"), nil, 404, "M_NOT_FOUND")
	other := alice.CreateRoom(t, nil)
	alice.MustFail(t, "GET", roomPath(other, "/event/"+ids[0]), nil, 404, "M_NOT_FOUND")
	ev := alice.MustDo(t, "GET", roomPath(room, "/event/"+ids[0]), nil, 200)
	for _, f := range []string{"content.body", "event_id", "origin_server_ts", "room_id", "sender", "type", "unsigned.age"} {
		if !ev.Get(f).Exists() {
			t.Errorf("event lacks %s: %s", f, ev.Raw)
		}
	}
	for _, f := range []string{"auth_events", "prev_events", "hashes", "signatures", "depth"} {
		if ev.Get(f).Exists() {
			t.Errorf("client event has federation field %s", f)
		}
	}
}

func TestMembers(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	eve := srv.Register(t, "eve")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	before := alice.MustDo(t, "GET", roomPath(room, "/messages?dir=b&limit=1"), nil, 200).Get("start").Str
	alice.Invite(t, room, carol.UserID)

	all := bob.MustDo(t, "GET", roomPath(room, "/members"), nil, 200)
	if all.Get("chunk.#").Int() != 3 {
		t.Fatalf("members: %s", all.Raw)
	}
	joined := bob.MustDo(t, "GET", roomPath(room, "/members?membership=join"), nil, 200)
	if joined.Get("chunk.#").Int() != 2 {
		t.Fatalf("joined members: %s", joined.Raw)
	}
	notJoined := bob.MustDo(t, "GET", roomPath(room, "/members?not_membership=join"), nil, 200)
	if notJoined.Get("chunk.#").Int() != 1 || notJoined.Get("chunk.0.state_key").Str != carol.UserID {
		t.Fatalf("not joined: %s", notJoined.Raw)
	}
	at := bob.MustDo(t, "GET", roomPath(room, "/members?at="+before), nil, 200)
	if at.Get("chunk.#").Int() != 2 {
		t.Fatalf("members at: %s", at.Raw)
	}
	bob.MustFail(t, "GET", roomPath(room, "/members?membership=party"), nil, 400, "M_INVALID_PARAM")
	bob.MustFail(t, "GET", roomPath(room, "/members?at=xyz"), nil, 400, "M_INVALID_PARAM")
	eve.MustFail(t, "GET", roomPath(room, "/members"), nil, 403, "M_FORBIDDEN")

	jm := bob.MustDo(t, "GET", roomPath(room, "/joined_members"), nil, 200)
	if jm.Get("joined.@alice:test\\.local.display_name").Str != "alice" || jm.Get("joined.@carol:test\\.local").Exists() {
		t.Fatalf("joined_members: %s", jm.Raw)
	}
	carol.MustFail(t, "GET", roomPath(room, "/joined_members"), nil, 403, "M_FORBIDDEN")
	eve.MustFail(t, "GET", roomPath(room, "/joined_members"), nil, 403, "M_FORBIDDEN")
}

func TestAliases(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	eve := srv.Register(t, "eve")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	alias := v3 + "/directory/room/%23team:test.local"

	eve.MustFail(t, "PUT", alias, map[string]any{"room_id": room}, 403, "M_FORBIDDEN")
	bob.MustDo(t, "PUT", alias, map[string]any{"room_id": room}, 200)
	bob.MustFail(t, "PUT", alias, map[string]any{"room_id": room}, 409, "M_UNKNOWN")
	if r := eve.MustDo(t, "GET", alias, nil, 200); r.Get("room_id").Str != room || r.Get("servers.0").Str != "test.local" {
		t.Fatalf("resolve: %s", r.Raw)
	}
	if r := alice.MustDo(t, "GET", roomPath(room, "/aliases"), nil, 200); r.Get("aliases.0").Str != "#team:test.local" {
		t.Fatalf("room aliases: %s", r.Raw)
	}
	eve.MustFail(t, "GET", roomPath(alice.CreateRoom(t, nil), "/aliases"), nil, 403, "M_FORBIDDEN")
	for _, tc := range []struct {
		path, errcode string
		body          any
		status        int
	}{
		{v3 + "/directory/room/%23x:other.org", "M_INVALID_PARAM", map[string]any{"room_id": room}, 400},
		{v3 + "/directory/room/noprefix", "M_INVALID_PARAM", map[string]any{"room_id": room}, 400},
		{v3 + "/directory/room/%23new:test.local", "M_MISSING_PARAM", map[string]any{}, 400},
		{v3 + "/directory/room/%23new:test.local", "M_NOT_FOUND", map[string]any{"room_id": "!nope:test.local"}, 404},
	} {
		alice.MustFail(t, "PUT", tc.path, tc.body, tc.status, tc.errcode)
	}
	alice.MustFail(t, "GET", v3+"/directory/room/%23missing:test.local", nil, 404, "M_NOT_FOUND")
	// A canonical alias must be an alias of the room.
	alice.MustDo(t, "PUT", roomPath(room, "/state/m.room.canonical_alias/"), map[string]any{"alias": "#team:test.local"}, 200)
	alice.CreateRoom(t, map[string]any{"room_alias_name": "other"})
	for _, bad := range []map[string]any{{"alias": "#nope:test.local"}, {"alias": "#other:test.local"}, {"alt_aliases": []string{"#nope:test.local"}}} {
		alice.MustFail(t, "PUT", roomPath(room, "/state/m.room.canonical_alias/"), bad, 400, "M_BAD_ALIAS")
	}
	// ... and look like one.
	for _, bad := range []map[string]any{{"alias": "%team:test.local"}, {"alias": "#nocolon"}, {"alt_aliases": []string{"#:test.local"}}, {"alias": 5}} {
		alice.MustFail(t, "PUT", roomPath(room, "/state/m.room.canonical_alias/"), bad, 400, "M_INVALID_PARAM")
	}
	// Eve (not in the room) cannot delete it; Alice (room admin) can delete
	// an alias Bob made, and the canonical alias naming it goes with it.
	eve.MustFail(t, "DELETE", alias, nil, 403, "M_FORBIDDEN")
	alice.MustDo(t, "PUT", roomPath(room, "/state/m.room.canonical_alias/"), map[string]any{"alias": "#team:test.local", "alt_aliases": []string{"#team:test.local"}}, 200)
	if a := stateContent(t, alice, room, "m.room.canonical_alias", ""); a.Get("alias").Str != "#team:test.local" {
		t.Fatalf("canonical alias: %s", a.Raw)
	}
	alice.MustDo(t, "DELETE", alias, nil, 200)
	if a := stateContent(t, alice, room, "m.room.canonical_alias", ""); a.Raw != "{}" {
		t.Fatalf("canonical alias after deleting the alias: %s", a.Raw)
	}
	alice.MustFail(t, "DELETE", alias, nil, 404, "M_NOT_FOUND")
	alice.MustFail(t, "GET", alias, nil, 404, "M_NOT_FOUND")
}

// Every event carries the reader's membership at it (MSC4115), so clients
// can tell which events were sent while they were not in the room.
func TestMembershipOnEvents(t *testing.T) {
	srv := ts.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	before := alice.Send(t, room, "before bob")
	bob.Join(t, room)
	after := alice.Send(t, room, "after bob")
	msgs := bob.MustDo(t, "GET", roomPath(room, "/messages?dir=b&limit=50"), nil, 200)
	for id, want := range map[string]string{before: "leave", after: "join"} {
		if got := msgs.Get(`chunk.#(event_id=="` + id + `").unsigned.membership`).Str; got != want {
			t.Errorf("membership at %s: %q, want %q", id, got, want)
		}
	}
	if got := msgs.Get(`chunk.#(state_key=="` + bob.UserID + `").unsigned.membership`).Str; got != "join" {
		t.Errorf("membership at bob's own join: %q", got)
	}
	if got := alice.MustDo(t, "GET", roomPath(room, "/event/"+before), nil, 200).Get("unsigned.membership").Str; got != "join" {
		t.Errorf("alice's membership: %q", got)
	}
	tl := bob.MustDo(t, "GET", v3+"/sync", nil, 200).Get("rooms.join." + ts.Esc(room) + ".timeline.events")
	for id, want := range map[string]string{before: "leave", after: "join"} {
		if got := tl.Get(`#(event_id=="` + id + `").unsigned.membership`).Str; got != want {
			t.Errorf("membership at %s in sync: %q, want %q", id, got, want)
		}
	}
}

// Room version 12 (MSC4289, MSC4291): creators hold their power through the
// create event, never the power levels; upgrades carry creators over; a
// room ID that is its create event's hash names its predecessor by room.
func TestRoomVersion12(t *testing.T) {
	srv := ts.Start(t)
	alice, bob, carol := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
	room := alice.CreateRoom(t, map[string]any{"room_version": "12", "preset": "public_chat"})
	pl := stateContent(t, alice, room, "m.room.power_levels", "")
	if pl.Get("users").Raw != "{}" || pl.Get(`events.m\.room\.tombstone`).Int() != 150 {
		t.Fatalf("v12 power levels: %s", pl.Raw)
	}
	before := countRooms(t, srv)
	for _, tc := range []struct {
		name string
		body map[string]any
	}{
		{"creator in power levels", map[string]any{"power_level_content_override": map[string]any{"users": map[string]any{alice.UserID: 100}}}},
		{"additional_creators not a list", map[string]any{"creation_content": map[string]any{"additional_creators": "x"}}},
		{"additional creator not a string", map[string]any{"creation_content": map[string]any{"additional_creators": []any{"@a:b.c", 42}}}},
		{"additional creator not a user ID", map[string]any{"creation_content": map[string]any{"additional_creators": []any{"not-a-user-id"}}}},
		{"additional creator with a bad domain", map[string]any{"creation_content": map[string]any{"additional_creators": []any{"@x:dom$ain$.com"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.body["room_version"] = "12"
			alice.MustFail(t, "POST", v3+"/createRoom", tc.body, 400, "M_BAD_JSON")
		})
	}
	if after := countRooms(t, srv); after != before {
		t.Fatalf("refused createRoom requests left %d rooms", after-before)
	}
	alice.MustFail(t, "POST", v3+"/createRoom", map[string]any{"room_version": "11",
		"creation_content": map[string]any{"additional_creators": []string{bob.UserID}}}, 400, "M_BAD_JSON")
	alice.MustFail(t, "PUT", roomPath(room, "/state/m.room.power_levels/"), map[string]any{"users": map[string]any{alice.UserID: 100}}, 400, "M_BAD_JSON")
	for _, v := range []string{"11", "12"} {
		r := alice.CreateRoom(t, map[string]any{"room_version": v})
		alice.MustFail(t, "PUT", roomPath(r, "/state/m.room.create/"), map[string]any{"room_version": v, "entropy": 1}, 400, "M_INVALID_PARAM")
	}

	// Upgrading a v11 room to v12: the upgrader and the additional creators
	// leave the power levels; moderators stay.
	old := alice.CreateRoom(t, map[string]any{"room_version": "11", "preset": "public_chat"})
	bob.Join(t, old)
	carol.Join(t, old)
	alice.MustDo(t, "PUT", roomPath(old, "/state/m.room.power_levels/"), map[string]any{
		"users": map[string]any{alice.UserID: 100, bob.UserID: 100, carol.UserID: 50}}, 200)
	newRoom := alice.MustDo(t, "POST", roomPath(old, "/upgrade"), map[string]any{"new_version": "12", "additional_creators": []string{bob.UserID}}, 200).Get("replacement_room").Str
	create := stateContent(t, alice, newRoom, "m.room.create", "")
	if create.Get("additional_creators").Raw != `["`+bob.UserID+`"]` || create.Get("predecessor.room_id").Str != old || create.Get("predecessor.event_id").Exists() {
		t.Fatalf("upgraded create: %s", create.Raw)
	}
	if users := stateContent(t, alice, newRoom, "m.room.power_levels", "").Get("users"); users.Raw != `{"`+carol.UserID+`":50}` {
		t.Fatalf("upgraded power levels: %s", users.Raw)
	}
	alice.MustFail(t, "POST", roomPath(alice.CreateRoom(t, nil), "/upgrade"), map[string]any{"new_version": "11", "additional_creators": []string{bob.UserID}}, 400, "M_BAD_JSON")
}
