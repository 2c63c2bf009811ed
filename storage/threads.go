package storage

import (
	"context"
	"database/sql"
	"errors"
)

// ThreadSubscription is a user's subscription to a thread (MSC4306).
type ThreadSubscription struct {
	RoomID, RootID string
	Subscribed     bool
	Automatic      bool
	// UnsubscribedAt is the room's latest event position when the user
	// last unsubscribed (0 if never).
	UnsubscribedAt int64
	Pos            int64
}

// ThreadSubscription loads a user's subscription row for a thread.
func (q Q) ThreadSubscription(ctx context.Context, userID, roomID, rootID string) (ThreadSubscription, error) {
	s := ThreadSubscription{RoomID: roomID, RootID: rootID}
	var unsub sql.NullInt64
	err := q.queryRow(ctx, `SELECT subscribed, automatic, unsubscribed_at, pos FROM thread_subscriptions
		WHERE user_id = ? AND room_id = ? AND root_id = ?`, userID, roomID, rootID).Scan(&s.Subscribed, &s.Automatic, &unsub, &s.Pos)
	s.UnsubscribedAt = unsub.Int64
	return s, notFound(err)
}

// SetThreadSubscription stores a user's subscription to a thread at the
// next account data position, which it returns.
func (q Q) SetThreadSubscription(ctx context.Context, userID string, s ThreadSubscription) (int64, error) {
	pos, err := q.nextPos(ctx, "account_data")
	if err != nil {
		return 0, err
	}
	var unsub any
	if s.UnsubscribedAt > 0 {
		unsub = s.UnsubscribedAt
	}
	_, err = q.exec(ctx, `INSERT INTO thread_subscriptions(user_id, room_id, root_id, subscribed, automatic, unsubscribed_at, pos)
		VALUES(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(user_id, room_id, root_id) DO UPDATE SET subscribed = excluded.subscribed,
		automatic = excluded.automatic, unsubscribed_at = excluded.unsubscribed_at, pos = excluded.pos`,
		userID, s.RoomID, s.RootID, s.Subscribed, s.Automatic, unsub, pos)
	return pos, err
}

// ThreadSubscribers is the set of users subscribed to a thread.
func (q Q) ThreadSubscribers(ctx context.Context, roomID, rootID string) (map[string]bool, error) {
	users, err := q.strings(ctx, `SELECT user_id FROM thread_subscriptions WHERE room_id = ? AND root_id = ? AND subscribed = 1`, roomID, rootID)
	out := make(map[string]bool, len(users))
	for _, u := range users {
		out[u] = true
	}
	return out, err
}

// ThreadSubscriptionsBetween lists the newest limit subscription changes
// of a user in (from, to], newest first.
func (q Q) ThreadSubscriptionsBetween(ctx context.Context, userID string, from, to int64, limit int) ([]ThreadSubscription, error) {
	rows, err := q.query(ctx, `SELECT room_id, root_id, subscribed, automatic, pos FROM thread_subscriptions
		WHERE user_id = ? AND pos > ? AND pos <= ? ORDER BY pos DESC LIMIT ?`, userID, from, to, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ThreadSubscription
	for rows.Next() {
		var s ThreadSubscription
		if err := rows.Scan(&s.RoomID, &s.RootID, &s.Subscribed, &s.Automatic, &s.Pos); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// RoomHead is the position of a room's latest event.
func (q Q) RoomHead(ctx context.Context, roomID string) (int64, error) {
	var pos sql.NullInt64
	err := q.queryRow(ctx, `SELECT MAX(pos) FROM events WHERE room_id = ?`, roomID).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return pos.Int64, err
}
