package calls_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/internal/livekittest"
	"github.com/redoubt-systems/redoubt/internal/testserver"
)

// withLiveKit is a server whose calls go to a real LiveKit server.
func withLiveKit(t *testing.T, edit ...func(*config.Calls)) (*testserver.Server, *livekittest.Server) {
	t.Helper()
	lk := livekittest.Start(t)
	srv := testserver.Start(t, func(c *config.Config) {
		c.Calls.LiveKit = config.LiveKit{URL: lk.URL, APIKey: lk.Key, APISecret: lk.Secret}
		for _, e := range edit {
			e(&c.Calls)
		}
	})
	return srv, lk
}

func openID(t *testing.T, c *testserver.Client) string {
	t.Helper()
	res := c.MustDo(t, "POST", "/_matrix/client/v3/user/"+url.PathEscape(c.UserID)+"/openid/request_token", map[string]any{}, 200)
	if res.Get("token_type").Str != "Bearer" || res.Get("matrix_server_name").Str != "test.local" || res.Get("expires_in").Int() != 3600 {
		t.Fatalf("openid token %s", res.Raw)
	}
	return res.Get("access_token").Str
}

func sfuGet(token, room, device string) map[string]any {
	return map[string]any{"room": room, "device_id": device, "openid_token": map[string]any{
		"access_token": token, "token_type": "Bearer", "matrix_server_name": "test.local", "expires_in": 3600}}
}

