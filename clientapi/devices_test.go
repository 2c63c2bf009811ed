package clientapi_test

import (
	"testing"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

func TestDevices(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	login := passwordLogin("alice", ts.Password("alice"))
	login["device_id"] = "SECOND"
	second := srv.As(srv.Anon().MustDo(t, "POST", v3+"/login", login, 200).Get("access_token").Str)

	list := alice.MustDo(t, "GET", v3+"/devices", nil, 200)
	if list.Get("devices.#").Int() != 2 || list.Get("devices.#(device_id==SECOND)").Raw == "" {
		t.Fatalf("devices: %s", list.Raw)
	}
	if list.Get("devices.#(device_id=="+alice.DeviceID+").last_seen_ts").Int() == 0 {
		t.Fatalf("last_seen_ts not recorded: %s", list.Raw)
	}
	if list.Get("devices.#(device_id=="+alice.DeviceID+").last_seen_ip").Str != "127.0.0.1" {
		t.Fatalf("last_seen_ip not recorded: %s", list.Raw)
	}

	alice.MustDo(t, "PUT", v3+"/devices/SECOND", map[string]any{"display_name": "Tablet"}, 200)
	if got := alice.MustDo(t, "GET", v3+"/devices/SECOND", nil, 200); got.Get("display_name").Str != "Tablet" {
		t.Fatalf("rename: %s", got.Raw)
	}
	// Other users' devices are unknown, whatever the verb.
	bob.MustFail(t, "GET", v3+"/devices/SECOND", nil, 404, "M_NOT_FOUND")
	bob.MustFail(t, "PUT", v3+"/devices/SECOND", map[string]any{"display_name": "mine"}, 404, "M_NOT_FOUND")
	bob.MustFail(t, "DELETE", v3+"/devices/SECOND", map[string]any{"auth": uiaPassword("bob", ts.Password("bob"), "")}, 404, "M_NOT_FOUND")
	alice.MustFail(t, "GET", v3+"/devices/NOPE", nil, 404, "M_NOT_FOUND")
	alice.MustFail(t, "PUT", v3+"/devices/SECOND", map[string]any{"display_name": 12}, 400, "M_BAD_JSON")
	if got := alice.MustDo(t, "GET", v3+"/devices/SECOND", nil, 200); got.Get("display_name").Str != "Tablet" {
		t.Fatalf("rename by another user took effect: %s", got.Raw)
	}

	// Deleting needs user-interactive auth.
	ch := alice.MustDo(t, "DELETE", v3+"/devices/SECOND", nil, 401)
	if ch.Get("flows.0.stages.0").Str != "m.login.password" {
		t.Fatalf("delete challenge: %s", ch.Raw)
	}
	alice.MustDo(t, "DELETE", v3+"/devices/SECOND", map[string]any{"auth": uiaPassword("alice", "wrong-password", ch.Get("session").Str)}, 401)
	// Bob's own password does not authorise deleting alice's device.
	alice.MustFail(t, "DELETE", v3+"/devices/SECOND", map[string]any{"auth": uiaPassword("bob", ts.Password("bob"), ch.Get("session").Str)}, 403, "M_FORBIDDEN")
	second.MustDo(t, "GET", v3+"/account/whoami", nil, 200)
	settings := v3 + "/user/" + alice.UserID + "/account_data/org.matrix.msc3890.local_notification_settings.SECOND"
	alice.MustDo(t, "PUT", settings, map[string]any{"is_silenced": true}, 200)
	alice.MustDo(t, "DELETE", v3+"/devices/SECOND", map[string]any{"auth": uiaPassword("alice", ts.Password("alice"), ch.Get("session").Str)}, 200)
	second.MustFail(t, "GET", v3+"/account/whoami", nil, 401, "M_UNKNOWN_TOKEN")
	// The device's notification settings (MSC3890) went with it.
	alice.MustFail(t, "GET", settings, nil, 404, "M_NOT_FOUND")

	// delete_devices: several at once; unknown IDs and other users' devices are ignored.
	var tokens []string
	for _, id := range []string{"D1", "D2"} {
		login["device_id"] = id
		tokens = append(tokens, srv.Anon().MustDo(t, "POST", v3+"/login", login, 200).Get("access_token").Str)
	}
	alice.MustFail(t, "POST", v3+"/delete_devices", map[string]any{"auth": uiaPassword("alice", ts.Password("alice"), "")}, 400, "M_MISSING_PARAM")
	alice.MustDo(t, "POST", v3+"/delete_devices", map[string]any{"devices": []string{"D1", "D2"}}, 401)
	alice.MustDo(t, "POST", v3+"/delete_devices", map[string]any{"devices": []string{"D1", "D2", "NOPE", bob.DeviceID},
		"auth": uiaPassword("alice", ts.Password("alice"), "")}, 200)
	for _, tok := range tokens {
		srv.As(tok).MustFail(t, "GET", v3+"/account/whoami", nil, 401, "M_UNKNOWN_TOKEN")
	}
	bob.MustDo(t, "GET", v3+"/account/whoami", nil, 200)
	if n := alice.MustDo(t, "GET", v3+"/devices", nil, 200).Get("devices.#").Int(); n != 1 {
		t.Fatalf("%d devices left, want 1", n)
	}
}
