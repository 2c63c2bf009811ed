package clientapi_test

import (
	"fmt"
	"sync"
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

// Many redactions while others send share checkpoints, and none of the
// redacted bodies stays in the file or its WAL past a second.
func TestConcurrentRedactionsForgotten(t *testing.T) {
	srv := ts.Start(t)
	var wg sync.WaitGroup
	canaries := make([][]string, 4)
	for w := range 4 {
		c := srv.Register(t, fmt.Sprintf("writer%d", w))
		room := c.CreateRoom(t, nil)
		wg.Go(func() {
			// Errors, not Fatal: this is not the test's goroutine.
			for i := range 15 {
				canary := fmt.Sprintf("canary-w%d-m%d-%s", w, i, "c0ffee")
				code, res := c.Do(t, "PUT", roomPath(room, fmt.Sprintf("/send/m.room.message/c%d", i)), map[string]any{"msgtype": "m.text", "body": canary})
				c.Do(t, "PUT", roomPath(room, fmt.Sprintf("/send/m.room.message/f%d", i)), map[string]any{"msgtype": "m.text", "body": "filler beside it"})
				if rcode, _ := c.Do(t, "PUT", roomPath(room, fmt.Sprintf("/redact/%s/r%d", res.Get("event_id").Str, i)), map[string]any{}); code != 200 || rcode != 200 {
					t.Errorf("send %d, redact %d", code, rcode)
					return
				}
				canaries[w] = append(canaries[w], canary)
			}
		})
	}
	wg.Wait()
	for _, cs := range canaries {
		for _, c := range cs {
			srv.Forgotten(t, c)
		}
	}
}