// validate asks the LiveKit server whether a token lets its holder into
// its room (the request LiveKit's clients make before joining).
func validate(t *testing.T, lk *livekittest.Server, jwt string) int {
	t.Helper()
	res, err := http.Get(lk.HTTP + "/rtc/validate?access_token=" + url.QueryEscape(jwt))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// join opens LiveKit's signalling connection with a token, as a client
// joining the call does, and reads its first message (the join answer).
func join(t *testing.T, lk *livekittest.Server, jwt string) error {
	t.Helper()
	ws, err := websocket.Dial(lk.URL+"/rtc?protocol=15&sdk=go&access_token="+url.QueryEscape(jwt), "", lk.HTTP)
	if err != nil {
		return err
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var msg []byte
	return websocket.Message.Receive(ws, &msg)
}

// Element Call's way in: an OpenID token, discovery of the token service,
// a LiveKit token for a room the user is in, and LiveKit lets them join
// that room, and no other.
func TestCallTokens(t *testing.T) {
	srv, lk := withLiveKit(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "private_chat"})

	wk := srv.Anon().MustDo(t, "GET", "/.well-known/matrix/client", nil, 200)
	service := wk.Get(`org\.matrix\.msc4143\.rtc_foci.0.livekit_service_url`).Str
	if service != srv.URL+"/_redoubt/livekit" || wk.Get(`org\.matrix\.msc4143\.rtc_foci.0.type`).Str != "livekit" {
		t.Fatalf("well-known %s", wk.Raw)
	}
	if got := alice.MustDo(t, "GET", "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports", nil, 200).Get("rtc_transports.0.livekit_service_url").Str; got != service {
		t.Fatalf("transports name %q", got)
	}

	token := openID(t, alice)
	ans := srv.Anon().MustDo(t, "POST", "/_redoubt/livekit/sfu/get", sfuGet(token, room, alice.DeviceID), 200)
	if ans.Get("url").Str != lk.URL || ans.Get("jwt").Str == "" {
		t.Fatalf("sfu/get %s", ans.Raw)
	}
	if code := validate(t, lk, ans.Get("jwt").Str); code != 200 {
		t.Fatalf("LiveKit refused Redoubt's token: %d", code)
	}
	if err := join(t, lk, ans.Get("jwt").Str); err != nil {
		t.Fatalf("joining the call's room: %v", err)
	}
	// The newer form, for a slot and a member.
	ans = srv.Anon().MustDo(t, "POST", "/_redoubt/livekit/get_token", map[string]any{"room_id": room, "slot_id": "m.call#ROOM",
		"openid_token": map[string]any{"access_token": token, "matrix_server_name": "test.local"},
		"member":       map[string]any{"id": "member-1", "claimed_user_id": alice.UserID, "claimed_device_id": alice.DeviceID}}, 200)
	if code := validate(t, lk, ans.Get("jwt").Str); code != 200 {
		t.Fatalf("LiveKit refused the get_token token: %d", code)
	}
	// A token not signed with the server's secret gets nobody in.
	forged := ans.Get("jwt").Str[:strings.LastIndex(ans.Get("jwt").Str, ".")] + ".AAAA"
	if code := validate(t, lk, forged); code != 401 {
		t.Fatalf("LiveKit took a forged token: %d", code)
	}
	if err := join(t, lk, forged); err == nil {
		t.Fatal("a forged token joined")
	}

	// Refusals.
	bobToken := openID(t, bob)
	srv.Anon().MustFail(t, "POST", "/_redoubt/livekit/sfu/get", sfuGet(bobToken, room, bob.DeviceID), 403, "M_FORBIDDEN") // not in the room
	alice.Invite(t, room, bob.UserID)
	srv.Anon().MustFail(t, "POST", "/_redoubt/livekit/sfu/get", sfuGet(bobToken, room, bob.DeviceID), 403, "M_FORBIDDEN") // invited only
	bob.Join(t, room)
	srv.Anon().MustDo(t, "POST", "/_redoubt/livekit/sfu/get", sfuGet(bobToken, room, bob.DeviceID), 200)
	bob.MustDo(t, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/leave", map[string]any{}, 200)
	srv.Anon().MustFail(t, "POST", "/_redoubt/livekit/sfu/get", sfuGet(bobToken, room, bob.DeviceID), 403, "M_FORBIDDEN") // left
	srv.Anon().MustFail(t, "POST", "/_redoubt/livekit/get_token", map[string]any{"room_id": room, "slot_id": "m.call#ROOM",
		"openid_token": map[string]any{"access_token": token, "matrix_server_name": "test.local"},
		"member":       map[string]any{"id": "m", "claimed_user_id": bob.UserID, "claimed_device_id": "X"}}, 401, "M_UNAUTHORIZED") // someone else's token
	srv.Anon().MustFail(t, "POST", "/_redoubt/livekit/sfu/get", sfuGet("made-up", room, "X"), 401, "M_UNAUTHORIZED")
	other := sfuGet(token, room, alice.DeviceID)
	other["openid_token"].(map[string]any)["matrix_server_name"] = "elsewhere.example"
	srv.Anon().MustFail(t, "POST", "/_redoubt/livekit/sfu/get", other, 401, "M_UNAUTHORIZED")
	srv.Anon().MustFail(t, "POST", "/_redoubt/livekit/sfu/get", map[string]any{"room": room}, 400, "M_BAD_JSON")
	alice.MustFail(t, "POST", "/_matrix/client/v3/user/"+url.PathEscape(bob.UserID)+"/openid/request_token", map[string]any{}, 403, "M_FORBIDDEN")
	srv.Anon().MustFail(t, "POST", "/_matrix/client/v3/user/"+url.PathEscape(bob.UserID)+"/openid/request_token", map[string]any{}, 401, "M_MISSING_TOKEN")
	// An OpenID token lasts an hour.
	srv.Clock.Advance(61 * time.Minute)
	srv.Anon().MustFail(t, "POST", "/_redoubt/livekit/sfu/get", sfuGet(token, room, alice.DeviceID), 401, "M_UNAUTHORIZED")
}

// With start_calls: admins, a member may join a call under way but not
// start one: LiveKit has no room for it until an admin opens it.
func TestWhoStartsCalls(t *testing.T) {
	srv, lk := withLiveKit(t, func(c *config.Calls) { c.StartCalls = "admins" })
	admin, member := srv.RegisterAdmin(t, "admin"), srv.Register(t, "member")
	room := admin.CreateRoom(t, map[string]any{"preset": "public_chat"})
	member.Join(t, room)
	ans := srv.Anon().MustDo(t, "POST", "/_redoubt/livekit/sfu/get", sfuGet(openID(t, member), room, member.DeviceID), 200)
	if code := validate(t, lk, ans.Get("jwt").Str); code != 404 {
		t.Fatalf("a member started a call: LiveKit answered %d", code)
	}
	srv.Anon().MustDo(t, "POST", "/_redoubt/livekit/sfu/get", sfuGet(openID(t, admin), room, admin.DeviceID), 200)
	if code := validate(t, lk, ans.Get("jwt").Str); code != 200 {
		t.Fatalf("the member cannot join the admin's call: %d", code)
	}
}

// Without LiveKit configured, discovery offers no focus and the token
// service says calls are off.
func TestNoCalls(t *testing.T) {
	srv := testserver.Start(t)
	alice := srv.Register(t, "alice")
	if wk := srv.Anon().MustDo(t, "GET", "/.well-known/matrix/client", nil, 200); wk.Get(`org\.matrix\.msc4143\.rtc_foci`).Exists() {
		t.Fatalf("well-known offers a focus: %s", wk.Raw)
	}
	if got := alice.MustDo(t, "GET", "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports", nil, 200).Get("rtc_transports").Raw; got != "[]" {
		t.Fatalf("transports %s", got)
	}
	room := alice.CreateRoom(t, map[string]any{})
	srv.Anon().MustFail(t, "POST", "/_redoubt/livekit/sfu/get", sfuGet(openID(t, alice), room, alice.DeviceID), 404, "M_NOT_FOUND")
}

// A call as Element Call places it, in a room with the power levels it
// sets up: a member's call membership (state under their own _@user key),
// a delayed "leave" kept alive by restarting it, and, when the client
// vanishes, the leave sent. Call memberships notify no one.
func TestCallMembership(t *testing.T) {
	srv := testserver.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "power_level_content_override": map[string]any{
		"state_default": 0, "events_default": 0, "users_default": 0, "invite": 100, "kick": 100, "ban": 100, "redact": 50,
		"users":  map[string]any{alice.UserID: 100},
		"events": map[string]any{"m.room.power_levels": 100, "m.room.history_visibility": 100, "m.room.tombstone": 100, "m.room.encryption": 100, "m.room.name": 50, "org.matrix.msc3401.call.member": 0},
	}})
	bob.Join(t, room)
	since := alice.MustDo(t, "GET", "/_matrix/client/v3/sync", nil, 200).Get("next_batch").Str

	rp := "/_matrix/client/v3/rooms/" + url.PathEscape(room)
	key := "_" + bob.UserID + "_" + bob.DeviceID + "_m.call"
	member := map[string]any{"application": "m.call", "call_id": "", "device_id": bob.DeviceID, "scope": "m.room",
		"focus_active":   map[string]any{"type": "livekit", "focus_selection": "oldest_membership"},
		"foci_preferred": []any{map[string]any{"type": "livekit", "livekit_service_url": srv.URL + "/_redoubt/livekit"}},
		"expires":        14400000, "created_ts": time.Now().UnixMilli()}
	// The leave, scheduled first, as Element Call does.
	leave := bob.MustDo(t, "PUT", rp+"/state/org.matrix.msc3401.call.member/"+url.PathEscape(key)+"?org.matrix.msc4140.delay=600", map[string]any{}, 200).Get("delay_id").Str
	bob.MustDo(t, "PUT", rp+"/state/org.matrix.msc3401.call.member/"+url.PathEscape(key), member, 200)
	bob.MustDo(t, "PUT", rp+"/send/m.rtc.member/t1", map[string]any{"member": map[string]any{"id": "m1", "device_id": bob.DeviceID}}, 200)
	// Someone else's key is not bob's to set.
	bob.MustFail(t, "PUT", rp+"/state/org.matrix.msc3401.call.member/"+url.PathEscape(alice.UserID), member, 403, "M_FORBIDDEN")
	// Heartbeats keep the leave from firing.
	for range 4 {
		time.Sleep(300 * time.Millisecond)
		srv.Anon().MustDo(t, "POST", "/_matrix/client/unstable/org.matrix.msc4140/delayed_events/"+leave, map[string]any{"action": "restart"}, 200)
	}
	if got := alice.MustDo(t, "GET", rp+"/state/org.matrix.msc3401.call.member/"+url.PathEscape(key), nil, 200); got.Get("application").Str != "m.call" {
		t.Fatalf("the membership left during heartbeats: %s", got.Raw)
	}
	// Bob's client vanishes: no more heartbeats, and the leave goes out.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if got := alice.MustDo(t, "GET", rp+"/state/org.matrix.msc3401.call.member/"+url.PathEscape(key), nil, 200); got.Raw == "{}" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the delayed leave never fired")
		}
	}
	sync := alice.MustDo(t, "GET", "/_matrix/client/v3/sync?since="+since, nil, 200)
	joined := sync.Get("rooms.join." + strings.ReplaceAll(room, ".", `\.`))
	if n := joined.Get("unread_notifications.notification_count").Int(); n != 0 {
		t.Fatalf("call memberships notified alice: %d (%s)", n, joined.Get("unread_notifications").Raw)
	}
	if !joined.Get(`timeline.events.#(type=="org.matrix.msc3401.call.member")`).Exists() {
		t.Fatalf("alice's sync has no call membership: %s", joined.Raw)
	}
}

