package rooms

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/caller"
	"github.com/redoubt-systems/redoubt/filter"
	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/storage"
	"github.com/redoubt-systems/redoubt/streams"
)

// MessagesRequest is a /messages request.
type MessagesRequest struct {
	RoomID    string
	From, To  string
	Backwards bool
	Limit     int
	Filter    filter.RoomEventFilter
}

// Messages is a /messages response.
type Messages struct {
	Chunk []json.RawMessage `json:"chunk"`
	Start string            `json:"start"`
	End   string            `json:"end,omitempty"`
	State []json.RawMessage `json:"state,omitempty"`
}

// Messages pages through a room's history as the user may see it.
func (s *Service) Messages(ctx context.Context, dev *caller.Device, req MessagesRequest) (*Messages, error) {
	var res *Messages
	err := s.DB.Read(ctx, func(q storage.Q) error {
		v, err := s.readableViewer(ctx, q, req.RoomID, dev.UserID)
		if err != nil {
			return err
		}
		from := int64(0)
		if req.From != "" {
			if from, err = streams.ParsePagination(req.From); err != nil {
				return err
			}
		} else if req.Backwards {
			if from, err = q.MaxEventPos(ctx); err != nil {
				return err
			}
		}
		to := int64(-1)
		if req.To != "" {
			if to, err = streams.ParsePagination(req.To); err != nil {
				return err
			}
		}
		evs, last, more, err := s.page(ctx, q, v, req.RoomID, from, to, req.Backwards, req.Limit, &req.Filter)
		if err != nil {
			return err
		}
		res = &Messages{Start: streams.Pagination(from)}
		// Like Synapse, a page with events always says where to go on
		// from: the next page is empty and ends the pagination.
		if more || len(evs) > 0 {
			res.End = streams.Pagination(last)
		}
		if res.Chunk, err = s.formatFor(ctx, q, evs, dev, v, req.RoomID); err != nil {
			return err
		}
		if req.Filter.LazyLoadMembers {
			res.State, err = s.senderMembers(ctx, q, dev, req.RoomID, evs)
		}
		return err
	})
	return res, err
}

// page collects up to limit visible events that pass f, starting from a
// token position. It returns the token position to continue from and
// whether there may be more. to < 0 means no bound.
func (s *Service) page(ctx context.Context, q storage.Q, v *viewer, roomID string, from, to int64, backwards bool, limit int, f *filter.RoomEventFilter) ([]storage.Event, int64, bool, error) {
	var out []storage.Event
	cursor := from
	batch := max(limit*2, 50)
	for len(out) < limit {
		evs, err := q.RoomEvents(ctx, roomID, cursor, backwards, batch)
		if err != nil {
			return nil, 0, false, err
		}
		for _, e := range evs {
			if to >= 0 && ((backwards && e.Pos <= to) || (!backwards && e.Pos > to)) {
				return out, cursor, false, nil
			}
			if backwards {
				cursor = e.Pos - 1
			} else {
				cursor = e.Pos
			}
			if v.canSee(e) && f.AllowsEvent(e.RoomID, e.Type, e.Sender, []byte(gjson.GetBytes(e.JSON, "content").Raw)) {
				out = append(out, e)
				if len(out) == limit {
					return out, cursor, true, nil
				}
			}
		}
		if len(evs) < batch {
			return out, cursor, false, nil
		}
	}
	return out, cursor, true, nil
}

// senderMembers returns the current member events of the senders of evs,
// for lazy-loading clients.
func (s *Service) senderMembers(ctx context.Context, q storage.Q, dev *caller.Device, roomID string, evs []storage.Event) ([]json.RawMessage, error) {
	seen := map[string]bool{}
	var members []storage.Event
	for _, e := range evs {
		if seen[e.Sender] {
			continue
		}
		seen[e.Sender] = true
		m, err := q.CurrentStateEvent(ctx, roomID, spec.MRoomMember, e.Sender)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		members = append(members, m)
	}
	return s.Format(ctx, q, members, dev)
}

// Event returns one event if the user may see it.
func (s *Service) Event(ctx context.Context, dev *caller.Device, roomID, eventID string) (json.RawMessage, error) {
	var out json.RawMessage
	err := s.DB.Read(ctx, func(q storage.Q) error {
		e, err := s.VisibleEvent(ctx, q, dev.UserID, roomID, eventID)
		if err != nil {
			return err
		}
		f, err := s.Format(ctx, q, []storage.Event{e}, dev)
		if err == nil {
			out = f[0]
		}
		return err
	})
	return out, err
}

// VisibleEvent returns an event of a room that the user may see. An event
// they may not see is not found, whether or not they may read the room: a
// 403 would confirm that the event exists, as Synapse avoids.
func (s *Service) VisibleEvent(ctx context.Context, q EventViewer, userID, roomID, eventID string) (storage.Event, error) {
	e, _, err := s.visibleEvent(ctx, q, userID, roomID, eventID)
	var he *matrixerr.Error
	if errors.As(err, &he) && he.Kind == matrixerr.KindForbidden {
		return e, matrixerr.NotFound("event not found")
	}
	return e, err
}

