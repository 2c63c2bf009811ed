package storage

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
)

// PushAction is what the push rules decided about one event for one user.
type PushAction struct {
	UserID, RoomID, ThreadID string
	EventPos                 int64
	Highlight                bool
	Actions                  []byte
	TS                       int64 // the event's origin_server_ts
}

// notifyOnly is the commonest actions, stored as NULL.
var notifyOnly = []byte(`["notify"]`)

// storedActions is how actions are kept: NULL for notifyOnly.
func storedActions(a []byte) any {
	if bytes.Equal(a, notifyOnly) {
		return nil
	}
	return string(a)
}

// loadedActions reads back what storedActions kept.
func loadedActions(a []byte) []byte {
	if a == nil {
		return notifyOnly
	}
	return a
}

// AddPushActions records one event's notifications, one row per user, in
// one statement: its cost per row is what dominates sending into a busy room.
func (q Q) AddPushActions(ctx context.Context, eventPos int64, roomID, threadID string, actions []PushAction) error {
	if len(actions) == 0 {
		return nil
	}
	rows := make([]any, len(actions))
	for i, a := range actions {
		rows[i] = []any{a.UserID, a.Highlight, storedActions(a.Actions)}
	}
	js, err := json.Marshal(rows)
	if err != nil {
		return err
	}
	_, err = q.exec(ctx, `INSERT OR REPLACE INTO push_actions(user_id, room_id, event_pos, thread_id, highlight, actions)
		SELECT value ->> 0, ?, ?, ?, value ->> 1, CAST(value ->> 2 AS BLOB) FROM json_each(?)`,
		roomID, eventPos, threadID, string(js))
	return err
}

// Unread is a count of notifying events not yet read.
type Unread struct {
	Notifications, Highlights int
}

// UnreadCounts counts a user's unread notifications in a room per thread
// ("" for the main timeline), each thread read up to its own receipt or the
// unthreaded one, whichever is later. SQLite counts, a row per thread: a
// woken /sync asks on every wake-up, and handing each notification row to
// Go cost three times as much. One statement in the common case (no
// thread has notifications since the unthreaded receipt, and no threaded
// receipt is past it), at most three.
func (q Q) UnreadCounts(ctx context.Context, userID, roomID string) (map[string]Unread, error) {
	// Most rooms have no threads: counting without grouping needs no
	// sort (a temporary B-tree per query, on every wake-up).
	var all Unread
	var threaded bool
	var floor, threadRead int64
	if err := q.queryRow(ctx, `SELECT COUNT(p.event_pos), COALESCE(SUM(p.highlight), 0), COALESCE(MAX(p.thread_id != ''), 0), r.floor, r.threaded
		FROM (SELECT COALESCE(MAX(CASE WHEN thread_id = '' THEN event_pos END), 0) AS floor,
				COALESCE(MAX(CASE WHEN thread_id != '' THEN event_pos END), 0) AS threaded
			FROM receipts WHERE room_id = ?2 AND user_id = ?1 AND type IN ('m.read', 'm.read.private')) r
		LEFT JOIN push_actions p ON p.user_id = ?1 AND p.room_id = ?2 AND p.event_pos > r.floor`, userID, roomID).
		Scan(&all.Notifications, &all.Highlights, &threaded, &floor, &threadRead); err != nil {
		return nil, err
	}
	out := map[string]Unread{"": all}
	if threaded {
		var err error
		if out, err = q.unreadByThread(ctx, userID, roomID, floor); err != nil {
			return nil, err
		}
	}
	if threadRead > floor {
		// Threaded receipts past the unthreaded one ("main" for the main
		// timeline) take off what they read of their thread, counted in
		// one statement.
		rows, err := q.query(ctx, `SELECT r.thread, COUNT(*), SUM(p.highlight)
			FROM (SELECT CASE thread_id WHEN 'main' THEN '' ELSE thread_id END AS thread, MAX(event_pos) AS pos FROM receipts
				WHERE room_id = ?2 AND user_id = ?1 AND type IN ('m.read', 'm.read.private') AND thread_id != '' AND event_pos > ?3
				GROUP BY thread_id) r
			JOIN push_actions p ON p.user_id = ?1 AND p.room_id = ?2 AND p.thread_id = r.thread AND p.event_pos > ?3 AND p.event_pos <= r.pos
			GROUP BY r.thread`, userID, roomID, floor)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var thread string
			var seen Unread
			if err := rows.Scan(&thread, &seen.Notifications, &seen.Highlights); err != nil {
				return nil, err
			}
			u := out[thread]
			u.Notifications -= seen.Notifications
			u.Highlights -= seen.Highlights
			out[thread] = u
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	for thread, u := range out {
		if u.Notifications == 0 {
			delete(out, thread)
		}
	}
	return out, nil
}

// unreadByThread counts a user's notifications in a room after floor, per
// thread.
func (q Q) unreadByThread(ctx context.Context, userID, roomID string, floor int64) (map[string]Unread, error) {
	rows, err := q.query(ctx, `SELECT thread_id, COUNT(*), SUM(highlight) FROM push_actions
		WHERE user_id = ? AND room_id = ? AND event_pos > ? GROUP BY thread_id`, userID, roomID, floor)
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
	rows, err := q.query(ctx, `SELECT p.user_id, p.room_id, p.thread_id, p.event_pos, p.highlight, p.actions,
		(SELECT e.origin_ts FROM events e WHERE e.pos = p.event_pos),
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
		n.Actions = loadedActions(n.Actions)
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
