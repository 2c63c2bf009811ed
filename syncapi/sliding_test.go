package syncapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
	"github.com/redoubt-systems/redoubt/rooms"
)

const ssPath = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

func ss(t *testing.T, c *ts.Client, pos string, timeoutMS int, body map[string]any) gjson.Result {
	t.Helper()
	q := url.Values{}
	if pos != "" {
		q.Set("pos", pos)
	}
	if timeoutMS > 0 {
		q.Set("timeout", fmt.Sprint(timeoutMS))
	}
	return c.MustDo(t, "POST", ssPath+"?"+q.Encode(), body, 200)
}

func list(ranges [][]int, extra map[string]any) map[string]any {
	l := map[string]any{"ranges": ranges, "timeline_limit": 1, "required_state": [][]string{{"m.room.name", ""}}}
	for k, v := range extra {
		l[k] = v
	}
	return l
}

func TestSlidingSyncLists(t *testing.T) {
	srv := ts.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	var ids []string
	for i := range 5 {
		ids = append(ids, alice.CreateRoom(t, map[string]any{"name": fmt.Sprintf("room %d", i)}))
	}
	alice.Send(t, ids[2], "bump room 2")
	alice.Send(t, ids[0], "bump room 0")
	body := map[string]any{"lists": map[string]any{"all": list([][]int{{0, 1}}, nil)}}
	res := ss(t, alice, "", 0, body)
	if res.Get("lists.all.count").Int() != 5 || len(res.Get("rooms").Map()) != 2 {
		t.Fatalf("first response: %s", res.Raw)
	}
	r0 := res.Get("rooms." + ts.Esc(ids[0]))
	if !res.Get("rooms."+ts.Esc(ids[2])).Exists() || r0.Get("name").Str != "room 0" || !r0.Get("initial").Bool() ||
		r0.Get("timeline.#").Int() != 1 || r0.Get("timeline.0.content.body").Str != "bump room 0" || r0.Get("joined_count").Int() != 1 {
		t.Fatalf("window is not the two most recently active rooms: %s", res.Get("rooms").Raw)
	}
	if rs := r0.Get("required_state"); rs.Get("#").Int() != 1 || rs.Get("0.type").Str != "m.room.name" {
		t.Fatalf("required_state: %s", rs.Raw)
	}
	pos := res.Get("pos").Str

	// Incremental: a message moves room 4 into the window; the rename of a
	// room already sent arrives as a change.
	alice.Send(t, ids[4], "now room 4 is active")
	res = ss(t, alice, pos, 5000, body)
	r4 := res.Get("rooms." + ts.Esc(ids[4]))
	if !r4.Get("initial").Bool() || r4.Get("timeline.0.content.body").Str != "now room 4 is active" {
		t.Fatalf("room entering the window: %s", res.Raw)
	}
	pos = res.Get("pos").Str
	alice.MustDo(t, "PUT", "/_matrix/client/v3/rooms/"+ts.PathEscape(ids[4])+"/state/m.room.name/", map[string]any{"name": "renamed"}, 200)
	res = ss(t, alice, pos, 5000, body)
	r4 = res.Get("rooms." + ts.Esc(ids[4]))
	if r4.Get("initial").Bool() || r4.Get("name").Str != "renamed" || r4.Get("num_live").Int() != 1 {
		t.Fatalf("rename: %s", res.Raw)
	}
	pos = res.Get("pos").Str
	// An invite arrives with its invite_state; a leave with the membership.
	invitedTo := bob.CreateRoom(t, map[string]any{"name": "bob's room"})
	bob.Invite(t, invitedTo, alice.UserID)
	res = ss(t, alice, pos, 5000, map[string]any{"lists": map[string]any{"all": list([][]int{{0, 2}}, nil)}})
	inv := res.Get("rooms." + ts.Esc(invitedTo))
	if inv.Get("membership").Str != "invite" || !inv.Get("invite_state").Exists() {
		t.Fatalf("invite: %s", res.Raw)
	}
	old := pos
	pos = res.Get("pos").Str
	alice.MustDo(t, "POST", "/_matrix/client/v3/rooms/"+ts.PathEscape(ids[4])+"/leave", map[string]any{}, 200)
	res = ss(t, alice, pos, 5000, map[string]any{"lists": map[string]any{"all": list([][]int{{0, 2}}, nil)}})
	if m := res.Get("rooms." + ts.Esc(ids[4]) + ".membership").Str; m != "leave" {
		t.Fatalf("leave: %s", res.Raw)
	}
	// Unknown positions, and one older than the client since went on from:
	// the client must start over.
	for _, bad := range []string{"garbage", "99~s1_0_0_0_0_0_0", old} {
		alice.MustFail(t, "POST", ssPath+"?pos="+url.QueryEscape(bad), body, 400, "M_UNKNOWN_POS")
	}
	alice.MustFail(t, "POST", ssPath, map[string]any{"lists": map[string]any{"x": map[string]any{"ranges": [][]int{{3, 1}}}}}, 400, "M_INVALID_PARAM")
	alice.MustFail(t, "POST", ssPath, "[]", 400, "M_BAD_JSON")
	srv.Anon().MustFail(t, "POST", ssPath, body, 401, "M_MISSING_TOKEN")
	if !alice.MustDo(t, "GET", "/_matrix/client/versions", nil, 200).Get(`unstable_features.org\.matrix\.simplified_msc3575`).Bool() {
		t.Fatal("not advertised")
	}
}

