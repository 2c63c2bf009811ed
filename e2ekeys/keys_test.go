package e2ekeys_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

const v3 = "/_matrix/client/v3"

type keypair struct {
	pub  string
	priv ed25519.PrivateKey
}

func newKey(t testing.TB) keypair {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return keypair{base64.RawStdEncoding.EncodeToString(pub), priv}
}

// sign adds a signature by signer's keyID to a JSON object.
func sign(t testing.TB, obj any, signer, keyID string, k keypair) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := gomatrixserverlib.SignJSON(signer, gomatrixserverlib.KeyID(keyID), k.priv, b)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// deviceKeys returns a client's signed device keys and its ed25519 key.
func deviceKeys(t testing.TB, c *ts.Client) (json.RawMessage, keypair) {
	t.Helper()
	k := newKey(t)
	obj := map[string]any{
		"user_id": c.UserID, "device_id": c.DeviceID,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys":       map[string]string{"ed25519:" + c.DeviceID: k.pub, "curve25519:" + c.DeviceID: newKey(t).pub},
	}
	return sign(t, obj, c.UserID, "ed25519:"+c.DeviceID, k), k
}

func otks(prefix string, n int) map[string]any {
	out := map[string]any{}
	for i := range n {
		out[fmt.Sprintf("signed_curve25519:%s%03d", prefix, i)] = map[string]any{"key": fmt.Sprintf("%s-key-%d", prefix, i)}
	}
	return out
}

func TestUploadAndQuery(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	dk, _ := deviceKeys(t, alice)
	res := alice.MustDo(t, "POST", v3+"/keys/upload", map[string]any{
		"device_keys": dk, "one_time_keys": otks("a", 5),
		"fallback_keys": map[string]any{"signed_curve25519:fb1": map[string]any{"key": "fallback", "fallback": true}},
	}, 200)
	if res.Get("one_time_key_counts.signed_curve25519").Int() != 5 {
		t.Fatalf("counts: %s", res.Raw)
	}
	// Re-uploading the same keys is fine and changes nothing.
	alice.MustDo(t, "POST", v3+"/keys/upload", map[string]any{"device_keys": dk, "one_time_keys": otks("a", 5)}, 200)
	alice.MustDo(t, "PUT", v3+"/devices/"+alice.DeviceID, map[string]any{"display_name": "Alice's laptop"}, 200)

	q := bob.MustDo(t, "POST", v3+"/keys/query", map[string]any{"device_keys": map[string]any{alice.UserID: []string{}}}, 200)
	got := q.Get("device_keys." + ts.Esc(alice.UserID) + "." + alice.DeviceID)
	if got.Get("keys.ed25519:"+alice.DeviceID).Str == "" || got.Get("unsigned.device_display_name").Str != "Alice's laptop" {
		t.Fatalf("query: %s", q.Raw)
	}
	if q.Get("failures").Raw != "{}" {
		t.Fatalf("failures: %s", q.Get("failures").Raw)
	}
	// Asking for a named device; unknown devices and users are absent.
	q = bob.MustDo(t, "POST", v3+"/keys/query", map[string]any{"device_keys": map[string]any{
		alice.UserID: []string{"NOPE"}, "@ghost:test.local": []string{}}}, 200)
	if q.Get("device_keys."+ts.Esc(alice.UserID)).Raw != "{}" || q.Get("device_keys."+ts.Esc("@ghost:test.local")).Raw != "{}" {
		t.Fatalf("unknown device/user: %s", q.Raw)
	}

	// Sync reports the counts.
	s := alice.MustDo(t, "GET", v3+"/sync", nil, 200)
	if s.Get("device_one_time_keys_count.signed_curve25519").Int() != 5 || s.Get("device_unused_fallback_key_types.0").Str != "signed_curve25519" {
		t.Fatalf("sync counts: %s %s", s.Get("device_one_time_keys_count").Raw, s.Get("device_unused_fallback_key_types").Raw)
	}
}

