package rooms

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

// HierarchyRequest is a /hierarchy request.
type HierarchyRequest struct {
	RoomID        string
	SuggestedOnly bool
	MaxDepth      int // <0: no limit
	Limit         int
	From          string
}

// Hierarchy walks a space's children breadth first, listing the rooms the
// user may see: those they are in or invited to, and those anyone may find
// (public, knockable or restricted join rules, or world-readable history).
func (s *Service) Hierarchy(ctx context.Context, dev *httpapi.Device, req HierarchyRequest) (map[string]any, error) {
	from := 0
	if req.From != "" {
		n, err := strconv.Atoi(req.From)
		if err != nil || n < 0 {
			return nil, httpapi.InvalidParam("invalid from token")
		}
		from = n
	}
	out := []map[string]any{}
	next := ""
	err := s.DB.Read(ctx, func(q storage.Q) error {
		type item struct {
			roomID string
			depth  int
		}
		queue, seen, index := []item{{req.RoomID, 0}}, map[string]bool{req.RoomID: true}, 0
		for len(queue) > 0 {
			it := queue[0]
			queue = queue[1:]
			l, err := q.RoomListingOf(ctx, it.roomID)
			if err != nil {
				if it.roomID == req.RoomID {
					return httpapi.Forbidden("you cannot see this room")
				}
				continue // a child this server does not have
			}
			membership, _, err := q.Membership(ctx, it.roomID, dev.UserID)
			if err != nil {
				return err
			}
			findable := membership == spec.Join || membership == spec.Invite || l.HistoryVisible == "world_readable" ||
				l.JoinRules == spec.Public || l.JoinRules == spec.Knock || l.JoinRules == "knock_restricted"
			if !findable && l.JoinRules == "restricted" {
				// Only to those who may join: members of an allowed room.
				if findable, err = mayJoinRestricted(ctx, q, it.roomID, dev.UserID); err != nil {
					return err
				}
			}
			if !findable {
				if it.roomID == req.RoomID {
					return httpapi.Forbidden("you cannot see this room")
				}
				continue
			}
			// Only spaces have children: a room that is not a space may
			// hold m.space.child events, but they link nothing (as Synapse).
			var state []storage.Event
			if l.RoomType == "m.space" {
				if state, err = q.CurrentState(ctx, it.roomID); err != nil {
					return err
				}
			}
			children := []json.RawMessage{}
			for _, e := range state {
				if e.Type != "m.space.child" || e.StateKey == nil {
					continue
				}
				c := gjson.GetBytes(e.JSON, "content")
				if len(c.Get("via").Array()) == 0 || (req.SuggestedOnly && !c.Get("suggested").Bool()) {
					continue
				}
				stripped, _ := json.Marshal(map[string]any{"type": e.Type, "state_key": *e.StateKey, "sender": e.Sender,
					"content": json.RawMessage(c.Raw), "origin_server_ts": e.OriginTS})
				children = append(children, stripped)
				if (req.MaxDepth < 0 || it.depth < req.MaxDepth) && !seen[*e.StateKey] {
					seen[*e.StateKey] = true
					queue = append(queue, item{*e.StateKey, it.depth + 1})
				}
			}
			if index >= from {
				if len(out) == req.Limit {
					next = strconv.Itoa(index)
					return nil
				}
				room := map[string]any{"room_id": l.RoomID, "num_joined_members": l.JoinedMembers, "world_readable": l.HistoryVisible == "world_readable",
					"guest_can_join": l.GuestAccess == "can_join", "join_rule": l.JoinRules, "children_state": children, "room_version": l.Version}
				for k, v := range map[string]string{"name": l.Name, "topic": l.Topic, "canonical_alias": l.CanonicalAlias, "avatar_url": l.Avatar, "room_type": l.RoomType} {
					if v != "" {
						room[k] = v
					}
				}
				out = append(out, room)
			}
			index++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	body := map[string]any{"rooms": out}
	if next != "" {
		body["next_batch"] = next
	}
	return body, nil
}

// mayJoinRestricted reports whether a user is joined to a room that a
// restricted room's join rules allow its members in from.
func mayJoinRestricted(ctx context.Context, q storage.Q, roomID, userID string) (bool, error) {
	jr, err := q.CurrentStateEvent(ctx, roomID, spec.MRoomJoinRules, "")
	if err != nil {
		return false, err
	}
	for _, a := range gjson.GetBytes(jr.JSON, "content.allow").Array() {
		if a.Get("type").Str != "m.room_membership" {
			continue
		}
		if m, _, err := q.Membership(ctx, a.Get("room_id").Str, userID); err != nil {
			return false, err
		} else if m == spec.Join {
			return true, nil
		}
	}
	return false, nil
}
