package filter

import (
	"encoding/json"
	"testing"
)

// Any bytes either parse into a filter that survives use and a round trip,
// or are refused; nothing panics.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"room":{"timeline":{"limit":10,"types":["m.room.message"]},"state":{"lazy_load_members":true}}}`,
		`{"room":{"rooms":["!a:b"],"not_rooms":[],"include_leave":true},"presence":{"not_types":["*"]}}`,
		`{"event_fields":["content.body"],"event_format":"client"}`, `{"room":{"timeline":{"limit":-1}}}`, `[`, `null`,
		`{"room":{"timeline":{"types":["m.*"],"not_senders":["@x:y"],"contains_url":true}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		flt, err := Parse(b)
		if err != nil {
			return
		}
		flt.Room.Timeline.AllowsEvent("!r:x", "m.room.message", "@u:x", []byte(`{"url":"mxc://x/y"}`))
		flt.Room.State.Allows("m.room.member", "@u:x")
		AllowsRoom(flt.Room.Rooms, flt.Room.NotRooms, "!r:x")
		flt.Room.Timeline.LimitOr(10, 100)
		out, err := json.Marshal(flt)
		if err != nil {
			t.Fatalf("a parsed filter does not marshal: %v", err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("a parsed filter does not parse again: %v (%s)", err, out)
		}
	})
}
