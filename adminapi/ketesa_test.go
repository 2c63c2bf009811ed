package adminapi_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/config"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
	"github.com/redoubt-systems/redoubt/ratelimit"
)

// What Ketesa (synapse-admin) calls, with Synapse's shapes, and the
// unhappy paths: non-admins 403, unknown users and rooms 404, bad input 400.

const v3 = "/_synapse/admin/v3"

// Every new endpoint is for admins only.
func TestKetesaEndpointsAdminOnly(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	u, room := esc(alice.UserID), esc(alice.CreateRoom(t, nil))
	for _, p := range []struct{ method, path string }{
		{"GET", v3 + "/users"}, {"GET", v1 + "/username_available?username=x"}, {"GET", v1 + "/users/" + u + "/joined_rooms"},
		{"GET", v1 + "/users/" + u + "/memberships"}, {"GET", v1 + "/users/" + u + "/pushers"},
		{"GET", v1 + "/users/" + u + "/sent_invite_count"}, {"GET", v1 + "/users/" + u + "/cumulative_joined_room_count"},
		{"GET", v1 + "/users/" + u + "/override_ratelimit"}, {"POST", v1 + "/users/" + u + "/override_ratelimit"},
		{"DELETE", v1 + "/users/" + u + "/override_ratelimit"}, {"GET", v1 + "/users/" + u + "/accountdata"},
		{"POST", v1 + "/users/" + u + "/login"}, {"GET", v1 + "/experimental_features/" + u}, {"PUT", v1 + "/experimental_features/" + u},
		{"PUT", v1 + "/suspend/" + u}, {"GET", v1 + "/room/" + room + "/media"}, {"GET", v1 + "/rooms/" + room + "/block"},
		{"PUT", v1 + "/rooms/" + room + "/block"}, {"GET", v1 + "/rooms/" + room + "/forward_extremities"},
		{"DELETE", v1 + "/rooms/" + room + "/forward_extremities"}, {"GET", v1 + "/rooms/" + room + "/messages"},
		{"GET", v1 + "/rooms/" + room + "/timestamp_to_event?ts=0&dir=f"}, {"GET", v1 + "/event_reports/1"},
		{"DELETE", v1 + "/event_reports/1"}, {"POST", v1 + "/media/quarantine/test.local/abc"},
		{"POST", v1 + "/media/unquarantine/test.local/abc"}, {"GET", v1 + "/statistics/users/media"},
		{"GET", v1 + "/statistics/database/rooms"}, {"GET", v1 + "/federation/destinations"}, {"GET", v1 + "/scheduled_tasks"},
	} {
		alice.MustFail(t, p.method, p.path, map[string]any{}, 403, "M_FORBIDDEN")
		srv.Anon().MustFail(t, p.method, p.path, map[string]any{}, 401, "M_MISSING_TOKEN")
	}
}

