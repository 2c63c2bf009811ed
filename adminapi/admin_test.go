package adminapi_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/config"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

const (
	v1 = "/_synapse/admin/v1"
	v2 = "/_synapse/admin/v2"
	rv = "/_redoubt/admin/v1"
)

func esc(s string) string { return url.PathEscape(s) }

func login(srv *ts.Server, t *testing.T, user, password string) (int, gjson.Result) {
	return srv.Anon().Do(t, "POST", "/_matrix/client/v3/login", map[string]any{"type": "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": user}, "password": password})
}

func count(t *testing.T, srv *ts.Server, query string, args ...any) int {
	t.Helper()
	var n int
	if err := srv.DB.RawRead(t.Context(), fmt.Sprintf(query, args...), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Only admins: everyone else gets 403, no token 401.
func TestAdminOnly(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	for _, p := range []struct{ method, path string }{
		{"GET", v2 + "/users"}, {"GET", v2 + "/users/" + esc(alice.UserID)}, {"PUT", v2 + "/users/@x:test.local"},
		{"POST", v1 + "/deactivate/" + esc(alice.UserID)}, {"POST", v1 + "/reset_password/" + esc(alice.UserID)},
		{"GET", v1 + "/whois/" + esc(alice.UserID)}, {"GET", v2 + "/users/" + esc(alice.UserID) + "/devices"},
		{"GET", v1 + "/rooms"}, {"DELETE", v2 + "/rooms/!r:test.local"}, {"POST", v1 + "/send_server_notice"},
		{"GET", v1 + "/registration_tokens"}, {"POST", v1 + "/registration_tokens/new"}, {"GET", rv + "/summary"},
		{"GET", rv + "/audit"}, {"GET", v1 + "/users/" + esc(alice.UserID) + "/media"},
	} {
		alice.MustFail(t, p.method, p.path, map[string]any{}, 403, "M_FORBIDDEN")
		srv.Anon().MustFail(t, p.method, p.path, map[string]any{}, 401, "M_MISSING_TOKEN")
	}
	if v := srv.Anon().MustDo(t, "GET", v1+"/server_version", nil, 200).Get("server_version").Str; !strings.HasPrefix(v, "Redoubt ") {
		t.Fatalf("server_version %q", v)
	}
	if n := count(t, srv, `SELECT COUNT(*) FROM audit_log`); n != 0 {
		t.Fatalf("refused calls were audited: %d", n)
	}
}

func TestUsers(t *testing.T) {
	srv := ts.Start(t)
	root := srv.RegisterAdmin(t, "root")
	for _, n := range []string{"carol", "dave", "erin", "frank"} {
		srv.Register(t, n)
	}
	// Paging.
	page := root.MustDo(t, "GET", v2+"/users?from=0&limit=2", nil, 200)
	if page.Get("total").Int() != 5 || len(page.Get("users").Array()) != 2 || page.Get("next_token").Str != "2" {
		t.Fatalf("first page: %s", page.Raw)
	}
	last := root.MustDo(t, "GET", v2+"/users?from=4&limit=2", nil, 200)
	if len(last.Get("users").Array()) != 1 || last.Get("next_token").Exists() {
		t.Fatalf("last page: %s", last.Raw)
	}
	if got := root.MustDo(t, "GET", v2+"/users?name=dav", nil, 200).Get("users.#.name").Raw; got != `["@dave:test.local"]` {
		t.Fatalf("name filter: %s", got)
	}
	if got := root.MustDo(t, "GET", v2+"/users?order_by=name&dir=b&limit=1", nil, 200).Get("users.0.name").Str; got != "@root:test.local" {
		t.Fatalf("order_by name, dir b: %s", got)
	}
	for _, q := range []string{"from=-1", "limit=abc", "from=1.5", "order_by=password", "dir=x", "deactivated=maybe", "guests=2"} {
		root.MustFail(t, "GET", v2+"/users?"+q, nil, 400, "M_INVALID_PARAM")
	}

	// Create (201), log in, modify (200).
	bob := "@bob:test.local"
	created := root.MustDo(t, "PUT", v2+"/users/"+esc(bob), map[string]any{"password": "bob-first-pass", "displayname": "Bob B"}, 201)
	if created.Get("name").Str != bob || created.Get("displayname").Str != "Bob B" || created.Get("admin").Bool() {
		t.Fatalf("created: %s", created.Raw)
	}
	if code, _ := login(srv, t, "bob", "bob-first-pass"); code != 200 {
		t.Fatalf("new user cannot log in: %d", code)
	}
	mod := root.MustDo(t, "PUT", v2+"/users/"+esc(bob), map[string]any{"admin": true, "password": "bob-second-pass"}, 200)
	if !mod.Get("admin").Bool() {
		t.Fatalf("modified: %s", mod.Raw)
	}
	if code, _ := login(srv, t, "bob", "bob-first-pass"); code != 403 {
		t.Fatalf("old password still works: %d", code)
	}
	root.MustFail(t, "PUT", v2+"/users/@eve:elsewhere.org", map[string]any{}, 400, "M_INVALID_PARAM")
	root.MustFail(t, "PUT", v2+"/users/"+esc(bob), map[string]any{"admin": "yes"}, 400, "M_BAD_JSON")
	root.MustFail(t, "PUT", v2+"/users/@weak:test.local", map[string]any{"password": "x"}, 400, "M_WEAK_PASSWORD")
	root.MustFail(t, "GET", v2+"/users/@nobody:test.local", nil, 404, "M_NOT_FOUND")
	root.MustFail(t, "GET", v2+"/users/nonsense", nil, 400, "M_INVALID_PARAM")

	// Reset password, whois, devices.
	root.MustDo(t, "POST", v1+"/reset_password/"+esc(bob), map[string]any{"new_password": "bob-third-pass", "logout_devices": true}, 200)
	code, res := login(srv, t, "bob", "bob-third-pass")
	if code != 200 {
		t.Fatalf("login after reset: %d", code)
	}
	root.MustFail(t, "POST", v1+"/reset_password/"+esc(bob), map[string]any{}, 400, "M_MISSING_PARAM")
	root.MustFail(t, "POST", v1+"/reset_password/@nobody:test.local", map[string]any{"new_password": "whatever-pass"}, 404, "M_NOT_FOUND")
	bobClient := srv.As(res.Get("access_token").Str)
	bobClient.MustDo(t, "GET", "/_matrix/client/v3/account/whoami", nil, 200)
	if w := root.MustDo(t, "GET", v1+"/whois/"+esc(bob), nil, 200); w.Get("user_id").Str != bob || !w.Get(`devices..sessions.0.connections.0.last_seen`).Exists() {
		t.Fatalf("whois: %s", w.Raw)
	}
	devices := root.MustDo(t, "GET", v2+"/users/"+esc(bob)+"/devices", nil, 200)
	if devices.Get("total").Int() != 1 {
		t.Fatalf("devices: %s", devices.Raw)
	}
	dev := devices.Get("devices.0.device_id").Str
	root.MustDo(t, "GET", v2+"/users/"+esc(bob)+"/devices/"+esc(dev), nil, 200)
	root.MustFail(t, "GET", v2+"/users/"+esc(bob)+"/devices/NOPE", nil, 404, "M_NOT_FOUND")
	root.MustDo(t, "DELETE", v2+"/users/"+esc(bob)+"/devices/"+esc(dev), nil, 200)
	bobClient.MustFail(t, "GET", "/_matrix/client/v3/account/whoami", nil, 401, "M_UNKNOWN_TOKEN")
	root.MustFail(t, "POST", v2+"/users/"+esc(bob)+"/delete_devices", map[string]any{}, 400, "M_MISSING_PARAM")

	// The audit log has every change, newest first, and no passwords.
	audit := root.MustDo(t, "GET", rv+"/audit", nil, 200)
	if got := audit.Get("entries.#.action").Raw; got != `["delete_device","reset_password","modify_user","create_user"]` {
		t.Fatalf("audit: %s", audit.Raw)
	}
	if strings.Contains(audit.Raw, "pass") && strings.Contains(audit.Raw, "bob-") {
		t.Fatalf("audit holds a password: %s", audit.Raw)
	}
	root.MustFail(t, "GET", rv+"/audit?limit=-3", nil, 400, "M_INVALID_PARAM")
}

// Deactivation with erase through the admin API leaves nothing of the user.
func TestDeactivateErase(t *testing.T) {
	srv := ts.Start(t)
	root := srv.RegisterAdmin(t, "root")
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	root.Join(t, room)
	secret := "admin-erase-canary-" + "51c2"
	alice.Send(t, room, secret)
	alice.MustDo(t, "PUT", "/_matrix/client/v3/user/"+esc(alice.UserID)+"/account_data/x.y", map[string]any{"v": secret}, 200)
	alice.MustDo(t, "POST", "/_matrix/client/v3/keys/upload", map[string]any{"one_time_keys": map[string]any{"signed_curve25519:A": map[string]any{"key": "k"}}}, 200)
	req, _ := http.NewRequest("POST", srv.URL+"/_matrix/media/v3/upload", bytes.NewReader([]byte(secret)))
	req.Header.Set("Authorization", "Bearer "+alice.Token)
	if res, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		res.Body.Close()
	}
	if m := root.MustDo(t, "GET", v1+"/users/"+esc(alice.UserID)+"/media", nil, 200); m.Get("total").Int() != 1 || m.Get("media.0.media_length").Int() != int64(len(secret)) {
		t.Fatalf("user media: %s", m.Raw)
	}
	root.MustFail(t, "POST", v1+"/deactivate/@nobody:test.local", map[string]any{}, 404, "M_NOT_FOUND")
	root.MustFail(t, "POST", v1+"/deactivate/"+esc(alice.UserID), map[string]any{"erase": "yes"}, 400, "M_BAD_JSON")
	root.MustDo(t, "POST", v1+"/deactivate/"+esc(alice.UserID), map[string]any{"erase": true}, 200)

	for _, tc := range []struct{ table, column string }{
		{"devices", "user_id"}, {"access_tokens", "user_id"}, {"one_time_keys", "user_id"}, {"account_data", "user_id"},
		{"media", "uploader"}, {"receipts", "user_id"}, {"push_actions", "user_id"}, {"unread_counts", "user_id"},
	} {
		if n := count(t, srv, `SELECT COUNT(*) FROM %s WHERE %s = '%s'`, tc.table, tc.column, alice.UserID); n != 0 {
			t.Errorf("%d rows of alice left in %s", n, tc.table)
		}
	}
	// Her messages and memberships are erased; the room state she set is
	// the room's, and stays.
	if n := count(t, srv, `SELECT COUNT(*) FROM events WHERE sender = '%[1]s' AND (instr(json, '%[2]s') > 0 OR (redacted_by IS NULL
		AND (state_key IS NULL OR (type = 'm.room.member' AND state_key = '%[1]s'))))`, alice.UserID, secret); n != 0 {
		t.Errorf("%d of alice's events not erased", n)
	}
	u := root.MustDo(t, "GET", v2+"/users/"+esc(alice.UserID), nil, 200)
	if !u.Get("deactivated").Bool() || !u.Get("erased").Bool() || u.Get("displayname").Type != gjson.Null {
		t.Fatalf("user after erasure: %s", u.Raw)
	}
	if code, _ := login(srv, t, "alice", ts.Password("alice")); code != 403 {
		t.Fatalf("erased user logs in: %d", code)
	}
	srv.Forgotten(t, secret)
	// Deactivated users are listed on request only.
	if got := root.MustDo(t, "GET", v2+"/users", nil, 200).Get("total").Int(); got != 1 {
		t.Fatalf("%d users listed without deactivated", got)
	}
	if got := root.MustDo(t, "GET", v2+"/users?deactivated=true", nil, 200).Get("total").Int(); got != 2 {
		t.Fatalf("%d users listed with deactivated", got)
	}
}

func TestRooms(t *testing.T) {
	srv := ts.Start(t)
	root := srv.RegisterAdmin(t, "root")
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "name": "Team room"})
	bob.Join(t, room)
	other := alice.CreateRoom(t, map[string]any{"name": "Quiet"})
	alice.Send(t, room, "hello")

	list := root.MustDo(t, "GET", v1+"/rooms", nil, 200)
	if list.Get("total_rooms").Int() != 2 || list.Get("rooms.0.room_id").Str != room || list.Get("rooms.0.joined_members").Int() != 2 {
		t.Fatalf("rooms: %s", list.Raw)
	}
	if got := root.MustDo(t, "GET", v1+"/rooms?search_term=quiet", nil, 200).Get("rooms.#.room_id").Raw; got != `["`+other+`"]` {
		t.Fatalf("search: %s", got)
	}
	if p := root.MustDo(t, "GET", v1+"/rooms?limit=1", nil, 200); p.Get("next_batch").Int() != 1 || len(p.Get("rooms").Array()) != 1 {
		t.Fatalf("paging: %s", p.Raw)
	}
	for _, q := range []string{"from=x", "limit=-1", "order_by=secret", "dir=up"} {
		root.MustFail(t, "GET", v1+"/rooms?"+q, nil, 400, "M_INVALID_PARAM")
	}
	details := root.MustDo(t, "GET", v1+"/rooms/"+esc(room), nil, 200)
	if details.Get("name").Str != "Team room" || details.Get("join_rules").Str != "public" || !details.Get("public").Bool() {
		t.Fatalf("room: %s", details.Raw)
	}
	if m := root.MustDo(t, "GET", v1+"/rooms/"+esc(room)+"/members", nil, 200); m.Get("total").Int() != 2 {
		t.Fatalf("members: %s", m.Raw)
	}
	if st := root.MustDo(t, "GET", v1+"/rooms/"+esc(room)+"/state", nil, 200); !st.Get(`state.#(type=="m.room.create")`).Exists() {
		t.Fatalf("state: %s", st.Raw)
	}
	for _, p := range []string{"", "/members", "/state"} {
		root.MustFail(t, "GET", v1+"/rooms/"+esc("!nope:test.local")+p, nil, 404, "M_NOT_FOUND")
	}
	root.MustFail(t, "DELETE", v2+"/rooms/"+esc("!nope:test.local"), map[string]any{}, 404, "M_NOT_FOUND")

	// Delete: everyone leaves, history goes, nobody gets back in.
	since := bob.MustDo(t, "GET", "/_matrix/client/v3/sync", nil, 200).Get("next_batch").Str
	id := root.MustDo(t, "DELETE", v2+"/rooms/"+esc(room), map[string]any{"block": true, "purge": true}, 200).Get("delete_id").Str
	st := root.MustDo(t, "GET", v2+"/rooms/delete_status/"+esc(id), nil, 200)
	if st.Get("status").Str != "complete" || len(st.Get("shutdown_room.kicked_users").Array()) != 2 {
		t.Fatalf("delete status: %s", st.Raw)
	}
	root.MustFail(t, "GET", v2+"/rooms/delete_status/unknown", nil, 404, "M_NOT_FOUND")
	if sync := bob.MustDo(t, "GET", "/_matrix/client/v3/sync?since="+since, nil, 200); !sync.Get("rooms.leave." + ts.Esc(room)).Exists() {
		t.Fatalf("bob was not told he left: %s", sync.Get("rooms").Raw)
	}
	bob.MustFail(t, "POST", "/_matrix/client/v3/join/"+esc(room), map[string]any{}, 403, "M_FORBIDDEN")
	if n := count(t, srv, `SELECT COUNT(*) FROM events WHERE room_id = '%s' AND type = 'm.room.message'`, room); n != 0 {
		t.Fatalf("%d messages left in the deleted room", n)
	}
	// Gone from the admin API, as after a purge on Synapse.
	root.MustFail(t, "GET", v1+"/rooms/"+esc(room), nil, 404, "M_NOT_FOUND")
	if list := root.MustDo(t, "GET", v1+"/rooms", nil, 200); strings.Contains(list.Raw, room) {
		t.Fatalf("deleted room listed: %s", list.Raw)
	}
}

