package rooms

import (
	"testing"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/redoubt-systems/redoubt/storage"
)

// The ranges search counts over hold exactly the messages canSee lets
// through, however the visibility and the membership change.
func TestSearchVisibleRanges(t *testing.T) {
	changes := func(posValue ...any) []storage.StateChange {
		var out []storage.StateChange
		for i := 0; i < len(posValue); i += 2 {
			out = append(out, storage.StateChange{Pos: int64(posValue[i].(int)), Value: posValue[i+1].(string)})
		}
		return out
	}
	// Invited at 5, joined at 8, left at 15, joined again at 20.
	rejoined := changes(5, spec.Invite, 8, spec.Join, 15, spec.Leave, 20, spec.Join)
	for name, v := range map[string]*viewer{
		"world_readable": {current: spec.Join, memberships: rejoined, visibility: changes(1, "world_readable")},
		"shared":         {current: spec.Join, memberships: rejoined, visibility: changes(1, "shared")},
		"invited":        {current: spec.Join, memberships: rejoined, visibility: changes(1, "invited")},
		"joined":         {current: spec.Join, memberships: rejoined, visibility: changes(1, "joined")},
		"default":        {current: spec.Join, memberships: rejoined},
		"changing": {current: spec.Join, memberships: rejoined,
			visibility: changes(1, "joined", 6, "invited", 12, "world_readable", 17, "shared", 18, "joined", 20, "joined")},
		"left":       {current: spec.Leave, memberships: changes(3, spec.Join, 9, spec.Leave), visibility: changes(1, "shared")},
		"same place": {current: spec.Join, memberships: changes(4, spec.Join), visibility: changes(1, "joined", 4, "invited")},
		"never in":   {visibility: changes(1, "shared")},
		"no changes": {current: spec.Join},
	} {
		t.Run(name, func(t *testing.T) {
			v.userID = "@bob:test"
			ranges := v.visibleRanges("!r")
			for i, r := range ranges {
				if r.After >= r.Upto || (i > 0 && r.After <= ranges[i-1].Upto) {
					t.Fatalf("ranges not apart and in order: %v", ranges)
				}
			}
			for pos := int64(1); pos <= 25; pos++ {
				in := false
				for _, r := range ranges {
					in = in || (r.RoomID == "!r" && pos > r.After && pos <= r.Upto)
				}
				if see := v.canSee(storage.Event{Pos: pos, Type: "m.room.message", Sender: "@alice:test"}); in != see {
					t.Errorf("at %d: in ranges %v, canSee %v (ranges %v)", pos, in, see, ranges)
				}
			}
		})
	}
}
