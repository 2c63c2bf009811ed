package syncapi_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/config"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

const v3 = "/_matrix/client/v3"

func roomPath(roomID, rest string) string { return v3 + "/rooms/" + ts.PathEscape(roomID) + rest }

// doSync runs one /sync; params are query parameters ("since", "filter", ...).
func doSync(t *testing.T, c *ts.Client, params ...string) gjson.Result {
	t.Helper()
	q := url.Values{}
	for i := 0; i+1 < len(params); i += 2 {
		q.Set(params[i], params[i+1])
	}
	return c.MustDo(t, "GET", v3+"/sync?"+q.Encode(), nil, 200)
}

func joined(res gjson.Result, roomID string) gjson.Result {
	return res.Get("rooms.join." + ts.Esc(roomID))
}

func eventIDs(list gjson.Result) []string {
	var ids []string
	for _, e := range list.Array() {
		ids = append(ids, e.Get("event_id").Str)
	}
	return ids
}

func TestInitialSync(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	room := alice.CreateRoom(t, map[string]any{"name": "general", "preset": "public_chat"})
	bob.Join(t, room)
	var sent []string
	for i := range 15 {
		sent = append(sent, alice.Send(t, room, fmt.Sprintf("m%d", i)))
	}
	invite := carol.CreateRoom(t, map[string]any{"name": "secret plans", "invite": []string{alice.UserID}})
	alice.MustDo(t, "PUT", v3+"/user/"+alice.UserID+"/account_data/org.example.a", map[string]any{"x": 1}, 200)
	alice.MustDo(t, "PUT", v3+"/user/"+alice.UserID+"/rooms/"+ts.PathEscape(room)+"/account_data/m.tag", map[string]any{"tags": map[string]any{"u.work": map[string]any{}}}, 200)

	res := doSync(t, alice)
	if !strings.HasPrefix(res.Get("next_batch").Str, "s") {
		t.Fatalf("next_batch: %s", res.Get("next_batch").Raw)
	}
	jr := joined(res, room)
	tl := jr.Get("timeline")
	if n := tl.Get("events.#").Int(); n != 10 || !tl.Get("limited").Bool() {
		t.Fatalf("timeline: %d events, limited=%v", n, tl.Get("limited").Bool())
	}
	if got := eventIDs(tl.Get("events")); got[9] != sent[14] || got[0] != sent[5] {
		t.Fatalf("timeline order: %v", got)
	}
	// The state is the state before the timeline, and complete.
	state := jr.Get("state.events")
	for _, want := range []string{"m.room.create", "m.room.power_levels", "m.room.join_rules", "m.room.name"} {
		if !state.Get(`#(type=="` + want + `")`).Exists() {
			t.Errorf("state lacks %s", want)
		}
	}
	if state.Get(`#(state_key=="`+bob.UserID+`").content.membership`).Str != "join" {
		t.Errorf("state lacks bob's membership: %s", state.Raw)
	}
	if jr.Get(`summary.m\.joined_member_count`).Int() != 2 || jr.Get(`summary.m\.heroes.0`).Str != bob.UserID {
		t.Errorf("summary: %s", jr.Get("summary").Raw)
	}
	if jr.Get(`account_data.events.#(type=="m.tag")`).Raw == "" {
		t.Errorf("room account data: %s", jr.Get("account_data").Raw)
	}
	if !jr.Get("unread_notifications.notification_count").Exists() {
		t.Errorf("no unread_notifications: %s", jr.Raw)
	}
	// prev_batch continues with /messages.
	more := alice.MustDo(t, "GET", roomPath(room, "/messages?dir=b&limit=5&from="+tl.Get("prev_batch").Str), nil, 200)
	if got := eventIDs(more.Get("chunk")); len(got) != 5 || got[0] != sent[4] || got[4] != sent[0] {
		t.Fatalf("prev_batch pagination: %v", got)
	}
	// Global account data, with the default push rules.
	ad := res.Get("account_data.events")
	if ad.Get(`#(type=="org.example.a").content.x`).Int() != 1 {
		t.Errorf("account data: %s", ad.Raw)
	}
	if ad.Get(`#(type=="m.push_rules").content.global.override.0.rule_id`).Str != ".m.rule.master" {
		t.Errorf("push rules in account data: %s", ad.Raw)
	}
	// The invite with its stripped state.
	is := res.Get("rooms.invite." + ts.Esc(invite) + ".invite_state.events")
	if is.Get(`#(type=="m.room.name").content.name`).Str != "secret plans" ||
		is.Get(`#(state_key=="`+alice.UserID+`").content.membership`).Str != "invite" ||
		is.Get(`#(type=="m.room.power_levels")`).Exists() {
		t.Errorf("invite_state: %s", is.Raw)
	}
	if _, ok := res.Get("rooms.join").Map()[invite]; ok {
		t.Error("invited room listed as joined")
	}
	// Presence of users sharing a room: syncing set alice online, bob's sync
	// shows it.
	bres := doSync(t, bob)
	if bres.Get(`presence.events.#(sender=="`+alice.UserID+`").content.presence`).Str != "online" {
		t.Errorf("presence: %s", bres.Get("presence").Raw)
	}
	if bres.Get(`presence.events.#(sender=="` + carol.UserID + `")`).Exists() {
		t.Error("presence leaked to a user sharing no room")
	}
}