// v3's deactivated filters; v2's includes. admins filters both.
func TestUsersV3(t *testing.T) {
	srv := ts.Start(t)
	root := srv.RegisterAdmin(t, "root")
	srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	root.MustDo(t, "POST", v1+"/deactivate/"+esc(bob.UserID), map[string]any{}, 200)
	for _, c := range []struct {
		query string
		want  []string
	}{
		{v3 + "/users", []string{"@alice:test.local", "@bob:test.local", "@root:test.local"}},
		{v3 + "/users?deactivated=true", []string{"@bob:test.local"}},
		{v3 + "/users?deactivated=false", []string{"@alice:test.local", "@root:test.local"}},
		{v2 + "/users", []string{"@alice:test.local", "@root:test.local"}},
		{v2 + "/users?deactivated=true", []string{"@alice:test.local", "@bob:test.local", "@root:test.local"}},
		{v3 + "/users?admins=true", []string{"@root:test.local"}},
		{v3 + "/users?admins=false&deactivated=false", []string{"@alice:test.local"}},
		{v3 + "/users?guests=false&locked=false&name=ali", []string{"@alice:test.local"}},
		{v3 + "/users?from=1&limit=1&order_by=name&dir=b", []string{"@bob:test.local"}},
	} {
		res := root.MustDo(t, "GET", c.query, nil, 200)
		var got []string
		for _, u := range res.Get("users").Array() {
			got = append(got, u.Get("name").Str)
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s: %v, want %v (%s)", c.query, got, c.want, res.Raw)
		}
	}
	if res := root.MustDo(t, "GET", v3+"/users?limit=1", nil, 200); res.Get("total").Int() != 3 || res.Get("next_token").Str != "1" {
		t.Errorf("paging: %s", res.Raw)
	}
	for _, q := range []string{"deactivated=maybe", "admins=1", "limit=-1", "from=x", "order_by=nope", "dir=z"} {
		root.MustFail(t, "GET", v3+"/users?"+q, nil, 400, "M_INVALID_PARAM")
	}
	// Every column Ketesa sorts by.
	for _, o := range []string{"name", "displayname", "is_guest", "admin", "deactivated", "locked", "shadow_banned", "avatar_url", "creation_ts"} {
		root.MustDo(t, "GET", v3+"/users?order_by="+o+"&dir=b", nil, 200)
	}
	for _, o := range []string{"name", "encryption", "joined_members", "joined_local_members", "state_events", "version", "join_rules",
		"creator", "federatable", "public"} {
		root.MustDo(t, "GET", v1+"/rooms?order_by="+o+"&dir=f", nil, 200)
	}
}

