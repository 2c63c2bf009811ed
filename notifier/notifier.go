// Package notifier wakes waiting long-polls. A write, once committed, wakes
// exactly the users it concerns; a waiting /sync costs nothing until then.
package notifier

import "sync"

// Notifier maps users to the listeners waiting on their behalf.
type Notifier struct {
	mu        sync.Mutex
	listeners map[string]map[*Listener]struct{}
}

// New returns an empty notifier.
func New() *Notifier { return &Notifier{listeners: map[string]map[*Listener]struct{}{}} }

// Listener is one waiting request. C receives a value when anything
// concerning its user was committed since Listen.
type Listener struct {
	C    chan struct{}
	user string
	n    *Notifier
}

// Listen registers a listener for a user. Register before reading the
// database, so that no commit can fall between the read and the wait.
func (n *Notifier) Listen(userID string) *Listener {
	l := &Listener{C: make(chan struct{}, 1), user: userID, n: n}
	n.mu.Lock()
	set := n.listeners[userID]
	if set == nil {
		set = map[*Listener]struct{}{}
		n.listeners[userID] = set
	}
	set[l] = struct{}{}
	n.mu.Unlock()
	return l
}

// Close unregisters the listener.
func (l *Listener) Close() {
	n := l.n
	n.mu.Lock()
	if set := n.listeners[l.user]; set != nil {
		delete(set, l)
		if len(set) == 0 {
			delete(n.listeners, l.user)
		}
	}
	n.mu.Unlock()
}

// Wake signals every listener of the given users. It never blocks: a
// listener already signalled stays signalled.
func (n *Notifier) Wake(userIDs ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, u := range userIDs {
		for l := range n.listeners[u] {
			select {
			case l.C <- struct{}{}:
			default:
			}
		}
	}
}

// Waiting counts the registered listeners.
func (n *Notifier) Waiting() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	total := 0
	for _, set := range n.listeners {
		total += len(set)
	}
	return total
}
