package rooms

import (
	"context"
	"errors"
	"math"
	"slices"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/storage"
)

// viewer decides which events of one room one user may see, by the spec's
// history visibility rules. History is linear, so the state at an event is
// the latest change before its position.
type viewer struct {
	userID      string
	current     string
	memberships []storage.StateChange
	visibility  []storage.StateChange
	ignored     map[string]bool
	// all is the admin API's view: the whole history, whoever reads.
	all bool
}

type adminKey struct{}

// AsAdmin marks ctx as the admin API's: the reads made with it (messages,
// context, timestamp_to_event) see a room's whole history, members or
// not, as Synapse's admin API does. Encrypted rooms stay ciphertext.
func AsAdmin(ctx context.Context) context.Context { return context.WithValue(ctx, adminKey{}, true) }

// AccountDataReader reads a user's account data.
type AccountDataReader interface {
	AccountData(ctx context.Context, userID, roomID, typ string) ([]byte, error)
}

// EventViewer is what finding an event a user may see reads: the room, the
// event, and what deciding its visibility reads.
type EventViewer interface {
	ViewerReader
	Room(ctx context.Context, roomID string) (storage.Room, error)
	Event(ctx context.Context, eventID string) (storage.Event, error)
}

// ViewerReader is what deciding which events a user sees reads: their
// membership over time, the room's history visibility over time, whether
// they forgot the room, and whom they ignore.
type ViewerReader interface {
	AccountDataReader
	Membership(ctx context.Context, roomID, userID string) (string, int64, error)
	Forgotten(ctx context.Context, userID, roomID string) (bool, error)
	StateHistory(ctx context.Context, roomID, typ, stateKey, field string) ([]storage.StateChange, error)
}

// IgnoredUsers is the set of users a user ignores (m.ignored_user_list):
// their messages and invites are not delivered to the user.
func IgnoredUsers(ctx context.Context, q AccountDataReader, userID string) (map[string]bool, error) {
	c, err := q.AccountData(ctx, userID, "", "m.ignored_user_list")
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var out map[string]bool
	gjson.GetBytes(c, "ignored_users").ForEach(func(k, _ gjson.Result) bool {
		if out == nil {
			out = map[string]bool{}
		}
		out[k.Str] = true
		return true
	})
	return out, nil
}

// Hidden reports whether an event is from a user the viewer ignores: state
// events are not, as the room's state must stay whole.
func Hidden(ignored map[string]bool, e storage.Event) bool {
	return e.StateKey == nil && ignored[e.Sender]
}

func (s *Service) newViewer(ctx context.Context, q ViewerReader, roomID, userID string) (*viewer, error) {
	ignored, err := IgnoredUsers(ctx, q, userID)
	if err != nil {
		return nil, err
	}
	return s.newViewerIgnoring(ctx, q, roomID, userID, ignored)
}

// newViewerIgnoring is newViewer with the users the user ignores already
// read, for callers that need viewers of many rooms.
func (s *Service) newViewerIgnoring(ctx context.Context, q ViewerReader, roomID, userID string, ignored map[string]bool) (*viewer, error) {
	v := &viewer{userID: userID, ignored: ignored}
	var err error
	if v.current, _, err = q.Membership(ctx, roomID, userID); err != nil {
		return nil, err
	}
	// A room one left and forgot is as one never in: its history is no
	// longer the user's to read.
	if v.current == spec.Leave || v.current == spec.Ban {
		forgotten, err := q.Forgotten(ctx, userID, roomID)
		if err != nil {
			return nil, err
		}
		if forgotten {
			v.current = ""
		}
	}
	if v.memberships, err = q.StateHistory(ctx, roomID, spec.MRoomMember, userID, "$.content.membership"); err != nil {
		return nil, err
	}
	v.visibility, err = q.StateHistory(ctx, roomID, spec.MRoomHistoryVisibility, "", "$.content.history_visibility")
	return v, err
}

