package clientapi_test

import (
	"strings"
	"testing"

	"github.com/redoubt-systems/redoubt/config"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

func TestProfile(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)

	p := bob.MustDo(t, "GET", v3+"/profile/"+alice.UserID, nil, 200)
	if p.Get("displayname").Str != "alice" {
		t.Fatalf("default displayname: %s", p.Raw)
	}
	alice.MustDo(t, "PUT", v3+"/profile/"+alice.UserID+"/displayname", map[string]any{"displayname": "Alice A."}, 200)
	alice.MustDo(t, "PUT", v3+"/profile/"+alice.UserID+"/avatar_url", map[string]any{"avatar_url": "mxc://test.local/abc"}, 200)
	p = bob.MustDo(t, "GET", v3+"/profile/"+alice.UserID, nil, 200)
	if p.Get("displayname").Str != "Alice A." || p.Get("avatar_url").Str != "mxc://test.local/abc" {
		t.Fatalf("profile: %s", p.Raw)
	}
	if dn := bob.MustDo(t, "GET", v3+"/profile/"+alice.UserID+"/displayname", nil, 200); dn.Get("displayname").Str != "Alice A." {
		t.Fatalf("displayname: %s", dn.Raw)
	}
	// The change reached the room as a new member event.
	m := bob.MustDo(t, "GET", v3+"/rooms/"+ts.PathEscape(room)+"/state/m.room.member/"+alice.UserID, nil, 200)
	if m.Get("displayname").Str != "Alice A." || m.Get("avatar_url").Str != "mxc://test.local/abc" || m.Get("membership").Str != "join" {
		t.Fatalf("member event: %s", m.Raw)
	}
	ev := bob.MustDo(t, "GET", v3+"/rooms/"+ts.PathEscape(room)+"/state/m.room.member/"+alice.UserID+"?format=event", nil, 200)
	if ev.Get("unsigned.prev_content.membership").Str != "join" || ev.Get("event_id").Str == "" {
		t.Fatalf("member event with prev_content: %s", ev.Raw)
	}

	for _, tc := range []struct {
		name, path string
		body       any
		status     int
		errcode    string
	}{
		{"someone else's", "/profile/" + alice.UserID + "/displayname", map[string]any{"displayname": "x"}, 403, "M_FORBIDDEN"},
		{"missing field", "/profile/" + bob.UserID + "/displayname", map[string]any{}, 400, "M_MISSING_PARAM"},
		{"wrong type", "/profile/" + bob.UserID + "/displayname", map[string]any{"displayname": 5}, 400, "M_BAD_JSON"},
		{"too long", "/profile/" + bob.UserID + "/avatar_url", map[string]any{"avatar_url": "mxc://" + strings.Repeat("x", 1000)}, 400, "M_INVALID_PARAM"},
		{"unknown field", "/profile/" + bob.UserID + "/bio", map[string]any{"bio": "x"}, 404, "M_UNRECOGNIZED"},
	} {
		t.Run(tc.name, func(t *testing.T) { bob.MustFail(t, "PUT", v3+tc.path, tc.body, tc.status, tc.errcode) })
	}
	if p := bob.MustDo(t, "GET", v3+"/profile/"+alice.UserID, nil, 200); p.Get("displayname").Str != "Alice A." {
		t.Fatalf("refused change took effect: %s", p.Raw)
	}
	bob.MustFail(t, "GET", v3+"/profile/@nobody:test.local", nil, 404, "M_NOT_FOUND")
	srv.Anon().MustFail(t, "GET", v3+"/profile/"+alice.UserID, nil, 401, "M_MISSING_TOKEN")
	// Clearing the avatar.
	alice.MustDo(t, "PUT", v3+"/profile/"+alice.UserID+"/avatar_url", map[string]any{"avatar_url": ""}, 200)
	bob.MustFail(t, "GET", v3+"/profile/"+alice.UserID+"/avatar_url", nil, 404, "M_NOT_FOUND")
}

