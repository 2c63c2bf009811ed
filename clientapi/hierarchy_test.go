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