// before returns the value in effect just before pos.
func before(changes []storage.StateChange, pos int64, def string) string {
	v := def
	for _, c := range changes {
		if c.Pos >= pos {
			break
		}
		v = c.Value
	}
	return v
}

func (v *viewer) canSee(e storage.Event) bool {
	if v.all {
		return true
	}
	if Hidden(v.ignored, e) {
		return false
	}
	// One's own membership events are always visible, so that a client
	// sees its own leave or rejected invite.
	if e.Type == spec.MRoomMember && e.StateKey != nil && *e.StateKey == v.userID {
		return true
	}
	return v.seesAt(e.Pos)
}

// seesAt is whether the history visibility rules let the viewer see an
// event at pos. They depend only on the visibility and the viewer's
// membership in effect there.
func (v *viewer) seesAt(pos int64) bool {
	hv := before(v.visibility, pos, "shared")
	membership := before(v.memberships, pos, "")
	switch {
	case hv == "world_readable":
		return true
	case membership == spec.Join:
		return true
	case hv == "shared" && v.current == spec.Join:
		return true
	case hv == "invited" && membership == spec.Invite:
		return true
	}
	return false
}

// visibleRanges is where in the room seesAt holds. It can change only
// just after a change of the visibility or of the viewer's membership, so
// it holds throughout each range between two changes, or in none of it.
// canSee's other rules (ignored users, one's own membership events) are
// not in the ranges.
func (v *viewer) visibleRanges(roomID string) []storage.PosRange {
	var cuts []int64
	for _, c := range slices.Concat(v.visibility, v.memberships) {
		cuts = append(cuts, c.Pos)
	}
	slices.Sort(cuts)
	cuts = append(slices.Compact(cuts), math.MaxInt64)
	var out []storage.PosRange
	after := int64(0)
	for _, upto := range cuts {
		if v.seesAt(after + 1) {
			if n := len(out); n > 0 && out[n-1].Upto == after {
				out[n-1].Upto = upto
			} else {
				out = append(out, storage.PosRange{RoomID: roomID, After: after, Upto: upto})
			}
		}
		after = upto
	}
	return out
}

// mayRead is whether the user may read the room's history at all.
func (v *viewer) mayRead() bool {
	return v.current != "" || before(v.visibility, 1<<62, "shared") == "world_readable"
}

func (s *Service) readableViewer(ctx context.Context, q EventViewer, roomID, userID string) (*viewer, error) {
	_, err := q.Room(ctx, roomID)
	admin := ctx.Value(adminKey{}) != nil
	switch {
	case errors.Is(err, storage.ErrNotFound) && admin:
		return nil, matrixerr.NotFound("unknown room")
	case errors.Is(err, storage.ErrNotFound):
		return nil, matrixerr.Forbidden("you are not in this room")
	case err != nil:
		return nil, err
	case admin:
		return &viewer{userID: userID, all: true}, nil
	}
	v, err := s.newViewer(ctx, q, roomID, userID)
	if err != nil {
		return nil, err
	}
	if !v.mayRead() {
		return nil, matrixerr.Forbidden("you are not in this room")
	}
	return v, nil
}

// Visible filters events of one room to those the user may see; ignored
// are the users the user ignores (IgnoredUsers), read once by a caller
// that filters many rooms.
func (s *Service) Visible(ctx context.Context, q ViewerReader, roomID, userID string, ignored map[string]bool, evs []storage.Event) ([]storage.Event, error) {
	if len(evs) == 0 {
		return evs, nil
	}
	v, err := s.newViewerIgnoring(ctx, q, roomID, userID, ignored)
	if err != nil {
		return nil, err
	}
	out := evs[:0:0]
	for _, e := range evs {
		if v.canSee(e) {
			out = append(out, e)
		}
	}
	return out, nil
}

// strippedTypes are the state events an invitee sees of the room.
var strippedTypes = map[string]bool{
	spec.MRoomCreate: true, spec.MRoomJoinRules: true, spec.MRoomName: true, "m.room.avatar": true,
	spec.MRoomCanonicalAlias: true, "m.room.encryption": true, spec.MRoomTopic: true,
}
