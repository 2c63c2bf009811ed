package rooms

import (
	"encoding/json"
	"reflect"
	"testing"
)

// appendJSON writes what json.Marshal writes, once both are decoded:
// strings needing escapes, unsigned values of every kind the formatter
// puts there, and the optional fields present or not.
func TestAppendJSONAsMarshal(t *testing.T) {
	key := "a \"quoted\" <key> & \\ with \n and \u00e9 and \x01"
	for _, ce := range []clientEvent{
		{Content: json.RawMessage(`{"body":"hi"}`), EventID: "$e", OriginServerTS: 1, RoomID: "!r:hs", Sender: "@a:hs", Type: "m.room.message"},
		{Content: json.RawMessage(`{}`), EventID: "$e", RoomID: "!r:hs", Sender: "@a:hs", Type: "m.room.member", StateKey: &key,
			Redacts: "$x", Unsigned: map[string]any{
				"age": int64(-5), "membership": "join", "transaction_id": "t\x7f\xff", "prev_content": json.RawMessage(`{"a":[1,2]}`),
				"m.relations":      map[string]any{"m.thread": map[string]any{"count": 2}},
				"redacted_because": clientEvent{Content: json.RawMessage(`{}`), EventID: "$r", Type: "m.room.redaction"},
			}},
	} {
		want, err := json.Marshal(ce)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ce.appendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		var a, b any
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatalf("%s: %v", got, err)
		}
		json.Unmarshal(want, &b)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("appendJSON %s\njson.Marshal %s", got, want)
		}
	}
}