// A call membership past its expires ends, as if its client had left: an
// empty membership, sent as the member. One still in time stays.
func TestExpiredMembership(t *testing.T) {
	srv := testserver.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat",
		"power_level_content_override": map[string]any{"events": map[string]any{"org.matrix.msc3401.call.member": 0}}})
	bob.Join(t, room)
	rp := "/_matrix/client/v3/rooms/" + url.PathEscape(room) + "/state/org.matrix.msc3401.call.member/"
	short, long := "_"+bob.UserID+"_A_m.call", "_"+alice.UserID+"_B_m.call"
	now := srv.Clock.Now().UnixMilli()
	bob.MustDo(t, "PUT", rp+url.PathEscape(short), map[string]any{"application": "m.call", "device_id": "A", "expires": 60000, "created_ts": now}, 200)
	alice.MustDo(t, "PUT", rp+url.PathEscape(long), map[string]any{"application": "m.call", "device_id": "B", "expires": 14400000}, 200)
	if err := srv.Calls.ExpireMemberships(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := alice.MustDo(t, "GET", rp+url.PathEscape(short), nil, 200); got.Get("application").Str != "m.call" {
		t.Fatalf("ended before its time: %s", got.Raw)
	}
	srv.Clock.Advance(2 * time.Minute)
	if err := srv.Calls.ExpireMemberships(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := alice.MustDo(t, "GET", rp+url.PathEscape(short), nil, 200); got.Raw != "{}" {
		t.Fatalf("the expired membership stays: %s", got.Raw)
	}
	ev := alice.MustDo(t, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/messages?dir=b&limit=1", nil, 200).Get("chunk.0")
	if ev.Get("sender").Str != bob.UserID || ev.Get("type").Str != "org.matrix.msc3401.call.member" {
		t.Fatalf("the leave: %s", ev.Raw)
	}
	if got := alice.MustDo(t, "GET", rp+url.PathEscape(long), nil, 200); got.Get("application").Str != "m.call" {
		t.Fatalf("a membership in time ended: %s", got.Raw)
	}
}