// A user's pages: name availability, rooms, memberships, pushers, counts,
// account data, experimental features; log in as them is refused.
func TestUserPages(t *testing.T) {
	srv := ts.Start(t, func(c *config.Config) { c.Push.GatewayAllowList = []string{"https://push.example/"} })
	root := srv.RegisterAdmin(t, "root")
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	joined := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	left := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	alice.Invite(t, joined, bob.UserID)
	alice.MustDo(t, "POST", "/_matrix/client/v3/rooms/"+esc(left)+"/leave", map[string]any{}, 200)
	alice.MustDo(t, "POST", "/_matrix/client/v3/pushers/set", map[string]any{"kind": "http", "app_id": "org.example.app",
		"pushkey": "pk1", "app_display_name": "App", "device_display_name": "Phone", "lang": "en",
		"data": map[string]any{"url": "https://push.example/_matrix/push/v1/notify", "format": "event_id_only"}}, 200)
	alice.MustDo(t, "PUT", "/_matrix/client/v3/user/"+esc(alice.UserID)+"/account_data/org.example.global", map[string]any{"g": 1}, 200)
	alice.MustDo(t, "PUT", "/_matrix/client/v3/user/"+esc(alice.UserID)+"/rooms/"+esc(joined)+"/account_data/org.example.room", map[string]any{"r": 2}, 200)
	u := v1 + "/users/" + esc(alice.UserID)

	root.MustDo(t, "GET", v1+"/username_available?username=carol", nil, 200)
	root.MustFail(t, "GET", v1+"/username_available?username=alice", nil, 400, "M_USER_IN_USE")
	root.MustFail(t, "GET", v1+"/username_available?username=No%20Way", nil, 400, "M_INVALID_USERNAME")
	root.MustFail(t, "GET", v1+"/username_available", nil, 400, "M_MISSING_PARAM")

	if res := root.MustDo(t, "GET", u+"/joined_rooms", nil, 200); res.Get("total").Int() != 1 || res.Get("joined_rooms.0").Str != joined {
		t.Errorf("joined_rooms: %s", res.Raw)
	}
	if res := root.MustDo(t, "GET", u+"/memberships", nil, 200); res.Get("memberships."+ts.Esc(joined)).Str != "join" ||
		res.Get("memberships."+ts.Esc(left)).Str != "leave" || res.Get("total").Int() != 2 {
		t.Errorf("memberships: %s", res.Raw)
	}
	if res := root.MustDo(t, "GET", v1+"/users/"+esc(bob.UserID)+"/memberships", nil, 200); res.Get("memberships."+ts.Esc(joined)).Str != "invite" {
		t.Errorf("bob's memberships: %s", res.Raw)
	}
	if res := root.MustDo(t, "GET", u+"/pushers", nil, 200); res.Get("total").Int() != 1 || res.Get("pushers.0.pushkey").Str != "pk1" ||
		res.Get("pushers.0.data.url").Str != "https://push.example/_matrix/push/v1/notify" || res.Get("pushers.0.app_display_name").Str != "App" {
		t.Errorf("pushers: %s", res.Raw)
	}
	if n := root.MustDo(t, "GET", u+"/sent_invite_count?from_ts=0", nil, 200).Get("invite_count").Int(); n != 1 {
		t.Errorf("invite_count %d", n)
	}
	if n := root.MustDo(t, "GET", u+"/sent_invite_count?from_ts=99999999999999", nil, 200).Get("invite_count").Int(); n != 0 {
		t.Errorf("invite_count in the future %d", n)
	}
	if n := root.MustDo(t, "GET", u+"/cumulative_joined_room_count?from_ts=0", nil, 200).Get("cumulative_joined_room_count").Int(); n != 2 {
		t.Errorf("cumulative_joined_room_count %d", n)
	}
	if res := root.MustDo(t, "GET", u+"/accountdata", nil, 200); res.Get("account_data.global.org\\.example\\.global.g").Int() != 1 ||
		res.Get("account_data.rooms."+ts.Esc(joined)+".org\\.example\\.room.r").Int() != 2 {
		t.Errorf("accountdata: %s", res.Raw)
	}
	if res := root.MustDo(t, "GET", v1+"/experimental_features/"+esc(alice.UserID), nil, 200); res.Get("features").Raw != "{}" {
		t.Errorf("experimental features: %s", res.Raw)
	}
	root.MustDo(t, "PUT", v1+"/experimental_features/"+esc(alice.UserID), map[string]any{"features": map[string]any{}}, 200)
	root.MustFail(t, "PUT", v1+"/experimental_features/"+esc(alice.UserID), map[string]any{"features": map[string]any{"msc3881": true}}, 400, "M_INVALID_PARAM")
	res := root.MustFail(t, "POST", u+"/login", map[string]any{}, 403, "M_FORBIDDEN")
	if !strings.Contains(res.Get("error").Str, "not offered") {
		t.Errorf("login as user: %s", res.Raw)
	}

	for _, p := range []string{"/joined_rooms", "/memberships", "/pushers", "/sent_invite_count", "/cumulative_joined_room_count",
		"/override_ratelimit", "/accountdata"} {
		root.MustFail(t, "GET", v1+"/users/@nobody:test.local"+p, nil, 404, "M_NOT_FOUND")
		root.MustFail(t, "GET", v1+"/users/@alice:elsewhere"+p, nil, 400, "M_INVALID_PARAM")
	}
	root.MustFail(t, "GET", u+"/sent_invite_count?from_ts=-1", nil, 400, "M_INVALID_PARAM")
	root.MustFail(t, "POST", v1+"/users/@nobody:test.local/login", map[string]any{}, 404, "M_NOT_FOUND")
}

