package e2ekeys_test

import (
	"testing"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

const dd = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"

func TestDehydratedDevice(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	if !srv.Anon().MustDo(t, "GET", "/_matrix/client/versions", nil, 200).Get(`unstable_features.org\.matrix\.msc3814`).Bool() {
		t.Fatal("msc3814 not advertised")
	}
	alice.MustFail(t, "GET", dd, nil, 404, "M_NOT_FOUND")

	parked := &ts.Client{UserID: alice.UserID, DeviceID: "PARKED1"}
	keys, _ := deviceKeys(t, parked)
	body := map[string]any{"device_id": "PARKED1", "device_data": map[string]any{"algorithm": "x", "secret": "opaque"},
		"initial_device_display_name": "Dehydrated", "device_keys": keys, "one_time_keys": otks("p", 3)}
	if got := alice.MustDo(t, "PUT", dd, body, 200); got.Get("device_id").Str != "PARKED1" {
		t.Fatalf("put: %s", got.Raw)
	}
	if got := alice.MustDo(t, "GET", dd, nil, 200); got.Get("device_data.secret").Str != "opaque" || got.Get("device_id").Str != "PARKED1" {
		t.Fatalf("get: %s", got.Raw)
	}
	// Others see its keys and can claim its one-time keys and message it.
	q := bob.MustDo(t, "POST", v3+"/keys/query", map[string]any{"device_keys": map[string]any{alice.UserID: []string{}}}, 200)
	if !q.Get("device_keys." + ts.Esc(alice.UserID) + ".PARKED1").Exists() {
		t.Fatalf("query: %s", q.Raw)
	}
	c := bob.MustDo(t, "POST", v3+"/keys/claim", map[string]any{"one_time_keys": map[string]any{alice.UserID: map[string]string{"PARKED1": "signed_curve25519"}}}, 200)
	if len(c.Get("one_time_keys."+ts.Esc(alice.UserID)+".PARKED1").Map()) != 1 {
		t.Fatalf("claim: %s", c.Raw)
	}
	for i, txn := range []string{"a", "b", "c"} {
		bob.MustDo(t, "PUT", v3+"/sendToDevice/m.room.encrypted/"+txn, map[string]any{"messages": map[string]any{
			alice.UserID: map[string]any{"PARKED1": map[string]any{"n": i}}}}, 200)
	}
	// A new login collects the messages, acknowledging as it goes.
	events := dd + "/PARKED1/events"
	page := alice.MustDo(t, "POST", events, map[string]any{}, 200)
	if page.Get("events.#").Int() != 3 || page.Get("events.0.content.n").Int() != 0 || page.Get("events.0.sender").Str != bob.UserID {
		t.Fatalf("events: %s", page.Raw)
	}
	next := alice.MustDo(t, "POST", events, map[string]any{"next_batch": page.Get("next_batch").Str}, 200)
	if next.Get("events.#").Int() != 0 {
		t.Fatalf("acknowledged events returned again: %s", next.Raw)
	}
	var left int
	if err := srv.DB.RawRead(t.Context(), "SELECT COUNT(*) FROM to_device WHERE device_id = 'PARKED1'", &left); err != nil || left != 0 {
		t.Fatalf("acknowledged messages kept: %d %v", left, err)
	}

	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		errcode      string
	}{
		{"PUT", dd, map[string]any{"device_data": map[string]any{}, "device_keys": keys}, 400, "M_MISSING_PARAM"},
		{"PUT", dd, map[string]any{"device_id": "X", "device_keys": keys}, 400, "M_MISSING_PARAM"},
		{"PUT", dd, map[string]any{"device_id": "X", "device_data": map[string]any{}}, 400, "M_MISSING_PARAM"},
		{"PUT", dd, map[string]any{"device_id": "OTHER", "device_data": map[string]any{}, "device_keys": keys}, 400, "M_INVALID_PARAM"},
		{"PUT", dd, map[string]any{"device_id": alice.DeviceID, "device_data": map[string]any{}, "device_keys": keys}, 400, "M_INVALID_PARAM"},
		{"PUT", dd, `{"device_id": 5}`, 400, "M_BAD_JSON"},
		{"POST", dd + "/" + alice.DeviceID + "/events", map[string]any{}, 404, "M_NOT_FOUND"},
		{"POST", events, map[string]any{"next_batch": "x"}, 400, "M_INVALID_PARAM"},
	} {
		alice.MustFail(t, tc.method, tc.path, tc.body, tc.status, tc.errcode)
	}
	bob.MustFail(t, "POST", events, map[string]any{}, 404, "M_NOT_FOUND")
	bob.MustFail(t, "GET", dd, nil, 404, "M_NOT_FOUND")

	// A new dehydrated device replaces the old one, which is deleted.
	parked2 := &ts.Client{UserID: alice.UserID, DeviceID: "PARKED2"}
	keys2, _ := deviceKeys(t, parked2)
	alice.MustDo(t, "PUT", dd, map[string]any{"device_id": "PARKED2", "device_data": map[string]any{}, "device_keys": keys2}, 200)
	alice.MustFail(t, "GET", v3+"/devices/PARKED1", nil, 404, "M_NOT_FOUND")
	if got := alice.MustDo(t, "DELETE", dd, nil, 200); got.Get("device_id").Str != "PARKED2" {
		t.Fatalf("delete: %s", got.Raw)
	}
	alice.MustFail(t, "GET", dd, nil, 404, "M_NOT_FOUND")
	alice.MustFail(t, "GET", v3+"/devices/PARKED2", nil, 404, "M_NOT_FOUND")
	alice.MustFail(t, "DELETE", dd, nil, 404, "M_NOT_FOUND")
}
