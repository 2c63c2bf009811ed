package rooms

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/caller"
	"github.com/redoubt-systems/redoubt/storage"
)

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

// EventReader is what formatting events for a client reads: the events
// they point at, aggregations of their relations, and the viewer's
// membership history.
type EventReader interface {
	EventsByID(ctx context.Context, ids []string) ([]storage.Event, error)
	EventsByPos(ctx context.Context, positions []int64) ([]storage.Event, error)
	StateHistory(ctx context.Context, roomID, typ, stateKey, field string) ([]storage.StateChange, error)
	Aggregations(ctx context.Context, parentIDs []string, viewer string) (map[string]map[string]storage.Aggregation, error)
}

// Format turns stored events into the client format as seen by viewer:
// unsigned carries age, the viewer's own transaction_id, prev_content for
// state and redacted_because for redacted events.
func (s *Service) Format(ctx context.Context, q EventReader, evs []storage.Event, viewer *caller.Device) ([]json.RawMessage, error) {
	return s.FormatKnowing(ctx, q, evs, viewer, Known{})
}

// Known is what a caller already knows of the viewer's membership, which
// Format then need not read again: in some rooms, the current membership
// and where it began (sync knows it); in others, the whole history (a
// viewer read it to decide what may be seen).
type Known struct {
	Current map[string]storage.RoomMembership
	History map[string][]storage.StateChange
	// Unbundled says none of the events has an edit or a thread to bundle:
	// a sync knows it when it read every event after the first it sends
	// and none of them relates to another.
	Unbundled bool
}

// formatFor formats events of the viewer's room.
func (s *Service) formatFor(ctx context.Context, q EventReader, evs []storage.Event, dev *caller.Device, v *viewer, roomID string) ([]json.RawMessage, error) {
	return s.FormatKnowing(ctx, q, evs, dev, Known{History: map[string][]storage.StateChange{roomID: v.memberships}})
}

// FormatKnowing is Format with what the caller knows of the viewer's
// membership.
func (s *Service) FormatKnowing(ctx context.Context, q EventReader, evs []storage.Event, viewer *caller.Device, known Known) ([]json.RawMessage, error) {
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
	var bundles map[string]map[string]any
	var err error
	if !known.Unbundled {
		if bundles, err = s.bundles(ctx, q, evs, viewer); err != nil {
			return nil, err
		}
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
		b, err := ce.appendJSON(make([]byte, 0, len(ce.Content)+256))
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
func (s *Service) bundles(ctx context.Context, q EventReader, evs []storage.Event, viewer *caller.Device) (map[string]map[string]any, error) {
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
