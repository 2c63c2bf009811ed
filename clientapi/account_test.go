package clientapi_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"testing"
	"time"

	"github.com/redoubt-systems/redoubt/config"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

const v3 = "/_matrix/client/v3"

func passwordLogin(user, password string) map[string]any {
	return map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": user}, "password": password}
}

func TestLogin(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	anon := srv.Anon()
	flows := anon.MustDo(t, "GET", v3+"/login", nil, 200)
	if flows.Get("flows.#(type==m.login.password)").Raw == "" {
		t.Fatalf("login flows: %s", flows.Raw)
	}
	for _, user := range []string{"alice", alice.UserID, "ALICE"} {
		res := anon.MustDo(t, "POST", v3+"/login", passwordLogin(user, ts.Password("alice")), 200)
		if res.Get("user_id").Str != alice.UserID || res.Get("access_token").Str == "" || res.Get("device_id").Str == "" ||
			res.Get(`well_known.m\.homeserver.base_url`).Str == "" || res.Get("refresh_token").Exists() {
			t.Fatalf("login as %s: %s", user, res.Raw)
		}
		srv.As(res.Get("access_token").Str).MustDo(t, "GET", v3+"/account/whoami", nil, 200)
	}
	// The deprecated top-level user field still works.
	anon.MustDo(t, "POST", v3+"/login", map[string]any{"type": "m.login.password", "user": "alice", "password": ts.Password("alice")}, 200)
	// A named device is created with its display name, and reused.
	body := passwordLogin("alice", ts.Password("alice"))
	body["device_id"], body["initial_device_display_name"] = "PHONE", "Alice's phone"
	res := anon.MustDo(t, "POST", v3+"/login", body, 200)
	if res.Get("device_id").Str != "PHONE" {
		t.Fatalf("device_id not kept: %s", res.Raw)
	}
	d := srv.As(res.Get("access_token").Str).MustDo(t, "GET", v3+"/devices/PHONE", nil, 200)
	if d.Get("display_name").Str != "Alice's phone" {
		t.Fatalf("device: %s", d.Raw)
	}

	for _, tc := range []struct {
		name    string
		body    any
		status  int
		errcode string
	}{
		{"wrong password", passwordLogin("alice", "nope-nope-nope"), 403, "M_FORBIDDEN"},
		{"unknown user", passwordLogin("nobody", "whatever-pass"), 403, "M_FORBIDDEN"},
		{"other server", passwordLogin("@alice:elsewhere.org", ts.Password("alice")), 403, "M_FORBIDDEN"},
		{"invalid localpart", passwordLogin("al ice", ts.Password("alice")), 403, "M_FORBIDDEN"},
		{"unknown type", map[string]any{"type": "m.login.bogus", "token": "x"}, 400, "M_UNKNOWN"},
		{"unknown login token", map[string]any{"type": "m.login.token", "token": "x"}, 403, "M_FORBIDDEN"},
		{"missing login token", map[string]any{"type": "m.login.token"}, 400, "M_MISSING_PARAM"},
		{"login token wrong type", map[string]any{"type": "m.login.token", "token": 5}, 400, "M_BAD_JSON"},
		{"unknown identifier", map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.phone"}, "password": "x"}, 400, "M_UNKNOWN"},
		{"missing password", map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "alice"}}, 400, "M_MISSING_PARAM"},
		{"missing user", map[string]any{"type": "m.login.password", "password": "x"}, 400, "M_MISSING_PARAM"},
		{"password wrong type", map[string]any{"type": "m.login.password", "user": "alice", "password": 5}, 400, "M_BAD_JSON"},
		{"not json", "{", 400, "M_NOT_JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			anon.MustFail(t, "POST", v3+"/login", tc.body, tc.status, tc.errcode)
		})
	}
}

