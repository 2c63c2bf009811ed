package syncapi

import (
	"sort"
	"sync"
	"time"
)

// Typing holds who is typing where. It is the one stream kept only in
// memory: typing notices are worth nothing after a restart. Positions start
// at the start-up time in milliseconds, so that tokens from before a restart
// are always behind the new positions.
type Typing struct {
	mu      sync.Mutex
	pos     int64
	rooms   map[string]map[string]*typist // room → user
	changed map[string]int64              // room → position of its last change
	// OnChange is called (outside the lock) with a room whose typing changed.
	OnChange func(roomID string)
}

// typist is one user typing in one room until its timer fires.
type typist struct{ timer *time.Timer }

// NewTyping returns an empty typing stream.
func NewTyping(now time.Time) *Typing {
	return &Typing{pos: now.UnixMilli(), rooms: map[string]map[string]*typist{}, changed: map[string]int64{}}
}

// Set marks a user as typing for timeout, or as not typing.
func (t *Typing) Set(roomID, userID string, typing bool, timeout time.Duration) {
	t.mu.Lock()
	users := t.rooms[roomID]
	if users == nil {
		users = map[string]*typist{}
		t.rooms[roomID] = users
	}
	old, was := users[userID]
	if was {
		old.timer.Stop()
		delete(users, userID)
	}
	if typing {
		// The timer's callback knows its typist only by pointer, so it can
		// tell whether it was replaced meanwhile; the lock covers the rest.
		ty := &typist{}
		users[userID] = ty
		ty.timer = time.AfterFunc(timeout, func() { t.expire(roomID, userID, ty) })
	}
	changed := was != typing
	if changed {
		t.pos++
		t.changed[roomID] = t.pos
	}
	t.mu.Unlock()
	if changed && t.OnChange != nil {
		t.OnChange(roomID)
	}
}

func (t *Typing) expire(roomID, userID string, ty *typist) {
	t.mu.Lock()
	if t.rooms[roomID][userID] != ty {
		t.mu.Unlock()
		return // replaced or cleared since
	}
	delete(t.rooms[roomID], userID)
	t.pos++
	t.changed[roomID] = t.pos
	t.mu.Unlock()
	if t.OnChange != nil {
		t.OnChange(roomID)
	}
}

// Pos is the stream's current position.
func (t *Typing) Pos() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pos
}

// Changed reports whether a room's typing changed in (since, to].
func (t *Typing) Changed(roomID string, since, to int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.changed[roomID]
	return p > since && p <= to
}

// Users lists who is typing in a room, sorted.
func (t *Typing) Users(roomID string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.rooms[roomID]))
	for u := range t.rooms[roomID] {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// ChangedRooms lists the rooms whose typing changed in (since, to].
func (t *Typing) ChangedRooms(since, to int64) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for room, p := range t.changed {
		if p > since && p <= to {
			out = append(out, room)
		}
	}
	return out
}
