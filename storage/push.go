package storage

import (
	"context"
	"database/sql"
)

// PushAction is what the push rules decided about one event for one user.
type PushAction struct {
	UserID, RoomID, ThreadID string
	EventPos                 int64
	Highlight                bool
	Actions                  []byte
	TS                       int64
}

// AddPushAction records a notifying event for a user.
func (q Q) AddPushAction(ctx context.Context, a PushAction) error {
	_, err := q.exec(ctx, `INSERT OR REPLACE INTO push_actions(user_id, event_pos, room_id, thread_id, highlight, actions, ts)
		VALUES(?, ?, ?, ?, ?, ?, ?)`, a.UserID, a.EventPos, a.RoomID, a.ThreadID, a.Highlight, a.Actions, a.TS)
	return err
}

// Unread is a count of notifying events not yet read.
type Unread struct {
	Notifications, Highlights int
}

// UnreadCounts counts a user's unread notifications in a room per thread
// ("" for the main timeline), each thread read up to its own receipt
// ("main" for the main timeline) or the unthreaded one, whichever is later.
func (q Q) UnreadCounts(ctx context.Context, userID, roomID string) (map[string]Unread, error) {
	rows, err := q.query(ctx, `SELECT p.thread_id, COUNT(*), SUM(p.highlight) FROM push_actions p
		WHERE p.user_id = ?1 AND p.room_id = ?2 AND p.event_pos > COALESCE((
			SELECT MAX(r.event_pos) FROM receipts r WHERE r.room_id = ?2 AND r.user_id = ?1
			AND r.type IN ('m.read', 'm.read.private')
			AND r.thread_id IN ('', CASE p.thread_id WHEN '' THEN 'main' ELSE p.thread_id END)), 0)
		GROUP BY p.thread_id`, userID, roomID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]Unread{}
	for rows.Next() {
		var thread string
		var u Unread
		if err := rows.Scan(&thread, &u.Notifications, &u.Highlights); err != nil {
			return nil, err
		}
		out[thread] = u
	}
	return out, rows.Err()
}

// Notification is a row of GET /notifications.
type Notification struct {
	PushAction
	Event Event
	Read  bool
}

// Notifications lists a user's notifications, newest first, before a
// position (0: from the newest).
func (q Q) Notifications(ctx context.Context, userID string, before int64, limit int, onlyHighlight bool) ([]Notification, error) {
	if before <= 0 {
		before = 1 << 62
	}
	rows, err := q.query(ctx, `SELECT p.user_id, p.room_id, p.thread_id, p.event_pos, p.highlight, p.actions, p.ts,
		COALESCE((SELECT MAX(r.event_pos) FROM receipts r WHERE r.room_id = p.room_id AND r.user_id = p.user_id
			AND r.type IN ('m.read', 'm.read.private') AND r.thread_id IN ('', CASE p.thread_id WHEN '' THEN 'main' ELSE p.thread_id END)), 0)
		FROM push_actions p WHERE p.user_id = ? AND p.event_pos < ? AND (? = 0 OR p.highlight = 1)
		ORDER BY p.event_pos DESC LIMIT ?`, userID, before, onlyHighlight, limit)
	if err != nil {
		return nil, err
	}
	var out []Notification
	for rows.Next() {
		var n Notification
		var readPos sql.NullInt64
		if err := rows.Scan(&n.UserID, &n.RoomID, &n.ThreadID, &n.EventPos, &n.Highlight, &n.Actions, &n.TS, &readPos); err != nil {
			rows.Close()
			return nil, err
		}
		n.Read = n.EventPos <= readPos.Int64
		out = append(out, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		e, err := scanEvent(q.queryRow(ctx, `SELECT `+eventCols+` FROM events e WHERE e.pos = ?`, out[i].EventPos))
		if err != nil {
			return nil, err
		}
		out[i].Event = e
	}
	return out, nil
}
