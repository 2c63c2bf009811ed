package clientapi_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

// A restart on the same file finds every room, event, device and token.
func TestRestartKeepsEverything(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"name": "durable", "room_alias_name": "durable", "invite": []string{bob.UserID}})
	bob.Join(t, room)
	var ids []string
	for _, text := range []string{"one", "two", "three"} {
		ids = append(ids, alice.Send(t, room, text))
	}
	txnEvent := alice.MustDo(t, "PUT", roomPath(room, "/send/m.room.message/keep-me"), map[string]any{"body": "txn"}, 200).Get("event_id").Str
	alice.MustDo(t, "PUT", v3+"/user/"+alice.UserID+"/account_data/org.example", map[string]any{"k": "v"}, 200)
	filterID := alice.MustDo(t, "POST", v3+"/user/"+alice.UserID+"/filter", map[string]any{"room": map[string]any{}}, 200).Get("filter_id").Str
	alice.MustDo(t, "PUT", v3+"/devices/"+alice.DeviceID, map[string]any{"display_name": "desk"}, 200)
	devicesBefore := alice.MustDo(t, "GET", v3+"/devices", nil, 200).Get("devices").Raw
	stateBefore := alice.MustDo(t, "GET", roomPath(room, "/state"), nil, 200)

	srv.Restart()

	alice.MustDo(t, "GET", v3+"/account/whoami", nil, 200)
	bob.MustDo(t, "GET", v3+"/account/whoami", nil, 200)
	if got := alice.MustDo(t, "GET", v3+"/devices", nil, 200).Get("devices").Raw; !strings.Contains(got, `"desk"`) || len(got) != len(devicesBefore) {
		t.Fatalf("devices: %s, before %s", got, devicesBefore)
	}
	if got := alice.MustDo(t, "GET", roomPath(room, "/state"), nil, 200); len(got.Array()) != len(stateBefore.Array()) {
		t.Fatalf("state changed across restart: %d vs %d events", len(got.Array()), len(stateBefore.Array()))
	}
	msgs := bob.MustDo(t, "GET", roomPath(room, "/messages?dir=b&limit=4"), nil, 200)
	want := []string{txnEvent, ids[2], ids[1], ids[0]}
	for i, w := range want {
		if msgs.Get(fmt.Sprintf("chunk.%d.event_id", i)).Str != w {
			t.Fatalf("messages after restart: %s", msgs.Raw)
		}
	}
	// The transaction is remembered across the restart.
	if again := alice.MustDo(t, "PUT", roomPath(room, "/send/m.room.message/keep-me"), map[string]any{"body": "txn"}, 200).Get("event_id").Str; again != txnEvent {
		t.Fatal("transaction forgotten across restart")
	}
	if got := alice.MustDo(t, "GET", v3+"/user/"+alice.UserID+"/account_data/org.example", nil, 200); got.Get("k").Str != "v" {
		t.Fatalf("account data: %s", got.Raw)
	}
	alice.MustDo(t, "GET", v3+"/user/"+alice.UserID+"/filter/"+filterID, nil, 200)
	if got := alice.MustDo(t, "GET", v3+"/directory/room/%23durable:test.local", nil, 200); got.Get("room_id").Str != room {
		t.Fatalf("alias: %s", got.Raw)
	}
	srv.Anon().MustDo(t, "POST", v3+"/login", passwordLogin("alice", ts.Password("alice")), 200)
	// The room keeps working: the next event follows the stored head.
	alice.Send(t, room, "after restart")
	// No access token is stored in the clear.
	raw, err := os.ReadFile(srv.Cfg.Database)
	if err != nil {
		t.Fatal(err)
	}
	wal, _ := os.ReadFile(srv.Cfg.Database + "-wal")
	for _, tok := range []string{alice.Token, bob.Token} {
		if strings.Contains(string(raw), tok) || strings.Contains(string(wal), tok) {
			t.Fatal("an access token is stored in the clear")
		}
	}
}