func TestLogout(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	other := srv.Anon().MustDo(t, "POST", v3+"/login", passwordLogin("alice", ts.Password("alice")), 200)
	alice.MustDo(t, "POST", v3+"/logout", map[string]any{}, 200)
	alice.MustFail(t, "GET", v3+"/account/whoami", nil, 401, "M_UNKNOWN_TOKEN")
	// Logging out deletes the device.
	second := srv.As(other.Get("access_token").Str)
	devices := second.MustDo(t, "GET", v3+"/devices", nil, 200)
	if n := devices.Get("devices.#").Int(); n != 1 {
		t.Fatalf("devices after logout: %s", devices.Raw)
	}
	third := srv.As(srv.Anon().MustDo(t, "POST", v3+"/login", passwordLogin("alice", ts.Password("alice")), 200).Get("access_token").Str)
	third.MustDo(t, "POST", v3+"/logout/all", nil, 200)
	second.MustFail(t, "GET", v3+"/account/whoami", nil, 401, "M_UNKNOWN_TOKEN")
	third.MustFail(t, "GET", v3+"/account/whoami", nil, 401, "M_UNKNOWN_TOKEN")
	srv.Anon().MustFail(t, "POST", v3+"/logout", nil, 401, "M_MISSING_TOKEN")
}

func TestWhoami(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	res := alice.MustDo(t, "GET", v3+"/account/whoami", nil, 200)
	if res.Get("user_id").Str != alice.UserID || res.Get("device_id").Str != alice.DeviceID || res.Get("is_guest").Bool() {
		t.Fatalf("whoami: %s", res.Raw)
	}
}

func TestRefreshTokens(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	srv := ts.Start(t)
	srv.Auth.Now = clock
	srv.Register(t, "alice")
	body := passwordLogin("alice", ts.Password("alice"))
	body["refresh_token"] = true
	res := srv.Anon().MustDo(t, "POST", v3+"/login", body, 200)
	if res.Get("expires_in_ms").Int() != srv.Cfg.Auth.AccessTokenLifetime.D().Milliseconds() || res.Get("refresh_token").Str == "" {
		t.Fatalf("login with refresh: %s", res.Raw)
	}
	access, refresh := res.Get("access_token").Str, res.Get("refresh_token").Str
	srv.As(access).MustDo(t, "GET", v3+"/account/whoami", nil, 200)

	now = now.Add(srv.Cfg.Auth.AccessTokenLifetime.D() + time.Second)
	expired := srv.As(access).MustFail(t, "GET", v3+"/account/whoami", nil, 401, "M_UNKNOWN_TOKEN")
	if !expired.Get("soft_logout").Bool() {
		t.Fatalf("expired token without soft_logout: %s", expired.Raw)
	}
	fresh := srv.Anon().MustDo(t, "POST", v3+"/refresh", map[string]any{"refresh_token": refresh}, 200)
	if fresh.Get("access_token").Str == access || fresh.Get("refresh_token").Str == refresh || fresh.Get("expires_in_ms").Int() <= 0 {
		t.Fatalf("refresh: %s", fresh.Raw)
	}
	srv.As(fresh.Get("access_token").Str).MustDo(t, "GET", v3+"/account/whoami", nil, 200)
	// A refresh token works once.
	srv.Anon().MustFail(t, "POST", v3+"/refresh", map[string]any{"refresh_token": refresh}, 401, "M_UNKNOWN_TOKEN")
	srv.Anon().MustFail(t, "POST", v3+"/refresh", map[string]any{}, 400, "M_MISSING_PARAM")
	srv.Anon().MustFail(t, "POST", v3+"/refresh", map[string]any{"refresh_token": 7}, 400, "M_BAD_JSON")
}

func uiaPassword(user, password, session string) map[string]any {
	return map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": user},
		"password": password, "session": session}
}

