package e2ekeys_test

import (
	"testing"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

const algo = "m.megolm_backup.v1.curve25519-aes-sha2"

func keyData(index, forwarded int, verified bool, marker string) map[string]any {
	return map[string]any{"first_message_index": index, "forwarded_count": forwarded, "is_verified": verified,
		"session_data": map[string]any{"ephemeral": marker, "ciphertext": marker, "mac": marker}}
}

func TestKeyBackup(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	rk := v3 + "/room_keys"

	alice.MustFail(t, "GET", rk+"/version", nil, 404, "M_NOT_FOUND")
	v := alice.MustDo(t, "POST", rk+"/version", map[string]any{"algorithm": algo, "auth_data": map[string]any{"public_key": "abc"}}, 200).Get("version").Str
	got := alice.MustDo(t, "GET", rk+"/version", nil, 200)
	if got.Get("version").Str != v || got.Get("algorithm").Str != algo || got.Get("count").Int() != 0 || got.Get("auth_data.public_key").Str != "abc" {
		t.Fatalf("version: %s", got.Raw)
	}
	bob.MustFail(t, "GET", rk+"/version", nil, 404, "M_NOT_FOUND") // backups are per user

	room, sess := "!room:test.local", "session1"
	put := alice.MustDo(t, "PUT", rk+"/keys/"+ts.PathEscape(room)+"/"+sess+"?version="+v, keyData(5, 1, false, "first"), 200)
	if put.Get("count").Int() != 1 || put.Get("etag").Str == "" {
		t.Fatalf("put: %s", put.Raw)
	}
	etag := put.Get("etag").Str
	// The keep rule: a worse key is ignored (etag unchanged), a better one wins.
	for _, tc := range []struct {
		data map[string]any
		want string
	}{
		{keyData(9, 0, false, "later index"), "first"},
		{keyData(5, 2, false, "more forwarded"), "first"},
		{keyData(5, 0, false, "fewer forwards"), "fewer forwards"},
		{keyData(1, 0, false, "lower index"), "lower index"},
		{keyData(10, 5, true, "verified"), "verified"},
		{keyData(0, 0, false, "unverified"), "verified"},
	} {
		alice.MustDo(t, "PUT", rk+"/keys?version="+v, map[string]any{"rooms": map[string]any{room: map[string]any{"sessions": map[string]any{sess: tc.data}}}}, 200)
		k := alice.MustDo(t, "GET", rk+"/keys/"+ts.PathEscape(room)+"/"+sess+"?version="+v, nil, 200)
		if k.Get("session_data.ciphertext").Str != tc.want {
			t.Fatalf("after %v: kept %s, want %s", tc.data["session_data"], k.Get("session_data.ciphertext").Str, tc.want)
		}
	}
	alice.MustDo(t, "PUT", rk+"/keys/"+ts.PathEscape(room)+"?version="+v, map[string]any{"sessions": map[string]any{"session2": keyData(0, 0, true, "two")}}, 200)
	all := alice.MustDo(t, "GET", rk+"/keys?version="+v, nil, 200)
	if len(all.Get("rooms."+ts.Esc(room)+".sessions").Map()) != 2 {
		t.Fatalf("all keys: %s", all.Raw)
	}
	if r := alice.MustDo(t, "GET", rk+"/keys/"+ts.PathEscape(room)+"?version="+v, nil, 200); len(r.Get("sessions").Map()) != 2 {
		t.Fatalf("room keys: %s", r.Raw)
	}
	info := alice.MustDo(t, "GET", rk+"/version/"+v, nil, 200)
	if info.Get("count").Int() != 2 || info.Get("etag").Str == etag {
		t.Fatalf("count/etag: %s (old etag %s)", info.Raw, etag)
	}

	// A new version becomes current; writes to the old one are refused.
	v2 := alice.MustDo(t, "POST", rk+"/version", map[string]any{"algorithm": algo, "auth_data": map[string]any{}}, 200).Get("version").Str
	wrong := alice.MustFail(t, "PUT", rk+"/keys/"+ts.PathEscape(room)+"/"+sess+"?version="+v, keyData(0, 0, true, "x"), 403, "M_WRONG_ROOM_KEYS_VERSION")
	if wrong.Get("current_version").Str != v2 {
		t.Fatalf("current_version: %s", wrong.Raw)
	}
	// Old versions stay readable until deleted.
	alice.MustDo(t, "GET", rk+"/keys?version="+v, nil, 200)

	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		errcode      string
	}{
		{"GET", rk + "/version/99", nil, 404, "M_NOT_FOUND"},
		{"GET", rk + "/version/abc", nil, 404, "M_NOT_FOUND"},
		{"GET", rk + "/keys", nil, 400, "M_MISSING_PARAM"},
		{"GET", rk + "/keys?version=99", nil, 404, "M_NOT_FOUND"},
		{"GET", rk + "/keys/" + ts.PathEscape(room) + "/nope?version=" + v, nil, 404, "M_NOT_FOUND"},
		{"PUT", rk + "/keys?version=99", map[string]any{"rooms": map[string]any{}}, 403, "M_WRONG_ROOM_KEYS_VERSION"},
		{"PUT", rk + "/keys/" + ts.PathEscape(room) + "/s?version=" + v2, map[string]any{"first_message_index": 0}, 400, "M_BAD_JSON"},
		{"PUT", rk + "/keys/" + ts.PathEscape(room) + "/s?version=" + v2, map[string]any{"first_message_index": "x"}, 400, "M_BAD_JSON"},
		{"POST", rk + "/version", map[string]any{"algorithm": 5, "auth_data": map[string]any{}}, 400, "M_BAD_JSON"},
		{"POST", rk + "/version", map[string]any{"auth_data": map[string]any{}}, 400, "M_MISSING_PARAM"},
		{"POST", rk + "/version", map[string]any{"algorithm": algo}, 400, "M_MISSING_PARAM"},
		{"PUT", rk + "/version/" + v2, map[string]any{"algorithm": algo, "auth_data": map[string]any{}, "version": v}, 400, "M_INVALID_PARAM"},
		{"PUT", rk + "/version/99", map[string]any{"algorithm": algo, "auth_data": map[string]any{}}, 404, "M_NOT_FOUND"},
		{"DELETE", rk + "/version/99", nil, 404, "M_NOT_FOUND"},
	} {
		alice.MustFail(t, tc.method, tc.path, tc.body, tc.status, tc.errcode)
	}
	alice.MustDo(t, "PUT", rk+"/version/"+v2, map[string]any{"algorithm": algo, "auth_data": map[string]any{"new": true}, "version": v2}, 200)
	if got := alice.MustDo(t, "GET", rk+"/version", nil, 200); !got.Get("auth_data.new").Bool() {
		t.Fatalf("update: %s", got.Raw)
	}

	// Deleting keys and versions.
	alice.MustDo(t, "PUT", rk+"/keys/"+ts.PathEscape(room)+"/a?version="+v2, keyData(0, 0, true, "a"), 200)
	del := alice.MustDo(t, "DELETE", rk+"/keys/"+ts.PathEscape(room)+"/a?version="+v2, nil, 200)
	if del.Get("count").Int() != 0 {
		t.Fatalf("delete key: %s", del.Raw)
	}
	alice.MustDo(t, "DELETE", rk+"/version/"+v, nil, 200)
	alice.MustFail(t, "GET", rk+"/version/"+v, nil, 404, "M_NOT_FOUND")
	var n int
	if err := srv.DB.RawRead(t.Context(), "SELECT COUNT(*) FROM backup_keys WHERE version = "+v, &n); err != nil || n != 0 {
		t.Fatalf("keys of a deleted version remain: %d %v", n, err)
	}
	alice.MustDo(t, "DELETE", rk+"/version/"+v2, nil, 200)
	alice.MustFail(t, "GET", rk+"/version", nil, 404, "M_NOT_FOUND")
	// Version numbers are never reused.
	if v3 := alice.MustDo(t, "POST", rk+"/version", map[string]any{"algorithm": algo, "auth_data": map[string]any{}}, 200).Get("version").Str; v3 == v || v3 == v2 {
		t.Fatalf("version %s reused", v3)
	}
}
