package clientapi_test

import (
	"fmt"
	"testing"
	"time"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

func TestKnockAndRestrictedJoin(t *testing.T) {
	srv := ts.Start(t)
	alice, bob, carol := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
	knockable := alice.CreateRoom(t, map[string]any{"initial_state": []any{map[string]any{"type": "m.room.join_rules", "state_key": "",
		"content": map[string]any{"join_rule": "knock"}}}})
	since := bob.MustDo(t, "GET", "/_matrix/client/v3/sync", nil, 200).Get("next_batch").Str
	bob.MustDo(t, "POST", "/_matrix/client/v3/knock/"+ts.PathEscape(knockable), map[string]any{"reason": "let me in"}, 200)
	if ks := bob.MustDo(t, "GET", "/_matrix/client/v3/sync?since="+since, nil, 200).Get("rooms.knock." + ts.Esc(knockable) + ".knock_state.events"); !ks.Get(`#(type=="m.room.member").content.membership`).Exists() {
		t.Fatalf("knock in sync: %s", ks.Raw)
	}
	if m := alice.MustDo(t, "GET", roomPath(knockable, "/state/m.room.member/"+bob.UserID), nil, 200); m.Get("membership").Str != "knock" {
		t.Fatalf("knock: %s", m.Raw)
	}
	bob.MustFail(t, "POST", "/_matrix/client/v3/join/"+ts.PathEscape(knockable), map[string]any{}, 403, "M_FORBIDDEN")
	alice.Invite(t, knockable, bob.UserID)
	bob.Join(t, knockable)
	inviteOnly := alice.CreateRoom(t, nil)
	carol.MustFail(t, "POST", "/_matrix/client/v3/knock/"+ts.PathEscape(inviteOnly), map[string]any{}, 403, "M_FORBIDDEN")

	// Restricted: members of the team room may join without an invite.
	team := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, team)
	restricted := alice.CreateRoom(t, map[string]any{"room_version": "11", "initial_state": []any{map[string]any{"type": "m.room.join_rules", "state_key": "",
		"content": map[string]any{"join_rule": "restricted", "allow": []any{map[string]any{"type": "m.room_membership", "room_id": team}}}}}})
	bob.Join(t, restricted)
	if m := alice.MustDo(t, "GET", roomPath(restricted, "/state/m.room.member/"+bob.UserID), nil, 200); m.Get("join_authorised_via_users_server").Str != alice.UserID {
		t.Fatalf("restricted join: %s", m.Raw)
	}
	carol.MustFail(t, "POST", "/_matrix/client/v3/join/"+ts.PathEscape(restricted), map[string]any{}, 403, "M_FORBIDDEN")
}

func TestReportTimestampUpgrade(t *testing.T) {
	srv := ts.Start(t)
	root := srv.RegisterAdmin(t, "root")
	alice, bob, eve := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "eve")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "name": "Old room", "topic": "keep me"})
	bob.Join(t, room)
	bad := alice.Send(t, room, "something offensive")
	bob.MustDo(t, "POST", roomPath(room, "/report/"+bad), map[string]any{"reason": "rude", "score": -100}, 200)
	eve.MustFail(t, "POST", roomPath(room, "/report/"+bad), map[string]any{"reason": "x"}, 404, "M_NOT_FOUND")
	bob.MustFail(t, "POST", roomPath(room, "/report/"+bad), map[string]any{"score": 5}, 400, "M_INVALID_PARAM")
	bob.MustFail(t, "POST", roomPath(room, "/report/$nope"), map[string]any{}, 404, "M_NOT_FOUND")
	reports := root.MustDo(t, "GET", "/_synapse/admin/v1/event_reports", nil, 200)
	if reports.Get("total").Int() != 1 || reports.Get("event_reports.0.event_id").Str != bad || reports.Get("event_reports.0.user_id").Str != bob.UserID {
		t.Fatalf("reports: %s", reports.Raw)
	}
	bob.MustFail(t, "GET", "/_synapse/admin/v1/event_reports", nil, 403, "M_FORBIDDEN")

	// timestamp_to_event
	first := alice.Send(t, room, "first")
	time.Sleep(5 * time.Millisecond) // first's timestamp is before mid, never equal
	mid := time.Now().UnixMilli()
	time.Sleep(5 * time.Millisecond)
	second := alice.Send(t, room, "second")
	tte := "/_matrix/client/v1/rooms/" + ts.PathEscape(room) + "/timestamp_to_event"
	if got := bob.MustDo(t, "GET", fmt.Sprintf("%s?ts=%d&dir=f", tte, mid), nil, 200).Get("event_id").Str; got != second {
		t.Fatalf("forwards: %s, want %s", got, second)
	}
	if got := bob.MustDo(t, "GET", fmt.Sprintf("%s?ts=%d&dir=b", tte, mid), nil, 200).Get("event_id").Str; got != first {
		t.Fatalf("backwards: %s, want %s", got, first)
	}
	bob.MustFail(t, "GET", fmt.Sprintf("%s?ts=%d&dir=f", tte, time.Now().Add(time.Hour).UnixMilli()), nil, 404, "M_NOT_FOUND")
	bob.MustFail(t, "GET", tte+"?ts=x&dir=f", nil, 400, "M_INVALID_PARAM")
	bob.MustFail(t, "GET", fmt.Sprintf("%s?ts=%d&dir=up", tte, mid), nil, 400, "M_INVALID_PARAM")
	private := alice.CreateRoom(t, nil)
	eve.MustFail(t, "GET", fmt.Sprintf("/_matrix/client/v1/rooms/%s/timestamp_to_event?ts=%d&dir=b", ts.PathEscape(private), mid), nil, 403, "M_FORBIDDEN")

	// Upgrade
	bob.MustFail(t, "POST", roomPath(room, "/upgrade"), map[string]any{"new_version": "12"}, 403, "M_FORBIDDEN")
	alice.MustFail(t, "POST", roomPath(room, "/upgrade"), map[string]any{"new_version": "13"}, 400, "M_UNSUPPORTED_ROOM_VERSION")
	alice.MustFail(t, "POST", roomPath(room, "/upgrade"), map[string]any{}, 400, "M_MISSING_PARAM")
	newRoom := alice.MustDo(t, "POST", roomPath(room, "/upgrade"), map[string]any{"new_version": "12"}, 200).Get("replacement_room").Str
	if tomb := alice.MustDo(t, "GET", roomPath(room, "/state/m.room.tombstone/"), nil, 200); tomb.Get("replacement_room").Str != newRoom {
		t.Fatalf("tombstone: %s", tomb.Raw)
	}
	create := alice.MustDo(t, "GET", roomPath(newRoom, "/state/m.room.create/"), nil, 200)
	if create.Get("predecessor.room_id").Str != room || create.Get("room_version").Str != "12" {
		t.Fatalf("create: %s", create.Raw)
	}
	if n := alice.MustDo(t, "GET", roomPath(newRoom, "/state/m.room.name/"), nil, 200).Get("name").Str; n != "Old room" {
		t.Fatalf("name not carried: %q", n)
	}
	bob.Join(t, newRoom)
	bob.Send(t, newRoom, "hello in the new room")
	bob.MustFail(t, "PUT", roomPath(room, "/send/m.room.message/late"), map[string]any{"body": "too late"}, 403, "M_FORBIDDEN")
}