func TestSlidingSyncFiltersAndRequiredState(t *testing.T) {
	srv := ts.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	plain := alice.CreateRoom(t, map[string]any{"name": "plain"})
	encrypted := alice.CreateRoom(t, map[string]any{"name": "secret", "initial_state": []any{map[string]any{"type": "m.room.encryption", "state_key": "",
		"content": map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}}}})
	space := alice.CreateRoom(t, map[string]any{"name": "space", "creation_content": map[string]any{"type": "m.space"}})
	alice.MustDo(t, "PUT", "/_matrix/client/v3/rooms/"+ts.PathEscape(space)+"/state/m.space.child/"+plain, map[string]any{"via": []string{"test.local"}}, 200)
	dm := bob.CreateRoom(t, map[string]any{"is_direct": true, "invite": []string{alice.UserID}})
	alice.Join(t, dm)
	alice.MustDo(t, "PUT", "/_matrix/client/v3/user/"+ts.PathEscape(alice.UserID)+"/account_data/m.direct", map[string]any{bob.UserID: []string{dm}}, 200)
	invite := bob.CreateRoom(t, map[string]any{"invite": []string{alice.UserID}})
	bob.Send(t, dm, "hi alice")

	all := [][]int{{0, 99}}
	for _, tc := range []struct {
		name    string
		filters map[string]any
		want    []string
	}{
		{"dm", map[string]any{"is_dm": true}, []string{dm}},
		{"encrypted", map[string]any{"is_encrypted": true}, []string{encrypted}},
		{"invites", map[string]any{"is_invite": true}, []string{invite}},
		{"spaces only", map[string]any{"room_types": []any{"m.space"}}, []string{space}},
		{"no spaces, no invites", map[string]any{"not_room_types": []any{"m.space"}, "is_invite": false}, []string{plain, encrypted, dm}},
		{"in the space", map[string]any{"spaces": []string{space}}, []string{plain}},
	} {
		res := ss(t, alice, "", 0, map[string]any{"lists": map[string]any{"l": list(all, map[string]any{"filters": tc.filters})}})
		got := res.Get("rooms").Map()
		if len(got) != len(tc.want) || res.Get("lists.l.count").Int() != int64(len(tc.want)) {
			t.Errorf("%s: %d rooms (%v), want %v", tc.name, len(got), res.Get("lists").Raw, tc.want)
			continue
		}
		for _, id := range tc.want {
			if _, ok := got[id]; !ok {
				t.Errorf("%s: %s missing", tc.name, id)
			}
		}
	}
	// required_state forms, through a room subscription.
	for _, tc := range []struct {
		required [][]string
		check    func(gjson.Result) bool
	}{
		{[][]string{{"*", "*"}}, func(r gjson.Result) bool { return r.Get("#").Int() >= 6 }},
		{[][]string{{"m.room.member", "$ME"}}, func(r gjson.Result) bool {
			return r.Get("#").Int() == 1 && r.Get("0.state_key").Str == alice.UserID
		}},
		{[][]string{{"m.room.member", "$LAZY"}}, func(r gjson.Result) bool {
			return r.Get(`#(state_key=="` + bob.UserID + `")`).Exists() // bob sent the timeline's message
		}},
		{[][]string{{"m.room.create", ""}, {"m.room.join_rules", ""}}, func(r gjson.Result) bool { return r.Get("#").Int() == 2 }},
	} {
		res := ss(t, alice, "", 0, map[string]any{"room_subscriptions": map[string]any{dm: map[string]any{"timeline_limit": 1, "required_state": tc.required}}})
		if rs := res.Get("rooms." + ts.Esc(dm) + ".required_state"); !tc.check(rs) {
			t.Errorf("required_state %v: %s", tc.required, rs.Raw)
		}
	}
	if r := ss(t, alice, "", 0, map[string]any{"room_subscriptions": map[string]any{dm: map[string]any{"timeline_limit": 5}}}).Get("rooms." + ts.Esc(dm)); !r.Get("is_dm").Bool() {
		t.Fatalf("is_dm: %s", r.Raw)
	}
	// A subscription to a room one has no membership in shows nothing.
	other := bob.CreateRoom(t, nil)
	if r := ss(t, alice, "", 0, map[string]any{"room_subscriptions": map[string]any{other: map[string]any{"timeline_limit": 5}}}); r.Get("rooms").Exists() {
		t.Fatalf("a room alice is not in leaked: %s", r.Raw)
	}
}

