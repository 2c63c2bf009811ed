package clientapi_test

import (
	"testing"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

// Within a second of a redaction being accepted, the original content's
// bytes are nowhere in the database file or its WAL.
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
	if !srv.InFiles(t, canary) {
		t.Fatal("canary not found before redaction: the test would prove nothing")
	}
	alice.MustDo(t, "PUT", roomPath(room, "/redact/"+id+"/x"), map[string]any{"reason": "oops"}, 200)
	srv.Forgotten(t, canary)
	srv.Stop()
	if ts.FileContains(t, srv.Cfg.Database, canary) {
		t.Fatal("database file holds the redacted content after close")
	}
}