func TestServerNotices(t *testing.T) {
	srv := ts.Start(t)
	root := srv.RegisterAdmin(t, "root")
	alice := srv.Register(t, "alice")
	body := map[string]any{"user_id": alice.UserID, "content": map[string]any{"msgtype": "m.text", "body": "Maintenance tonight"}}
	first := root.MustDo(t, "POST", v1+"/send_server_notice", body, 200).Get("event_id").Str
	sync := alice.MustDo(t, "GET", "/_matrix/client/v3/sync", nil, 200)
	invites := sync.Get("rooms.invite").Map()
	if len(invites) != 1 {
		t.Fatalf("invites: %s", sync.Get("rooms").Raw)
	}
	var roomID string
	for id := range invites {
		roomID = id
	}
	if !sync.Get("rooms.invite." + ts.Esc(roomID) + ".invite_state.events.#(type==\"m.room.member\")").Exists() {
		t.Fatal("no invite")
	}
	// The invite cannot be rejected; once joined, the room can be left.
	alice.MustFail(t, "POST", "/_matrix/client/v3/rooms/"+esc(roomID)+"/leave", map[string]any{}, 403, "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM")
	alice.Join(t, roomID)
	second := root.MustDo(t, "PUT", v1+"/send_server_notice/txn1", body, 200).Get("event_id").Str
	if first == "" || second == "" || first == second {
		t.Fatalf("event IDs %q %q", first, second)
	}
	// The same transaction again is the same notice.
	if again := root.MustDo(t, "PUT", v1+"/send_server_notice/txn1", body, 200).Get("event_id").Str; again != second {
		t.Fatalf("repeated transaction: %q, then %q", second, again)
	}
	msgs := alice.MustDo(t, "GET", "/_matrix/client/v3/rooms/"+esc(roomID)+"/messages?dir=b", nil, 200)
	if n := len(msgs.Get(`chunk.#(type=="m.room.message")#`).Array()); n != 2 {
		t.Fatalf("%d notices in the one notices room", n)
	}
	tags := alice.MustDo(t, "GET", "/_matrix/client/v3/user/"+esc(alice.UserID)+"/rooms/"+esc(roomID)+"/account_data/m.tag", nil, 200)
	if !tags.Get(`tags.m\.server_notice`).Exists() {
		t.Fatalf("tags: %s", tags.Raw)
	}
	// The notices room is read-only for the user.
	alice.MustFail(t, "PUT", "/_matrix/client/v3/rooms/"+esc(roomID)+"/send/m.room.message/x", map[string]any{"body": "hi"}, 403, "M_FORBIDDEN")
	root.MustFail(t, "POST", v1+"/send_server_notice", map[string]any{"user_id": "@nobody:test.local", "content": map[string]any{}}, 404, "M_NOT_FOUND")
	root.MustFail(t, "POST", v1+"/send_server_notice", map[string]any{"user_id": alice.UserID}, 400, "M_MISSING_PARAM")
	if n := count(t, srv, `SELECT COUNT(*) FROM audit_log WHERE instr(COALESCE(detail, ''), 'Maintenance') > 0`); n != 0 {
		t.Fatal("audit log holds notice content")
	}
}

