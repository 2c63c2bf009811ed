package directory_test

import (
	"testing"

	"github.com/redoubt-systems/redoubt/config"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

const c = "/_matrix/client/v3"

func TestUserDirectory(t *testing.T) {
	srv := ts.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	bob.MustDo(t, "PUT", c+"/profile/"+ts.PathEscape(bob.UserID)+"/displayname", map[string]any{"displayname": "Robert Builder"}, 200)
	carol := srv.Register(t, "carol")
	gone := srv.Register(t, "gonebob")
	gone.MustDo(t, "POST", c+"/account/deactivate", map[string]any{"auth": ts.PasswordAuth("gonebob")}, 200)

	search := func(cl *ts.Client, term string, limit int) []string {
		t.Helper()
		body := map[string]any{"search_term": term}
		if limit > 0 {
			body["limit"] = limit
		}
		var ids []string
		for _, r := range cl.MustDo(t, "POST", c+"/user_directory/search", body, 200).Get("results").Array() {
			ids = append(ids, r.Get("user_id").Str)
		}
		return ids
	}
	// Everyone in the organisation is findable, by name or ID; deactivated
	// users never are.
	if got := search(alice, "builder", 0); len(got) != 1 || got[0] != bob.UserID {
		t.Fatalf("by display name: %v", got)
	}
	if got := search(alice, "bob", 0); len(got) != 1 || got[0] != bob.UserID {
		t.Fatalf("by user ID (gonebob is deactivated): %v", got)
	}
	res := alice.MustDo(t, "POST", c+"/user_directory/search", map[string]any{"search_term": "", "limit": 2}, 200)
	if len(res.Get("results").Array()) != 2 || !res.Get("limited").Bool() {
		t.Fatalf("limit: %s", res.Raw)
	}
	if r := alice.MustDo(t, "POST", c+"/user_directory/search", map[string]any{"search_term": "builder"}, 200); r.Get("results.0.display_name").Str != "Robert Builder" {
		t.Fatalf("result: %s", r.Raw)
	}
	alice.MustFail(t, "POST", c+"/user_directory/search", map[string]any{}, 400, "M_MISSING_PARAM")
	alice.MustFail(t, "POST", c+"/user_directory/search", map[string]any{"search_term": 5}, 400, "M_BAD_JSON")
	alice.MustFail(t, "POST", c+"/user_directory/search", map[string]any{"search_term": "x", "limit": -1}, 400, "M_INVALID_PARAM")
	srv.Anon().MustFail(t, "POST", c+"/user_directory/search", map[string]any{"search_term": "x"}, 401, "M_MISSING_TOKEN")

	// Without search_all_users: only people one shares a room with (or who
	// are in a public room), not oneself, as on Synapse.
	srv = ts.Start(t, func(cfg *config.Config) { cfg.UserDirectory.SearchAllUsers = false })
	alice, bob, carol = srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
	room := alice.CreateRoom(t, nil)
	alice.Invite(t, room, bob.UserID)
	bob.Join(t, room)
	if got := search(alice, "", 0); len(got) != 1 || got[0] != bob.UserID {
		t.Fatalf("shared rooms only: %v", got)
	}
	if got := search(carol, "bob", 0); len(got) != 0 {
		t.Fatalf("carol shares no room with bob: %v", got)
	}
	if got := search(carol, "carol", 0); len(got) != 0 {
		t.Fatalf("carol, in no room, finds herself: %v", got)
	}
}

func TestRoomDirectory(t *testing.T) {
	srv := ts.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	public := alice.CreateRoom(t, map[string]any{"visibility": "public", "name": "Town square", "topic": "everything"})
	private := alice.CreateRoom(t, map[string]any{"name": "Secret plans"})
	list := bob.MustDo(t, "GET", c+"/publicRooms", nil, 200)
	if list.Get("chunk.#").Int() != 1 || list.Get("chunk.0.room_id").Str != public || list.Get("chunk.0.name").Str != "Town square" ||
		list.Get("chunk.0.num_joined_members").Int() != 1 || list.Get("chunk.0.join_rule").Str != "public" {
		t.Fatalf("publicRooms: %s", list.Raw)
	}
	if got := bob.MustDo(t, "POST", c+"/publicRooms", map[string]any{"filter": map[string]any{"generic_search_term": "secret"}}, 200); got.Get("chunk.#").Int() != 0 {
		t.Fatalf("a private room leaked: %s", got.Raw)
	}
	if got := bob.MustDo(t, "GET", c+"/directory/list/room/"+ts.PathEscape(public), nil, 200).Get("visibility").Str; got != "public" {
		t.Fatalf("visibility %q", got)
	}
	if got := bob.MustDo(t, "GET", c+"/directory/list/room/"+ts.PathEscape(private), nil, 200).Get("visibility").Str; got != "private" {
		t.Fatalf("visibility %q", got)
	}
	// Only a member with the power to change the room's addresses publishes.
	bob.MustFail(t, "PUT", c+"/directory/list/room/"+ts.PathEscape(private), map[string]any{"visibility": "public"}, 403, "M_FORBIDDEN")
	alice.MustDo(t, "PUT", c+"/directory/list/room/"+ts.PathEscape(private), map[string]any{"visibility": "public"}, 200)
	if got := bob.MustDo(t, "POST", c+"/publicRooms", map[string]any{"limit": 1}, 200); got.Get("chunk.#").Int() != 1 || got.Get("next_batch").Str != "1" || got.Get("total_room_count_estimate").Int() != 2 {
		t.Fatalf("paging: %s", got.Raw)
	}
	if got := bob.MustDo(t, "GET", c+"/publicRooms?since=1&limit=1", nil, 200); got.Get("chunk.#").Int() != 1 || got.Get("prev_batch").Str != "0" {
		t.Fatalf("second page: %s", got.Raw)
	}
	alice.MustDo(t, "PUT", c+"/directory/list/room/"+ts.PathEscape(private), map[string]any{"visibility": "private"}, 200)
	alice.MustFail(t, "PUT", c+"/directory/list/room/"+ts.PathEscape(private), map[string]any{"visibility": "hidden"}, 400, "M_INVALID_PARAM")
	bob.MustFail(t, "GET", c+"/directory/list/room/"+ts.PathEscape("!nope:test.local"), nil, 404, "M_NOT_FOUND")
	bob.MustFail(t, "GET", c+"/publicRooms?server=elsewhere.org", nil, 404, "M_NOT_FOUND")
	bob.MustFail(t, "GET", c+"/publicRooms?since=x", nil, 400, "M_INVALID_PARAM")
	bob.MustFail(t, "GET", c+"/publicRooms?limit=x", nil, 400, "M_INVALID_PARAM")
	srv.Anon().MustFail(t, "GET", c+"/publicRooms", nil, 401, "M_MISSING_TOKEN")
}