// One query for several users, each with devices of their own: every
// user gets their own devices (only the ones named, if named), nobody
// else's.
func TestQuerySeveralUsers(t *testing.T) {
	srv := ts.Start(t)
	alice, carol, bob := srv.Register(t, "alice"), srv.Register(t, "carol"), srv.Register(t, "bob")
	alice2 := srv.Login(t, "alice")
	for _, c := range []*ts.Client{alice, alice2, carol} {
		dk, _ := deviceKeys(t, c)
		c.MustDo(t, "POST", v3+"/keys/upload", map[string]any{"device_keys": dk}, 200)
	}
	q := bob.MustDo(t, "POST", v3+"/keys/query", map[string]any{"device_keys": map[string]any{
		alice.UserID: []string{alice2.DeviceID}, carol.UserID: []string{}, bob.UserID: []string{}}}, 200)
	devices := func(user string) []string {
		var out []string
		for id, k := range q.Get("device_keys." + ts.Esc(user)).Map() {
			if k.Get("user_id").Str != user || k.Get("device_id").Str != id {
				t.Fatalf("%s's %s: %s", user, id, k.Raw)
			}
			out = append(out, id)
		}
		return out
	}
	if got := devices(alice.UserID); len(got) != 1 || got[0] != alice2.DeviceID {
		t.Fatalf("alice: %v", got)
	}
	if got := devices(carol.UserID); len(got) != 1 || got[0] != carol.DeviceID {
		t.Fatalf("carol: %v", got)
	}
	if got := devices(bob.UserID); len(got) != 0 {
		t.Fatalf("bob uploaded nothing: %v", got)
	}
}

