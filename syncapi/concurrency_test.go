package syncapi_test

import (
	"fmt"
	"net/url"
	"sync"
	"testing"

	"github.com/tidwall/gjson"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
	"github.com/redoubt-systems/redoubt/storage"
)

// Ten senders send 1,000 events in all into rooms shared with a syncing
// client, which long-polls incremental syncs meanwhile. It receives every
// event exactly once, in each room's order; when a timeline is limited it
// fills the gap from prev_batch, as clients do.
func TestConcurrentSendersOneSyncer(t *testing.T) {
	srv := ts.Start(t)
	const senders, perSender, nRooms = 10, 100, 3
	reader := srv.Register(t, "reader")
	var roomIDs []string
	for range nRooms {
		roomIDs = append(roomIDs, reader.CreateRoom(t, map[string]any{"preset": "public_chat"}))
	}
	clients := make([]*ts.Client, senders)
	for i := range clients {
		clients[i] = srv.Register(t, fmt.Sprintf("sender%d", i))
		for _, r := range roomIDs {
			clients[i].Join(t, r)
		}
	}
	filter := url.QueryEscape(`{"room":{"timeline":{"limit":20,"types":["m.room.message"]}}}`)
	since := doSync(t, reader).Get("next_batch").Str

	received := map[string][]string{}
	seen := map[string]bool{}
	total := 0
	take := func(roomID string, events []gjson.Result) {
		for _, e := range events {
			id := e.Get("event_id").Str
			if seen[id] {
				t.Fatalf("event %s delivered twice", id)
			}
			seen[id] = true
			received[roomID] = append(received[roomID], id)
			total++
		}
	}

	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perSender {
				c.Send(t, roomIDs[(i+j)%nRooms], fmt.Sprintf("s%d-%d", i, j))
			}
		}()
	}
	for total < senders*perSender {
		res := reader.MustDo(t, "GET", v3+"/sync?timeout=10000&filter="+filter+"&since="+url.QueryEscape(since), nil, 200)
		for roomID, jr := range res.Get("rooms.join").Map() {
			tl := jr.Get("timeline")
			events := tl.Get("events").Array()
			if tl.Get("limited").Bool() {
				// Fill the gap back to the last event already received.
				var gap []gjson.Result
				from, last := tl.Get("prev_batch").Str, ""
				if r := received[roomID]; len(r) > 0 {
					last = r[len(r)-1]
				}
			backfill:
				for {
					page := reader.MustDo(t, "GET", roomPath(roomID, "/messages?dir=b&limit=50&filter="+
						url.QueryEscape(`{"types":["m.room.message"]}`)+"&from="+url.QueryEscape(from)), nil, 200)
					for _, e := range page.Get("chunk").Array() {
						if e.Get("event_id").Str == last {
							break backfill
						}
						gap = append([]gjson.Result{e}, gap...)
					}
					if !page.Get("end").Exists() {
						break
					}
					from = page.Get("end").Str
				}
				take(roomID, gap)
			}
			take(roomID, events)
		}
		since = res.Get("next_batch").Str
	}
	wg.Wait()

	// Each room's deliveries are its stored order.
	err := srv.DB.Read(t.Context(), func(q storage.Q) error {
		for _, roomID := range roomIDs {
			evs, err := q.RoomEvents(t.Context(), roomID, 0, false, 100000)
			if err != nil {
				return err
			}
			var want []string
			for _, e := range evs {
				if e.Type == "m.room.message" {
					want = append(want, e.EventID)
				}
			}
			got := received[roomID]
			if len(got) != len(want) {
				return fmt.Errorf("room %s: received %d of %d events", roomID, len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					return fmt.Errorf("room %s: event %d out of order", roomID, i)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if total != senders*perSender {
		t.Fatalf("received %d events, sent %d", total, senders*perSender)
	}
}

// A token from before a restart still works after it, with nothing missed.
func TestTokenSurvivesRestart(t *testing.T) {
	srv := ts.Start(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(t, map[string]any{"preset": "public_chat"})
	bob.Join(t, room)
	alice.MustDo(t, "PUT", roomPath(room, "/typing/"+alice.UserID), map[string]any{"typing": true}, 200)
	since := doSync(t, bob).Get("next_batch").Str
	before := alice.Send(t, room, "sent before the restart")

	srv.Restart()

	after := alice.Send(t, room, "sent after the restart")
	alice.MustDo(t, "PUT", v3+"/user/"+bob.UserID+"/account_data/x", map[string]any{}, 403)
	bob.MustDo(t, "PUT", v3+"/user/"+bob.UserID+"/account_data/org.example.after", map[string]any{"v": 1}, 200)
	res := doSync(t, bob, "since", since)
	got := eventIDs(joined(res, room).Get("timeline.events"))
	if len(got) != 2 || got[0] != before || got[1] != after {
		t.Fatalf("after restart: %v", got)
	}
	if !res.Get(`account_data.events.#(type=="org.example.after")`).Exists() {
		t.Fatal("account data after restart missed")
	}
	// Typing positions restart ahead of any old token.
	alice.MustDo(t, "PUT", roomPath(room, "/typing/"+alice.UserID), map[string]any{"typing": true}, 200)
	res = doSync(t, bob, "since", res.Get("next_batch").Str)
	if n := joined(res, room).Get(`ephemeral.events.#(type=="m.typing").content.user_ids.#`).Int(); n != 1 {
		t.Fatalf("typing after restart: %s", res.Raw)
	}
}