func TestChangePassword(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	other := srv.As(srv.Anon().MustDo(t, "POST", v3+"/login", passwordLogin("alice", ts.Password("alice")), 200).Get("access_token").Str)
	path := v3 + "/account/password"

	challenge := alice.MustDo(t, "POST", path, map[string]any{"new_password": "new-password-1"}, 401)
	session := challenge.Get("session").Str
	if session == "" || challenge.Get("flows.0.stages.0").Str != "m.login.password" || challenge.Get("errcode").Exists() {
		t.Fatalf("challenge: %s", challenge.Raw)
	}
	bad := alice.MustDo(t, "POST", path, map[string]any{"new_password": "new-password-1",
		"auth": uiaPassword(alice.UserID, "wrong-password", session)}, 401)
	if bad.Get("errcode").Str != "M_FORBIDDEN" || bad.Get("flows").Raw == "" {
		t.Fatalf("wrong password: %s", bad.Raw)
	}
	// Authenticating as someone else is refused too.
	srv.Register(t, "bob")
	alice.MustFail(t, "POST", path, map[string]any{"new_password": "new-password-1",
		"auth": uiaPassword("bob", ts.Password("bob"), session)}, 403, "M_FORBIDDEN")
	alice.MustFail(t, "POST", path, map[string]any{"new_password": "short",
		"auth": uiaPassword("alice", ts.Password("alice"), session)}, 400, "M_WEAK_PASSWORD")
	alice.MustFail(t, "POST", path, map[string]any{"auth": uiaPassword("alice", ts.Password("alice"), session)}, 400, "M_MISSING_PARAM")

	alice.MustDo(t, "POST", path, map[string]any{"new_password": "new-password-1",
		"auth": uiaPassword("alice", ts.Password("alice"), session)}, 200)
	alice.MustDo(t, "GET", v3+"/account/whoami", nil, 200)
	other.MustFail(t, "GET", v3+"/account/whoami", nil, 401, "M_UNKNOWN_TOKEN")
	srv.Anon().MustFail(t, "POST", v3+"/login", passwordLogin("alice", ts.Password("alice")), 403, "M_FORBIDDEN")
	srv.Anon().MustDo(t, "POST", v3+"/login", passwordLogin("alice", "new-password-1"), 200)

	// logout_devices: false keeps the other sessions.
	third := srv.As(srv.Anon().MustDo(t, "POST", v3+"/login", passwordLogin("alice", "new-password-1"), 200).Get("access_token").Str)
	alice.MustDo(t, "POST", path, map[string]any{"new_password": "new-password-2", "logout_devices": false,
		"auth": uiaPassword("alice", "new-password-1", "")}, 200)
	third.MustDo(t, "GET", v3+"/account/whoami", nil, 200)
}

func TestDeactivate(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := bob.CreateRoom(t, map[string]any{"preset": "public_chat"})
	alice.Join(t, room)
	invited := bob.CreateRoom(t, map[string]any{"invite": []string{alice.UserID}})

	alice.MustDo(t, "POST", v3+"/account/deactivate", map[string]any{}, 401)
	alice.MustDo(t, "POST", v3+"/account/deactivate", map[string]any{"auth": uiaPassword("alice", "wrong-password", "")}, 401)
	res := alice.MustDo(t, "POST", v3+"/account/deactivate", map[string]any{"auth": uiaPassword("alice", ts.Password("alice"), "")}, 200)
	if res.Get("id_server_unbind_result").Str != "no-support" {
		t.Fatalf("deactivate: %s", res.Raw)
	}
	alice.MustFail(t, "GET", v3+"/account/whoami", nil, 401, "M_UNKNOWN_TOKEN")
	srv.Anon().MustFail(t, "POST", v3+"/login", passwordLogin("alice", ts.Password("alice")), 403, "M_USER_DEACTIVATED")
	for _, r := range []string{room, invited} {
		m := bob.MustDo(t, "GET", v3+"/rooms/"+ts.PathEscape(r)+"/state/m.room.member/"+alice.UserID, nil, 200)
		if m.Get("membership").Str != "leave" {
			t.Fatalf("membership after deactivation in %s: %s", r, m.Raw)
		}
	}
	bob.MustFail(t, "GET", v3+"/profile/"+alice.UserID, nil, 404, "M_NOT_FOUND")
	bob.MustFail(t, "POST", v3+"/rooms/"+ts.PathEscape(room)+"/invite", map[string]any{"user_id": alice.UserID}, 404, "M_NOT_FOUND")
	// The user ID stays taken.
	srv.Anon().MustFail(t, "GET", v3+"/register/available?username=alice", nil, 400, "M_USER_IN_USE")
}

