package threads_test

import (
	"testing"

	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/config"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

const unstable = "/_matrix/client/unstable/io.element.msc4306/rooms/"

func subPath(room, root string) string {
	return unstable + ts.PathEscape(room) + "/thread/" + ts.PathEscape(root) + "/subscription"
}

func threadReply(t *testing.T, c *ts.Client, room, root, txn string) string {
	t.Helper()
	return c.MustDo(t, "PUT", "/_matrix/client/v3/rooms/"+ts.PathEscape(room)+"/send/m.room.message/"+txn, map[string]any{
		"msgtype": "m.text", "body": "reply " + txn, "m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root}}, 200).Get("event_id").Str
}

func on(c *config.Config) { c.Push.ThreadSubscriptions = true }

func TestSubscriptions(t *testing.T) {
	srv := ts.Start(t, on)
	alice, bob, eve := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "eve")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	root := alice.Send(t, room, "root")
	other := alice.Send(t, room, "another root")
	r1 := threadReply(t, alice, room, root, "r1")
	elsewhere := threadReply(t, alice, room, other, "e1")
	path := subPath(room, root)

	bob.MustFail(t, "GET", path, nil, 404, "M_NOT_FOUND")
	bob.MustDo(t, "PUT", path, map[string]any{}, 200)
	if got := bob.MustDo(t, "GET", path, nil, 200); got.Raw != `{"automatic":false}` {
		t.Fatalf("manual: %s", got.Raw)
	}
	// An automatic subscription does not replace a manual one.
	bob.MustDo(t, "PUT", path, map[string]any{"automatic": r1}, 200)
	if !bob.MustDo(t, "GET", path, nil, 200).Get("automatic").Exists() || bob.MustDo(t, "GET", path, nil, 200).Get("automatic").Bool() {
		t.Fatal("automatic replaced manual")
	}
	bob.MustDo(t, "DELETE", path, nil, 200)
	bob.MustFail(t, "GET", path, nil, 404, "M_NOT_FOUND")
	bob.MustDo(t, "DELETE", path, nil, 200) // unsubscribing again is fine

	// An automatic subscription caused by an event from before the
	// unsubscription is refused; by a later one, taken.
	bob.MustFail(t, "PUT", path, map[string]any{"automatic": r1}, 409, "IO.ELEMENT.MSC4306.M_CONFLICTING_UNSUBSCRIPTION")
	r2 := threadReply(t, bob, room, root, "r2")
	bob.MustDo(t, "PUT", path, map[string]any{"automatic": r2}, 200)
	if got := bob.MustDo(t, "GET", path, nil, 200); got.Raw != `{"automatic":true}` {
		t.Fatalf("automatic: %s", got.Raw)
	}

	for _, tc := range []struct {
		name    string
		c       *ts.Client
		path    string
		body    any
		status  int
		errcode string
	}{
		{"cause is the root", bob, path, map[string]any{"automatic": root}, 400, "IO.ELEMENT.MSC4306.M_NOT_IN_THREAD"},
		{"cause in another thread", bob, path, map[string]any{"automatic": elsewhere}, 400, "IO.ELEMENT.MSC4306.M_NOT_IN_THREAD"},
		{"unknown cause", bob, path, map[string]any{"automatic": "$nope"}, 404, "M_NOT_FOUND"},
		{"cause not a string", bob, path, map[string]any{"automatic": 5}, 400, "M_BAD_JSON"},
		{"unknown thread", bob, subPath(room, "$nope:example.org"), map[string]any{}, 404, "M_NOT_FOUND"},
		{"not an event ID", bob, subPath(room, "nope"), map[string]any{}, 400, "M_INVALID_PARAM"},
		{"not in the room", eve, path, map[string]any{}, 404, "M_NOT_FOUND"},
		{"bad JSON", bob, path, `{`, 400, "M_NOT_JSON"},
		{"no token", srv.Anon(), path, map[string]any{}, 401, "M_MISSING_TOKEN"},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.c.MustFail(t, "PUT", tc.path, tc.body, tc.status, tc.errcode) })
	}
	eve.MustFail(t, "GET", path, nil, 404, "M_NOT_FOUND")
}

// Sliding sync carries subscription changes (MSC4308); with subscriptions
// on, a reply notifies only the thread's subscribers.
func TestSlidingSyncAndNotifications(t *testing.T) {
	srv := ts.Start(t, on)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	root := alice.Send(t, room, "root")
	const ss = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
	body := map[string]any{"extensions": map[string]any{"io.element.msc4308.thread_subscriptions": map[string]any{"enabled": true, "limit": 10}}}
	first := bob.MustDo(t, "POST", ss, body, 200)
	if first.Get("extensions.io\\.element\\.msc4308\\.thread_subscriptions").Exists() {
		t.Fatalf("no subscriptions yet: %s", first.Raw)
	}
	bob.MustDo(t, "PUT", subPath(room, root), map[string]any{}, 200)
	next := bob.MustDo(t, "POST", ss+"?timeout=5000&pos="+first.Get("pos").Str, body, 200)
	sub := next.Get("extensions.io\\.element\\.msc4308\\.thread_subscriptions.subscribed." + ts.Esc(room) + "." + ts.Esc(root))
	if sub.Get("bump_stamp").Type != gjson.Number || sub.Get("automatic").Type != gjson.False {
		t.Fatalf("subscription in sliding sync: %s", next.Raw)
	}
	// Alice, not subscribed, is not notified of bob's reply; bob of alice's is.
	threadReply(t, bob, room, root, "b1")
	threadReply(t, alice, room, root, "a1")
	count := func(c *ts.Client) int64 {
		return c.MustDo(t, "GET", "/_matrix/client/v3/sync", nil, 200).Get("rooms.join." + ts.Esc(room) + ".unread_notifications.notification_count").Int()
	}
	if a, b := count(alice), count(bob); a != 0 || b != 2 { // bob: the root and alice's reply
		t.Fatalf("notifications: alice %d, bob %d", a, b)
	}
	page := bob.MustDo(t, "GET", "/_matrix/client/unstable/io.element.msc4308/thread_subscriptions?dir=b&limit=1", nil, 200)
	if !page.Get("subscribed." + ts.Esc(room) + "." + ts.Esc(root)).Exists() {
		t.Fatalf("companion endpoint: %s", page.Raw)
	}
	bob.MustFail(t, "GET", "/_matrix/client/unstable/io.element.msc4308/thread_subscriptions?dir=f", nil, 400, "M_INVALID_PARAM")
}

// Off (the default), the endpoints are not there and every reply notifies.
func TestOffByDefault(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(t, nil)
	root := alice.Send(t, room, "root")
	alice.MustFail(t, "PUT", subPath(room, root), map[string]any{}, 404, "M_UNRECOGNIZED")
	if rules := alice.MustDo(t, "GET", "/_matrix/client/v3/pushrules/", nil, 200); rules.Get("global.postcontent.#").Int() != 0 {
		t.Fatalf("postcontent rules with subscriptions off: %s", rules.Get("global.postcontent").Raw)
	}
}