func TestUploadErrors(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	good, k := deviceKeys(t, alice)
	alice.MustDo(t, "POST", v3+"/keys/upload", map[string]any{"device_keys": good, "one_time_keys": otks("x", 1)}, 200)

	bobKeys, _ := deviceKeys(t, bob)
	other := map[string]any{"user_id": alice.UserID, "device_id": "OTHERDEVICE", "algorithms": []string{"a"},
		"keys": map[string]string{"ed25519:OTHERDEVICE": k.pub, "curve25519:OTHERDEVICE": "x"}}
	changed := map[string]any{"user_id": alice.UserID, "device_id": alice.DeviceID, "algorithms": []string{"a"},
		"keys": map[string]string{"ed25519:" + alice.DeviceID: k.pub, "curve25519:" + alice.DeviceID: "different"}}
	unsigned := map[string]any{"user_id": alice.UserID, "device_id": alice.DeviceID, "algorithms": []string{"a"},
		"keys": map[string]string{"ed25519:" + alice.DeviceID: k.pub, "curve25519:" + alice.DeviceID: "y"}}
	forged := sign(t, unsigned, alice.UserID, "ed25519:"+alice.DeviceID, newKey(t))
	for _, tc := range []struct {
		name    string
		body    any
		status  int
		errcode string
	}{
		{"another user's keys", map[string]any{"device_keys": bobKeys}, 400, "M_INVALID_PARAM"},
		{"another device's keys", map[string]any{"device_keys": sign(t, other, alice.UserID, "ed25519:OTHERDEVICE", k)}, 400, "M_INVALID_PARAM"},
		{"changed identity keys", map[string]any{"device_keys": sign(t, changed, alice.UserID, "ed25519:"+alice.DeviceID, k)}, 400, "M_INVALID_PARAM"},
		{"unsigned keys", map[string]any{"device_keys": unsigned}, 400, "M_INVALID_SIGNATURE"},
		{"signed by another key", map[string]any{"device_keys": forged}, 400, "M_INVALID_SIGNATURE"},
		{"no keys", map[string]any{"device_keys": map[string]any{"user_id": alice.UserID, "device_id": alice.DeviceID}}, 400, "M_BAD_JSON"},
		{"device_keys wrong type", map[string]any{"device_keys": "keys"}, 400, "M_BAD_JSON"},
		{"otk id without algorithm", map[string]any{"one_time_keys": map[string]any{"nokey": "x"}}, 400, "M_BAD_JSON"},
		{"otk wrong type", map[string]any{"one_time_keys": map[string]any{"curve25519:1": 5}}, 400, "M_BAD_JSON"},
		{"otk reused with new content", map[string]any{"one_time_keys": map[string]any{"signed_curve25519:x000": map[string]any{"key": "new"}}}, 400, "M_INVALID_PARAM"},
		{"not json", "{", 400, "M_NOT_JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) { alice.MustFail(t, "POST", v3+"/keys/upload", tc.body, tc.status, tc.errcode) })
	}
	q := alice.MustDo(t, "POST", v3+"/keys/query", map[string]any{"device_keys": map[string]any{alice.UserID: []string{}}}, 200)
	if n := len(q.Get("device_keys." + ts.Esc(alice.UserID)).Map()); n != 1 {
		t.Fatalf("refused uploads stored keys: %s", q.Raw)
	}
	if c := alice.MustDo(t, "POST", v3+"/keys/upload", map[string]any{}, 200); c.Get("one_time_key_counts.signed_curve25519").Int() != 1 {
		t.Fatalf("refused uploads changed the key count: %s", c.Raw)
	}
	srv.Anon().MustFail(t, "POST", v3+"/keys/upload", map[string]any{}, 401, "M_MISSING_TOKEN")
	alice.MustFail(t, "POST", v3+"/keys/query", map[string]any{}, 400, "M_MISSING_PARAM")
	alice.MustFail(t, "POST", v3+"/keys/query", map[string]any{"device_keys": []string{"x"}}, 400, "M_BAD_JSON")
	alice.MustFail(t, "POST", v3+"/keys/claim", map[string]any{}, 400, "M_MISSING_PARAM")
}

// Twenty goroutines claim one user's fifty one-time keys: each key goes
// out exactly once, and once they are gone the fallback key is handed out.
func TestConcurrentClaims(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	alice.MustDo(t, "POST", v3+"/keys/upload", map[string]any{
		"one_time_keys": otks("k", 50),
		"fallback_keys": map[string]any{"signed_curve25519:fb": map[string]any{"key": "the-fallback", "fallback": true}},
	}, 200)
	claimers := make([]*ts.Client, 20)
	for i := range claimers {
		claimers[i] = srv.Register(t, fmt.Sprintf("claimer%d", i))
	}
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	body := map[string]any{"one_time_keys": map[string]any{alice.UserID: map[string]string{alice.DeviceID: "signed_curve25519"}}}
	for _, c := range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 { // 60 claims in all: 50 keys, then the fallback
				res := c.MustDo(t, "POST", v3+"/keys/claim", body, 200)
				for keyID, key := range res.Get("one_time_keys." + ts.Esc(alice.UserID) + "." + alice.DeviceID).Map() {
					mu.Lock()
					got[keyID+"="+key.Get("key").Str]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	fallback := "signed_curve25519:fb=the-fallback"
	for k, n := range got {
		if k != fallback && n != 1 {
			t.Fatalf("key %s handed out %d times", k, n)
		}
	}
	if len(got) != 51 || got[fallback] != 10 {
		t.Fatalf("%d distinct keys, fallback %d times; want 51 and 10", len(got), got[fallback])
	}
	// The fallback stays available but is now marked used.
	s := alice.MustDo(t, "GET", v3+"/sync", nil, 200)
	if s.Get("device_one_time_keys_count.signed_curve25519").Int() != 0 || s.Get("device_unused_fallback_key_types.#").Int() != 0 {
		t.Fatalf("after claims: %s %s", s.Get("device_one_time_keys_count").Raw, s.Get("device_unused_fallback_key_types").Raw)
	}
	// Unknown users and devices, and unknown algorithms, give nothing.
	res := claimers[0].MustDo(t, "POST", v3+"/keys/claim", map[string]any{"one_time_keys": map[string]any{
		"@ghost:test.local": map[string]string{"X": "signed_curve25519"}, alice.UserID: map[string]string{"NOPE": "signed_curve25519"}}}, 200)
	if res.Get("one_time_keys").Raw != "{}" {
		t.Fatalf("claim for unknown devices: %s", res.Raw)
	}
}

func TestToDevice(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	bob2 := srv.Login(t, "bob")
	since := bob.MustDo(t, "GET", v3+"/sync", nil, 200).Get("next_batch").Str

	path := v3 + "/sendToDevice/m.room_key_request/txn1"
	msg := map[string]any{"messages": map[string]any{bob.UserID: map[string]any{bob.DeviceID: map[string]any{"n": 1}}}}
	alice.MustDo(t, "PUT", path, msg, 200)
	alice.MustDo(t, "PUT", path, msg, 200) // the same transaction again: no second message
	alice.MustDo(t, "PUT", v3+"/sendToDevice/m.dummy/txn2", map[string]any{"messages": map[string]any{bob.UserID: map[string]any{"*": map[string]any{"n": 2}}}}, 200)

	res := bob.MustDo(t, "GET", v3+"/sync?since="+since, nil, 200)
	events := res.Get("to_device.events").Array()
	if len(events) != 2 || events[0].Get("content.n").Int() != 1 || events[0].Get("sender").Str != alice.UserID ||
		events[0].Get("type").Str != "m.room_key_request" || events[1].Get("content.n").Int() != 2 {
		t.Fatalf("to_device: %s", res.Get("to_device").Raw)
	}
	// Not acknowledged yet: the same token gets them again, and they
	// survive a restart.
	srv.Restart()
	again := bob.MustDo(t, "GET", v3+"/sync?since="+since, nil, 200)
	if again.Get("to_device.events.#").Int() != 2 {
		t.Fatalf("unacknowledged messages lost: %s", again.Get("to_device").Raw)
	}
	// The next token acknowledges them: never delivered twice, and deleted.
	next := bob.MustDo(t, "GET", v3+"/sync?since="+again.Get("next_batch").Str, nil, 200)
	if next.Get("to_device.events.#").Int() != 0 {
		t.Fatalf("delivered twice: %s", next.Get("to_device").Raw)
	}
	var left int
	if err := srv.DB.RawRead(t.Context(), "SELECT COUNT(*) FROM to_device WHERE device_id = '"+bob.DeviceID+"'", &left); err != nil || left != 0 {
		t.Fatalf("acknowledged messages kept: %d %v", left, err)
	}
	// The "*" message reached the other device too.
	if n := bob2.MustDo(t, "GET", v3+"/sync", nil, 200).Get(`to_device.events.#(content.n==2)`); !n.Exists() {
		t.Fatal("wildcard message missing on the second device")
	}

	for _, tc := range []struct {
		body    any
		status  int
		errcode string
	}{
		{map[string]any{}, 400, "M_MISSING_PARAM"},
		{map[string]any{"messages": map[string]any{bob.UserID: map[string]any{bob.DeviceID: "text"}}}, 400, "M_BAD_JSON"},
		{map[string]any{"messages": []string{}}, 400, "M_BAD_JSON"},
	} {
		alice.MustFail(t, "PUT", v3+"/sendToDevice/m.x/bad", tc.body, tc.status, tc.errcode)
	}
	// Unknown users and devices are skipped, not errors.
	alice.MustDo(t, "PUT", v3+"/sendToDevice/m.x/t3", map[string]any{"messages": map[string]any{"@ghost:test.local": map[string]any{"X": map[string]any{}}, bob.UserID: map[string]any{"NOPE": map[string]any{}}}}, 200)
}

// Many senders at once to one device: every message arrives exactly once.
func TestConcurrentToDevice(t *testing.T) {
	srv := ts.Start(t)
	target := srv.Register(t, "target")
	since := target.MustDo(t, "GET", v3+"/sync", nil, 200).Get("next_batch").Str
	const senders, each = 10, 30
	var wg sync.WaitGroup
	for i := range senders {
		c := srv.Register(t, fmt.Sprintf("s%d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				c.MustDo(t, "PUT", fmt.Sprintf("%s/sendToDevice/m.x/t%d", v3, j), map[string]any{"messages": map[string]any{
					target.UserID: map[string]any{target.DeviceID: map[string]any{"from": i, "n": j}}}}, 200)
			}
		}()
	}
	seen := map[string]bool{}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for finished := false; len(seen) < senders*each; {
		select {
		case <-done:
			finished = true
		default:
		}
		res := target.MustDo(t, "GET", v3+"/sync?timeout=2000&since="+since, nil, 200)
		for _, e := range res.Get("to_device.events").Array() {
			k := e.Get("content.from").Raw + "/" + e.Get("content.n").Raw
			if seen[k] {
				t.Fatalf("message %s delivered twice", k)
			}
			seen[k] = true
		}
		since = res.Get("next_batch").Str
		if finished && res.Get("to_device.events.#").Int() == 0 && len(seen) < senders*each {
			t.Fatalf("only %d of %d messages arrived", len(seen), senders*each)
		}
	}
}

