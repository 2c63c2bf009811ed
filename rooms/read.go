package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/filter"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

// Token is a position between events: "t<pos>" means just after the event
// at pos. Backwards pagination from it returns events at or before pos;
// forwards, events after it. Sync tokens ("s<pos>_…") are accepted too.
func Token(pos int64) string { return "t" + strconv.FormatInt(pos, 10) }

// ParseToken reads a pagination or sync token's event position.
func ParseToken(tok string) (int64, error) {
	if len(tok) < 2 || (tok[0] != 't' && tok[0] != 's') {
		return 0, httpapi.InvalidParam("invalid pagination token")
	}
	digits, _, _ := strings.Cut(tok[1:], "_")
	pos, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || pos < 0 {
		return 0, httpapi.InvalidParam("invalid pagination token")
	}
	return pos, nil
}

// clientEvent is the client-server API's format of an event.
type clientEvent struct {
	Content        json.RawMessage `json:"content"`
	EventID        string          `json:"event_id"`
	OriginServerTS int64           `json:"origin_server_ts"`
	RoomID         string          `json:"room_id"`
	Sender         string          `json:"sender"`
	StateKey       *string         `json:"state_key,omitempty"`
	Type           string          `json:"type"`
	Redacts        string          `json:"redacts,omitempty"`
	Unsigned       map[string]any  `json:"unsigned,omitempty"`
}

// Format turns stored events into the client format as seen by viewer:
// unsigned carries age, the viewer's own transaction_id, prev_content for
// state and redacted_because for redacted events.
func (s *Service) Format(ctx context.Context, q storage.Q, evs []storage.Event, viewer *httpapi.Device) ([]json.RawMessage, error) {
	return s.FormatKnowing(ctx, q, evs, viewer, Known{})
}

// Known is what a caller already knows of the viewer's membership, which
// Format then need not read again: in some rooms, the current membership
// and where it began (sync knows it); in others, the whole history (a
// viewer read it to decide what may be seen).
type Known struct {
	Current map[string]storage.RoomMembership
	History map[string][]storage.StateChange
}

// formatFor formats events of the viewer's room.
func (s *Service) formatFor(ctx context.Context, q storage.Q, evs []storage.Event, dev *httpapi.Device, v *viewer, roomID string) ([]json.RawMessage, error) {
	return s.FormatKnowing(ctx, q, evs, dev, Known{History: map[string][]storage.StateChange{roomID: v.memberships}})
}