func TestRegistrationClosedByDefault(t *testing.T) {
	srv := ts.Start(t)
	srv.Anon().MustFail(t, "POST", v3+"/register", map[string]any{"username": "carol", "password": "carol-password"}, 403, "M_FORBIDDEN")
	srv.Anon().MustFail(t, "POST", v3+"/register?kind=guest", map[string]any{}, 403, "M_GUEST_ACCESS_FORBIDDEN")
	srv.Anon().MustFail(t, "POST", v3+"/login", passwordLogin("carol", "carol-password"), 403, "M_FORBIDDEN")
}

func TestOpenRegistration(t *testing.T) {
	srv := ts.Start(t, func(c *config.Config) { c.Registration.Open = true })
	anon := srv.Anon()
	path := v3 + "/register"
	body := map[string]any{"username": "carol", "password": "carol-password", "initial_device_display_name": "laptop"}
	challenge := anon.MustDo(t, "POST", path, body, 401)
	if challenge.Get("flows.0.stages.0").Str != "m.login.dummy" || challenge.Get("session").Str == "" {
		t.Fatalf("register challenge: %s", challenge.Raw)
	}
	body["auth"] = map[string]any{"type": "m.login.dummy", "session": challenge.Get("session").Str}
	res := anon.MustDo(t, "POST", path, body, 200)
	if res.Get("user_id").Str != "@carol:test.local" || res.Get("access_token").Str == "" {
		t.Fatalf("register: %s", res.Raw)
	}
	srv.As(res.Get("access_token").Str).MustDo(t, "GET", v3+"/account/whoami", nil, 200)
	// An empty request is told the flows, as clients start with one.
	if flows := anon.MustDo(t, "POST", path, map[string]any{}, 401); flows.Get("flows.0.stages.0").Str != "m.login.dummy" {
		t.Fatalf("register {}: %s", flows.Raw)
	}
	dummy := map[string]any{"type": "m.login.dummy"}
	// Capitals are taken as their lower-case form.
	upper := anon.MustDo(t, "POST", path, map[string]any{"username": "Frank", "password": "frank-password", "auth": dummy}, 200)
	if upper.Get("user_id").Str != "@frank:test.local" {
		t.Fatalf("register Frank: %s", upper.Raw)
	}

	for _, tc := range []struct {
		name    string
		body    map[string]any
		status  int
		errcode string
	}{
		{"taken", map[string]any{"username": "carol", "password": "carol-password", "auth": dummy}, 400, "M_USER_IN_USE"},
		{"invalid", map[string]any{"username": "Carol!", "password": "carol-password", "auth": dummy}, 400, "M_INVALID_USERNAME"},
		{"weak", map[string]any{"username": "dave", "password": "short", "auth": dummy}, 400, "M_WEAK_PASSWORD"},
		{"no password", map[string]any{"username": "dave", "auth": dummy}, 400, "M_MISSING_PARAM"},
		{"wrong stage", map[string]any{"username": "dave", "password": "dave-password", "auth": map[string]any{"type": "m.login.recaptcha"}}, 401, "M_FORBIDDEN"},
	} {
		t.Run(tc.name, func(t *testing.T) { anon.MustFail(t, "POST", path, tc.body, tc.status, tc.errcode) })
	}
	// A generated username, and inhibit_login.
	res = anon.MustDo(t, "POST", path, map[string]any{"password": "some-password", "inhibit_login": true, "auth": dummy}, 200)
	if res.Get("user_id").Str == "" || res.Get("access_token").Exists() {
		t.Fatalf("inhibit_login: %s", res.Raw)
	}

	anon.MustDo(t, "GET", v3+"/register/available?username=erin", nil, 200)
	anon.MustFail(t, "GET", v3+"/register/available?username=carol", nil, 400, "M_USER_IN_USE")
	anon.MustFail(t, "GET", v3+"/register/available?username=E%20rin", nil, 400, "M_INVALID_USERNAME")
	anon.MustFail(t, "GET", v3+"/register/available", nil, 400, "M_MISSING_PARAM")
}