func (s *Service) visibleEvent(ctx context.Context, q EventViewer, userID, roomID, eventID string) (storage.Event, *viewer, error) {
	v, err := s.readableViewer(ctx, q, roomID, userID)
	if err != nil {
		return storage.Event{}, nil, err
	}
	e, err := q.Event(ctx, eventID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (e.RoomID != roomID || !v.canSee(e))) {
		return storage.Event{}, nil, matrixerr.NotFound("event not found")
	}
	return e, v, err
}

// Context is a /context response.
type Context struct {
	Event        json.RawMessage   `json:"event"`
	EventsBefore []json.RawMessage `json:"events_before"`
	EventsAfter  []json.RawMessage `json:"events_after"`
	Start        string            `json:"start"`
	End          string            `json:"end"`
	State        []json.RawMessage `json:"state"`
}

// Context returns an event with the events around it and the room's state
// at the last of them.
func (s *Service) Context(ctx context.Context, dev *caller.Device, roomID, eventID string, limit int, f filter.RoomEventFilter) (*Context, error) {
	var res *Context
	err := s.DB.Read(ctx, func(q storage.Q) error {
		e, v, err := s.visibleEvent(ctx, q, dev.UserID, roomID, eventID)
		if err != nil {
			return err
		}
		nBefore := limit / 2
		before, start, _, err := s.page(ctx, q, v, roomID, e.Pos-1, -1, true, max(nBefore, 0), &f)
		if err != nil {
			return err
		}
		after, end, _, err := s.page(ctx, q, v, roomID, e.Pos, -1, false, max(limit-nBefore, 0), &f)
		if err != nil {
			return err
		}
		if nBefore == 0 {
			start = e.Pos - 1
		}
		if limit-nBefore == 0 {
			end = e.Pos
		}
		lastPos := e.Pos
		if len(after) > 0 {
			lastPos = after[len(after)-1].Pos
		}
		state, err := q.StateAt(ctx, roomID, lastPos)
		if err != nil {
			return err
		}
		all := append(append([]storage.Event{e}, before...), after...)
		formatted, err := s.formatFor(ctx, q, all, dev, v, roomID)
		if err != nil {
			return err
		}
		res = &Context{Event: formatted[0], EventsBefore: formatted[1 : 1+len(before)],
			EventsAfter: formatted[1+len(before):], Start: streams.Pagination(start), End: streams.Pagination(end)}
		if f.LazyLoadMembers {
			res.State, err = s.senderMembers(ctx, q, dev, roomID, all)
		} else {
			res.State, err = s.formatFor(ctx, q, state, dev, v, roomID)
		}
		return err
	})
	return res, err
}

// stateFor returns the state a user may see: the current state while they
// are joined (or the room is world-readable), else the state when they left.
func (s *Service) stateFor(ctx context.Context, q storage.Q, roomID, userID string, at int64) ([]storage.Event, error) {
	if _, err := q.Room(ctx, roomID); errors.Is(err, storage.ErrNotFound) {
		return nil, matrixerr.Forbidden("you are not in this room")
	} else if err != nil {
		return nil, err
	}
	v, err := s.newViewer(ctx, q, roomID, userID)
	if err != nil {
		return nil, err
	}
	limit := int64(-1)
	switch {
	case v.current == spec.Join || before(v.visibility, 1<<62, "shared") == "world_readable":
	case v.current == spec.Leave || v.current == spec.Ban:
		if len(v.memberships) > 0 {
			limit = v.memberships[len(v.memberships)-1].Pos
		}
	default:
		return nil, matrixerr.Forbidden("you are not in this room")
	}
	if at > 0 && (limit < 0 || at < limit) {
		limit = at
	}
	if limit < 0 {
		return q.CurrentState(ctx, roomID)
	}
	return q.StateAt(ctx, roomID, limit)
}

// State returns the room's state as the user may see it.
func (s *Service) State(ctx context.Context, dev *caller.Device, roomID string) ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := s.DB.Read(ctx, func(q storage.Q) error {
		state, err := s.stateFor(ctx, q, roomID, dev.UserID, 0)
		if err != nil {
			return err
		}
		out, err = s.Format(ctx, q, state, dev)
		return err
	})
	return out, err
}

// StateEvent returns one state event as the user may see it.
func (s *Service) StateEvent(ctx context.Context, dev *caller.Device, roomID, typ, stateKey string) (json.RawMessage, error) {
	var out json.RawMessage
	err := s.DB.Read(ctx, func(q storage.Q) error {
		state, err := s.stateFor(ctx, q, roomID, dev.UserID, 0)
		if err != nil {
			return err
		}
		for _, e := range state {
			if e.Type == typ && *e.StateKey == stateKey {
				f, err := s.Format(ctx, q, []storage.Event{e}, dev)
				if err == nil {
					out = f[0]
				}
				return err
			}
		}
		return matrixerr.NotFound("no such state event")
	})
	return out, err
}