// An override replaces the user's per-user limits: 0 and 0 lifts them;
// deleting it brings them back.
func TestOverrideRateLimit(t *testing.T) {
	srv := ts.Start(t, func(c *config.Config) {
		c.RateLimits.Enabled = true
		c.RateLimits.Rules = map[string]ratelimit.Rule{"send": {PerSecond: 0.01, Burst: 2}}
	})
	root, alice := srv.RegisterAdmin(t, "root"), srv.Register(t, "alice")
	room := alice.CreateRoom(t, nil)
	u := v1 + "/users/" + esc(alice.UserID) + "/override_ratelimit"
	send := func() int {
		code, _ := alice.Do(t, "PUT", "/_matrix/client/v3/rooms/"+esc(room)+"/send/m.room.message/"+ts.Txn(), map[string]any{"body": "x"})
		return code
	}
	for range 2 {
		send()
	}
	if code := send(); code != 429 {
		t.Fatalf("past the burst: %d", code)
	}
	if res := root.MustDo(t, "GET", u, nil, 200); res.Raw != "{}" {
		t.Fatalf("no override: %s", res.Raw)
	}
	if res := root.MustDo(t, "POST", u, map[string]any{"messages_per_second": 0, "burst_count": 0}, 200); res.Get("messages_per_second").Int() != 0 || !res.Get("burst_count").Exists() {
		t.Fatalf("set: %s", res.Raw)
	}
	for i := range 10 {
		if code := send(); code != 200 {
			t.Fatalf("send %d with limits lifted: %d", i, code)
		}
	}
	root.MustDo(t, "POST", u, map[string]any{"messages_per_second": 1, "burst_count": 1}, 200)
	if res := root.MustDo(t, "GET", u, nil, 200); res.Get("messages_per_second").Int() != 1 || res.Get("burst_count").Int() != 1 {
		t.Fatalf("get: %s", res.Raw)
	}
	root.MustDo(t, "DELETE", u, nil, 200)
	if code := send(); code != 429 {
		t.Fatalf("after the override went: %d", code)
	}
	root.MustFail(t, "POST", u, map[string]any{"messages_per_second": -1}, 400, "M_INVALID_PARAM")
	root.MustFail(t, "POST", u, map[string]any{"burst_count": "x"}, 400, "M_BAD_JSON")
}

// A suspended user reads and leaves, redacts their own messages, and
// nothing else (MSC3823); reinstated, they send again.
func TestSuspend(t *testing.T) {
	srv := ts.Start(t)
	root := srv.RegisterAdmin(t, "root")
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	room := bob.CreateRoom(t, map[string]any{"preset": "public_chat"})
	other := bob.CreateRoom(t, map[string]any{"preset": "public_chat"})
	alice.Join(t, room)
	mine := alice.Send(t, room, "before")
	bobs := bob.Send(t, room, "bob's")
	bob.Invite(t, other, alice.UserID)
	if res := root.MustDo(t, "PUT", v1+"/suspend/"+esc(alice.UserID), map[string]any{"suspend": true}, 200); !res.Get(ts.Esc("user_" + alice.UserID + "_suspended")).Bool() {
		t.Fatalf("suspend: %s", res.Raw)
	}
	if !root.MustDo(t, "GET", v2+"/users/"+esc(alice.UserID), nil, 200).Get("suspended").Bool() {
		t.Fatal("user not shown suspended")
	}
	r := "/_matrix/client/v3/rooms/" + esc(room)
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"PUT", r + "/send/m.room.message/s1", map[string]any{"body": "no"}},
		{"PUT", r + "/state/m.room.topic", map[string]any{"topic": "no"}},
		{"POST", r + "/invite", map[string]any{"user_id": carol.UserID}},
		{"POST", "/_matrix/client/v3/createRoom", map[string]any{}},
		{"PUT", r + "/redact/" + esc(bobs) + "/r1", map[string]any{}},
		{"PUT", "/_matrix/client/v3/profile/" + esc(alice.UserID) + "/displayname", map[string]any{"displayname": "no"}},
	} {
		alice.MustFail(t, c.method, c.path, c.body, 403, "M_USER_SUSPENDED")
	}
	alice.MustDo(t, "GET", "/_matrix/client/v3/sync", nil, 200)
	alice.MustDo(t, "GET", r+"/messages?dir=b", nil, 200)
	alice.MustDo(t, "PUT", r+"/redact/"+esc(mine)+"/r2", map[string]any{}, 200)
	alice.MustDo(t, "POST", "/_matrix/client/v3/rooms/"+esc(other)+"/leave", map[string]any{}, 200) // rejects the invite
	alice.MustDo(t, "POST", r+"/leave", map[string]any{}, 200)
	alice.MustFail(t, "POST", "/_matrix/client/v3/join/"+esc(room), map[string]any{}, 403, "M_USER_SUSPENDED")

	root.MustDo(t, "PUT", v1+"/suspend/"+esc(alice.UserID), map[string]any{"suspend": false}, 200)
	alice.Join(t, room)
	alice.Send(t, room, "after")
	root.MustFail(t, "PUT", v1+"/suspend/@nobody:test.local", map[string]any{"suspend": true}, 404, "M_NOT_FOUND")
	root.MustFail(t, "PUT", v1+"/suspend/"+esc(alice.UserID), map[string]any{}, 400, "M_MISSING_PARAM")
	root.MustFail(t, "PUT", v1+"/suspend/"+esc(alice.UserID), map[string]any{"suspend": "yes"}, 400, "M_BAD_JSON")
}

