package clientapi_test

import (
	"testing"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

func TestSpaceHierarchy(t *testing.T) {
	srv := ts.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	space := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "name": "Company", "creation_content": map[string]any{"type": "m.space"}})
	general := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "name": "General"})
	secret := alice.CreateRoom(t, map[string]any{"name": "Board only"})
	sub := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "name": "Team", "creation_content": map[string]any{"type": "m.space"}})
	deep := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "name": "Team room"})
	child := func(parent, c string, suggested bool) {
		alice.MustDo(t, "PUT", roomPath(parent, "/state/m.space.child/"+c), map[string]any{"via": []string{"test.local"}, "suggested": suggested}, 200)
	}
	child(space, general, true)
	child(space, secret, false)
	child(space, sub, false)
	child(sub, deep, false)
	// A room that is not a space links nothing, whatever it holds.
	child(general, alice.CreateRoom(t, map[string]any{"preset": "public_chat", "name": "Not linked"}), false)
	h := "/_matrix/client/v1/rooms/" + ts.PathEscape(space) + "/hierarchy"
	got := bob.MustDo(t, "GET", h, nil, 200)
	if ids := got.Get("rooms.#.room_id").Raw; ids != `["`+space+`","`+general+`","`+sub+`","`+deep+`"]` {
		t.Fatalf("hierarchy (the invite-only room must not show): %s", got.Raw)
	}
	if got.Get("rooms.0.room_type").Str != "m.space" || got.Get("rooms.0.children_state.#").Int() != 3 || got.Get("rooms.1.name").Str != "General" {
		t.Fatalf("space entry: %s", got.Get("rooms.0").Raw)
	}
	// alice, in every room, sees the invite-only one.
	if n := alice.MustDo(t, "GET", h, nil, 200).Get("rooms.#").Int(); n != 5 {
		t.Fatalf("alice sees %d rooms", n)
	}
	if ids := bob.MustDo(t, "GET", h+"?suggested_only=true", nil, 200).Get("rooms.#.room_id").Raw; ids != `["`+space+`","`+general+`"]` {
		t.Fatalf("suggested only: %s", ids)
	}
	if n := bob.MustDo(t, "GET", h+"?max_depth=1", nil, 200).Get("rooms.#").Int(); n != 3 {
		t.Fatalf("max_depth 1: %d rooms", n)
	}
	page := bob.MustDo(t, "GET", h+"?limit=2", nil, 200)
	rest := bob.MustDo(t, "GET", h+"?limit=2&from="+page.Get("next_batch").Str, nil, 200)
	if page.Get("rooms.#").Int() != 2 || rest.Get("rooms.#.room_id").Raw != `["`+sub+`","`+deep+`"]` {
		t.Fatalf("paging: %s / %s", page.Raw, rest.Raw)
	}
	// A restricted room shows only to those who may join it: members of
	// the room its rules name.
	restricted := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "name": "Staff", "initial_state": []map[string]any{{
		"type": "m.room.join_rules", "state_key": "", "content": map[string]any{"join_rule": "restricted",
			"allow": []map[string]any{{"type": "m.room_membership", "room_id": sub}}}}}})
	child(space, restricted, false)
	shows := func() bool {
		return bob.MustDo(t, "GET", h, nil, 200).Get(`rooms.#(room_id=="` + restricted + `")`).Exists()
	}
	if shows() {
		t.Fatal("restricted room shown to someone who may not join it")
	}
	bob.Join(t, sub)
	if !shows() {
		t.Fatal("restricted room hidden from someone who may join it")
	}
	bob.MustFail(t, "GET", "/_matrix/client/v1/rooms/"+ts.PathEscape(secret)+"/hierarchy", nil, 403, "M_FORBIDDEN")
	bob.MustFail(t, "GET", h+"?from=x", nil, 400, "M_INVALID_PARAM")
	bob.MustFail(t, "GET", h+"?limit=-2", nil, 400, "M_INVALID_PARAM")
	bob.MustFail(t, "GET", h+"?suggested_only=yes", nil, 400, "M_INVALID_PARAM")
}

// A room's summary (spec v1.15), by ID or alias, for rooms one may find;
// a restricted room names the rooms whose members may join.
func TestRoomSummary(t *testing.T) {
	srv := ts.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	space := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "name": "Company", "room_alias_name": "company",
		"creation_content": map[string]any{"type": "m.space"}})
	restricted := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "room_version": "8", "initial_state": []map[string]any{{
		"type": "m.room.join_rules", "state_key": "", "content": map[string]any{"join_rule": "restricted",
			"allow": []map[string]any{{"type": "m.room_membership", "room_id": space}}}}}})
	private := alice.CreateRoom(t, nil)
	summary := func(id string) string { return "/_matrix/client/v1/room_summary/" + ts.PathEscape(id) }
	got := bob.MustDo(t, "GET", summary("#company:test.local"), nil, 200)
	if got.Get("room_id").Str != space || got.Get("room_type").Str != "m.space" || got.Get("name").Str != "Company" ||
		got.Get("membership").Exists() || got.Get("allowed_room_ids").Exists() {
		t.Fatalf("space summary: %s", got.Raw)
	}
	got = alice.MustDo(t, "GET", summary(restricted), nil, 200)
	if got.Get("join_rule").Str != "restricted" || got.Get("allowed_room_ids").Raw != `["`+space+`"]` || got.Get("membership").Str != "join" {
		t.Fatalf("restricted summary: %s", got.Raw)
	}
	// Bob, in no allowed room, may not find the restricted room, nor the
	// private one: as if they did not exist.
	bob.MustFail(t, "GET", summary(restricted), nil, 404, "M_NOT_FOUND")
	bob.MustFail(t, "GET", summary(private), nil, 404, "M_NOT_FOUND")
	bob.MustFail(t, "GET", summary("!nope:test.local"), nil, 404, "M_NOT_FOUND")
	bob.MustFail(t, "GET", summary("nope"), nil, 400, "M_INVALID_PARAM")
	srv.Anon().MustFail(t, "GET", summary(space), nil, 401, "M_MISSING_TOKEN")
}