func TestIncrementalSync(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	since := doSync(t, alice).Get("next_batch").Str

	// Nothing new: an empty response and the same position.
	empty := doSync(t, alice, "since", since)
	if _, ok := empty.Get("rooms.join").Map()[room]; ok {
		t.Fatalf("unchanged room in incremental sync: %s", empty.Raw)
	}

	id := bob.Send(t, room, "hello")
	res := doSync(t, alice, "since", since)
	jr := joined(res, room)
	if got := eventIDs(jr.Get("timeline.events")); len(got) != 1 || got[0] != id {
		t.Fatalf("incremental timeline: %v", got)
	}
	if jr.Get("timeline.limited").Bool() || jr.Get("state.events.#").Int() != 0 {
		t.Fatalf("unlimited incremental sync carries state: %s", jr.Raw)
	}
	since = res.Get("next_batch").Str

	// A gap larger than the limit: limited, with the state changes that
	// happened in the gap but before the timeline.
	alice.MustDo(t, "PUT", roomPath(room, "/state/m.room.topic/"), map[string]any{"topic": "in the gap"}, 200)
	var sent []string
	for i := range 5 {
		sent = append(sent, bob.Send(t, room, fmt.Sprintf("gap %d", i)))
	}
	res = doSync(t, alice, "since", since, "filter", `{"room":{"timeline":{"limit":3}}}`)
	jr = joined(res, room)
	if got := eventIDs(jr.Get("timeline.events")); len(got) != 3 || got[2] != sent[4] || !jr.Get("timeline.limited").Bool() {
		t.Fatalf("limited timeline: %v %s", got, jr.Get("timeline.limited").Raw)
	}
	if jr.Get(`state.events.#(type=="m.room.topic").content.topic`).Str != "in the gap" {
		t.Fatalf("gap state: %s", jr.Get("state").Raw)
	}
	// The gap is fillable from prev_batch.
	gap := alice.MustDo(t, "GET", roomPath(room, "/messages?dir=b&limit=2&from="+jr.Get("timeline.prev_batch").Str), nil, 200)
	if got := eventIDs(gap.Get("chunk")); len(got) != 2 || got[0] != sent[1] {
		t.Fatalf("gap pagination: %v", got)
	}
	since = res.Get("next_batch").Str

	// A room joined since the token arrives whole.
	other := bob.CreateRoom(t, map[string]any{"preset": "public_chat", "name": "new room"})
	alice.Join(t, other)
	res = doSync(t, alice, "since", since)
	nr := joined(res, other)
	if nr.Get(`state.events.#(type=="m.room.name").content.name`).Str != "new room" &&
		nr.Get(`timeline.events.#(type=="m.room.name").content.name`).Str != "new room" {
		t.Fatalf("newly joined room: %s", nr.Raw)
	}
	since = res.Get("next_batch").Str

	// full_state sends every joined room with its whole state.
	res = doSync(t, alice, "since", since, "full_state", "true")
	if !joined(res, room).Get(`state.events.#(type=="m.room.create")`).Exists() || !joined(res, other).Exists() {
		t.Fatalf("full_state: %s", res.Get("rooms.join").Raw)
	}
}