// Room pages: media, block, forward extremities, and the history an admin
// reads without being in the room.
func TestRoomPages(t *testing.T) {
	srv := ts.Start(t)
	root := srv.RegisterAdmin(t, "root")
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "name": "Lobby"})
	mxc := upload(t, srv, alice.Token, []byte("a picture"))
	alice.MustDo(t, "PUT", "/_matrix/client/v3/rooms/"+esc(room)+"/send/m.room.message/img", map[string]any{"msgtype": "m.image",
		"body": "pic", "url": mxc, "info": map[string]any{"thumbnail_url": "mxc://elsewhere.example/thumb"}}, 200)
	last := alice.Send(t, room, "latest")
	r := v1 + "/rooms/" + esc(room)

	if res := root.MustDo(t, "GET", v1+"/room/"+esc(room)+"/media", nil, 200); res.Get("local.0").Str != mxc ||
		res.Get("remote.0").Str != "mxc://elsewhere.example/thumb" || res.Get("total").Int() != 2 {
		t.Errorf("room media: %s", res.Raw)
	}
	if res := root.MustDo(t, "GET", r+"/forward_extremities", nil, 200); res.Get("count").Int() != 1 || res.Get("results.0.event_id").Str != last {
		t.Errorf("forward extremities: %s", res.Raw)
	}
	if n := root.MustDo(t, "DELETE", r+"/forward_extremities", nil, 200).Get("deleted").Int(); n != 0 {
		t.Errorf("deleted %d", n)
	}

	// Admin reads, not in the room: the message viewer's three steps.
	near := root.MustDo(t, "GET", r+"/timestamp_to_event?ts=99999999999999&dir=b", nil, 200)
	if near.Get("event_id").Str != last || near.Get("origin_server_ts").Int() == 0 {
		t.Fatalf("timestamp_to_event: %s", near.Raw)
	}
	c := root.MustDo(t, "GET", r+"/context/"+esc(last)+"?limit=0", nil, 200)
	msgs := root.MustDo(t, "GET", r+"/messages?dir=b&limit=20&from="+c.Get("end").Str, nil, 200)
	if !strings.Contains(msgs.Get("chunk").Raw, "pic") {
		t.Fatalf("messages: %s", msgs.Raw)
	}
	// The same paths in the client API still need membership.
	root.MustFail(t, "GET", "/_matrix/client/v3/rooms/"+esc(room)+"/messages?dir=b", nil, 403, "M_FORBIDDEN")
	root.MustFail(t, "GET", v1+"/rooms/!nope:test.local/messages?dir=b", nil, 404, "M_NOT_FOUND")
	root.MustFail(t, "GET", v1+"/rooms/!nope:test.local/forward_extremities", nil, 404, "M_NOT_FOUND")
	root.MustFail(t, "GET", v1+"/room/!nope:test.local/media", nil, 404, "M_NOT_FOUND")

	// Block: no new members; those in stay. Any room ID may be blocked.
	if res := root.MustDo(t, "GET", r+"/block", nil, 200); res.Raw != `{"block":false}` {
		t.Errorf("block before: %s", res.Raw)
	}
	root.MustDo(t, "PUT", r+"/block", map[string]any{"block": true}, 200)
	if res := root.MustDo(t, "GET", r+"/block", nil, 200); !res.Get("block").Bool() || res.Get("user_id").Str != root.UserID {
		t.Errorf("block after: %s", res.Raw)
	}
	bob.MustFail(t, "POST", "/_matrix/client/v3/join/"+esc(room), map[string]any{}, 403, "M_FORBIDDEN")
	alice.MustFail(t, "POST", "/_matrix/client/v3/rooms/"+esc(room)+"/invite", map[string]any{"user_id": bob.UserID}, 403, "M_FORBIDDEN")
	alice.Send(t, room, "members still talk")
	if root.MustDo(t, "GET", "/_matrix/client/v3/publicRooms", nil, 200).Get("chunk.#").Int() != 0 {
		t.Error("a blocked room is in the directory")
	}
	root.MustDo(t, "PUT", r+"/block", map[string]any{"block": false}, 200)
	bob.Join(t, room)
	root.MustDo(t, "PUT", v1+"/rooms/"+esc("!future:test.local")+"/block", map[string]any{"block": true}, 200)
	root.MustFail(t, "PUT", r+"/block", map[string]any{}, 400, "M_MISSING_PARAM")
	root.MustFail(t, "PUT", r+"/block", map[string]any{"block": "yes"}, 400, "M_BAD_JSON")
	root.MustFail(t, "GET", v1+"/rooms/not-a-room/block", nil, 400, "M_INVALID_PARAM")
}