// With privacy.public_profiles, profiles are readable without a token (as
// on Synapse); changing one still needs it.
func TestPublicProfiles(t *testing.T) {
	srv := ts.Start(t, func(c *config.Config) { c.Privacy.PublicProfiles = true })
	alice := srv.Register(t, "alice")
	if got := srv.Anon().MustDo(t, "GET", v3+"/profile/"+alice.UserID+"/displayname", nil, 200); got.Get("displayname").Str != "alice" {
		t.Fatalf("public profile: %s", got.Raw)
	}
	srv.Anon().MustDo(t, "GET", v3+"/profile/"+alice.UserID, nil, 200)
	srv.Anon().MustFail(t, "GET", v3+"/profile/@nobody:test.local", nil, 404, "M_NOT_FOUND")
	srv.As("bogus").MustFail(t, "GET", v3+"/profile/"+alice.UserID, nil, 401, "M_UNKNOWN_TOKEN")
	srv.Anon().MustFail(t, "PUT", v3+"/profile/"+alice.UserID+"/displayname", map[string]any{"displayname": "x"}, 401, "M_MISSING_TOKEN")
}

func TestFilters(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	body := map[string]any{"room": map[string]any{"timeline": map[string]any{"limit": 10, "types": []string{"m.room.message"}}, "state": map[string]any{"lazy_load_members": true}}}
	id := alice.MustDo(t, "POST", v3+"/user/"+alice.UserID+"/filter", body, 200).Get("filter_id").Str
	if id == "" {
		t.Fatal("no filter_id")
	}
	got := alice.MustDo(t, "GET", v3+"/user/"+alice.UserID+"/filter/"+id, nil, 200)
	if got.Get("room.timeline.limit").Int() != 10 || !got.Get("room.state.lazy_load_members").Bool() {
		t.Fatalf("filter: %s", got.Raw)
	}
	id2 := alice.MustDo(t, "POST", v3+"/user/"+alice.UserID+"/filter", map[string]any{}, 200).Get("filter_id").Str
	if id2 == id {
		t.Fatal("filter IDs repeat")
	}
	bob.MustFail(t, "GET", v3+"/user/"+alice.UserID+"/filter/"+id, nil, 403, "M_FORBIDDEN")
	bob.MustFail(t, "GET", v3+"/user/"+bob.UserID+"/filter/"+id, nil, 404, "M_NOT_FOUND")
	bob.MustFail(t, "POST", v3+"/user/"+alice.UserID+"/filter", map[string]any{}, 403, "M_FORBIDDEN")
	alice.MustFail(t, "GET", v3+"/user/"+alice.UserID+"/filter/abc", nil, 404, "M_NOT_FOUND")
	alice.MustFail(t, "POST", v3+"/user/"+alice.UserID+"/filter", map[string]any{"room": map[string]any{"timeline": map[string]any{"limit": "ten"}}}, 400, "M_BAD_JSON")
	alice.MustFail(t, "POST", v3+"/user/"+alice.UserID+"/filter", map[string]any{"event_format": "xml"}, 400, "M_BAD_JSON")
}

