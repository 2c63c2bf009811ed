package filter

import "testing"

func TestEventFilter(t *testing.T) {
	f := RoomEventFilter{EventFilter: EventFilter{
		Types: []string{"m.room.*", "org.example.x"}, NotTypes: []string{"m.room.member"},
		NotSenders: []string{"@spam:x"},
	}}
	for _, tc := range []struct {
		typ, sender string
		want        bool
	}{
		{"m.room.message", "@a:x", true},
		{"m.room.member", "@a:x", false},
		{"org.example.x", "@a:x", true},
		{"org.example.y", "@a:x", false},
		{"m.room.message", "@spam:x", false},
		{"m.reaction", "@a:x", false},
	} {
		if got := f.AllowsEvent("!r:x", tc.typ, tc.sender, []byte(`{}`)); got != tc.want {
			t.Errorf("%s from %s: %v", tc.typ, tc.sender, got)
		}
	}
	empty := EventFilter{Types: []string{}}
	if empty.Allows("m.room.message", "@a:x") {
		t.Error("an empty types list allows events")
	}
	yes := true
	urls := RoomEventFilter{ContainsURL: &yes, Rooms: []string{"!r:x"}}
	if !urls.AllowsEvent("!r:x", "m.room.message", "@a:x", []byte(`{"url":"mxc://x/y"}`)) ||
		urls.AllowsEvent("!r:x", "m.room.message", "@a:x", []byte(`{"body":"x"}`)) ||
		urls.AllowsEvent("!other:x", "m.room.message", "@a:x", []byte(`{"url":"mxc://x/y"}`)) {
		t.Error("contains_url / rooms")
	}
	// Relation types (MSC3874).
	threads := RoomEventFilter{RelTypes: []string{"m.thread"}}
	notThreads := RoomEventFilter{NotRelTypes: []string{"m.thread"}}
	thread, ref, plain := []byte(`{"m.relates_to":{"rel_type":"m.thread"}}`), []byte(`{"m.relates_to":{"rel_type":"m.reference"}}`), []byte(`{}`)
	if !threads.AllowsEvent("!r:x", "m.room.message", "@a:x", thread) || threads.AllowsEvent("!r:x", "m.room.message", "@a:x", ref) ||
		threads.AllowsEvent("!r:x", "m.room.message", "@a:x", plain) {
		t.Error("rel_types")
	}
	if notThreads.AllowsEvent("!r:x", "m.room.message", "@a:x", thread) || !notThreads.AllowsEvent("!r:x", "m.room.message", "@a:x", ref) ||
		!notThreads.AllowsEvent("!r:x", "m.room.message", "@a:x", plain) {
		t.Error("not_rel_types")
	}
}

func TestParse(t *testing.T) {
	f, err := Parse([]byte(`{"room":{"timeline":{"limit":5},"include_leave":true},"event_format":"client"}`))
	if err != nil || f.Room.Timeline.LimitOr(10, 100) != 5 || !f.Room.IncludeLeave {
		t.Fatalf("%+v %v", f, err)
	}
	for _, bad := range []string{`{"event_format":"xml"}`, `{"room":{"timeline":{"limit":"x"}}}`, `[]`,
		`{"room":{"timeline":{"rooms":["not_a_room_id"]}}}`, `{"room":{"not_rooms":["x"]}}`,
		`{"room":{"timeline":{"senders":["not_a_sender_id"]}}}`, `{"presence":{"not_senders":["@"]}}`} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	var none EventFilter
	if none.LimitOr(10, 100) != 10 {
		t.Error("default limit")
	}
	big := 5000
	if (&EventFilter{Limit: &big}).LimitOr(10, 100) != 100 {
		t.Error("limit cap")
	}
}