// Deleting a room without block: gone from the lists and answers unknown;
// nothing blocks its ID.
func TestDeleteRoomWithoutBlock(t *testing.T) {
	srv := ts.Start(t)
	root, alice := srv.RegisterAdmin(t, "root"), srv.Register(t, "alice")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "name": "Going"})
	root.MustDo(t, "DELETE", v2+"/rooms/"+esc(room), map[string]any{}, 200)
	root.MustFail(t, "GET", v1+"/rooms/"+esc(room), nil, 404, "M_NOT_FOUND")
	if res := root.MustDo(t, "GET", v1+"/rooms", nil, 200); res.Get("total_rooms").Int() != 0 {
		t.Errorf("rooms after deletion: %s", res.Raw)
	}
	if res := root.MustDo(t, "GET", v1+"/rooms/"+esc(room)+"/block", nil, 200); res.Get("block").Bool() {
		t.Errorf("blocked without asking: %s", res.Raw)
	}
	alice.MustFail(t, "POST", "/_matrix/client/v3/join/"+esc(room), map[string]any{}, 404, "M_NOT_FOUND")
	root.MustFail(t, "DELETE", v2+"/rooms/"+esc(room), map[string]any{}, 404, "M_NOT_FOUND")
	root.MustFail(t, "DELETE", v1+"/rooms/"+esc(alice.CreateRoom(t, nil)), map[string]any{"purge": false}, 400, "M_INVALID_PARAM")
}

