package rooms

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/caller"
	"github.com/redoubt-systems/redoubt/matrixerr"
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
func (s *Service) Hierarchy(ctx context.Context, dev *caller.Device, req HierarchyRequest) (map[string]any, error) {
	from := 0
	if req.From != "" {
		n, err := strconv.Atoi(req.From)
		if err != nil || n < 0 {
			return nil, matrixerr.InvalidParam("invalid from token")
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
		// Depth first, each space's children in the spec's order, as
		// Synapse walks it: clients page through the same order.
		stack, seen, index := []item{{req.RoomID, 0}}, map[string]bool{req.RoomID: true}, 0
		for len(stack) > 0 {
			it := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			l, err := q.RoomListingOf(ctx, it.roomID)
			if err != nil {
				if it.roomID == req.RoomID {
					return matrixerr.Forbidden("you cannot see this room")
				}
				continue // a child this server does not have
			}
			membership, _, err := q.Membership(ctx, it.roomID, dev.UserID)
			if err != nil {
				return err
			}
			findable, err := findable(ctx, q, l, membership, dev.UserID)
			if err != nil {
				return err
			}
			if !findable {
				if it.roomID == req.RoomID {
					return matrixerr.Forbidden("you cannot see this room")
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
			state = slices.DeleteFunc(state, func(e storage.Event) bool {
				c := gjson.GetBytes(e.JSON, "content")
				return e.Type != "m.space.child" || e.StateKey == nil || len(c.Get("via").Array()) == 0 ||
					(req.SuggestedOnly && !c.Get("suggested").Bool())
			})
			slices.SortStableFunc(state, childOrder)
			children := []json.RawMessage{}
			var descend []item
			for _, e := range state {
				stripped, _ := json.Marshal(map[string]any{"type": e.Type, "state_key": *e.StateKey, "sender": e.Sender,
					"content": json.RawMessage(gjson.GetBytes(e.JSON, "content").Raw), "origin_server_ts": e.OriginTS})
				children = append(children, stripped)
				if (req.MaxDepth < 0 || it.depth < req.MaxDepth) && !seen[*e.StateKey] {
					seen[*e.StateKey] = true
					descend = append(descend, item{*e.StateKey, it.depth + 1})
				}
			}
			for i := len(descend) - 1; i >= 0; i-- {
				stack = append(stack, descend[i])
			}
			if index >= from {
				if len(out) == req.Limit {
					next = strconv.Itoa(index)
					return nil
				}
				room := roomEntry(l)
				room["children_state"] = children
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

// childOrder is the spec's order of a space's children: by their order
// field (printable ASCII of at most 50 characters; those without one come
// after), then when they were added, then by room ID.
func childOrder(a, b storage.Event) int {
	order := func(e storage.Event) (string, bool) {
		o := gjson.GetBytes(e.JSON, "content.order")
		if o.Type != gjson.String || len(o.Str) > 50 {
			return "", false
		}
		for _, c := range o.Str {
			if c < 0x20 || c > 0x7e {
				return "", false
			}
		}
		return o.Str, true
	}
	oa, okA := order(a)
	ob, okB := order(b)
	switch {
	case okA != okB:
		if okA {
			return -1
		}
		return 1
	case oa != ob:
		return strings.Compare(oa, ob)
	case a.OriginTS != b.OriginTS:
		return cmp.Compare(a.OriginTS, b.OriginTS)
	}
	return strings.Compare(*a.StateKey, *b.StateKey)
}

// findable reports whether a user may learn of a room through the
// hierarchy or its summary: they are in it or invited, or anyone may find
// it (public, knockable, world-readable), or, restricted, they may join.
func findable(ctx context.Context, q storage.Q, l storage.RoomListing, membership, userID string) (bool, error) {
	if membership == spec.Join || membership == spec.Invite || membership == spec.Knock || l.HistoryVisible == "world_readable" ||
		l.JoinRules == spec.Public || l.JoinRules == spec.Knock || l.JoinRules == "knock_restricted" {
		return true, nil
	}
	if l.JoinRules == "restricted" {
		return mayJoinRestricted(ctx, q, l.RoomID, userID)
	}
	return false, nil
}

// roomEntry is what the hierarchy and room summaries say of a room.
func roomEntry(l storage.RoomListing) map[string]any {
	room := map[string]any{"room_id": l.RoomID, "num_joined_members": l.JoinedMembers, "world_readable": l.HistoryVisible == "world_readable",
		"guest_can_join": l.GuestAccess == "can_join", "join_rule": l.JoinRules, "room_version": l.Version}
	for k, v := range map[string]string{"name": l.Name, "topic": l.Topic, "canonical_alias": l.CanonicalAlias, "avatar_url": l.Avatar,
		"room_type": l.RoomType, "encryption": l.Encryption} {
		if v != "" {
			room[k] = v
		}
	}
	return room
}

// Summary is a room's summary (spec v1.15, MSC3266), for a room the user
// may find: what the hierarchy says of it, their membership, and for a
// restricted room the rooms whose members may join it.
func (s *Service) Summary(ctx context.Context, dev *caller.Device, idOrAlias string) (map[string]any, error) {
	roomID, err := s.ResolveRoom(ctx, idOrAlias)
	if err != nil {
		return nil, err
	}
	var room map[string]any
	err = s.DB.Read(ctx, func(q storage.Q) error {
		l, err := q.RoomListingOf(ctx, roomID)
		if errors.Is(err, storage.ErrNotFound) {
			return matrixerr.NotFound("unknown room")
		} else if err != nil {
			return err
		}
		membership, _, err := q.Membership(ctx, roomID, dev.UserID)
		if err != nil {
			return err
		}
		if ok, err := findable(ctx, q, l, membership, dev.UserID); err != nil {
			return err
		} else if !ok {
			// Not 403: that would confirm that the room exists.
			return matrixerr.NotFound("unknown room")
		}
		room = roomEntry(l)
		if membership != "" {
			room["membership"] = membership
		}
		if l.JoinRules == "restricted" || l.JoinRules == "knock_restricted" {
			jr, err := q.CurrentStateEvent(ctx, roomID, spec.MRoomJoinRules, "")
			if err != nil {
				return err
			}
			allowed := []string{}
			for _, a := range gjson.GetBytes(jr.JSON, "content.allow").Array() {
				if a.Get("type").Str == "m.room_membership" {
					allowed = append(allowed, a.Get("room_id").Str)
				}
			}
			room["allowed_room_ids"] = allowed
		}
		return nil
	})
	return room, err
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
