package server_test

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/config"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

// No request without an access token writes to the database, except
// registration and login themselves: thousands of them, to every route
// (the public ones with real IDs and a few bodies, the shared-secret
// nonce 2,000 times), leave the database file and its WAL the size they
// were.
func TestNoUnauthenticatedWrites(t *testing.T) {
	srv := ts.Start(t, func(c *config.Config) {
		c.Privacy.PublicProfiles = true
		c.Media.LegacyUnauthenticated = true
		c.Registration.Open = true
	})
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat", "room_alias_name": "lobby", "visibility": "public"})
	event := alice.Send(t, room, "hello")
	send := func(method, path, body string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}

	size := func() (db, wal int64) {
		t.Helper()
		for _, f := range []struct {
			path string
			n    *int64
		}{{srv.Cfg.Database, &db}, {srv.Cfg.Database + "-wal", &wal}} {
			if info, err := os.Stat(f.path); err == nil {
				*f.n = info.Size()
			}
		}
		return db, wal
	}
	if err := srv.DB.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	db0, wal0 := size()

	var requests int
	err := srv.Router().Walk(func(r *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tmpl, err := r.GetPathTemplate()
		if err != nil {
			return nil
		}
		methods, _ := r.GetMethods()
		for _, m := range methods {
			if m == "POST" && (strings.HasSuffix(tmpl, "/v3/register") || strings.HasSuffix(tmpl, "/v3/login")) {
				continue // registration and login themselves
			}
			path := fillTemplate(tmpl, []string{room, event, alice.UserID, alice.DeviceID, "m.room.message", "txn1", "0", "1"})
			for _, body := range []string{"", "{}", `{"type":"m.login.password","nonce":"n","mac":"00","username":"x","password":"y"}`} {
				for range 10 {
					send(m, path, body)
					requests++
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 2000 {
		send("GET", "/_synapse/admin/v1/register", "")
		requests++
	}
	if db, wal := size(); db != db0 || wal != wal0 {
		t.Fatalf("%d requests without a token: database %d -> %d bytes, WAL %d -> %d", requests, db0, db, wal0, wal)
	}
	t.Logf("%d requests without a token; database file and WAL unchanged", requests)
}
