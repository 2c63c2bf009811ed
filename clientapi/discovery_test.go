package clientapi_test

import (
	"net/http"
	"strings"
	"testing"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

func TestDiscovery(t *testing.T) {
	srv := ts.Start(t)
	anon := srv.Anon()
	v := anon.MustDo(t, "GET", "/_matrix/client/versions", nil, 200)
	if !strings.Contains(v.Get("versions").Raw, `"v1.12"`) {
		t.Fatalf("versions: %s", v.Raw)
	}
	// Element Web offers cross-signing only with this flag; delayed events
	// are on by default, thread subscriptions off.
	for flag, want := range map[string]bool{"org.matrix.e2e_cross_signing": true, "org.matrix.msc4140": true, "org.matrix.msc4306": false} {
		if got := v.Get("unstable_features." + ts.Esc(flag)).Bool(); got != want {
			t.Errorf("%s: %v, want %v", flag, got, want)
		}
	}
	wk := anon.MustDo(t, "GET", "/.well-known/matrix/client", nil, 200)
	if wk.Get(`m\.homeserver.base_url`).Str != srv.Cfg.PublicBaseURL {
		t.Fatalf("well-known: %s", wk.Raw)
	}
	alice := srv.Register(t, "alice")
	caps := alice.MustDo(t, "GET", "/_matrix/client/v3/capabilities", nil, 200)
	if caps.Get(`capabilities.m\.room_versions.default`).Str != "11" ||
		caps.Get(`capabilities.m\.room_versions.available.12`).Str != "stable" ||
		!caps.Get(`capabilities.m\.change_password.enabled`).Bool() {
		t.Fatalf("capabilities: %s", caps.Raw)
	}
	anon.MustFail(t, "GET", "/_matrix/client/v3/capabilities", nil, 401, "M_MISSING_TOKEN")
}

func TestUnknownPathsAndMethods(t *testing.T) {
	srv := ts.Start(t)
	anon := srv.Anon()
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/_matrix/client/v3/no/such/endpoint", 404},
		{"GET", "/_matrix/federation/v1/version", 404},
		{"PUT", "/_matrix/federation/v1/send/123", 404},
		{"GET", "/_matrix/key/v2/server", 404},
		{"POST", "/_matrix/key/v2/query", 404},
		{"DELETE", "/_matrix/client/versions", 405},
		{"PUT", "/_matrix/client/v3/login", 405},
		{"GET", "/", 404},
	} {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			anon.MustFail(t, tc.method, tc.path, nil, tc.status, "M_UNRECOGNIZED")
		})
	}
}

func TestCORS(t *testing.T) {
	srv := ts.Start(t)
	for _, path := range []string{"/_matrix/client/v3/login", "/_matrix/client/v3/rooms/!x:y/send/m.room.message/1", "/_matrix/client/versions"} {
		req, _ := http.NewRequest("OPTIONS", srv.URL+path, nil)
		req.Header.Set("Origin", "https://app.element.io")
		req.Header.Set("Access-Control-Request-Method", "PUT")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Fatalf("OPTIONS %s: %d %v", path, res.StatusCode, res.Header)
		}
	}
	res, err := http.Get(srv.URL + "/_matrix/client/versions")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatal("no CORS header on GET")
	}
}

func TestAccessTokens(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	whoami := "/_matrix/client/v3/account/whoami"
	srv.Anon().MustFail(t, "GET", whoami, nil, 401, "M_MISSING_TOKEN")
	srv.As("rdt_not-a-token").MustFail(t, "GET", whoami, nil, 401, "M_UNKNOWN_TOKEN")
	// The query parameter works as well as the header.
	srv.Anon().MustDo(t, "GET", whoami+"?access_token="+alice.Token, nil, 200)
	// A malformed Authorization header is no token at all.
	req, _ := http.NewRequest("GET", srv.URL+whoami, nil)
	req.Header.Set("Authorization", "Basic abc")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Fatalf("Basic auth: %d", res.StatusCode)
	}
}

// Garbage in any shape gets a Matrix error, never a 500.
func TestGarbageBodies(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(t, nil)
	paths := []struct{ method, path string }{
		{"POST", "/_matrix/client/v3/login"},
		{"POST", "/_matrix/client/v3/createRoom"},
		{"PUT", "/_matrix/client/v3/rooms/" + ts.PathEscape(room) + "/send/m.room.message/g1"},
		{"PUT", "/_matrix/client/v3/rooms/" + ts.PathEscape(room) + "/state/m.room.topic/"},
		{"POST", "/_matrix/client/v3/rooms/" + ts.PathEscape(room) + "/invite"},
		{"POST", "/_matrix/client/v3/user/" + alice.UserID + "/filter"},
		{"PUT", "/_matrix/client/v3/user/" + alice.UserID + "/account_data/x.y"},
		{"PUT", "/_matrix/client/v3/profile/" + alice.UserID + "/displayname"},
		{"POST", "/_matrix/client/v3/account/password"},
		{"POST", "/_synapse/admin/v1/register"},
		{"POST", "/_matrix/client/v3/delete_devices"},
	}
	bodies := []struct {
		body    string
		errcode string
	}{
		{"{not json", "M_NOT_JSON"},
		{`[1,2,3]`, "M_BAD_JSON"},
		{`"string"`, "M_BAD_JSON"},
		{`{"name": 5, "password": [], "user_id": {}, "new_password": 1, "devices": "x", "displayname": 3, "msgtype": 1, "room": 5, "topic": 9, "nonce": 1}`, ""},
	}
	for _, p := range paths {
		for _, b := range bodies {
			code, res := alice.Do(t, p.method, p.path, b.body)
			if code >= 500 || code < 400 && b.errcode != "" {
				t.Errorf("%s %s with %s: %d %s", p.method, p.path, b.body, code, res.Raw)
				continue
			}
			if b.errcode != "" && res.Get("errcode").Str != b.errcode {
				t.Errorf("%s %s with %s: errcode %s, want %s", p.method, p.path, b.body, res.Get("errcode").Str, b.errcode)
			}
		}
	}
}

func TestOversizedBody(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	big := `{"x":"` + strings.Repeat("a", 2<<20) + `"}`
	alice.MustFail(t, "POST", "/_matrix/client/v3/createRoom", big, 413, "M_TOO_LARGE")
	// The server is still healthy afterwards.
	alice.MustDo(t, "GET", "/_matrix/client/v3/account/whoami", nil, 200)
}
