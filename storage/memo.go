package storage

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"sync"
)

// memo keeps what woken /syncs read alike, for one state of the database:
// the one a settled snapshot sees (ReadPositioned). A message wakes every
// member of its room, and each /sync would otherwise read the same rooms
// with new events and the same new events, from the same token to the
// same position, and the same membership and device list changes in that
// range; and, once enough of a room's members have looked themselves up
// there, the room's memberships and unread counts (roomRead). What is read
// is never changed; at most memoSize entries of each kind, since a state
// lasts only until the next commit.
//
// A state is this server's: another process's writes are seen through the
// events' position and events_rewritten (rewritesKey). Memberships and
// unread counts change only with events and receipts, which no command run
// beside the server writes without events (an erasure deletes the erased
// user's, who no longer signs in).
type memo struct {
	mu      sync.Mutex
	rooms   map[rangeKey]map[string]bool
	events  map[eventsKey]eventsRead
	members map[rangeKey][]MemberChange
	users   map[rangeKey][]string
	byRoom  map[string]*roomRead
}

// roomRead is what the syncs of one state looked up of their own users in
// one room: their membership and unread counts, a statement each per sync.
// Once enough of the room's members have looked (bulkAfter, bulkShare),
// the room's members and unread counts are read at once for the rest: a
// message in a room of 1,000 members wakes 1,000 syncs, but in a large
// room with few members syncing, reading every member would cost more
// than it saves.
type roomRead struct {
	lookups int
	loading bool
	loaded  bool
	members map[string]RoomMembership // joined and invited members, by user
	unread  map[string]map[string]Unread
}

const (
	bulkAfter = 8  // lookups before reading a room's members at once
	bulkShare = 16 // ... and only once at least one member in bulkShare has looked
)

const memoSize = 256

// rangeKey names a read of positions (from, to] by its table.
type rangeKey struct {
	table    string
	from, to int64
}

type eventsKey struct {
	room     string
	from, to int64
	limit    int
}

type eventsRead struct {
	evs  []Event
	more bool
}

func newMemo() *memo {
	return &memo{rooms: map[rangeKey]map[string]bool{}, events: map[eventsKey]eventsRead{},
		members: map[rangeKey][]MemberChange{}, users: map[rangeKey][]string{}, byRoom: map[string]*roomRead{}}
}

// lookUp counts a sync's lookup of its user in a room and returns the
// room's members and unread counts if they have been read at once (or
// this lookup is the one to read them), else nil. A failed read at once
// leaves the lookup to be made alone, which reports the error if it is
// the connection's or the request's.
func (m *memo) lookUp(ctx context.Context, q Q, roomID string) *roomRead {
	m.mu.Lock()
	r := m.byRoom[roomID]
	if r == nil && len(m.byRoom) < memoSize {
		r = &roomRead{}
		m.byRoom[roomID] = r
	}
	if r == nil || r.loaded {
		m.mu.Unlock()
		return r
	}
	r.lookups++
	// Checked at 8, 16, 32... lookups, so that a large room is counted
	// only a few times.
	lookups := r.lookups
	load := !r.loading && lookups >= bulkAfter && lookups&(lookups-1) == 0
	if load {
		r.loading = true
	}
	m.mu.Unlock()
	if !load {
		return nil
	}
	members, unread, err := q.roomMembersAndUnread(ctx, roomID, lookups*bulkShare)
	m.mu.Lock()
	defer m.mu.Unlock()
	r.loading = false
	if err != nil || members == nil {
		return nil
	}
	r.members, r.unread, r.loaded = members, unread, true
	return r
}

// member returns a user's membership of the room if r holds it: a user
// missing from r.members has neither joined nor been invited, and is
// looked up alone.
func (r *roomRead) member(userID string) (RoomMembership, bool) {
	if r == nil {
		return RoomMembership{}, false
	}
	m, ok := r.members[userID]
	return m, ok
}

// loaded returns the room's members and unread counts if they have been
// read at once.
func (m *memo) loaded(roomID string) *roomRead {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.byRoom[roomID]; r != nil && r.loaded {
		return r
	}
	return nil
}

// roomMembersAndUnread reads a room's joined and invited members and its
// unread counts, unless it has more than max such members (nil, nil).
func (q Q) roomMembersAndUnread(ctx context.Context, roomID string, max int) (map[string]RoomMembership, map[string]map[string]Unread, error) {
	var n int
	err := q.queryRow(ctx, `SELECT joined + invited FROM rooms WHERE room_id = ?`, roomID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) || err == nil && n > max {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
	rows, err := q.query(ctx, `SELECT s.state_key, s.membership, s.pos, f.user_id IS NOT NULL
		FROM room_state s LEFT JOIN forgotten_rooms f ON f.room_id = s.room_id AND f.user_id = s.state_key
		WHERE s.room_id = ? AND s.type = 'm.room.member' AND s.membership IN ('join', 'invite')`, roomID)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	members := make(map[string]RoomMembership, n)
	for rows.Next() {
		var user string
		m := RoomMembership{RoomID: roomID}
		if err := rows.Scan(&user, &m.Membership, &m.Pos, &m.Forgotten); err != nil {
			return nil, nil, err
		}
		members[user] = m
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	unread := map[string]map[string]Unread{}
	err = q.unreadCounts(ctx, `SELECT user_id, thread_id, notifications, highlights FROM unread_counts
		WHERE room_id = ? AND notifications > 0`, func(user string) map[string]Unread {
		if unread[user] == nil {
			unread[user] = map[string]Unread{}
		}
		return unread[user]
	}, roomID)
	return members, unread, err
}

// memoized returns what tbl holds for k, else what read returns, kept.
// Two readers missing at once both read; either result is the same.
func memoized[K comparable, V any](mu *sync.Mutex, tbl map[K]V, k K, read func() (V, error)) (V, error) {
	mu.Lock()
	v, ok := tbl[k]
	mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := read()
	if err == nil {
		mu.Lock()
		if len(tbl) < memoSize {
			tbl[k] = v
		}
		mu.Unlock()
	}
	return v, err
}

// sharedSlice is a read of positions (from, to] kept in the memo's table
// tbl, each caller given its own copy; without a memo it is read alone.
func sharedSlice[E any](q Q, tbl func(*memo) map[rangeKey][]E, k rangeKey, read func() ([]E, error)) ([]E, error) {
	if q.memo == nil {
		return read()
	}
	out, err := memoized(&q.memo.mu, tbl(q.memo), k, read)
	return slices.Clone(out), err
}

// rewritesKey counts, in instance_state, the writes that change or delete
// stored events in place. The server's own writes move DB.commits; another
// process's (a command run beside the server, such as an erasure) do not,
// so a settled snapshot of ReadPositioned also compares this count before
// it shares anything read before.
const rewritesKey = "events_rewritten"

// rewritesEvents notes that the write it is part of changes or deletes
// stored events: content it removes (forgets), and the count above.
func (q Q) rewritesEvents(ctx context.Context) error {
	q.forgets()
	_, err := q.exec(ctx, `INSERT INTO instance_state(key, value) VALUES(?, 1)
		ON CONFLICT(key) DO UPDATE SET value = value + 1`, rewritesKey)
	return err
}
