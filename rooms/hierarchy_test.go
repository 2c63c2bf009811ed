package rooms

import (
	"slices"
	"testing"

	"github.com/redoubt-systems/redoubt/storage"
)

// A space's children are ordered by their order field (valid ones first),
// then by when they were added, then by room ID.
func TestChildOrder(t *testing.T) {
	child := func(room, content string, ts int64) storage.Event {
		return storage.Event{StateKey: &room, OriginTS: ts, JSON: []byte(`{"content":` + content + `}`)}
	}
	got := []storage.Event{
		child("!late", `{}`, 9),
		child("!b", `{}`, 5),
		child("!a", `{}`, 5),
		child("!bad-order", `{"order":"\u0001"}`, 1),
		child("!z-first", `{"order":"a"}`, 7),
		child("!y", `{"order":"b"}`, 1),
		child("!long", `{"order":"`+string(make([]byte, 51))+`"}`, 2),
	}
	slices.SortStableFunc(got, childOrder)
	var ids []string
	for _, e := range got {
		ids = append(ids, *e.StateKey)
	}
	want := []string{"!z-first", "!y", "!bad-order", "!long", "!a", "!b", "!late"}
	if !slices.Equal(ids, want) {
		t.Fatalf("order %v, want %v", ids, want)
	}
}