func TestRegistrationTokens(t *testing.T) {
	srv := ts.Start(t, func(c *config.Config) { c.Registration.RequireToken = true })
	root := srv.RegisterAdmin(t, "root")
	tok := root.MustDo(t, "POST", v1+"/registration_tokens/new", map[string]any{"uses_allowed": 1}, 200)
	token := tok.Get("token").Str
	if len(token) != 16 || tok.Get("uses_allowed").Int() != 1 || tok.Get("completed").Int() != 0 || tok.Get("expiry_time").Type != gjson.Null {
		t.Fatalf("new token: %s", tok.Raw)
	}
	custom := root.MustDo(t, "POST", v1+"/registration_tokens/new", map[string]any{"token": "team-2026", "expiry_time": time.Now().Add(time.Hour).UnixMilli()}, 200)
	if custom.Get("token").Str != "team-2026" {
		t.Fatalf("custom: %s", custom.Raw)
	}
	for _, bad := range []map[string]any{
		{"token": "has space"}, {"token": "team-2026"}, {"uses_allowed": -1}, {"expiry_time": 1000}, {"length": 0}, {"length": 65}, {"uses_allowed": "many"},
	} {
		code, res := root.Do(t, "POST", v1+"/registration_tokens/new", bad)
		if code != 400 || (res.Get("errcode").Str != "M_INVALID_PARAM" && res.Get("errcode").Str != "M_BAD_JSON") {
			t.Errorf("%v: %d %s", bad, code, res.Raw)
		}
	}
	if n := len(root.MustDo(t, "GET", v1+"/registration_tokens", nil, 200).Get("registration_tokens").Array()); n != 2 {
		t.Fatalf("%d tokens", n)
	}
	root.MustFail(t, "GET", v1+"/registration_tokens/unknown", nil, 404, "M_NOT_FOUND")
	root.MustFail(t, "GET", v1+"/registration_tokens?valid=perhaps", nil, 400, "M_INVALID_PARAM")

	// Registering with it: the spec's m.login.registration_token stage.
	reg := func(name string, authDict map[string]any) (int, gjson.Result) {
		body := map[string]any{"username": name, "password": name + "-password-1"}
		if authDict != nil {
			body["auth"] = authDict
		}
		return srv.Anon().Do(t, "POST", "/_matrix/client/v3/register", body)
	}
	code, res := reg("newbie", nil)
	if code != 401 || res.Get("flows.0.stages.0").Str != "m.login.registration_token" {
		t.Fatalf("challenge: %d %s", code, res.Raw)
	}
	if code, res := reg("newbie", map[string]any{"type": "m.login.registration_token", "token": "wrong", "session": res.Get("session").Str}); code != 401 || res.Get("errcode").Str != "M_FORBIDDEN" {
		t.Fatalf("wrong token: %d %s", code, res.Raw)
	}
	valid := srv.Anon().MustDo(t, "GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token="+token, nil, 200)
	if !valid.Get("valid").Bool() {
		t.Fatalf("validity: %s", valid.Raw)
	}
	if code, res := reg("newbie", map[string]any{"type": "m.login.registration_token", "token": token}); code != 200 || res.Get("access_token").Str == "" {
		t.Fatalf("register with token: %d %s", code, res.Raw)
	}
	// One use allowed: used up.
	if code, _ := reg("second", map[string]any{"type": "m.login.registration_token", "token": token}); code != 401 {
		t.Fatalf("a used-up token registered again: %d", code)
	}
	if srv.Anon().MustDo(t, "GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token="+token, nil, 200).Get("valid").Bool() {
		t.Fatal("used-up token reported valid")
	}
	srv.Anon().MustFail(t, "GET", "/_matrix/client/v1/register/m.login.registration_token/validity", nil, 400, "M_MISSING_PARAM")
	if got := root.MustDo(t, "GET", v1+"/registration_tokens/"+token, nil, 200).Get("completed").Int(); got != 1 {
		t.Fatalf("completed %d", got)
	}
	// A failed registration gives the use back.
	more := root.MustDo(t, "PUT", v1+"/registration_tokens/"+token, map[string]any{"uses_allowed": 2}, 200)
	if more.Get("uses_allowed").Int() != 2 {
		t.Fatalf("update: %s", more.Raw)
	}
	if code, _ := reg("newbie", map[string]any{"type": "m.login.registration_token", "token": token}); code != 400 {
		t.Fatalf("taken name: %d", code)
	}
	if got := root.MustDo(t, "GET", v1+"/registration_tokens/"+token, nil, 200).Get("completed").Int(); got != 1 {
		t.Fatalf("completed after a failed registration: %d", got)
	}
	if n := len(root.MustDo(t, "GET", v1+"/registration_tokens?valid=true", nil, 200).Get("registration_tokens").Array()); n != 2 {
		t.Fatalf("%d valid tokens", n)
	}
	root.MustFail(t, "PUT", v1+"/registration_tokens/"+token, map[string]any{"uses_allowed": -5}, 400, "M_INVALID_PARAM")
	root.MustDo(t, "PUT", v1+"/registration_tokens/"+token, map[string]any{"uses_allowed": nil}, 200)
	root.MustDo(t, "DELETE", v1+"/registration_tokens/"+token, nil, 200)
	root.MustFail(t, "DELETE", v1+"/registration_tokens/"+token, nil, 404, "M_NOT_FOUND")

	// Without require_token: closed, and the validity endpoint says so.
	closed := ts.Start(t)
	closed.Anon().MustFail(t, "GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=x", nil, 403, "M_FORBIDDEN")
	closed.Anon().MustFail(t, "POST", "/_matrix/client/v3/register", map[string]any{"username": "x", "password": "xxxxxxxxxx"}, 403, "M_FORBIDDEN")
}

