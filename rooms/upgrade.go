package rooms

import (
	"context"
	"encoding/json"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/storage"
)

// carriedState is the state an upgrade copies into the new room.
var carriedState = []string{spec.MRoomName, spec.MRoomTopic, "m.room.avatar", spec.MRoomJoinRules,
	spec.MRoomHistoryVisibility, spec.MRoomGuestAccess, "m.room.encryption", "m.room.retention"}

// Upgrade replaces a room by a new one of another version: the new room
// takes the old one's name, topic, rules, encryption and power levels and
// names it as predecessor; the old one gets a tombstone pointing to the
// new one, and from then on only moderators may speak or invite there.
// From version 12 the upgrading user and additionalCreators create the new
// room, and hold their power through its create event rather than its power
// levels.
func (s *Service) Upgrade(ctx context.Context, roomID, userID, version string, additionalCreators []string) (string, error) {
	if !Supported(version) {
		return "", matrixerr.UnsupportedRoom("room version %q is not supported", version)
	}
	var state []StateEvent
	var pl []byte
	var latest string
	err := s.DB.Read(ctx, func(q storage.Q) error {
		room, err := q.Room(ctx, roomID)
		if err != nil {
			return matrixerr.NotFound("unknown room")
		}
		if m, _, err := q.Membership(ctx, roomID, userID); err != nil || m != spec.Join {
			if err == nil {
				err = matrixerr.Forbidden("you are not in this room")
			}
			return err
		}
		level, levels, err := PowerOf(ctx, q, &room, userID)
		if err != nil {
			return err
		}
		if level < levels.EventLevel("m.room.tombstone", true) {
			return matrixerr.Forbidden("you may not upgrade this room")
		}
		latest = room.LatestEventID
		for _, t := range carriedState {
			e, err := q.CurrentStateEvent(ctx, roomID, t, "")
			if err == nil && e.RedactedBy == "" {
				state = append(state, StateEvent{Type: t, Content: json.RawMessage(gjson.GetBytes(e.JSON, "content").Raw)})
			}
		}
		if e, err := q.CurrentStateEvent(ctx, roomID, spec.MRoomPowerLevels, ""); err == nil {
			pl = []byte(gjson.GetBytes(e.JSON, "content").Raw)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	newImpl := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersion(version))
	predecessor := map[string]string{"room_id": roomID, "event_id": latest}
	create := map[string]any{"predecessor": predecessor}
	if newImpl.PrivilegedCreators() {
		// Creators hold their power through the create event; the power
		// levels must not list them.
		for _, c := range append([]string{userID}, additionalCreators...) {
			if pl != nil {
				pl, _ = sjson.DeleteBytes(pl, "users."+gjsonEscape(c))
			}
		}
		if len(additionalCreators) > 0 {
			create["additional_creators"] = additionalCreators
		}
	} else if len(additionalCreators) > 0 {
		return "", matrixerr.BadJSON("additional_creators needs room version 12 or later")
	}
	// A room ID that is its create event's hash (version 12) names its
	// predecessor by room alone (MSC4291).
	if newImpl.DomainlessRoomIDs() {
		delete(predecessor, "event_id")
	}
	creation, _ := json.Marshal(create)
	newID, err := s.CreateRoom(ctx, CreateRequest{Creator: userID, RoomVersion: version, Preset: "private_chat",
		InitialState: state, PowerLevelOverride: pl, CreationContent: creation})
	if err != nil {
		return "", err
	}
	tomb, _ := json.Marshal(map[string]string{"body": "This room has been replaced", "replacement_room": newID})
	empty := ""
	if _, err := s.Send(ctx, roomID, Event{Sender: userID, Type: "m.room.tombstone", StateKey: &empty, Content: tomb}); err != nil {
		return "", err
	}
	if pl != nil {
		restricted := []byte(gjson.GetBytes(s.mustState(ctx, roomID, spec.MRoomPowerLevels), "content").Raw)
		need := max(50, gjson.GetBytes(restricted, "events_default").Int(), gjson.GetBytes(restricted, "invite").Int())
		restricted, _ = sjson.SetBytes(restricted, "events_default", need)
		restricted, _ = sjson.SetBytes(restricted, "invite", need)
		if _, err := s.Send(ctx, roomID, Event{Sender: userID, Type: spec.MRoomPowerLevels, StateKey: &empty, Content: restricted}); err != nil {
			return "", err
		}
	}
	return newID, nil
}

func (s *Service) mustState(ctx context.Context, roomID, typ string) []byte {
	e, err := s.DB.R().CurrentStateEvent(ctx, roomID, typ, "")
	if err != nil {
		return nil
	}
	return e.JSON
}

func gjsonEscape(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '.', '*', '?', '\\', '|', '#', '@':
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}
