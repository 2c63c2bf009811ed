package rooms

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/storage"
)

// authState loads the current state events needed to authorise ev, as PDUs.
// The create event is always included: room version 12 no longer lists it in
// auth_events, but its rules still need it. cache, if not nil, holds state
// events already parsed and keeps those read.
func authState(ctx context.Context, q storage.Q, room *storage.Room, proto *gomatrixserverlib.ProtoEvent, cache map[gomatrixserverlib.StateKeyTuple]gomatrixserverlib.PDU) (*gomatrixserverlib.AuthEvents, error) {
	needed, err := gomatrixserverlib.StateNeededForProtoEvent(proto)
	if err != nil {
		return nil, matrixerr.BadJSON("%v", err)
	}
	tuples := append(needed.Tuples(), gomatrixserverlib.StateKeyTuple{EventType: spec.MRoomCreate, StateKey: ""})
	provider, _ := gomatrixserverlib.NewAuthEvents(nil)
	seen := map[gomatrixserverlib.StateKeyTuple]bool{}
	for _, t := range tuples {
		if seen[t] {
			continue
		}
		seen[t] = true
		pdu, cached := cache[t]
		if !cached {
			stored, err := q.CurrentStateEvent(ctx, room.RoomID, t.EventType, t.StateKey)
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return nil, err
			}
			if err == nil {
				if pdu, err = toPDU(room.Version, stored); err != nil {
					return nil, err
				}
			}
			if cache != nil {
				cache[t] = pdu
			}
		}
		if pdu == nil {
			continue
		}
		if err := provider.AddEvent(pdu); err != nil {
			return nil, err
		}
	}
	return provider, nil
}

func toPDU(version string, e storage.Event) (gomatrixserverlib.PDU, error) {
	verImpl, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(version))
	if err != nil {
		return nil, err
	}
	return verImpl.NewEventFromTrustedJSONWithEventID(e.EventID, e.JSON, e.RedactedBy != "")
}

func userIDForSender(_ spec.RoomID, senderID spec.SenderID) (*spec.UserID, error) {
	return spec.NewUserID(string(senderID), true)
}

// built is an event built, signed and authorised at a room's head, with
// what follows it in its transaction already decided.
type built struct {
	pdu   gomatrixserverlib.PDU
	event storage.Event
	auth  gomatrixserverlib.AuthEventProvider
	then  []Then
	// members are the room's joined members at the event, when it was
	// built at a head (which keeps them), else nil.
	members []storage.Member
}

// build makes ev the event after room's latest, signs it and authorises it
// against the room's current state as q reads it, then prepares it from the
// same state. ahead is the room's head when q is a read snapshot taken
// before the write (heads.go), else nil.
func (s *Service) build(ctx context.Context, q storage.Q, room *storage.Room, ev Event, ahead *head) (*built, error) {
	verImpl, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(room.Version))
	if err != nil {
		return nil, err
	}
	proto := &gomatrixserverlib.ProtoEvent{
		SenderID:   ev.Sender,
		RoomID:     room.RoomID,
		Type:       ev.Type,
		StateKey:   ev.StateKey,
		PrevEvents: []string{room.LatestEventID},
		Depth:      room.Depth + 1,
		Content:    spec.RawJSON(ev.Content),
		Redacts:    ev.Redacts,
		Version:    verImpl,
	}
	var cache map[gomatrixserverlib.StateKeyTuple]gomatrixserverlib.PDU
	if ahead != nil {
		cache = ahead.state
	}
	provider, err := authState(ctx, q, room, proto, cache)
	if err != nil {
		return nil, err
	}
	builder := verImpl.NewEventBuilderFromProtoEvent(proto)
	if err := builder.AddAuthEvents(provider); err != nil {
		return nil, err
	}
	now := s.Now()
	pdu, err := signMessage(verImpl, builder, now, s.ServerName, s.KeyID, s.Key)
	if err == nil && pdu == nil {
		pdu, err = builder.Build(now, s.ServerName, s.KeyID, s.Key)
	}
	if err != nil {
		return nil, err
	}
	if err := gomatrixserverlib.Allowed(pdu, provider, userIDForSender); err != nil {
		return nil, err
	}
	return s.prepare(ctx, q, room, pdu, provider, ev, ahead)
}