// FormatKnowing is Format with what the caller knows of the viewer's
// membership.
func (s *Service) FormatKnowing(ctx context.Context, q storage.Q, evs []storage.Event, viewer *httpapi.Device, known Known) ([]json.RawMessage, error) {
	var refs []string
	for _, e := range evs {
		if e.RedactedBy != "" {
			refs = append(refs, e.RedactedBy)
		}
		if e.Replaces != "" {
			refs = append(refs, e.Replaces)
		}
	}
	related := map[string]storage.Event{}
	if len(refs) > 0 {
		found, err := q.EventsByID(ctx, refs)
		if err != nil {
			return nil, err
		}
		for _, e := range found {
			related[e.EventID] = e
		}
	}
	now := s.Now().UnixMilli()
	bundles, err := s.bundles(ctx, q, evs, viewer)
	if err != nil {
		return nil, err
	}
	// The viewer's membership at each event (MSC4115), from their
	// membership history in each room of the batch.
	memberships := map[string][]storage.StateChange{}
	for room, h := range known.History {
		memberships[room] = h
	}
	membershipAt := func(e storage.Event) string {
		if m, ok := known.Current[e.RoomID]; ok && e.Pos >= m.Pos {
			return m.Membership
		}
		return before(memberships[e.RoomID], e.Pos+1, spec.Leave)
	}
	if viewer != nil {
		for _, e := range evs {
			if _, ok := memberships[e.RoomID]; ok {
				continue
			}
			if m, ok := known.Current[e.RoomID]; ok && e.Pos >= m.Pos {
				continue
			}
			if memberships[e.RoomID], err = q.StateHistory(ctx, e.RoomID, spec.MRoomMember, viewer.UserID, "$.content.membership"); err != nil {
				return nil, err
			}
		}
	}
	out := make([]json.RawMessage, 0, len(evs))
	for _, e := range evs {
		ce := toClient(e)
		u := map[string]any{"age": now - e.OriginTS}
		if viewer != nil {
			u["membership"] = membershipAt(e)
		}
		if b := bundles[e.EventID]; b != nil {
			u["m.relations"] = b
		}
		if viewer != nil && e.TxnID != "" && e.Sender == viewer.UserID && e.DeviceID == viewer.DeviceID {
			_, txn, _ := strings.Cut(e.TxnID, ":") // drop the endpoint, see TxnKey
			u["transaction_id"] = txn
		}
		if prev, ok := related[e.Replaces]; ok {
			u["replaces_state"] = prev.EventID
			u["prev_content"] = json.RawMessage(gjson.GetBytes(prev.JSON, "content").Raw)
			u["prev_sender"] = prev.Sender
		}
		if r, ok := related[e.RedactedBy]; ok {
			u["redacted_because"] = toClient(r)
		} else if e.RedactedBy == storage.ErasedBy {
			// No redaction event exists: the sender's account was erased.
			u["redacted_because"] = clientEvent{Type: spec.MRoomRedaction, Sender: e.Sender, RoomID: e.RoomID,
				EventID: "$erased-" + strings.TrimPrefix(e.EventID, "$"), OriginServerTS: e.OriginTS, Redacts: e.EventID,
				Content: json.RawMessage(`{"reason":"account erased"}`)}
		}
		ce.Unsigned = u
		b, err := json.Marshal(ce)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// bundles are the aggregations of relations bundled into each event's
// unsigned.m.relations: for a thread root its latest reply, reply count
// and whether the viewer took part; for an edited event its latest edit.
func (s *Service) bundles(ctx context.Context, q storage.Q, evs []storage.Event, viewer *httpapi.Device) (map[string]map[string]any, error) {
	ids := make([]string, 0, len(evs))
	sender := map[string]string{}
	for _, e := range evs {
		ids = append(ids, e.EventID)
		sender[e.EventID] = e.Sender
	}
	viewerID := ""
	if viewer != nil {
		viewerID = viewer.UserID
	}
	aggs, err := q.Aggregations(ctx, ids, viewerID)
	if err != nil || len(aggs) == 0 {
		return nil, err
	}
	var positions []int64
	for _, byType := range aggs {
		for _, a := range byType {
			positions = append(positions, a.LatestPos)
		}
	}
	latest, err := q.EventsByPos(ctx, positions)
	if err != nil {
		return nil, err
	}
	byPos := map[int64]storage.Event{}
	for _, e := range latest {
		byPos[e.Pos] = e
	}
	out := map[string]map[string]any{}
	for parent, byType := range aggs {
		b := map[string]any{}
		if a, ok := byType["m.thread"]; ok {
			if e, ok := byPos[a.LatestPos]; ok {
				b["m.thread"] = map[string]any{"latest_event": toClient(e), "count": a.Count,
					"current_user_participated": a.Participated || (viewerID != "" && sender[parent] == viewerID)}
			}
		}
		if a, ok := byType["m.replace"]; ok {
			if e, ok := byPos[a.LatestPos]; ok {
				b["m.replace"] = toClient(e)
			}
		}
		if len(b) > 0 {
			out[parent] = b
		}
	}
	return out, nil
}

func toClient(e storage.Event) clientEvent {
	pdu := gjson.ParseBytes(e.JSON)
	ce := clientEvent{
		Content:        json.RawMessage(pdu.Get("content").Raw),
		EventID:        e.EventID,
		OriginServerTS: e.OriginTS,
		RoomID:         e.RoomID,
		Sender:         e.Sender,
		StateKey:       e.StateKey,
		Type:           e.Type,
	}
	if len(ce.Content) == 0 {
		ce.Content = json.RawMessage(`{}`)
	}
	if e.Type == spec.MRoomRedaction {
		ce.Redacts = pdu.Get("redacts").Str
		if ce.Redacts == "" {
			ce.Redacts = pdu.Get("content.redacts").Str
		}
	}
	return ce
}

// TxnKey scopes a transaction ID to its endpoint ("s" for send, "r" for
// redact), so the same ID on both does not collide.
func TxnKey(endpoint, txnID string) string { return endpoint + ":" + txnID }

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

// IgnoredUsers is the set of users a user ignores (m.ignored_user_list):
// their messages and invites are not delivered to the user.
func IgnoredUsers(ctx context.Context, q storage.Q, userID string) (map[string]bool, error) {
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

func (s *Service) newViewer(ctx context.Context, q storage.Q, roomID, userID string) (*viewer, error) {
	ignored, err := IgnoredUsers(ctx, q, userID)
	if err != nil {
		return nil, err
	}
	return s.newViewerIgnoring(ctx, q, roomID, userID, ignored)
}

// newViewerIgnoring is newViewer with the users the user ignores already
// read, for callers that need viewers of many rooms.
func (s *Service) newViewerIgnoring(ctx context.Context, q storage.Q, roomID, userID string, ignored map[string]bool) (*viewer, error) {
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
func (s *Service) Messages(ctx context.Context, dev *httpapi.Device, req MessagesRequest) (*Messages, error) {
	var res *Messages
	err := s.DB.Read(ctx, func(q storage.Q) error {
		v, err := s.readableViewer(ctx, q, req.RoomID, dev.UserID)
		if err != nil {
			return err
		}
		from := int64(0)
		if req.From != "" {
			if from, err = ParseToken(req.From); err != nil {
				return err
			}
		} else if req.Backwards {
			if from, err = q.MaxEventPos(ctx); err != nil {
				return err
			}
		}
		to := int64(-1)
		if req.To != "" {
			if to, err = ParseToken(req.To); err != nil {
				return err
			}
		}
		evs, last, more, err := s.page(ctx, q, v, req.RoomID, from, to, req.Backwards, req.Limit, &req.Filter)
		if err != nil {
			return err
		}
		res = &Messages{Start: Token(from)}
		// Like Synapse, a page with events always says where to go on
		// from: the next page is empty and ends the pagination.
		if more || len(evs) > 0 {
			res.End = Token(last)
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

func (s *Service) readableViewer(ctx context.Context, q storage.Q, roomID, userID string) (*viewer, error) {
	_, err := q.Room(ctx, roomID)
	admin := ctx.Value(adminKey{}) != nil
	switch {
	case errors.Is(err, storage.ErrNotFound) && admin:
		return nil, httpapi.NotFound("unknown room")
	case errors.Is(err, storage.ErrNotFound):
		return nil, httpapi.Forbidden("you are not in this room")
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
		return nil, httpapi.Forbidden("you are not in this room")
	}
	return v, nil
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
func (s *Service) senderMembers(ctx context.Context, q storage.Q, dev *httpapi.Device, roomID string, evs []storage.Event) ([]json.RawMessage, error) {
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
func (s *Service) Event(ctx context.Context, dev *httpapi.Device, roomID, eventID string) (json.RawMessage, error) {
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
func (s *Service) VisibleEvent(ctx context.Context, q storage.Q, userID, roomID, eventID string) (storage.Event, error) {
	e, _, err := s.visibleEvent(ctx, q, userID, roomID, eventID)
	var he *httpapi.Error
	if errors.As(err, &he) && he.Status == http.StatusForbidden {
		return e, httpapi.NotFound("event not found")
	}
	return e, err
}

func (s *Service) visibleEvent(ctx context.Context, q storage.Q, userID, roomID, eventID string) (storage.Event, *viewer, error) {
	v, err := s.readableViewer(ctx, q, roomID, userID)
	if err != nil {
		return storage.Event{}, nil, err
	}
	e, err := q.Event(ctx, eventID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (e.RoomID != roomID || !v.canSee(e))) {
		return storage.Event{}, nil, httpapi.NotFound("event not found")
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
func (s *Service) Context(ctx context.Context, dev *httpapi.Device, roomID, eventID string, limit int, f filter.RoomEventFilter) (*Context, error) {
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
			EventsAfter: formatted[1+len(before):], Start: Token(start), End: Token(end)}
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
		return nil, httpapi.Forbidden("you are not in this room")
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
		return nil, httpapi.Forbidden("you are not in this room")
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
func (s *Service) State(ctx context.Context, dev *httpapi.Device, roomID string) ([]json.RawMessage, error) {
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
func (s *Service) StateEvent(ctx context.Context, dev *httpapi.Device, roomID, typ, stateKey string) (json.RawMessage, error) {
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
		return httpapi.NotFound("no such state event")
	})
	return out, err
}

// Members returns the room's member events, optionally at a token's
// position and filtered by membership.
func (s *Service) Members(ctx context.Context, dev *httpapi.Device, roomID, at string, membership, notMembership string) ([]json.RawMessage, error) {
	var pos int64
	if at != "" {
		var err error
		if pos, err = ParseToken(at); err != nil {
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
				return httpapi.NotFound("the room did not exist at that point")
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
			return httpapi.Forbidden("you are not in this room")
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

// Visible filters events of one room to those the user may see.
func (s *Service) Visible(ctx context.Context, q storage.Q, roomID, userID string, evs []storage.Event) ([]storage.Event, error) {
	if len(evs) == 0 {
		return evs, nil
	}
	v, err := s.newViewer(ctx, q, roomID, userID)
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

// StrippedState is the invite_state of a room for a user invited to it:
// a few state events in stripped form, the inviter's member event, and the
// invite itself.
func (s *Service) StrippedState(ctx context.Context, q storage.Q, roomID, userID string) ([]json.RawMessage, error) {
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
func (s *Service) EventNear(ctx context.Context, dev *httpapi.Device, roomID string, ts int64, forwards bool) (storage.Event, error) {
	var found storage.Event
	err := s.DB.Read(ctx, func(q storage.Q) error {
		v, err := s.readableViewer(ctx, q, roomID, dev.UserID)
		if err != nil {
			return err
		}
		for range 1000 {
			e, err := q.EventNear(ctx, roomID, ts, forwards)
			if errors.Is(err, storage.ErrNotFound) {
				return httpapi.NotFound("no event found")
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
		return httpapi.NotFound("no event found")
	})
	return found, err
}

func stringOrNil(r gjson.Result) *string {
	if r.Type != gjson.String || r.Str == "" {
		return nil
	}
	return &r.Str
}