func TestSummary(t *testing.T) {
	srv := ts.Start(t)
	root := srv.RegisterAdmin(t, "root")
	root.CreateRoom(t, nil)
	if _, err := srv.Retention.Prune(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := root.MustDo(t, "GET", rv+"/summary", nil, 200)
	if s.Get("server_name").Str != "test.local" || s.Get("users").Int() != 1 || s.Get("rooms").Int() != 1 ||
		s.Get("events").Int() < 5 || s.Get("database_bytes").Int() == 0 || !s.Get("last_prune_ts").Exists() ||
		s.Get("last_prune_ts").Type == gjson.Null || s.Get("last_backup_ts").Type != gjson.Null || !s.Get("media.count").Exists() {
		t.Fatalf("summary: %s", s.Raw)
	}
}

// The fields synapse-admin (the common web tool for Synapse's admin API)
// reads from the calls it makes first: the user list, a user, the room
// list; and deactivation.
func TestSynapseAdminCompatibility(t *testing.T) {
	srv := ts.Start(t)
	root := srv.RegisterAdmin(t, "root")
	alice := srv.Register(t, "alice")
	alice.CreateRoom(t, map[string]any{"name": "r"})
	users := root.MustDo(t, "GET", v2+"/users?from=0&limit=10&guests=false&order_by=name&dir=f", nil, 200)
	for _, f := range []string{"total"} {
		if !users.Get(f).Exists() {
			t.Errorf("users list lacks %s", f)
		}
	}
	for _, f := range []string{"name", "displayname", "avatar_url", "is_guest", "admin", "deactivated", "erased", "creation_ts", "user_type", "locked", "shadow_banned", "last_seen_ts"} {
		if !users.Get("users.0." + f).Exists() {
			t.Errorf("listed user lacks %s", f)
		}
	}
	user := root.MustDo(t, "GET", v2+"/users/"+esc(alice.UserID), nil, 200)
	for _, f := range []string{"name", "displayname", "threepids", "avatar_url", "is_guest", "admin", "deactivated", "erased", "creation_ts", "external_ids", "user_type", "locked", "shadow_banned", "appservice_id"} {
		if !user.Get(f).Exists() {
			t.Errorf("user lacks %s", f)
		}
	}
	if user.Get("creation_ts").Int() > time.Now().Unix()+10 {
		t.Errorf("user creation_ts is not in seconds: %d", user.Get("creation_ts").Int())
	}
	rooms := root.MustDo(t, "GET", v1+"/rooms?from=0&limit=10&order_by=name&dir=f", nil, 200)
	for _, f := range []string{"total_rooms", "offset", "rooms"} {
		if !rooms.Get(f).Exists() {
			t.Errorf("room list lacks %s", f)
		}
	}
	for _, f := range []string{"room_id", "name", "canonical_alias", "joined_members", "joined_local_members", "version", "creator",
		"encryption", "federatable", "public", "join_rules", "guest_access", "history_visibility", "state_events"} {
		if !rooms.Get("rooms.0." + f).Exists() {
			t.Errorf("listed room lacks %s", f)
		}
	}
	if res := root.MustDo(t, "POST", v1+"/deactivate/"+esc(alice.UserID), map[string]any{"erase": false}, 200); res.Get("id_server_unbind_result").Str != "success" {
		t.Errorf("deactivate: %s", res.Raw)
	}
}
