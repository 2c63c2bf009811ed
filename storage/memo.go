package storage

import (
	"context"
	"slices"
	"sync"
)

// memo keeps what woken /syncs read alike, for one state of the database:
// the one a settled snapshot sees (ReadPositioned). A message wakes every
// member of its room, and each /sync would otherwise read the same rooms
// with new events and the same new events, from the same token to the
// same position, and the same membership and device list changes in that
// range. What is kept is never changed; at most memoSize entries of each
// kind, since a state lasts only until the next commit.
type memo struct {
	mu      sync.Mutex
	rooms   map[rangeKey]map[string]bool
	events  map[eventsKey]eventsRead
	members map[rangeKey][]MemberChange
	users   map[rangeKey][]string
}

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
		members: map[rangeKey][]MemberChange{}, users: map[rangeKey][]string{}}
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