// prepare describes an authorised event for storage and decides the
// InTransaction steps that follow it; ahead is as build's.
func (s *Service) prepare(ctx context.Context, q storage.Q, room *storage.Room, pdu gomatrixserverlib.PDU, provider gomatrixserverlib.AuthEventProvider, ev Event, ahead *head) (*built, error) {
	a := Appended{Ctx: ctx, Q: q, Room: room, Auth: provider, Snapshot: ahead != nil}
	if ahead != nil {
		if ahead.members == nil {
			var err error
			if ahead.members, err = q.JoinedMembersWithNames(ctx, room.RoomID); err != nil {
				return nil, err
			}
		}
		a.Members = ahead.members
	}
	b := &built{pdu: pdu, auth: provider, event: storage.Event{
		EventID:  pdu.EventID(),
		RoomID:   room.RoomID,
		Type:     pdu.Type(),
		StateKey: pdu.StateKey(),
		Sender:   string(pdu.SenderID()),
		OriginTS: int64(pdu.OriginServerTS()),
		JSON:     pdu.JSON(),
		DeviceID: ev.DeviceID,
		TxnID:    ev.TxnID,
	}}
	if pdu.Type() == spec.MRoomMember {
		b.event.Membership, _ = pdu.Membership()
	}
	if rel := gjson.GetBytes(pdu.Content(), `m\.relates_to`); rel.IsObject() {
		b.event.RelatesTo, b.event.RelType = rel.Get("event_id").Str, rel.Get("rel_type").Str
	}
	b.members = a.Members
	a.Event = &b.event
	for _, step := range s.InTransaction {
		then, err := step.Prepare(a)
		if err != nil {
			return nil, err
		}
		if then != nil {
			b.then = append(b.then, then)
		}
	}
	return b, nil
}

// content is ev's content, {} when it has none, if it is canonical JSON.
func content(ev *Event) error {
	if len(ev.Content) == 0 {
		ev.Content = json.RawMessage(`{}`)
	}
	return CheckContent(ev.Content)
}

// append builds, authorises and stores one event at the head of room,
// inside the write transaction.
func (w *writer) append(room *storage.Room, ev Event) (*storage.Event, error) {
	w.rebuilt = append(w.rebuilt, room.RoomID)
	delete(w.joined, room.RoomID)
	if err := content(&ev); err != nil {
		return nil, err
	}
	if err := w.mayAct(ev.Sender, ev.Type, ev.StateKey, ev.Content, ev.Redacts); err != nil {
		return nil, err
	}
	b, err := w.s.build(w.ctx, w.q, room, ev, nil)
	if err != nil {
		return nil, err
	}
	stored, err := w.store(room, b)
	if err != nil {
		return nil, err
	}
	if ev.Type == spec.MRoomRedaction {
		if err := w.redact(room, b.pdu, b.auth); err != nil {
			return nil, err
		}
	}
	return stored, nil
}

// store appends a built, authorised event and runs what follows it in the
// transaction.
func (w *writer) store(room *storage.Room, b *built) (*storage.Event, error) {
	stored := b.event
	if _, err := w.q.AppendEvent(w.ctx, &stored, b.pdu.Depth()); err != nil {
		return nil, err
	}
	room.LatestEventID, room.Depth = stored.EventID, b.pdu.Depth()
	for _, then := range b.then {
		if err := then(Appended{Ctx: w.ctx, Q: w.q, Room: room, Event: &stored, Auth: b.auth}); err != nil {
			return nil, err
		}
	}
	w.appended = append(w.appended, stored)
	return &stored, nil
}