func sharedSecretBody(nonce, user, password string, admin bool, secret string) map[string]any {
	mac := hmac.New(sha1.New, []byte(secret))
	flag := "notadmin"
	if admin {
		flag = "admin"
	}
	mac.Write([]byte(nonce + "\x00" + user + "\x00" + password + "\x00" + flag))
	return map[string]any{"nonce": nonce, "username": user, "password": password, "admin": admin, "mac": hex.EncodeToString(mac.Sum(nil))}
}

func TestSharedSecretRegistration(t *testing.T) {
	srv := ts.Start(t)
	anon := srv.Anon()
	path := "/_synapse/admin/v1/register"
	nonce := func() string { return anon.MustDo(t, "GET", path, nil, 200).Get("nonce").Str }

	n := nonce()
	res := anon.MustDo(t, "POST", path, sharedSecretBody(n, "root", "root-password", true, ts.Secret), 200)
	if res.Get("user_id").Str != "@root:test.local" || res.Get("access_token").Str == "" || res.Get("device_id").Str == "" {
		t.Fatalf("register: %s", res.Raw)
	}
	u, err := srv.DB.R().User(t.Context(), "@root:test.local")
	if err != nil || !u.IsAdmin {
		t.Fatalf("admin flag not stored: %+v %v", u, err)
	}
	// A nonce works once.
	anon.MustFail(t, "POST", path, sharedSecretBody(n, "root2", "root-password", false, ts.Secret), 400, "M_UNKNOWN")
	anon.MustFail(t, "POST", path, sharedSecretBody("made-up", "x", "xxxxxxxxxx", false, ts.Secret), 400, "M_UNKNOWN")
	anon.MustFail(t, "POST", path, sharedSecretBody(nonce(), "eve", "eve-password", true, "wrong-secret"), 403, "M_FORBIDDEN")
	// The MAC covers the admin flag.
	forged := sharedSecretBody(nonce(), "eve", "eve-password", false, ts.Secret)
	forged["admin"] = true
	anon.MustFail(t, "POST", path, forged, 403, "M_FORBIDDEN")
	anon.MustFail(t, "POST", path, sharedSecretBody(nonce(), "root", "root-password", false, ts.Secret), 400, "M_USER_IN_USE")
	anon.MustFail(t, "POST", path, sharedSecretBody(nonce(), "Bad Name", "xxxxxxxxxx", false, ts.Secret), 400, "M_INVALID_USERNAME")
	// The MAC is over the name as sent; the account is its lower-case form.
	if res := anon.MustDo(t, "POST", path, sharedSecretBody(nonce(), "Grace", "grace-password", false, ts.Secret), 200); res.Get("user_id").Str != "@grace:test.local" {
		t.Fatalf("shared-secret Grace: %s", res.Raw)
	}
	anon.MustFail(t, "POST", path, map[string]any{"nonce": nonce()}, 400, "M_MISSING_PARAM")
	if ok, _ := srv.DB.R().UserExists(t.Context(), "@eve:test.local"); ok {
		t.Fatal("a refused registration created a user")
	}

	off := ts.Start(t, func(c *config.Config) { c.RegistrationSharedSecret = "" })
	off.Anon().MustFail(t, "GET", path, nil, 400, "M_UNKNOWN")
	off.Anon().MustFail(t, "POST", path, sharedSecretBody("n", "x", "xxxxxxxxxx", false, ""), 400, "M_UNKNOWN")
}
