package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

// Every route, with every kind of bad input, answers a Matrix error below
// 500: no input makes the server fail or panic.
func TestNoInputCausesServerError(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(t, map[string]any{"name": "r"})
	event := alice.Send(t, room, "x")
	// The walk runs as an admin, so the admin API's handlers see the
	// garbage too; alice and her room are what the real IDs name.
	root := srv.RegisterAdmin(t, "root")

	type route struct{ path, method string }
	var routes []route
	err := srv.Router().Walk(func(r *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tmpl, err := r.GetPathTemplate()
		if err != nil {
			return nil
		}
		if strings.Contains(tmpl, "/logout") {
			return nil // would end the session the rest of the walk uses
		}
		if strings.HasPrefix(tmpl, "/admin") {
			return nil // the panel's static files
		}
		if strings.HasPrefix(tmpl, "/_redoubt/oauth/") {
			// The OAuth 2.0 authorization server answers as OAuth clients
			// and browsers read it (RFC 6749's errors, pages), not with
			// Matrix errors: oauthserver's TestGarbage walks it.
			return nil
		}
		methods, _ := r.GetMethods()
		for _, m := range methods {
			routes = append(routes, route{tmpl, m})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) < 60 {
		t.Fatalf("only %d routes found", len(routes))
	}
	// Path parameters: real IDs, and garbage.
	params := [][]string{
		{room, event, alice.UserID, alice.DeviceID, "m.room.message", "txn1", "0", "1"},
		{"%00", "%FF%FE", strings.Repeat("a", 3000), "..%2F..%2Fetc", "!", "$", "@", "#x:y", "-1", "99999999999999999999"},
	}
	bodies := []string{"", "{", "null", "[]", `"s"`, "0", `{"a":`, strings.Repeat("[", 5000),
		`{"auth":5,"user_id":[],"devices":{},"messages":[],"device_keys":7,"one_time_keys":"x","rooms":1,"typing":"x","presence":1,"algorithm":{},"version":3}`}
	queries := []string{"", "?since=s%00&timeout=x&limit=-5&from=%FF&dir=z&filter=%7B&version=abc&at=zz&membership=x"}
	for _, r := range routes {
		for _, ps := range params {
			path := fillTemplate(r.path, ps)
			for _, q := range queries {
				for _, body := range bodies {
					if r.method == http.MethodGet && body != "" {
						continue
					}
					code, res := root.Do(t, r.method, path+q, body)
					if code >= 500 {
						t.Errorf("%s %s%s with %.40q: %d %s", r.method, r.path, q, body, code, res.Raw)
					}
					if code >= 400 && res.Get("errcode").Str == "" && !res.Get("flows").Exists() {
						t.Errorf("%s %s: %d without errcode: %s", r.method, r.path, code, res.Raw)
					}
				}
			}
		}
	}
	// The server is still healthy.
	root.MustDo(t, "GET", "/_matrix/client/v3/account/whoami", nil, 200)
}

// fillTemplate replaces each {name} or {name:regexp} of a route template
// with values taken in turn.
func fillTemplate(tmpl string, values []string) string {
	var b strings.Builder
	i := 0
	for {
		start := strings.Index(tmpl, "{")
		if start < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		end := strings.Index(tmpl[start:], "}")
		b.WriteString(tmpl[:start])
		name := tmpl[start+1 : start+end]
		if n, re, ok := strings.Cut(name, ":"); ok {
			// Take the first alternative of a regexp such as kick|ban|unban.
			_ = n
			alt, _, _ := strings.Cut(re, "|")
			if alt == ".*" {
				alt = values[i%len(values)]
			}
			b.WriteString(alt)
		} else {
			v := values[i%len(values)]
			if !strings.Contains(v, "%") {
				v = url.PathEscape(v)
			}
			b.WriteString(v)
		}
		i++
		tmpl = tmpl[start+end+1:]
	}
}