func TestSlidingSyncExtensions(t *testing.T) {
	srv := ts.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	ext := map[string]any{"to_device": map[string]any{"enabled": true}, "e2ee": map[string]any{"enabled": true},
		"account_data": map[string]any{"enabled": true}, "receipts": map[string]any{"enabled": true}, "typing": map[string]any{"enabled": true}}
	body := map[string]any{"lists": map[string]any{"all": list([][]int{{0, 9}}, nil)}, "extensions": ext}
	res := ss(t, alice, "", 0, body)
	if !res.Get(`extensions.e2ee.device_one_time_keys_count.signed_curve25519`).Exists() || !res.Get("extensions.account_data.global").IsArray() {
		t.Fatalf("extensions: %s", res.Get("extensions").Raw)
	}
	pos := res.Get("pos").Str
	bob.MustDo(t, "PUT", "/_matrix/client/v3/sendToDevice/m.test/t1", map[string]any{"messages": map[string]any{alice.UserID: map[string]any{alice.DeviceID: map[string]any{"n": 1}}}}, 200)
	res = ss(t, alice, pos, 5000, body)
	td := res.Get("extensions.to_device")
	if td.Get("events.0.content.n").Int() != 1 || td.Get("events.0.sender").Str != bob.UserID {
		t.Fatalf("to_device: %s", res.Raw)
	}
	// Acknowledged by since: not sent again.
	ext["to_device"] = map[string]any{"enabled": true, "since": td.Get("next_batch").Str}
	pos = res.Get("pos").Str
	bob.MustDo(t, "PUT", "/_matrix/client/v3/rooms/"+ts.PathEscape(room)+"/typing/"+ts.PathEscape(bob.UserID), map[string]any{"typing": true, "timeout": 30000}, 200)
	res = ss(t, alice, pos, 5000, body)
	if res.Get("extensions.to_device.events.#").Int() != 0 || !res.Get("extensions.typing.rooms."+ts.Esc(room)).Exists() {
		t.Fatalf("typing / acknowledged to-device: %s", res.Get("extensions").Raw)
	}
	pos = res.Get("pos").Str
	ev := bob.Send(t, room, "read me")
	bob.MustDo(t, "POST", "/_matrix/client/v3/rooms/"+ts.PathEscape(room)+"/receipt/m.read/"+ts.PathEscape(ev), map[string]any{}, 200)
	deadline := time.Now().Add(5 * time.Second)
	for !res.Get("extensions.receipts.rooms." + ts.Esc(room)).Exists() {
		if time.Now().After(deadline) {
			t.Fatalf("receipt never arrived: %s", res.Raw)
		}
		res = ss(t, alice, pos, 1000, body)
		pos = res.Get("pos").Str
	}
	alice.MustDo(t, "PUT", "/_matrix/client/v3/user/"+ts.PathEscape(alice.UserID)+"/account_data/org.example.x", map[string]any{"a": 1}, 200)
	res = ss(t, alice, pos, 5000, body)
	if !res.Get(`extensions.account_data.global.#(type=="org.example.x")`).Exists() {
		t.Fatalf("account data: %s", res.Get("extensions").Raw)
	}
}

// A user in 500 rooms asking for a 20-room window gets 20 rooms.
func TestSlidingSyncManyRooms(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	for i := range 500 {
		name := fmt.Sprintf("r%d", i)
		if _, err := srv.Rooms.CreateRoom(t.Context(), rooms.CreateRequest{Creator: alice.UserID, Name: &name}); err != nil {
			t.Fatal(err)
		}
	}
	res := ss(t, alice, "", 0, map[string]any{"lists": map[string]any{"all": list([][]int{{0, 19}}, nil)}})
	if res.Get("lists.all.count").Int() != 500 || len(res.Get("rooms").Map()) != 20 {
		t.Fatalf("count %d, rooms %d", res.Get("lists.all.count").Int(), len(res.Get("rooms").Map()))
	}
	t.Logf("response for a 20-room window of 500 rooms: %d bytes", len(res.Raw))
}

// One user may keep at most 8 long-polls waiting; a ninth is answered at
// once rather than holding another goroutine.
func TestLongPollCapPerUser(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	since := alice.MustDo(t, "GET", "/_matrix/client/v3/sync", nil, 200).Get("next_batch").Str
	for range 8 {
		go func() { // raw: these may outlive the test's assertions
			req, _ := http.NewRequest("GET", srv.URL+"/_matrix/client/v3/sync?timeout=5000&since="+since, nil)
			req.Header.Set("Authorization", "Bearer "+alice.Token)
			if res, err := http.DefaultClient.Do(req); err == nil {
				res.Body.Close()
			}
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); srv.Notifier.Waiting() < 8; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d waiting", srv.Notifier.Waiting())
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	alice.MustDo(t, "GET", "/_matrix/client/v3/sync?timeout=5000&since="+since, nil, 200)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the ninth long-poll waited %v", took)
	}
}