func TestDeviceDeletionRemovesKeysAndTellsOthers(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	second := srv.Login(t, "alice")
	dk, _ := deviceKeys(t, second)
	second.MustDo(t, "POST", v3+"/keys/upload", map[string]any{"device_keys": dk, "one_time_keys": otks("d", 3)}, 200)
	bob.MustDo(t, "PUT", v3+"/sendToDevice/m.x/1", map[string]any{"messages": map[string]any{alice.UserID: map[string]any{second.DeviceID: map[string]any{}}}}, 200)
	since := bob.MustDo(t, "GET", v3+"/sync", nil, 200).Get("next_batch").Str

	alice.MustDo(t, "POST", v3+"/delete_devices", map[string]any{"devices": []string{second.DeviceID},
		"auth": ts.PasswordAuth("alice")}, 200)
	s := bob.MustDo(t, "GET", v3+"/sync?since="+since, nil, 200)
	if s.Get("device_lists.changed.0").Str != alice.UserID {
		t.Fatalf("device_lists after deletion: %s", s.Get("device_lists").Raw)
	}
	q := bob.MustDo(t, "POST", v3+"/keys/query", map[string]any{"device_keys": map[string]any{alice.UserID: []string{}}}, 200)
	if q.Get("device_keys." + ts.Esc(alice.UserID) + "." + second.DeviceID).Exists() {
		t.Fatal("deleted device's keys still served")
	}
	for _, table := range []string{"one_time_keys", "to_device", "device_keys"} {
		var n int
		if err := srv.DB.RawRead(t.Context(), "SELECT COUNT(*) FROM "+table+" WHERE device_id = '"+second.DeviceID+"'", &n); err != nil || n != 0 {
			t.Fatalf("%s rows of the deleted device: %d %v", table, n, err)
		}
	}
	// /keys/changes between the same tokens agrees.
	ch := bob.MustDo(t, "GET", v3+"/keys/changes?from="+since+"&to="+s.Get("next_batch").Str, nil, 200)
	if ch.Get("changed.0").Str != alice.UserID {
		t.Fatalf("keys/changes: %s", ch.Raw)
	}
	bob.MustFail(t, "GET", v3+"/keys/changes?from=x&to=y", nil, 400, "M_INVALID_PARAM")

	// Leaving the only shared room puts alice in device_lists.left.
	since = s.Get("next_batch").Str
	bob.MustDo(t, "POST", v3+"/rooms/"+ts.PathEscape(room)+"/leave", map[string]any{}, 200)
	s = bob.MustDo(t, "GET", v3+"/sync?since="+since, nil, 200)
	if s.Get("device_lists.left.0").Str != alice.UserID {
		t.Fatalf("device_lists.left: %s", s.Get("device_lists").Raw)
	}
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// One-time keys are handed out in the order they were uploaded (MSC4225),
// whatever their IDs: clients discard the oldest first.
func TestClaimOldestFirst(t *testing.T) {
	srv := ts.Start(t)
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	for _, id := range []string{"c", "a", "b"} {
		alice.MustDo(t, "POST", v3+"/keys/upload", map[string]any{"one_time_keys": map[string]any{
			"signed_curve25519:" + id: map[string]any{"key": "key-" + id}}}, 200)
	}
	body := map[string]any{"one_time_keys": map[string]any{alice.UserID: map[string]string{alice.DeviceID: "signed_curve25519"}}}
	for _, want := range []string{"c", "a", "b"} {
		res := bob.MustDo(t, "POST", v3+"/keys/claim", body, 200)
		if got := res.Get("one_time_keys." + ts.Esc(alice.UserID) + "." + alice.DeviceID + ".signed_curve25519:" + want + ".key").Str; got != "key-"+want {
			t.Fatalf("claim: want key %s first: %s", want, res.Raw)
		}
	}
}