// Members returns the room's member events, optionally at a token's
// position and filtered by membership.
func (s *Service) Members(ctx context.Context, dev *caller.Device, roomID, at string, membership, notMembership string) ([]json.RawMessage, error) {
	var pos int64
	if at != "" {
		var err error
		if pos, err = streams.ParsePagination(at); err != nil {
			return nil, err
		}
	}
	var out []json.RawMessage
	err := s.DB.Read(ctx, func(q storage.Q) error {
		state, err := s.stateFor(ctx, q, roomID, dev.UserID, pos)
		if err != nil {
			return err
		}
		if at != "" {
			// A point before the room existed has no members to give, as
			// on Synapse (rather than the room's current ones).
			create, err := q.CurrentStateEvent(ctx, roomID, spec.MRoomCreate, "")
			if err == nil && pos < create.Pos {
				return matrixerr.NotFound("the room did not exist at that point")
			}
		}
		var members []storage.Event
		for _, e := range state {
			if e.Type != spec.MRoomMember || (membership != "" && e.Membership != membership) ||
				(notMembership != "" && e.Membership == notMembership) {
				continue
			}
			members = append(members, e)
		}
		out, err = s.Format(ctx, q, members, dev)
		return err
	})
	return out, err
}

// Profile is a member's profile in a room.
// Both fields are always present, null when unset, as Synapse sends them.
type Profile struct {
	DisplayName *string `json:"display_name"`
	AvatarURL   *string `json:"avatar_url"`
}

// JoinedMembers lists the joined members of a room the user is joined to.
func (s *Service) JoinedMembers(ctx context.Context, userID, roomID string) (map[string]Profile, error) {
	out := map[string]Profile{}
	err := s.DB.Read(ctx, func(q storage.Q) error {
		if m, _, err := q.Membership(ctx, roomID, userID); err != nil {
			return err
		} else if m != spec.Join {
			return matrixerr.Forbidden("you are not in this room")
		}
		state, err := q.CurrentState(ctx, roomID)
		if err != nil {
			return err
		}
		for _, e := range state {
			if e.Type == spec.MRoomMember && e.Membership == spec.Join {
				c := gjson.GetBytes(e.JSON, "content")
				out[*e.StateKey] = Profile{DisplayName: stringOrNil(c.Get("displayname")), AvatarURL: stringOrNil(c.Get("avatar_url"))}
			}
		}
		return nil
	})
	return out, err
}

// JoinedRooms lists the rooms a user is joined to.
func (s *Service) JoinedRooms(ctx context.Context, userID string) ([]string, error) {
	rooms, err := s.DB.R().RoomsWithMembership(ctx, userID, spec.Join)
	if rooms == nil {
		rooms = []string{}
	}
	return rooms, err
}

// StrippedState is the invite_state of a room for a user invited to it:
// a few state events in stripped form, the inviter's member event, and the
// invite itself.
func (s *Service) StrippedState(ctx context.Context, q StateReader, roomID, userID string) ([]json.RawMessage, error) {
	state, err := q.CurrentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	var inviter string
	for _, e := range state {
		if e.Type == spec.MRoomMember && *e.StateKey == userID {
			inviter = e.Sender
		}
	}
	var out []json.RawMessage
	for _, e := range state {
		isMember := e.Type == spec.MRoomMember && (*e.StateKey == userID || *e.StateKey == inviter)
		if !strippedTypes[e.Type] && !isMember {
			continue
		}
		ce := toClient(e)
		stripped := map[string]any{"type": ce.Type, "state_key": ce.StateKey, "content": ce.Content, "sender": ce.Sender}
		if e.Type == spec.MRoomMember && *e.StateKey == userID {
			stripped["event_id"], stripped["origin_server_ts"] = ce.EventID, ce.OriginServerTS
		}
		b, err := json.Marshal(stripped)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// EventNear is the event closest to a time in a direction that the user
// may see (timestamp_to_event): the first visible one found from there.
func (s *Service) EventNear(ctx context.Context, dev *caller.Device, roomID string, ts int64, forwards bool) (storage.Event, error) {
	var found storage.Event
	err := s.DB.Read(ctx, func(q storage.Q) error {
		v, err := s.readableViewer(ctx, q, roomID, dev.UserID)
		if err != nil {
			return err
		}
		for range 1000 {
			e, err := q.EventNear(ctx, roomID, ts, forwards)
			if errors.Is(err, storage.ErrNotFound) {
				return matrixerr.NotFound("no event found")
			}
			if err != nil {
				return err
			}
			if v.canSee(e) {
				found = e
				return nil
			}
			if forwards {
				ts = e.OriginTS + 1
			} else {
				ts = e.OriginTS - 1
			}
		}
		return matrixerr.NotFound("no event found")
	})
	return found, err
}

func stringOrNil(r gjson.Result) *string {
	if r.Type != gjson.String || r.Str == "" {
		return nil
	}
	return &r.Str
}