// A report shows its room's name and alias and the event's sender, and
// alone, the event itself; reports can be deleted.
func TestEventReportDetails(t *testing.T) {
	srv := ts.Start(t)
	root := srv.RegisterAdmin(t, "root")
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "name": "Lobby", "room_alias_name": "lobby"})
	bob.Join(t, room)
	ev := alice.Send(t, room, "rude words")
	bob.MustDo(t, "POST", "/_matrix/client/v3/rooms/"+esc(room)+"/report/"+esc(ev), map[string]any{"reason": "rude", "score": -100}, 200)
	list := root.MustDo(t, "GET", v1+"/event_reports", nil, 200)
	item := list.Get("event_reports.0")
	if item.Get("name").Str != "Lobby" || item.Get("canonical_alias").Str != "#lobby:test.local" || item.Get("sender").Str != alice.UserID ||
		item.Get("user_id").Str != bob.UserID || item.Get("reason").Str != "rude" {
		t.Fatalf("report list: %s", list.Raw)
	}
	id := item.Get("id").String()
	one := root.MustDo(t, "GET", v1+"/event_reports/"+id, nil, 200)
	if one.Get("event_json.event_id").Str != ev && one.Get("event_json.content.body").Str != "rude words" {
		t.Fatalf("report: %s", one.Raw)
	}
	if one.Get("name").Str != "Lobby" || !one.Get("event_json.content").Exists() {
		t.Fatalf("report: %s", one.Raw)
	}
	root.MustDo(t, "DELETE", v1+"/event_reports/"+id, nil, 200)
	root.MustFail(t, "GET", v1+"/event_reports/"+id, nil, 404, "M_NOT_FOUND")
	root.MustFail(t, "DELETE", v1+"/event_reports/"+id, nil, 404, "M_NOT_FOUND")
	root.MustFail(t, "GET", v1+"/event_reports/x", nil, 400, "M_INVALID_PARAM")
	root.MustFail(t, "GET", v1+"/event_reports/-1", nil, 400, "M_INVALID_PARAM")
}

// Quarantined media is not served to anyone until lifted; the admin lists
// say who quarantined it.
func TestQuarantine(t *testing.T) {
	srv := ts.Start(t)
	root, alice := srv.RegisterAdmin(t, "root"), srv.Register(t, "alice")
	mxc := upload(t, srv, alice.Token, []byte("questionable"))
	id := strings.TrimPrefix(mxc, "mxc://test.local/")
	download := func() int {
		res, err := alice.Raw("GET", "/_matrix/client/v1/media/download/test.local/"+id)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := download(); code != 200 {
		t.Fatalf("download before: %d", code)
	}
	root.MustDo(t, "POST", v1+"/media/quarantine/test.local/"+id, map[string]any{}, 200)
	if code := download(); code != 404 {
		t.Fatalf("download of quarantined media: %d", code)
	}
	alice.MustFail(t, "GET", "/_matrix/client/v1/media/thumbnail/test.local/"+id+"?width=32&height=32", nil, 404, "M_NOT_FOUND")
	if res := root.MustDo(t, "GET", v1+"/users/"+esc(alice.UserID)+"/media", nil, 200); res.Get("media.0.quarantined_by").Str != root.UserID {
		t.Fatalf("user media: %s", res.Raw)
	}
	root.MustDo(t, "POST", v1+"/media/unquarantine/test.local/"+id, map[string]any{}, 200)
	if code := download(); code != 200 {
		t.Fatalf("download after unquarantine: %d", code)
	}
	if res := root.MustDo(t, "POST", v1+"/media/quarantine/test.local/nosuchmedia", map[string]any{}, 200); res.Raw != "{}" {
		t.Fatalf("unknown media: %s", res.Raw)
	}
}

// Statistics, and the pages for what Redoubt does not have.
func TestStatisticsAndEmptyPages(t *testing.T) {
	srv := ts.Start(t)
	root, alice := srv.RegisterAdmin(t, "root"), srv.Register(t, "alice")
	upload(t, srv, alice.Token, []byte("12345"))
	upload(t, srv, alice.Token, []byte("123"))
	room := alice.CreateRoom(t, nil)
	alice.Send(t, room, "some bytes")
	st := root.MustDo(t, "GET", v1+"/statistics/users/media?order_by=media_length&dir=b", nil, 200)
	if st.Get("total").Int() != 1 || st.Get("users.0.user_id").Str != alice.UserID || st.Get("users.0.media_count").Int() != 2 ||
		st.Get("users.0.media_length").Int() != 8 || !st.Get("users.0.displayname").Exists() {
		t.Errorf("media statistics: %s", st.Raw)
	}
	if st := root.MustDo(t, "GET", v1+"/statistics/users/media?search_term=nobody", nil, 200); st.Get("total").Int() != 0 || st.Get("users").Raw != "[]" {
		t.Errorf("searched statistics: %s", st.Raw)
	}
	for _, q := range []string{"search_term=", "from_ts=10&until_ts=5", "order_by=nope", "limit=-1"} {
		root.MustFail(t, "GET", v1+"/statistics/users/media?"+q, nil, 400, "M_INVALID_PARAM")
	}
	if rooms := root.MustDo(t, "GET", v1+"/statistics/database/rooms", nil, 200); rooms.Get("rooms.0.room_id").Str != room || rooms.Get("rooms.0.estimated_size").Int() == 0 {
		t.Errorf("room sizes: %s", rooms.Raw)
	}
	if d := root.MustDo(t, "GET", v1+"/federation/destinations", nil, 200); d.Raw != `{"destinations":[],"total":0}` {
		t.Errorf("destinations: %s", d.Raw)
	}
	if s := root.MustDo(t, "GET", v1+"/scheduled_tasks", nil, 200); s.Raw != `{"scheduled_tasks":[]}` {
		t.Errorf("scheduled tasks: %s", s.Raw)
	}
}

// upload stores a file as the token's user and returns its mxc URI.
func upload(t *testing.T, srv *ts.Server, token string, data []byte) string {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+"/_matrix/media/v3/upload", bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "image/png")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("upload: %d %s", res.StatusCode, b.String())
	}
	return gjson.GetBytes(b.Bytes(), "content_uri").Str
}

