package push_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/config"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

// gateway is a push gateway: it records notifications, fails the first
// failFirst requests, and rejects the pushkeys in reject.
type gateway struct {
	mu        sync.Mutex
	got       []gjson.Result
	failFirst int
	reject    map[string]bool
	arrived   chan struct{}
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failFirst > 0 {
		g.failFirst--
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	n := gjson.ParseBytes(b)
	g.got = append(g.got, n)
	rejected := []string{}
	for _, d := range n.Get("notification.devices").Array() {
		if g.reject[d.Get("pushkey").Str] {
			rejected = append(rejected, d.Get("pushkey").Str)
		}
	}
	json.NewEncoder(w).Encode(map[string]any{"rejected": rejected})
	g.arrived <- struct{}{}
}

func TestPushGateway(t *testing.T) {
	gw := &gateway{failFirst: 1, reject: map[string]bool{}, arrived: make(chan struct{}, 10)}
	hs := httptest.NewServer(gw)
	defer hs.Close()
	notify := hs.URL + "/_matrix/push/v1/notify"
	srv := ts.Start(t, func(c *config.Config) { c.Push.GatewayAllowList = []string{hs.URL + "/"} })
	srv.Gateway.Backoff = 10 * time.Millisecond
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	pusher := map[string]any{"app_id": "im.vector.app.android", "pushkey": "phone-1", "kind": "http", "app_display_name": "Element",
		"device_display_name": "Bob's phone", "lang": "en", "data": map[string]any{"url": notify, "format": "full"}}
	bob.MustDo(t, "POST", "/_matrix/client/v3/pushers/set", pusher, 200)
	if got := bob.MustDo(t, "GET", "/_matrix/client/v3/pushers", nil, 200); got.Get("pushers.0.pushkey").Str != "phone-1" || got.Get("pushers.0.data.url").Str != notify {
		t.Fatalf("pushers: %s", got.Raw)
	}
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	secret := "meet me at the old mill"
	id := alice.Send(t, room, secret)
	select {
	case <-gw.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no notification (after one failed attempt it should be retried)")
	}
	gw.mu.Lock()
	n := gw.got[0]
	gw.mu.Unlock()
	if n.Get("notification.event_id").Str != id || n.Get("notification.room_id").Str != room || n.Get("notification.counts.unread").Int() != 1 ||
		n.Get("notification.devices.0.pushkey").Str != "phone-1" || n.Get("notification.devices.0.data.format").Str != "event_id_only" {
		t.Fatalf("notification: %s", n.Raw)
	}
	// Nothing of the message or its sender leaves the server.
	if strings.Contains(n.Raw, secret) || strings.Contains(n.Raw, alice.UserID) || n.Get("notification.content").Exists() || n.Get("notification.devices.0.data.url").Exists() {
		t.Fatalf("the notification carries content: %s", n.Raw)
	}

	// A gateway not on the allow-list is refused; so is nonsense.
	for _, bad := range []map[string]any{
		{"url": "https://push.example.org/_matrix/push/v1/notify"},
		{"url": hs.URL + "/elsewhere"},
	} {
		p := map[string]any{}
		for k, v := range pusher {
			p[k] = v
		}
		p["data"] = bad
		code, res := bob.Do(t, "POST", "/_matrix/client/v3/pushers/set", p)
		if code != 403 && code != 400 {
			t.Errorf("%v: %d %s", bad, code, res.Raw)
		}
	}
	bob.MustFail(t, "POST", "/_matrix/client/v3/pushers/set", map[string]any{"kind": "http"}, 400, "M_MISSING_PARAM")
	bob.MustFail(t, "POST", "/_matrix/client/v3/pushers/set", map[string]any{"app_id": "a", "pushkey": "k", "kind": "email",
		"app_display_name": "x", "device_display_name": "y", "lang": "en", "data": map[string]any{}}, 400, "M_INVALID_PARAM")

	// A pushkey the gateway rejects is removed.
	gw.mu.Lock()
	gw.reject["phone-1"] = true
	gw.mu.Unlock()
	alice.Send(t, room, "again")
	<-gw.arrived
	deadline := time.Now().Add(5 * time.Second)
	for bob.MustDo(t, "GET", "/_matrix/client/v3/pushers", nil, 200).Get("pushers.#").Int() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("rejected pusher not removed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Deleting by kind null.
	bob.MustDo(t, "POST", "/_matrix/client/v3/pushers/set", pusher, 200)
	bob.MustDo(t, "POST", "/_matrix/client/v3/pushers/set", map[string]any{"app_id": "im.vector.app.android", "pushkey": "phone-1", "kind": nil}, 200)
	if n := bob.MustDo(t, "GET", "/_matrix/client/v3/pushers", nil, 200).Get("pushers.#").Int(); n != 0 {
		t.Fatalf("%d pushers after delete", n)
	}
	// A device's pushers go when it logs out (here: the password change
	// logging out bob's other devices), the others stay.
	phone := srv.Login(t, "bob")
	phone.MustDo(t, "POST", "/_matrix/client/v3/pushers/set", pusher, 200)
	laptop := map[string]any{}
	for k, v := range pusher {
		laptop[k] = v
	}
	laptop["pushkey"] = "laptop-1"
	bob.MustDo(t, "POST", "/_matrix/client/v3/pushers/set", laptop, 200)
	bob.MustDo(t, "POST", "/_matrix/client/v3/account/password", map[string]any{"new_password": "bob-new-password",
		"auth": ts.PasswordAuth("bob")}, 200)
	if got := bob.MustDo(t, "GET", "/_matrix/client/v3/pushers", nil, 200); got.Get("pushers.#").Int() != 1 || got.Get("pushers.0.pushkey").Str != "laptop-1" {
		t.Fatalf("pushers after the phone was logged out: %s", got.Raw)
	}
}

// A notification the gateway did not take waits in the database: the
// server restarts in between, and it still arrives, once.
func TestPushRetrySurvivesRestart(t *testing.T) {
	gw := &gateway{failFirst: 1 << 30, reject: map[string]bool{}, arrived: make(chan struct{}, 10)}
	hs := httptest.NewServer(gw)
	defer hs.Close()
	srv := ts.Start(t, func(c *config.Config) { c.Push.GatewayAllowList = []string{hs.URL + "/"} })
	srv.Gateway.Backoff = time.Hour // the first retry would not come before the restart
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	bob.MustDo(t, "POST", "/_matrix/client/v3/pushers/set", map[string]any{"app_id": "app", "pushkey": "phone", "kind": "http",
		"app_display_name": "A", "device_display_name": "D", "lang": "en", "data": map[string]any{"url": hs.URL + "/_matrix/push/v1/notify"}}, 200)
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	id := alice.Send(t, room, "hello")
	var queued int
	for deadline := time.Now().Add(10 * time.Second); queued == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		srv.DB.RawRead(t.Context(), `SELECT COUNT(*) FROM push_retries`, &queued)
	}
	if queued != 1 {
		t.Fatalf("%d notifications queued after a failed attempt", queued)
	}
	srv.Stop()
	gw.mu.Lock()
	gw.failFirst = 0
	gw.mu.Unlock()
	srv.Clock.Advance(2 * time.Hour) // the retry is due
	srv.Restart()
	select {
	case <-gw.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the queued notification was lost in the restart")
	}
	gw.mu.Lock()
	got := gw.got[0].Get("notification.event_id").Str
	gw.mu.Unlock()
	if got != id {
		t.Fatalf("notification for %s, want %s", got, id)
	}
	for deadline := time.Now().Add(5 * time.Second); queued != 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		srv.DB.RawRead(t.Context(), `SELECT COUNT(*) FROM push_retries`, &queued)
	}
	if queued != 0 {
		t.Fatalf("%d notifications still queued after delivery", queued)
	}
}

// A notification still being sent when the server stops is queued, and
// sent after the restart.
func TestPushInFlightAtStopIsQueued(t *testing.T) {
	var answering atomic.Bool // false: the gateway hangs until the client gives up
	arrived := make(chan struct{}, 4)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if !answering.Load() {
			<-r.Context().Done()
			return
		}
		w.Write([]byte(`{"rejected":[]}`))
		arrived <- struct{}{}
	}))
	defer hs.Close()
	srv := ts.Start(t, func(c *config.Config) { c.Push.GatewayAllowList = []string{hs.URL + "/"} })
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	bob.MustDo(t, "POST", "/_matrix/client/v3/pushers/set", map[string]any{"app_id": "app", "pushkey": "phone", "kind": "http",
		"app_display_name": "A", "device_display_name": "D", "lang": "en", "data": map[string]any{"url": hs.URL + "/_matrix/push/v1/notify"}}, 200)
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	alice.Send(t, room, "hello")
	time.Sleep(200 * time.Millisecond) // the attempt is waiting on the gateway
	srv.Stop()
	answering.Store(true)
	srv.Restart()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the notification in flight at the stop was lost")
	}
}
