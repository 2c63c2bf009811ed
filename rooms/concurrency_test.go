package rooms_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/tidwall/gjson"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
	"github.com/redoubt-systems/redoubt/storage"
)

// Many clients writing at once into shared rooms: every acknowledged event
// is stored exactly once, and each room's history stays one line, each
// event's prev_events naming the one before it.
func TestConcurrentSendsKeepHistoryLinear(t *testing.T) {
	srv := ts.Start(t)
	const writers, perWriter, nRooms = 16, 25, 3
	owner := srv.Register(t, "owner")
	var roomIDs []string
	for range nRooms {
		roomIDs = append(roomIDs, owner.CreateRoom(t, map[string]any{"preset": "public_chat"}))
	}
	clients := make([]*ts.Client, writers)
	for i := range clients {
		clients[i] = srv.Register(t, fmt.Sprintf("writer%d", i))
		for _, r := range roomIDs {
			clients[i].Join(t, r)
		}
	}
	var wg sync.WaitGroup
	acked := make(chan string, writers*perWriter)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perWriter {
				acked <- c.Send(t, roomIDs[(i+j)%nRooms], fmt.Sprintf("w%d-%d", i, j))
			}
		}()
	}
	wg.Wait()
	close(acked)

	seen := map[string]bool{}
	total := 0
	err := srv.DB.Read(t.Context(), func(q storage.Q) error {
		for _, roomID := range roomIDs {
			evs, err := q.RoomEvents(t.Context(), roomID, 0, false, 100000)
			if err != nil {
				return err
			}
			for i, e := range evs {
				seen[e.EventID] = true
				if i == 0 {
					continue
				}
				prev := gjson.GetBytes(e.JSON, "prev_events").Array()
				if len(prev) != 1 || prev[0].Str != evs[i-1].EventID {
					return fmt.Errorf("room %s: event %d's prev_events %v, want [%s]", roomID, i, prev, evs[i-1].EventID)
				}
				if d, pd := gjson.GetBytes(e.JSON, "depth").Int(), gjson.GetBytes(evs[i-1].JSON, "depth").Int(); d != pd+1 {
					return fmt.Errorf("room %s: depth %d after %d", roomID, d, pd)
				}
			}
			room, err := q.Room(t.Context(), roomID)
			if err != nil {
				return err
			}
			if room.LatestEventID != evs[len(evs)-1].EventID {
				return fmt.Errorf("room %s: head %s is not its newest event", roomID, room.LatestEventID)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for id := range acked {
		total++
		if !seen[id] {
			t.Fatalf("acknowledged event %s not stored", id)
		}
	}
	if total != writers*perWriter {
		t.Fatalf("%d acknowledged, want %d", total, writers*perWriter)
	}
}