// Paths Redoubt does not serve answer M_UNRECOGNIZED, as docs/admin-api.md
// says.
func TestUnservedAdminPaths(t *testing.T) {
	srv := ts.Start(t)
	root := srv.RegisterAdmin(t, "root")
	for _, p := range []struct{ method, path string }{
		{"POST", v1 + "/users/" + esc(root.UserID) + "/shadow_ban"}, {"POST", v1 + "/purge_history/!r:test.local"},
		{"GET", v1 + "/user_reports"}, {"GET", v1 + "/federation/destinations/matrix.org"},
	} {
		root.MustFail(t, p.method, p.path, map[string]any{}, 404, "M_UNRECOGNIZED")
	}
}

// An edit of several things is one transaction with its audit row: when
// its last change fails, the first ones are undone and nothing is audited.
func TestUserEditIsAtomic(t *testing.T) {
	srv := ts.Start(t)
	root, alice := srv.RegisterAdmin(t, "root"), srv.Register(t, "alice")
	alice.CreateRoom(t, nil)
	root.MustDo(t, "PUT", v1+"/suspend/"+esc(alice.UserID), map[string]any{"suspend": true}, 200)
	before := count(t, srv, `SELECT COUNT(*) FROM audit_log`)
	// Admin and password first, then the name: a suspended user's member
	// events are refused, so the whole edit is.
	root.MustFail(t, "PUT", v2+"/users/"+esc(alice.UserID), map[string]any{"admin": true, "password": "a-new-password-1",
		"displayname": "Renamed"}, 403, "M_USER_SUSPENDED")
	u := root.MustDo(t, "GET", v2+"/users/"+esc(alice.UserID), nil, 200)
	if u.Get("admin").Bool() || u.Get("displayname").Str == "Renamed" {
		t.Fatalf("half an edit kept: %s", u.Raw)
	}
	if code, _ := login(srv, t, "alice", ts.Password("alice")); code != 200 {
		t.Fatalf("the old password no longer works: %d", code)
	}
	if n := count(t, srv, `SELECT COUNT(*) FROM audit_log`); n != before {
		t.Fatalf("%d audit rows for a refused edit", n-before)
	}
	// Without the refused part it goes through, audited once.
	root.MustDo(t, "PUT", v2+"/users/"+esc(alice.UserID), map[string]any{"admin": true, "password": "a-new-password-1"}, 200)
	if n := count(t, srv, `SELECT COUNT(*) FROM audit_log WHERE action = 'modify_user'`); n != 1 {
		t.Fatalf("%d modify_user rows", n)
	}
}
