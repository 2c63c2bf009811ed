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

// ReadPositions returns the event positions a user has read up to in a room:
// per thread ID as given in threaded receipts ("main" for the main
// timeline), and "" for unthreaded receipts, which cover every thread.
func (q Q) ReadPositions(ctx context.Context, userID, roomID string) (map[string]int64, error) {
	rows, err := q.query(ctx, `SELECT thread_id, MAX(event_pos) FROM receipts
		WHERE room_id = ? AND user_id = ? AND type IN ('m.read', 'm.read.private') GROUP BY thread_id`, roomID, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var t string
		var p int64
		if err := rows.Scan(&t, &p); err != nil {
			return nil, err
		}
		out[t] = p
	}
	return out, rows.Err()
}

// UnreadCounts counts a user's unread notifications in a room per thread
// ("" for the main timeline), each thread read up to its own receipt or the
// unthreaded one, whichever is later. SQLite counts, a row per thread: a
// woken /sync asks on every wake-up, and handing each notification row to
// Go cost three times as much. One statement in the common case: no
// thread has notifications since the unthreaded receipt, and no threaded
// receipt is past it.
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
		// A threaded receipt past the unthreaded one takes off what it
		// read of its thread.
		read, err := q.ReadPositions(ctx, userID, roomID)
		if err != nil {
			return nil, err
		}
		for key, pos := range read {
			thread := key
			if key == "main" {
				thread = ""
			}
			if key == "" || pos <= floor || out[thread] == (Unread{}) {
				continue
			}
			var seen Unread
			if err := q.queryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(highlight), 0) FROM push_actions
				WHERE user_id = ? AND room_id = ? AND thread_id = ? AND event_pos > ? AND event_pos <= ?`, userID, roomID, thread, floor, pos).
				Scan(&seen.Notifications, &seen.Highlights); err != nil {
				return nil, err
			}
			u := out[thread]
			u.Notifications -= seen.Notifications
			u.Highlights -= seen.Highlights
			out[thread] = u
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