func TestInvitesLeavesKicksBans(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	since := doSync(t, bob).Get("next_batch").Str

	room := alice.CreateRoom(t, map[string]any{"name": "party"})
	alice.Invite(t, room, bob.UserID)
	res := doSync(t, bob, "since", since)
	if res.Get("rooms.invite."+ts.Esc(room)+`.invite_state.events.#(type=="m.room.name").content.name`).Str != "party" {
		t.Fatalf("invite: %s", res.Get("rooms").Raw)
	}
	since = res.Get("next_batch").Str
	// The invite is not repeated.
	if doSync(t, bob, "since", since).Get("rooms.invite." + ts.Esc(room)).Exists() {
		t.Fatal("invite repeated")
	}

	bob.Join(t, room)
	res = doSync(t, bob, "since", since)
	if !joined(res, room).Exists() || res.Get("rooms.invite."+ts.Esc(room)).Exists() {
		t.Fatalf("join: %s", res.Get("rooms").Raw)
	}
	since = res.Get("next_batch").Str

	alice.Send(t, room, "before the kick")
	alice.MustDo(t, "POST", roomPath(room, "/kick"), map[string]any{"user_id": bob.UserID, "reason": "bye"}, 200)
	alice.Send(t, room, "after the kick")
	res = doSync(t, bob, "since", since)
	left := res.Get("rooms.leave." + ts.Esc(room))
	tl := left.Get("timeline.events")
	last := tl.Get(fmt.Sprint(tl.Get("#").Int() - 1))
	if last.Get("type").Str != "m.room.member" || last.Get("content.membership").Str != "leave" || last.Get("content.reason").Str != "bye" {
		t.Fatalf("kick in leave section: %s", left.Raw)
	}
	if strings.Contains(left.Raw, "after the kick") {
		t.Fatal("events after the kick leaked")
	}
	if joined(res, room).Exists() {
		t.Fatal("kicked room still joined")
	}
	since = res.Get("next_batch").Str

	alice.MustDo(t, "POST", roomPath(room, "/ban"), map[string]any{"user_id": bob.UserID}, 200)
	res = doSync(t, bob, "since", since)
	if res.Get("rooms.leave."+ts.Esc(room)+`.timeline.events.#(content.membership=="ban")`).Raw == "" {
		t.Fatalf("ban: %s", res.Get("rooms").Raw)
	}

	// Left rooms appear in an initial sync only with include_leave, and not
	// once forgotten.
	if doSync(t, bob).Get("rooms.leave." + ts.Esc(room)).Exists() {
		t.Fatal("left room in initial sync without include_leave")
	}
	if !doSync(t, bob, "filter", `{"room":{"include_leave":true}}`).Get("rooms.leave." + ts.Esc(room)).Exists() {
		t.Fatal("include_leave ignored")
	}
	bob.MustDo(t, "POST", roomPath(room, "/forget"), map[string]any{}, 200)
	if doSync(t, bob, "filter", `{"room":{"include_leave":true}}`).Get("rooms.leave." + ts.Esc(room)).Exists() {
		t.Fatal("forgotten room still synced")
	}
	// ... but a leave since the token is sent even if forgotten already: the
	// user's other devices must learn of it.
	if !doSync(t, bob, "since", since).Get("rooms.leave." + ts.Esc(room)).Exists() {
		t.Fatal("a forgotten room's leave since the token is not in an incremental sync")
	}
	// Its history is no longer bob's to read.
	bob.MustFail(t, "GET", roomPath(room, "/messages?dir=b"), nil, 403, "M_FORBIDDEN")

	// Rejecting an invite.
	room2 := alice.CreateRoom(t, map[string]any{"invite": []string{bob.UserID}})
	since = doSync(t, bob).Get("next_batch").Str
	bob.MustDo(t, "POST", roomPath(room2, "/leave"), map[string]any{}, 200)
	if !doSync(t, bob, "since", since).Get("rooms.leave." + ts.Esc(room2)).Exists() {
		t.Fatal("rejected invite not in leave")
	}
}