func TestAccountData(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(t, nil)
	global := v3 + "/user/" + alice.UserID + "/account_data/org.example.settings"
	perRoom := v3 + "/user/" + alice.UserID + "/rooms/" + ts.PathEscape(room) + "/account_data/m.tag"

	alice.MustFail(t, "GET", global, nil, 404, "M_NOT_FOUND")
	alice.MustDo(t, "PUT", global, map[string]any{"theme": "dark"}, 200)
	alice.MustDo(t, "PUT", perRoom, map[string]any{"tags": map[string]any{"m.favourite": map[string]any{}}}, 200)
	if got := alice.MustDo(t, "GET", global, nil, 200); got.Get("theme").Str != "dark" {
		t.Fatalf("global: %s", got.Raw)
	}
	if got := alice.MustDo(t, "GET", perRoom, nil, 200); !got.Get(`tags.m\.favourite`).Exists() {
		t.Fatalf("room: %s", got.Raw)
	}
	// The global and per-room namespaces are separate.
	alice.MustFail(t, "GET", v3+"/user/"+alice.UserID+"/account_data/m.tag", nil, 404, "M_NOT_FOUND")
	alice.MustDo(t, "PUT", global, map[string]any{"theme": "light"}, 200)
	if got := alice.MustDo(t, "GET", global, nil, 200); got.Get("theme").Str != "light" {
		t.Fatalf("overwrite: %s", got.Raw)
	}

	bob.MustFail(t, "GET", global, nil, 403, "M_FORBIDDEN")
	bob.MustFail(t, "PUT", global, map[string]any{"theme": "pwned"}, 403, "M_FORBIDDEN")
	bob.MustFail(t, "PUT", perRoom, map[string]any{}, 403, "M_FORBIDDEN")
	alice.MustFail(t, "PUT", v3+"/user/"+alice.UserID+"/account_data/m.fully_read", map[string]any{}, 405, "M_BAD_JSON")
	alice.MustFail(t, "PUT", v3+"/user/"+alice.UserID+"/account_data/m.push_rules", map[string]any{}, 405, "M_BAD_JSON")
	alice.MustFail(t, "PUT", global, `["list"]`, 400, "M_BAD_JSON")
	alice.MustFail(t, "PUT", global, `{broken`, 400, "M_NOT_JSON")
	alice.MustFail(t, "PUT", v3+"/user/"+alice.UserID+"/rooms/not-a-room/account_data/m.tag", map[string]any{}, 400, "M_INVALID_PARAM")
	if got := alice.MustDo(t, "GET", global, nil, 200); got.Get("theme").Str != "light" {
		t.Fatalf("refused writes changed data: %s", got.Raw)
	}
	srv.Anon().MustFail(t, "GET", global, nil, 401, "M_MISSING_TOKEN")

	// Deleting (MSC3391), by DELETE or by PUT {}: gone from GET and from
	// initial syncs; an incremental sync says so with empty content.
	const unstable = "/_matrix/client/unstable/org.matrix.msc3391/user/"
	since := alice.MustDo(t, "GET", v3+"/sync", nil, 200).Get("next_batch").Str
	bob.MustFail(t, "DELETE", unstable+alice.UserID+"/account_data/org.example.settings", nil, 403, "M_FORBIDDEN")
	alice.MustDo(t, "DELETE", unstable+alice.UserID+"/account_data/org.example.settings", nil, 200)
	alice.MustDo(t, "PUT", perRoom, map[string]any{}, 200)
	alice.MustFail(t, "GET", global, nil, 404, "M_NOT_FOUND")
	alice.MustFail(t, "GET", perRoom, nil, 404, "M_NOT_FOUND")
	inc := alice.MustDo(t, "GET", v3+"/sync?since="+since, nil, 200)
	if inc.Get(`account_data.events.#(type=="org.example.settings").content`).Raw != "{}" ||
		inc.Get(`rooms.join.`+ts.Esc(room)+`.account_data.events.#(type=="m.tag").content`).Raw != "{}" {
		t.Fatalf("deletion in an incremental sync: %s", inc.Raw)
	}
	initial := alice.MustDo(t, "GET", v3+"/sync", nil, 200)
	if initial.Get(`account_data.events.#(type=="org.example.settings")`).Exists() ||
		initial.Get(`rooms.join.`+ts.Esc(room)+`.account_data.events.#(type=="m.tag")`).Exists() {
		t.Fatalf("deleted account data in an initial sync: %s", initial.Raw)
	}
	alice.MustFail(t, "DELETE", unstable+alice.UserID+"/account_data/m.push_rules", nil, 405, "M_BAD_JSON")
}