// A client that gives up on a waiting request and asks again with the same
// position is answered at once; the older request is told to start over.
func TestSlidingSyncRetrySupersedes(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	alice.CreateRoom(t, nil)
	body := map[string]any{"lists": map[string]any{"all": list([][]int{{0, 9}}, nil)}}
	pos := ss(t, alice, "", 0, body).Get("pos").Str
	first := make(chan int, 1)
	go func() {
		code, _ := alice.Do(t, "POST", ssPath+"?timeout=10000&pos="+url.QueryEscape(pos), body)
		first <- code
	}()
	for deadline := time.Now().Add(5 * time.Second); srv.Notifier.Waiting() < 1; {
		if time.Now().After(deadline) {
			t.Fatal("the first request never waited")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	again := ss(t, alice, pos, 0, body)
	select {
	case code := <-first:
		if code != 400 {
			t.Fatalf("the superseded request answered %d", code)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the superseded request kept waiting")
	}
	if time.Since(start) > 3*time.Second {
		t.Fatal("the retry waited for the old request")
	}
	ss(t, alice, again.Get("pos").Str, 0, body) // the connection goes on
}

// What the client never received does not move the connection on: a
// request it aborted, or a response the network lost, is answered again
// from the same position (as Synapse keeps the previous position valid
// until the client uses the newer one).
func TestSlidingSyncRetries(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	var ids []string
	for i := range 4 {
		ids = append(ids, alice.CreateRoom(t, map[string]any{"name": fmt.Sprintf("room %d", i)}))
	}
	narrow := map[string]any{"lists": map[string]any{"all": list([][]int{{0, 1}}, nil)}}
	wide := map[string]any{"lists": map[string]any{"all": list([][]int{{0, 3}}, nil)}}
	first := ss(t, alice, "", 0, narrow)
	pos := first.Get("pos").Str

	// An aborted long-poll: the client gives up and asks again.
	ctx, cancel := context.WithCancel(t.Context())
	aborted := make(chan struct{})
	go func() {
		defer close(aborted)
		req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+ssPath+"?timeout=10000&pos="+url.QueryEscape(pos), strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer "+alice.Token)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
	}()
	for deadline := time.Now().Add(5 * time.Second); srv.Notifier.Waiting() < 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the request never waited")
		}
	}
	cancel()
	<-aborted
	for deadline := time.Now().Add(5 * time.Second); srv.Notifier.Waiting() > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the aborted request is still waiting")
		}
	}

	// Widening the range sends only the rooms the client does not have.
	lost := ss(t, alice, pos, 0, wide)
	if got := len(lost.Get("rooms").Map()); got != 2 {
		t.Fatalf("widened range sent %d rooms: %s", got, lost.Raw)
	}
	// That response was lost: asked again from the same position, the
	// answer is the same.
	again := ss(t, alice, pos, 0, wide)
	if got := len(again.Get("rooms").Map()); got != 2 || again.Get("pos").Str == pos {
		t.Fatalf("retried request: %s", again.Raw)
	}
	for id := range lost.Get("rooms").Map() {
		if !again.Get("rooms." + ts.Esc(id) + ".initial").Bool() {
			t.Fatalf("retry lacks %s: %s", id, again.Raw)
		}
	}
	// Going on from the newer position makes the older one invalid.
	ss(t, alice, again.Get("pos").Str, 0, wide)
	alice.MustFail(t, "POST", ssPath+"?pos="+url.QueryEscape(pos), wide, 400, "M_UNKNOWN_POS")
}

// Connections are bounded per device and expire when idle.
func TestSlidingSyncConnectionsBounded(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	body := map[string]any{}
	var first string
	for i := range 40 {
		res := alice.MustDo(t, "POST", ssPath+"?conn_id=c"+fmt.Sprint(i), body, 200)
		if i == 0 {
			first = res.Get("pos").Str
		}
	}
	if n := srv.Sync.SlidingConnections(); n > 16 {
		t.Fatalf("%d connections kept for one device", n)
	}
	alice.MustFail(t, "POST", ssPath+"?conn_id=c0&pos="+url.QueryEscape(first), body, 400, "M_UNKNOWN_POS")
	srv.Clock.Advance(31 * time.Minute)
	alice.MustDo(t, "POST", ssPath+"?conn_id=new", body, 200)
	if n := srv.Sync.SlidingConnections(); n != 1 {
		t.Fatalf("%d connections after 31 idle minutes", n)
	}
}
