package storage

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"maps"
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
// The unread counts follow (a trigger, unread_counts_add).
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
	_, err = q.exec(ctx, `INSERT INTO push_actions(user_id, room_id, event_pos, thread_id, highlight, actions)
		SELECT value ->> 0, ?, ?, ?, value ->> 1, CAST(value ->> 2 AS BLOB) FROM json_each(?) WHERE true
		ON CONFLICT DO NOTHING`,
		roomID, eventPos, threadID, string(js))
	return err
}

// Unread is a count of notifying events not yet read.
type Unread struct {
	Notifications, Highlights int
}

// UnreadCounts is a user's unread notifications in a room per thread (""
// for the main timeline), each thread read up to its own receipt or the
// unthreaded one, whichever is later. They are kept (unread_counts), not
// counted: a woken /sync asks for every room it returns.
//
// In a settled snapshot they may come from the room's, read at once for
// the syncs of its state (memo.lookUp).
func (q Q) UnreadCounts(ctx context.Context, userID, roomID string) (map[string]Unread, error) {
	if q.memo != nil {
		if r := q.memo.loaded(roomID); r != nil {
			out := maps.Clone(r.unread[userID])
			if out == nil {
				out = map[string]Unread{}
			}
			return out, nil
		}
	}
	out := map[string]Unread{}
	err := q.unreadCounts(ctx, `SELECT user_id, thread_id, notifications, highlights FROM unread_counts
		WHERE room_id = ? AND user_id = ? AND notifications > 0`, func(string) map[string]Unread { return out }, roomID, userID)
	return out, err
}

// unreadCounts reads rows of (user, thread, notifications, highlights)
// into the map of each row's user.
func (q Q) unreadCounts(ctx context.Context, query string, of func(user string) map[string]Unread, args ...any) error {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var user, thread string
		var u Unread
		if err := rows.Scan(&user, &thread, &u.Notifications, &u.Highlights); err != nil {
			return err
		}
		of(user)[thread] = u
	}
	return rows.Err()
}

// readUnread brings a user's unread counts in a room up to a read receipt
// moving from one position to a later one, before it is stored. It concerns
// each thread the receipt reads (every thread, for an unthreaded receipt),
// whose floor is the latest of the receipts that read it. The notifications
// are found through the room's events, over the shorter of two ranges:
// between the thread's floor before and after, taken off the count; or
// after the new floor to the room's newest event, which the count becomes
// (a receipt at the bottom of a long unread backlog reads nothing). The
// common receipt, at the newest event of a room with nothing unread, reads
// nothing either way.
func (q Q) readUnread(ctx context.Context, r Receipt, from, to int64) error {
	var newest int64
	if err := q.queryRow(ctx, `SELECT COALESCE(MAX(pos), 0) FROM events WHERE room_id = ?`, r.RoomID).Scan(&newest); err != nil {
		return err
	}
	recount := newest-to < to-from
	_, err := q.exec(ctx, `UPDATE unread_counts SET
			notifications = CASE WHEN ?6 THEN d.n ELSE notifications - d.n END,
			highlights = CASE WHEN ?6 THEN d.h ELSE highlights - d.h END
		FROM (SELECT u.thread_id AS thread, COUNT(p.event_pos) AS n, COALESCE(SUM(p.highlight), 0) AS h
			FROM (SELECT thread_id, COALESCE((SELECT MAX(r.event_pos) FROM receipts r
					WHERE r.room_id = ?1 AND r.user_id = ?2 AND r.type IN ('m.read', 'm.read.private')
						AND r.thread_id IN ('', CASE c.thread_id WHEN '' THEN 'main' ELSE c.thread_id END)), 0) AS others
				FROM unread_counts c WHERE c.room_id = ?1 AND c.user_id = ?2 AND c.notifications > 0
					AND ?3 IN ('', CASE c.thread_id WHEN '' THEN 'main' ELSE c.thread_id END)) u
			LEFT JOIN events e ON e.room_id = ?1 AND e.pos > MAX(u.others, CASE WHEN ?6 THEN ?5 ELSE ?4 END)
				AND e.pos <= CASE WHEN ?6 THEN ?7 ELSE MAX(u.others, ?5) END
			LEFT JOIN push_actions p ON p.event_pos = e.pos AND p.user_id = ?2 AND p.thread_id = u.thread_id
			GROUP BY u.thread_id) d
		WHERE room_id = ?1 AND user_id = ?2 AND thread_id = d.thread`,
		r.RoomID, r.UserID, r.ThreadID, from, to, recount, newest)
	return err
}

// Notification is a row of GET /notifications.
type Notification struct {
	PushAction
	Event Event
	Read  bool
}

// notificationScan is how many event positions a page of /notifications
// looks at, at most.
const notificationScan = 20000

// Notifications lists a user's notifications, newest first, before a
// position (0: from the newest), and the position the next page starts
// before (0: there is no more). push_actions is ordered by event (an index
// by user cost a page write per member per event), so they are found by
// walking the events newest first (the "+" keeps SQLite from reading every
// event of the user's rooms and sorting them), over notificationScan
// positions at most: a page may then hold fewer than limit, with a next.
func (q Q) Notifications(ctx context.Context, userID string, before int64, limit int, onlyHighlight bool) ([]Notification, int64, error) {
	if before <= 0 {
		newest, err := q.MaxEventPos(ctx)
		if err != nil {
			return nil, 0, err
		}
		before = newest + 1
	}
	floor := max(before-notificationScan, 0)
	rows, err := q.query(ctx, `SELECT p.user_id, p.room_id, p.thread_id, p.event_pos, p.highlight, p.actions, e.origin_ts,
		COALESCE((SELECT MAX(r.event_pos) FROM receipts r WHERE r.room_id = p.room_id AND r.user_id = p.user_id
			AND r.type IN ('m.read', 'm.read.private') AND r.thread_id IN ('', CASE p.thread_id WHEN '' THEN 'main' ELSE p.thread_id END)), 0)
		FROM events e JOIN push_actions p ON p.event_pos = e.pos AND p.user_id = ?1
		WHERE +e.room_id IN (SELECT room_id FROM room_state WHERE state_key = ?1 AND type = 'm.room.member')
			AND e.pos < ?2 AND e.pos > ?5 AND (?3 = 0 OR p.highlight = 1)
		ORDER BY e.pos DESC LIMIT ?4`, userID, before, onlyHighlight, limit, floor)
	if err != nil {
		return nil, 0, err
	}
	var out []Notification
	for rows.Next() {
		var n Notification
		var readPos sql.NullInt64
		if err := rows.Scan(&n.UserID, &n.RoomID, &n.ThreadID, &n.EventPos, &n.Highlight, &n.Actions, &n.TS, &readPos); err != nil {
			rows.Close()
			return nil, 0, err
		}
		n.Read = n.EventPos <= readPos.Int64
		n.Actions = loadedActions(n.Actions)
		out = append(out, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	for i := range out {
		e, err := scanEvent(q.queryRow(ctx, `SELECT `+eventCols+` FROM events e WHERE e.pos = ?`, out[i].EventPos))
		if err != nil {
			return nil, 0, err
		}
		out[i].Event = e
	}
	var next int64
	switch {
	case len(out) == limit:
		next = out[len(out)-1].EventPos
	case floor > 0:
		next = floor + 1
	}
	return out, next, nil
}