func TestSyncFilters(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	carol := srv.Register(t, "carol")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	other := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	carol.Join(t, room)
	bob.Send(t, room, "from bob")
	carol.Send(t, room, "from carol")
	alice.MustDo(t, "PUT", roomPath(room, "/send/m.reaction/r1"), map[string]any{}, 200)

	filterID := alice.MustDo(t, "POST", v3+"/user/"+alice.UserID+"/filter",
		map[string]any{"room": map[string]any{"timeline": map[string]any{"types": []string{"m.room.message"}}}}, 200).Get("filter_id").Str
	for _, tc := range []struct {
		name, filter string
		check        func(res gjson.Result) error
	}{
		{"stored filter", filterID, func(res gjson.Result) error {
			for _, e := range joined(res, room).Get("timeline.events").Array() {
				if e.Get("type").Str != "m.room.message" {
					return fmt.Errorf("type %s passed", e.Get("type").Str)
				}
			}
			return nil
		}},
		{"not_types", `{"room":{"timeline":{"not_types":["m.room.message","m.room.member"]}}}`, func(res gjson.Result) error {
			if strings.Contains(joined(res, room).Get("timeline").Raw, `"m.room.message"`) {
				return fmt.Errorf("message passed")
			}
			return nil
		}},
		{"senders", `{"room":{"timeline":{"senders":["` + bob.UserID + `"]}}}`, func(res gjson.Result) error {
			for _, e := range joined(res, room).Get("timeline.events").Array() {
				if e.Get("sender").Str != bob.UserID {
					return fmt.Errorf("sender %s passed", e.Get("sender").Str)
				}
			}
			return nil
		}},
		{"rooms", `{"room":{"rooms":["` + other + `"]}}`, func(res gjson.Result) error {
			if joined(res, room).Exists() || !joined(res, other).Exists() {
				return fmt.Errorf("rooms filter: %s", res.Get("rooms.join").Raw)
			}
			return nil
		}},
		{"not_rooms", `{"room":{"not_rooms":["` + other + `"]}}`, func(res gjson.Result) error {
			if !joined(res, room).Exists() || joined(res, other).Exists() {
				return fmt.Errorf("not_rooms filter")
			}
			return nil
		}},
		{"lazy members", `{"room":{"timeline":{"limit":1},"state":{"lazy_load_members":true}}}`, func(res gjson.Result) error {
			members := joined(res, room).Get(`state.events.#(type=="m.room.member")#.state_key`).Array()
			// The last event is alice's reaction: only alice's member event.
			if len(members) != 1 || members[0].Str != alice.UserID {
				return fmt.Errorf("lazy members: %v", members)
			}
			if !joined(res, room).Get(`state.events.#(type=="m.room.create")`).Exists() {
				return fmt.Errorf("lazy loading dropped non-member state")
			}
			return nil
		}},
		{"state types", `{"room":{"state":{"types":["m.room.create"]}}}`, func(res gjson.Result) error {
			for _, e := range joined(res, room).Get("state.events").Array() {
				if e.Get("type").Str != "m.room.create" {
					return fmt.Errorf("state filter let %s through", e.Get("type").Str)
				}
			}
			return nil
		}},
		{"account data", `{"account_data":{"not_types":["m.push_rules"]}}`, func(res gjson.Result) error {
			if res.Get(`account_data.events.#(type=="m.push_rules")`).Exists() {
				return fmt.Errorf("account_data filter ignored")
			}
			return nil
		}},
		{"presence", `{"presence":{"types":[]}}`, func(res gjson.Result) error {
			if res.Get("presence.events.#").Int() != 0 {
				return fmt.Errorf("presence filter ignored")
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.check(doSync(t, alice, "filter", tc.filter)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSyncErrors(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	bobFilter := bob.MustDo(t, "POST", v3+"/user/"+bob.UserID+"/filter", map[string]any{}, 200).Get("filter_id").Str
	for _, q := range []string{
		"since=garbage", "since=s1_2_3", "since=s1_2_3_4_5_6_x", "since=s-1_0_0_0_0_0_0",
		"timeout=soon", "timeout=-5", "full_state=yes", "set_presence=busy",
		"filter=999", "filter=" + url.QueryEscape(`{"room":{"timeline":{"limit":"x"}}}`), "filter=abc",
		"filter=" + url.QueryEscape(`{"event_format":"xml"}`),
	} {
		alice.MustFail(t, "GET", v3+"/sync?"+q, nil, 400, "M_INVALID_PARAM")
	}
	// Another user's filter ID is unknown to alice (IDs are per user).
	if bobFilter != "0" {
		alice.MustFail(t, "GET", v3+"/sync?filter="+bobFilter, nil, 400, "M_INVALID_PARAM")
	}
	srv.Anon().MustFail(t, "GET", v3+"/sync", nil, 401, "M_MISSING_TOKEN")
	// A token from the future is treated as now, not an error.
	doSync(t, alice, "since", "s999999_0_0_0_0_0_0", "timeout", "0")
}

// A long-polling sync returns when something arrives for its user.
func TestLongPollWakes(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	since := doSync(t, alice).Get("next_batch").Str

	done := make(chan gjson.Result, 1)
	go func() { done <- doSync(t, alice, "since", since, "timeout", "30000") }()
	// Wait until the request is registered with the notifier.
	for srv.Notifier.Waiting() == 0 {
		time.Sleep(time.Millisecond)
	}
	id := bob.Send(t, room, "wake up")
	res := <-done
	if got := eventIDs(joined(res, room).Get("timeline.events")); len(got) != 1 || got[0] != id {
		t.Fatalf("woken sync: %v", got)
	}
	// A change for someone else does not wake it: it times out empty.
	other := srv.Register(t, "other")
	otherRoom := other.CreateRoom(t, nil)
	since = res.Get("next_batch").Str
	go func() { done <- doSync(t, alice, "since", since, "timeout", "300") }()
	other.Send(t, otherRoom, "not for alice")
	res = <-done
	if res.Get("rooms.join").Raw != "{}" {
		t.Fatalf("sync woken by another user's room: %s", res.Get("rooms.join").Raw)
	}
}

// A message wakes the room's members as the room's head knew them when it
// was built (rooms.Committed.Joined): one who joined after the messages
// before it is among them.
func TestMessageWakesNewMember(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	alice.Send(t, room, "before") // the head now knows alice alone
	for i, name := range []string{"carol", "dave"} {
		u := srv.Register(t, name)
		u.Join(t, room)
		since := doSync(t, u).Get("next_batch").Str
		done := make(chan gjson.Result, 1)
		go func() { done <- doSync(t, u, "since", since, "timeout", "60000") }()
		for srv.Notifier.Waiting() == 0 {
			time.Sleep(time.Millisecond)
		}
		id := alice.Send(t, room, fmt.Sprintf("after %d", i))
		select {
		case res := <-done:
			if got := eventIDs(joined(res, room).Get("timeline.events")); len(got) != 1 || got[0] != id {
				t.Fatalf("%s woke with %v", name, got)
			}
		case <-time.After(30 * time.Second): // a wake-up takes milliseconds; the long poll a minute
			t.Fatalf("%s, joined after the room's last message, was not woken by the next", name)
		}
	}
}

func TestPresenceDisabled(t *testing.T) {
	srv := ts.Start(t, func(c *config.Config) { c.Presence.Enabled = false })
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	alice.MustDo(t, "PUT", v3+"/presence/"+alice.UserID+"/status", map[string]any{"presence": "online", "status_msg": "hi"}, 200)
	if p := bob.MustDo(t, "GET", v3+"/presence/"+alice.UserID+"/status", nil, 200); p.Get("presence").Str != "offline" {
		t.Fatalf("presence while disabled: %s", p.Raw)
	}
	if doSync(t, bob).Get("presence.events.#").Int() != 0 {
		t.Fatal("presence synced while disabled")
	}
	var n int
	if err := srv.DB.RawRead(t.Context(), "SELECT COUNT(*) FROM presence", &n); err != nil || n != 0 {
		t.Fatalf("presence stored while disabled: %d %v", n, err)
	}
}

// A timeline limit of 0 gives an empty timeline, everything as state: for a
// left room, the state as the user left it, their leave included.
func TestEmptyTimeline(t *testing.T) {
	srv := ts.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	alice.MustDo(t, "PUT", roomPath(room, "/state/org.example.mine/"), map[string]any{"k": "before"}, 200)
	bob.MustDo(t, "POST", roomPath(room, "/leave"), map[string]any{}, 200)
	alice.MustDo(t, "PUT", roomPath(room, "/state/org.example.mine/"), map[string]any{"k": "after"}, 200)
	left := doSync(t, bob, "filter", `{"room":{"timeline":{"limit":0},"include_leave":true}}`).Get("rooms.leave." + ts.Esc(room))
	if left.Get("timeline.events.#").Int() != 0 || left.Get(`state.events.#(type=="org.example.mine").content.k`).Str != "before" ||
		left.Get(`state.events.#(state_key=="`+bob.UserID+`").content.membership`).Str != "leave" {
		t.Fatalf("left room with an empty timeline: %s", left.Raw)
	}
	jr := joined(doSync(t, alice, "filter", `{"room":{"timeline":{"limit":0}}}`), room)
	if jr.Get("timeline.events.#").Int() != 0 || !jr.Get("timeline.limited").Bool() || jr.Get(`state.events.#(type=="org.example.mine").content.k`).Str != "after" {
		t.Fatalf("joined room with an empty timeline: %s", jr.Raw)
	}
}

// Users one ignores (m.ignored_user_list) send nothing one sees: no
// messages in sync or /messages, no invites; their state events stay, as
// the room's state must be whole.
func TestIgnoredUsers(t *testing.T) {
	srv := ts.Start(t)
	alice, bob, eve := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "eve")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	eve.Join(t, room)
	bob.MustDo(t, "PUT", v3+"/user/"+bob.UserID+"/account_data/m.ignored_user_list",
		map[string]any{"ignored_users": map[string]any{eve.UserID: map[string]any{}}}, 200)
	since := doSync(t, bob).Get("next_batch").Str
	eve.Send(t, room, "from eve")
	alice.Send(t, room, "from alice")
	evesRoom := eve.CreateRoom(t, map[string]any{"invite": []string{bob.UserID}})
	res := doSync(t, bob, "since", since)
	tl := joined(res, room).Get("timeline.events")
	if tl.Get(`#(content.body=="from eve")`).Exists() || !tl.Get(`#(content.body=="from alice")`).Exists() {
		t.Fatalf("timeline: %s", tl.Raw)
	}
	if res.Get("rooms.invite." + ts.Esc(evesRoom)).Exists() {
		t.Fatalf("invite from an ignored user: %s", res.Get("rooms.invite").Raw)
	}
	msgs := bob.MustDo(t, "GET", roomPath(room, "/messages?dir=b&limit=50"), nil, 200).Get("chunk")
	if msgs.Get(`#(content.body=="from eve")`).Exists() || !msgs.Get(`#(state_key=="`+eve.UserID+`")`).Exists() {
		t.Fatalf("/messages: %s", msgs.Raw)
	}
	if initial := doSync(t, bob); initial.Get("rooms.invite." + ts.Esc(evesRoom)).Exists() {
		t.Fatal("invite from an ignored user in an initial sync")
	}
	sliding := bob.MustDo(t, "POST", ssPath, map[string]any{"lists": map[string]any{"all": map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 10}}}, 200)
	if tl := sliding.Get("rooms." + ts.Esc(room) + ".timeline"); tl.Get(`#(content.body=="from eve")`).Exists() || !tl.Get(`#(content.body=="from alice")`).Exists() {
		t.Fatalf("sliding sync timeline: %s", tl.Raw)
	}
}

// use_state_after (MSC4222): each room's state is that at the end of its
// timeline, as state_after, state events of the timeline included; there is
// no state section.
func TestStateAfter(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "name": "one"})
	since := doSync(t, alice).Get("next_batch").Str
	alice.MustDo(t, "PUT", roomPath(room, "/state/m.room.name/"), map[string]any{"name": "two"}, 200)
	alice.Send(t, room, "hello")
	for _, param := range []string{"use_state_after", "org.matrix.msc4222.use_state_after"} {
		jr := joined(doSync(t, alice, param, "true", "filter", `{"room":{"timeline":{"limit":1}}}`), room)
		if jr.Get("state").Exists() || jr.Get(`state_after.events.#(type=="m.room.name").content.name`).Str != "two" ||
			!jr.Get(`state_after.events.#(type=="m.room.create")`).Exists() {
			t.Fatalf("initial sync with %s: %s", param, jr.Raw)
		}
		jr = joined(doSync(t, alice, param, "true", "since", since), room)
		if jr.Get("state").Exists() || jr.Get(`state_after.events.#(type=="m.room.name").content.name`).Str != "two" ||
			!jr.Get(`timeline.events.#(type=="m.room.name")`).Exists() || jr.Get(`state_after.events.#(type=="m.room.create")`).Exists() {
			t.Fatalf("incremental sync with %s: %s", param, jr.Raw)
		}
	}
	// Without it, the state before the timeline.
	jr := joined(doSync(t, alice, "filter", `{"room":{"timeline":{"limit":1}}}`), room)
	if jr.Get("state_after").Exists() || jr.Get(`state.events.#(type=="m.room.name").content.name`).Str != "two" {
		t.Fatalf("without use_state_after: %s", jr.Raw)
	}
	alice.MustFail(t, "GET", v3+"/sync?use_state_after=maybe", nil, 400, "M_INVALID_PARAM")
}

// /members?at= a timeline's prev_batch gives the members as of that point;
// for a room whose whole history is in the timeline, that is its end (there
// is nothing before its creation), as Synapse and Dendrite have it.
func TestMembersAtPrevBatch(t *testing.T) {
	srv := ts.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	alice.Send(t, room, "hello")
	prev := joined(doSync(t, alice), room).Get("timeline.prev_batch").Str
	bob.Join(t, room)
	bob.Send(t, room, "hello back")
	members := alice.MustDo(t, "GET", roomPath(room, "/members?at="+prev), nil, 200).Get("chunk")
	if members.Get("#").Int() != 1 || members.Get("0.state_key").Str != alice.UserID {
		t.Fatalf("members at %s: %s", prev, members.Raw)
	}
	// A limited timeline's prev_batch is before its first event.
	jr := joined(doSync(t, alice, "filter", `{"room":{"timeline":{"limit":1}}}`), room)
	at := alice.MustDo(t, "GET", roomPath(room, "/members?at="+jr.Get("timeline.prev_batch").Str), nil, 200).Get("chunk")
	if !jr.Get("timeline.limited").Bool() || at.Get("#").Int() != 2 {
		t.Fatalf("members before bob's message: %s", at.Raw)
	}
	// Before the room existed there were no members (not its current ones).
	alice.MustFail(t, "GET", roomPath(room, "/members?at=t0"), nil, 404, "M_NOT_FOUND")
}

// An incremental sync with lazy-loaded members sends the member events of
// the timeline's senders as they were before it, whenever those were set,
// and no one else's.
func TestIncrementalLazyMembers(t *testing.T) {
	srv := ts.Start(t)
	alice, bob, carol, dave := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol"), srv.Register(t, "dave")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	for _, c := range []*ts.Client{bob, carol, dave} {
		c.Join(t, room)
	}
	carol.MustDo(t, "PUT", v3+"/rooms/"+ts.PathEscape(room)+"/state/m.room.member/"+ts.PathEscape(carol.UserID),
		map[string]any{"membership": "join", "displayname": "Carol One"}, 200)
	filter := url.QueryEscape(`{"room":{"state":{"lazy_load_members":true}}}`)
	token := bob.MustDo(t, "GET", v3+"/sync?filter="+filter, nil, 200).Get("next_batch").Str
	alice.Send(t, room, "before carol")
	carol.Send(t, room, "hello")
	res := bob.MustDo(t, "GET", v3+"/sync?filter="+filter+"&since="+url.QueryEscape(token), nil, 200)
	members := map[string]string{}
	for _, e := range joined(res, room).Get(`state.events.#(type=="m.room.member")#`).Array() {
		members[e.Get("state_key").Str] = e.Get("content.displayname").Str
	}
	if len(members) != 2 || members[carol.UserID] != "Carol One" || members[alice.UserID] == "" {
		t.Fatalf("lazy members of an incremental sync: %v", members)
	}
}

// A sync bundles a thread's summary and an edit into the events they
// relate to when they come in the same response, and reads nothing for
// timelines without them.
func TestSyncBundlesRelations(t *testing.T) {
	srv := ts.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	token := bob.MustDo(t, "GET", v3+"/sync", nil, 200).Get("next_batch").Str
	path := v3 + "/rooms/" + ts.PathEscape(room) + "/send/m.room.message/"
	root := alice.Send(t, room, "root")
	plain := alice.Send(t, room, "plain")
	alice.MustDo(t, "PUT", path+ts.Txn(), map[string]any{"msgtype": "m.text", "body": "in thread",
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root}}, 200)
	alice.MustDo(t, "PUT", path+ts.Txn(), map[string]any{"msgtype": "m.text", "body": "* edited",
		"m.new_content": map[string]any{"msgtype": "m.text", "body": "edited"},
		"m.relates_to":  map[string]any{"rel_type": "m.replace", "event_id": plain}}, 200)
	// Incrementally, and in a limited timeline of an initial sync.
	limited := "/sync?filter=" + url.QueryEscape(`{"room":{"timeline":{"limit":4}}}`)
	for _, query := range []string{"/sync?since=" + url.QueryEscape(token), limited} {
		res := bob.MustDo(t, "GET", v3+query, nil, 200)
		tl := joined(res, room).Get("timeline.events")
		thread := tl.Get(`#(event_id=="` + root + `").unsigned.m\.relations.m\.thread`)
		if thread.Get("count").Int() != 1 || thread.Get("latest_event.content.body").Str != "in thread" {
			t.Fatalf("%s: thread root without its summary: %s", query, tl.Raw)
		}
		if tl.Get(`#(event_id=="`+plain+`").unsigned.m\.relations.m\.replace.content.body`).Str != "* edited" {
			t.Fatalf("%s: edited event without its edit: %s", query, tl.Raw)
		}
		if query == limited && !joined(res, room).Get("timeline.limited").Bool() {
			t.Fatalf("the timeline is not limited: %s", res.Raw)
		}
	}
	res := bob.MustDo(t, "GET", v3+"/sync?since="+url.QueryEscape(token), nil, 200)
	token = res.Get("next_batch").Str
	alice.Send(t, room, "later")
	res = bob.MustDo(t, "GET", v3+"/sync?since="+url.QueryEscape(token), nil, 200)
	if got := joined(res, room).Get("timeline.events.#.unsigned.m\\.relations").Array(); len(got) != 0 {
		t.Fatalf("bundles on a timeline without relations: %v", got)
	}
}
