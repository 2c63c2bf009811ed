package rooms

import (
	"context"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/redoubt-systems/redoubt/storage"
)

// What follows an event. Every event takes one path (append, in
// rooms.go): built, authorised, stored (storage indexes it for search and
// relations as it stores it), then handed to the Service's InTransaction
// steps inside the same transaction (push rules: whom it notifies, so
// that the counts commit with the event), and, once the transaction has
// committed, to its AfterCommit reactors in order (the sync wake-up, push
// delivery). server wires both lists.

// Appended is an event just stored, inside the transaction storing it.
type Appended struct {
	Ctx   context.Context
	Q     storage.Q
	Room  *storage.Room
	Event *storage.Event
	// Auth is the room state the event was authorised against.
	Auth gomatrixserverlib.AuthEventProvider
}

// InTransaction is work that must commit, or fail, with an event.
type InTransaction interface {
	WithEvent(Appended) error
}

// Committed is what one committed write appended, in order.
type Committed struct {
	Events []storage.Event
}

// Reactor is told of each committed write. It must return at once: slow
// work goes to goroutines of its own, which it stops at its Close.
type Reactor interface {
	AfterCommit(Committed)
}

// afterCommit hands a committed write to the reactors, in order.
func (s *Service) afterCommit(events []storage.Event) {
	if len(events) == 0 {
		return
	}
	c := Committed{Events: events}
	for _, r := range s.AfterCommit {
		r.AfterCommit(c)
	}
}
