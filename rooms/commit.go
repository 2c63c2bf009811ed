package rooms

import (
	"context"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/redoubt-systems/redoubt/storage"
)

// What follows an event. Every event takes one path: built and
// authorised (build.go), its InTransaction steps prepared from
// the same state (push rules: whom it notifies), stored (storage indexes
// it for search and relations as it stores it) with what those steps
// decided in the same transaction, so that the counts commit with the
// event, and, once the transaction has committed, handed to the
// AfterCommit reactors in order (the sync wake-up, push delivery). server
// wires both lists. A client's message is built and prepared before its
// transaction, from a read snapshot (heads.go); everything else inside.

// Appended is an event being stored, and the state it was authorised
// against.
type Appended struct {
	Ctx   context.Context
	Q     storage.Q
	Room  *storage.Room
	Event *storage.Event
	// Auth is the room state the event was authorised against.
	Auth gomatrixserverlib.AuthEventProvider
	// Snapshot is set when Q is a read snapshot taken before the write
	// transaction (Prepare for an event built outside it): the room's
	// state then is Auth's, but anything else Q reads may change before
	// the event commits. Event.Pos is zero until the event is stored.
	Snapshot bool
	// Members are the room's joined members with their display names in
	// that state, when the room's head keeps them (with Snapshot); nil
	// otherwise.
	Members []storage.Member
}

// InTransaction is work that must commit, or fail, with an event: Prepare
// decides it from the event and the room's state, and the Then it returns
// (nil for nothing) runs in the transaction once the event is stored.
type InTransaction interface {
	Prepare(Appended) (Then, error)
}

// Then is an InTransaction step's write, given the stored event.
type Then func(Appended) error

// Committed is what one committed write appended, in order.
type Committed struct {
	Events []storage.Event
	// Joined holds, for each room whose last event here is a message
	// built at the room's head, the room's joined members at that event,
	// as the head knew them: a reactor that would read them (to wake
	// them) need not. State changes are built in the writer, so these are
	// exact; rooms not here must be read.
	Joined map[string][]storage.Member
}

// Reactor is told of each committed write. It must return at once: slow
// work goes to goroutines of its own, which it stops at its Close.
type Reactor interface {
	AfterCommit(Committed)
}

// afterCommit hands a committed write to the reactors, in order.
func (s *Service) afterCommit(c Committed) {
	if len(c.Events) == 0 {
		return
	}
	for _, r := range s.AfterCommit {
		r.AfterCommit(c)
	}
}
