package retention_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

const v3 = "/_matrix/client/v3"

// Deactivation with erase removes everything the account left and makes
// its events redacted for everyone, the content gone from the file.
func TestEraseAccount(t *testing.T) {
	srv := ts.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	canary, nameCanary := "canary-erase-"+"e19c07", "Canary"+"Name77"

	// Everything an account accumulates.
	masterKey := base64.RawStdEncoding.EncodeToString(make([]byte, ed25519.PublicKeySize))
	alice.MustDo(t, "PUT", v3+"/profile/"+alice.UserID+"/displayname", map[string]any{"displayname": nameCanary}, 200)
	for range 20 {
		alice.Send(t, room, "filler")
	}
	msg := alice.Send(t, room, canary)
	alice.MustDo(t, "POST", v3+"/rooms/"+ts.PathEscape(room)+"/receipt/m.read/"+ts.PathEscape(msg), map[string]any{}, 200)
	alice.MustDo(t, "POST", v3+"/keys/upload", map[string]any{"one_time_keys": map[string]any{"signed_curve25519:AAAA": map[string]any{"key": "k"}}}, 200)
	alice.MustDo(t, "POST", v3+"/keys/device_signing/upload", map[string]any{"master_key": map[string]any{
		"user_id": alice.UserID, "usage": []string{"master"}, "keys": map[string]string{"ed25519:" + masterKey: masterKey}}}, 200)
	alice.MustDo(t, "POST", v3+"/room_keys/version", map[string]any{"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": map[string]any{"public_key": "x"}}, 200)
	alice.MustDo(t, "PUT", v3+"/user/"+alice.UserID+"/account_data/org.example.secret", map[string]any{"secret": canary}, 200)
	alice.MustDo(t, "PUT", v3+"/pushrules/global/content/mine", map[string]any{"pattern": "cake", "actions": []string{"notify"}}, 200)
	alice.MustDo(t, "POST", v3+"/user/"+alice.UserID+"/filter", map[string]any{"room": map[string]any{}}, 200)
	alice.MustDo(t, "PUT", v3+"/sendToDevice/m.test/t1", map[string]any{"messages": map[string]any{bob.UserID: map[string]any{"*": map[string]any{"x": 1}}}}, 200)
	req, _ := http.NewRequest("POST", srv.URL+"/_matrix/media/v3/upload", bytes.NewReader([]byte(canary+" in a file")))
	req.Header.Set("Authorization", "Bearer "+alice.Token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	bob.Send(t, room, "bob stays")
	checkCanary(t, srv, canary, true)

	// Erasure needs the password, like any deactivation.
	alice.MustDo(t, "POST", v3+"/account/deactivate", map[string]any{"erase": true,
		"auth": ts.PasswordAuth("alice")}, 200)

	for _, tc := range []struct{ table, column string }{
		{"devices", "user_id"}, {"access_tokens", "user_id"}, {"one_time_keys", "user_id"}, {"device_keys", "user_id"},
		{"cross_signing_keys", "user_id"}, {"backup_versions", "user_id"}, {"account_data", "user_id"},
		{"filters", "user_id"}, {"receipts", "user_id"}, {"presence", "user_id"}, {"push_actions", "user_id"}, {"unread_counts", "user_id"},
		{"to_device", "sender"}, {"media", "uploader"},
	} {
		if n := count(t, srv, `SELECT COUNT(*) FROM %s WHERE %s = '%s'`, tc.table, tc.column, alice.UserID); n != 0 {
			t.Errorf("%d rows of %s left in %s", n, alice.UserID, tc.table)
		}
	}
	if n := count(t, srv, `SELECT COUNT(*) FROM media_chunks`); n != 0 {
		t.Errorf("%d media chunks left", n)
	}
	// Every event alice sent is served redacted, to everyone; bob's stay.
	chunk := bob.MustDo(t, "GET", v3+"/rooms/"+ts.PathEscape(room)+"/messages?dir=b&limit=100", nil, 200).Get("chunk").Array()
	sawBob := false
	for _, e := range chunk {
		switch e.Get("sender").Str {
		case alice.UserID:
			if e.Get("type").Str == "m.room.message" && (e.Get("content").Raw != "{}" || !e.Get("unsigned.redacted_because").Exists()) {
				t.Fatalf("alice's message after erasure: %s", e.Raw)
			}
			if e.Get("content.displayname").Exists() {
				t.Fatalf("alice's member event keeps her name: %s", e.Raw)
			}
		case bob.UserID:
			sawBob = sawBob || e.Get("content.body").Str == "bob stays"
		}
	}
	if !sawBob {
		t.Fatal("bob's message went with alice's account")
	}
	if got := bob.MustDo(t, "GET", v3+"/rooms/"+ts.PathEscape(room)+"/event/"+ts.PathEscape(msg), nil, 200); got.Get("content").Raw != "{}" {
		t.Fatalf("/event: %s", got.Raw)
	}
	// She left the room, and cannot log in.
	if m := bob.MustDo(t, "GET", v3+"/rooms/"+ts.PathEscape(room)+"/joined_members", nil, 200).Get("joined"); m.Get(ts.Esc(alice.UserID)).Exists() {
		t.Fatalf("alice still joined: %s", m.Raw)
	}
	srv.Anon().MustFail(t, "POST", v3+"/login", map[string]any{"type": "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": ts.Password("alice")}, 403, "M_USER_DEACTIVATED")
	checkCanary(t, srv, canary, false)
	checkCanary(t, srv, nameCanary, false)
	if strings.Contains(gjson.Get(bob.MustDo(t, "GET", v3+"/sync", nil, 200).Raw, "rooms").Raw, canary) {
		t.Fatal("sync still serves the erased content")
	}
}

// Erasing a room's creator takes their messages and profile, not the
// room: its name, topic, alias, join rules and guest access stay for the
// members who remain.
func TestEraseKeepsRoomState(t *testing.T) {
	srv := ts.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "name": "Shared room", "topic": "what we share",
		"room_alias_name": "shared", "initial_state": []any{map[string]any{"type": "m.room.guest_access", "state_key": "",
			"content": map[string]any{"guest_access": "can_join"}}}})
	bob.Join(t, room)
	canary := "canary-creator-" + "5a1d"
	alice.MustDo(t, "PUT", v3+"/profile/"+alice.UserID+"/displayname", map[string]any{"displayname": "Alice " + canary}, 200)
	alice.Send(t, room, canary)
	srv.RegisterAdmin(t, "root").MustDo(t, "POST", "/_synapse/admin/v1/deactivate/"+alice.UserID, map[string]any{"erase": true}, 200)

	state := func(typ, path string) string {
		return bob.MustDo(t, "GET", v3+"/rooms/"+ts.PathEscape(room)+"/state/"+typ+"/", nil, 200).Get(path).Str
	}
	for _, c := range []struct{ typ, path, want string }{
		{"m.room.name", "name", "Shared room"}, {"m.room.topic", "topic", "what we share"},
		{"m.room.canonical_alias", "alias", "#shared:test.local"}, {"m.room.join_rules", "join_rule", "public"},
		{"m.room.guest_access", "guest_access", "can_join"},
	} {
		if got := state(c.typ, c.path); got != c.want {
			t.Errorf("%s after erasing its creator: %q, want %q", c.typ, got, c.want)
		}
	}
	if got := bob.MustDo(t, "GET", v3+"/directory/room/"+ts.PathEscape("#shared:test.local"), nil, 200).Get("room_id").Str; got != room {
		t.Errorf("alias resolves to %q", got)
	}
	member := bob.MustDo(t, "GET", v3+"/rooms/"+ts.PathEscape(room)+"/state/m.room.member/"+alice.UserID, nil, 200)
	if member.Get("displayname").Exists() || member.Get("membership").Str != "leave" {
		t.Errorf("alice's membership after erasure: %s", member.Raw)
	}
	checkCanary(t, srv, canary, false)
}
