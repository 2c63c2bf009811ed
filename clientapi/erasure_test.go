package clientapi_test

import (
	"testing"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

// After a redaction is accepted, the original content's bytes are nowhere in
// the database file (or its WAL) once the WAL is checkpointed.
func TestRedactionErasesContentFromFile(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(t, nil)
	canary := "canary-7f3a9c2e-do-not-keep-" + "b41d"
	// Enough other traffic that the event shares its page with others.
	for range 20 {
		alice.Send(t, room, "filler message")
	}
	id := alice.Send(t, room, canary)
	for range 20 {
		alice.Send(t, room, "filler message")
	}
	if err := srv.DB.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !ts.FileContains(t, srv.Cfg.Database, canary) {
		t.Fatal("canary not found before redaction: the test would prove nothing")
	}
	alice.MustDo(t, "PUT", roomPath(room, "/redact/"+id+"/x"), map[string]any{"reason": "oops"}, 200)
	if err := srv.DB.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{srv.Cfg.Database, srv.Cfg.Database + "-wal"} {
		if ts.FileContains(t, f, canary) {
			t.Fatalf("%s still holds the redacted content", f)
		}
	}
	srv.Stop()
	if ts.FileContains(t, srv.Cfg.Database, canary) {
		t.Fatal("database file holds the redacted content after close")
	}
}
