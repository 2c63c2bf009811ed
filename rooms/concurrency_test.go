package rooms_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
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
	for _, roomID := range roomIDs {
		for _, e := range linearHistory(t, srv, roomID) {
			seen[e.EventID] = true
		}
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

// linearHistory returns a room's events, failing the test unless each
// names the one before it as its one prev_event, one deeper, and the room's
// head is the newest.
func linearHistory(t *testing.T, srv *ts.Server, roomID string) []storage.Event {
	t.Helper()
	var evs []storage.Event
	err := srv.DB.Read(t.Context(), func(q storage.Q) error {
		var err error
		if evs, err = q.RoomEvents(t.Context(), roomID, 0, false, 100000); err != nil {
			return err
		}
		for i, e := range evs[1:] {
			prev := gjson.GetBytes(e.JSON, "prev_events").Array()
			if len(prev) != 1 || prev[0].Str != evs[i].EventID {
				return fmt.Errorf("event %d's prev_events %v, want [%s]", i+1, prev, evs[i].EventID)
			}
			if d, pd := gjson.GetBytes(e.JSON, "depth").Int(), gjson.GetBytes(evs[i].JSON, "depth").Int(); d != pd+1 {
				return fmt.Errorf("depth %d after %d", d, pd)
			}
		}
		room, err := q.Room(t.Context(), roomID)
		if err == nil && room.LatestEventID != evs[len(evs)-1].EventID {
			err = fmt.Errorf("head %s is not the newest event", room.LatestEventID)
		}
		return err
	})
	if err != nil {
		t.Fatalf("room %s: %v", roomID, err)
	}
	return evs
}

// Messages are built before their transaction (rooms/heads.go) while state
// changes race them: members kicked and rejoining, the level to speak
// raised and lowered, messages redacted. Replaying the room's history
// through the auth rules, every event must have been allowed by the state
// before it; every acknowledged message is stored, every refused one is
// not.
func TestMessagesRacingStateChanges(t *testing.T) {
	srv := ts.Start(t)
	owner := srv.Register(t, "owner")
	roomID := owner.CreateRoom(t, map[string]any{"preset": "public_chat"})
	const writers, perWriter = 8, 40
	clients := make([]*ts.Client, writers)
	for i := range clients {
		clients[i] = srv.Register(t, fmt.Sprintf("speaker%d", i))
		clients[i].Join(t, roomID)
	}
	room := "/_matrix/client/v3/rooms/" + ts.PathEscape(roomID)
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked, refused := map[string]bool{}, map[string]bool{}
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perWriter {
				body := fmt.Sprintf("s%d-%d", i, j)
				code, res := c.Do(t, "PUT", room+"/send/m.room.message/"+ts.Txn(), map[string]any{"msgtype": "m.text", "body": body})
				mu.Lock()
				switch code {
				case 200:
					acked[res.Get("event_id").Str] = true
				case 403:
					refused[body] = true
				default:
					t.Errorf("send: %d %s", code, res.Raw)
				}
				mu.Unlock()
				if code == 403 && j%4 == 0 {
					c.Do(t, "POST", "/_matrix/client/v3/join/"+ts.PathEscape(roomID), map[string]any{})
				}
			}
		}()
	}
	for k := range 12 {
		level := map[bool]int{true: 100, false: 0}[k%2 == 0]
		owner.MustDo(t, "PUT", room+"/state/m.room.power_levels/", map[string]any{
			"users": map[string]int{owner.UserID: 100}, "events_default": level, "kick": 50, "redact": 50}, 200)
		victim := clients[k%writers]
		owner.MustDo(t, "POST", room+"/kick", map[string]any{"user_id": victim.UserID}, 200)
		mu.Lock()
		var target string
		for id := range acked {
			target = id
			break
		}
		mu.Unlock()
		if target != "" {
			owner.MustDo(t, "PUT", room+"/redact/"+ts.PathEscape(target)+"/"+ts.Txn(), map[string]any{}, 200)
		}
	}
	owner.MustDo(t, "PUT", room+"/state/m.room.power_levels/", map[string]any{"users": map[string]int{owner.UserID: 100}}, 200)
	wg.Wait()

	evs := linearHistory(t, srv, roomID)
	state := map[[2]string]gomatrixserverlib.PDU{}
	verImpl := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersion(gjson.GetBytes(evs[0].JSON, "content.room_version").Str))
	stored := map[string]bool{}
	for _, e := range evs {
		stored[e.EventID] = true
		pdu, err := verImpl.NewEventFromTrustedJSONWithEventID(e.EventID, e.JSON, e.RedactedBy != "")
		if err != nil {
			t.Fatal(err)
		}
		if e.RedactedBy == "" {
			provider, _ := gomatrixserverlib.NewAuthEvents(nil)
			for _, s := range state {
				if err := provider.AddEvent(s); err != nil {
					t.Fatal(err)
				}
			}
			err := gomatrixserverlib.Allowed(pdu, provider, func(_ spec.RoomID, s spec.SenderID) (*spec.UserID, error) {
				return spec.NewUserID(string(s), true)
			})
			if err != nil {
				t.Fatalf("%s (%s from %s) was stored though the state before it refuses it: %v", e.EventID, e.Type, e.Sender, err)
			}
			if e.Type == "m.room.message" && refused[gjson.GetBytes(e.JSON, "content.body").Str] {
				t.Fatalf("a refused message was stored: %s", e.JSON)
			}
		}
		if e.StateKey != nil {
			state[[2]string{e.Type, *e.StateKey}] = pdu
		}
	}
	for id := range acked {
		if !stored[id] {
			t.Fatalf("acknowledged %s not stored", id)
		}
	}
	if len(refused) == 0 || len(acked) < writers {
		t.Fatalf("%d acknowledged, %d refused: the race did not happen", len(acked), len(refused))
	}
	t.Logf("%d acknowledged, %d refused, %d events", len(acked), len(refused), len(evs))
}
