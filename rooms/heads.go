package rooms

import (
	"context"
	"sync"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/redoubt-systems/redoubt/storage"
)

// Messages are built outside the writer. Building, hashing and signing an
// event, authorising it and evaluating its push rules take more time than
// storing it; done inside the write transaction, they left the second core
// idle and made a busy room wait on one goroutine. So a client's message
// event is built before its write, from a read snapshot, at the head this
// process last built in its room, and queued for the writer while that
// room's head is still locked, so messages reach the writer in the order
// they were built: the next one can be built while the first commits.
//
// The writer only checks: if the room's latest event is not the one the
// message was built on (a state event or a redaction went first, or the
// event before it failed), the message is built again inside the write as
// any other event is, and the head is read afresh next time. Only events
// that do not change the room's state take this path, so the state a
// snapshot shows is the state at the head as long as the check passes.

// head is where the next message in a room is built: the room as of the
// last event built here, which may not have committed yet, and what
// messages read of the room's state: the state events they have been
// authorised against, parsed once, and the members. Messages change no state, and whatever does (a state event, a
// redaction, an erasure) is built inside the writer and forgets the head
// once it has committed; an event built at a head it passed fails the
// writer's check.
type head struct {
	mu   sync.Mutex
	room storage.Room // known while state is not nil
	// state holds what messages were authorised against (nil for none).
	state map[gomatrixserverlib.StateKeyTuple]gomatrixserverlib.PDU
	// members are the joined members with their display names (push
	// rules read them for every message), or nil until read.
	members []storage.Member
}

type heads struct {
	mu sync.Mutex
	m  map[string]*head
}

func (hs *heads) get(roomID string) *head {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.m == nil {
		hs.m = map[string]*head{}
	}
	h := hs.m[roomID]
	if h == nil {
		h = &head{}
		hs.m[roomID] = h
	}
	return h
}

// forget makes the next message in each room read its head from the
// database: the heads were passed by events built elsewhere, or by ones
// that did not commit.
func (hs *heads) forget(roomIDs ...string) {
	for _, id := range roomIDs {
		hs.mu.Lock()
		h := hs.m[id]
		hs.mu.Unlock()
		if h == nil {
			continue
		}
		h.mu.Lock()
		h.reset()
		h.mu.Unlock()
	}
}

// reset makes the head unknown (its lock held).
func (h *head) reset() { h.state, h.members = nil, nil }

// buildsAhead reports whether an event may be built before its write: it
// changes no state (a redaction can, by redacting a state event), and the
// write is not part of a larger unit of work.
func buildsAhead(ctx context.Context, ev Event) bool {
	return ev.StateKey == nil && ev.Type != spec.MRoomRedaction && !storage.InUnit(ctx)
}

// buildAhead builds ev at the room's head from a read snapshot. Any error
// sends the event the ordinary way, where the same checks give the error
// every caller is used to.
func (s *Service) buildAhead(ctx context.Context, h *head, roomID string, ev Event) (*built, error) {
	if err := content(&ev); err != nil {
		return nil, err
	}
	var b *built
	err := s.DB.Read(ctx, func(q storage.Q) error {
		if h.state == nil {
			room, err := q.Room(ctx, roomID)
			if err != nil {
				return err
			}
			h.room, h.state = room, map[gomatrixserverlib.StateKeyTuple]gomatrixserverlib.PDU{}
		}
		room := h.room
		var err error
		b, err = s.build(ctx, q, &room, ev, h)
		return err
	})
	if err != nil {
		return nil, err // what the head holds is still true
	}
	h.room.LatestEventID, h.room.Depth = b.event.EventID, b.pdu.Depth()
	return b, nil
}

// sendAhead is Send for an event that buildsAhead allows.
func (s *Service) sendAhead(ctx context.Context, roomID string, ev Event, also func(q storage.Q) error) (string, error) {
	var id string
	var w *writer
	wait := s.queueAhead(ctx, roomID, ev, func(b *built) func() error {
		var write func(storage.Q) error
		w, write = s.writing(ctx, func(w *writer) (err error) {
			id, err = w.sendAlso(roomID, ev, b, also)
			return err
		})
		return s.DB.Queue(ctx, write)
	})
	if wait == nil {
		return s.sendInside(ctx, roomID, ev, also)
	}
	return id, s.committed(ctx, w, wait(), roomID)
}

// queueAhead builds ev at its room's head and, with the head locked,
// queues its write, returning the wait for its outcome, or nil if the
// event could not be built. A panic leaves the head unlocked and
// forgotten.
func (s *Service) queueAhead(ctx context.Context, roomID string, ev Event, queue func(*built) func() error) (wait func() error) {
	h := s.heads.get(roomID)
	h.mu.Lock()
	defer h.mu.Unlock()
	defer func() {
		if v := recover(); v != nil {
			h.reset()
			panic(v)
		}
	}()
	b, err := s.buildAhead(ctx, h, roomID, ev)
	if err != nil {
		return nil
	}
	return queue(b)
}
