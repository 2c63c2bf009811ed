package storage

import (
	"context"
	"database/sql"
	"errors"
)

// Room is a room's row: its version and the head of its linear history.
type Room struct {
	RoomID        string
	Version       string
	Creator       string
	CreatedTS     int64
	LatestEventID string
	Depth         int64
}

// Event is a stored event. JSON is the event as built and signed, or its
// redacted form once redacted.
type Event struct {
	Pos        int64
	EventID    string
	RoomID     string
	Type       string
	StateKey   *string
	Sender     string
	OriginTS   int64
	Membership string
	JSON       []byte
	Replaces   string
	RedactedBy string
	DeviceID   string
	TxnID      string
	// RelatesTo and RelType are the event's m.relates_to (set when
	// appending; not read back).
	RelatesTo, RelType string
}

// CreateRoom inserts a room row; its events follow through AppendEvent.
func (q Q) CreateRoom(ctx context.Context, r Room) error {
	_, err := q.exec(ctx, `INSERT INTO rooms(room_id, version, creator, created_ts, latest_event_id, depth)
		VALUES(?, ?, ?, ?, ?, ?)`, r.RoomID, r.Version, r.Creator, r.CreatedTS, r.LatestEventID, r.Depth)
	return conflict(err)
}

// Room loads a room.
func (q Q) Room(ctx context.Context, roomID string) (Room, error) {
	var r Room
	err := q.queryRow(ctx, `SELECT room_id, version, creator, created_ts, latest_event_id, depth FROM rooms WHERE room_id = ?`,
		roomID).Scan(&r.RoomID, &r.Version, &r.Creator, &r.CreatedTS, &r.LatestEventID, &r.Depth)
	return r, notFound(err)
}

// AppendEvent adds an event at the head of its room: it gets the next stream
// position, becomes the room's latest event, and, if it is a state event,
// the room's current state for its (type, state_key). It returns the position.
func (q Q) AppendEvent(ctx context.Context, ev *Event, depth int64) (int64, error) {
	if ev.StateKey != nil {
		var prev sql.NullString
		err := q.queryRow(ctx, `SELECT event_id FROM room_state WHERE room_id = ? AND type = ? AND state_key = ?`,
			ev.RoomID, ev.Type, *ev.StateKey).Scan(&prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return 0, err
		}
		ev.Replaces = prev.String
	}
	err := q.queryRow(ctx, `INSERT INTO events(event_id, room_id, type, state_key, sender, origin_ts, membership, json, replaces, device_id, txn_id)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING pos`,
		ev.EventID, ev.RoomID, ev.Type, ev.StateKey, ev.Sender, ev.OriginTS, nullString(ev.Membership), ev.JSON,
		nullString(ev.Replaces), nullString(ev.DeviceID), nullString(ev.TxnID)).Scan(&ev.Pos)
	if err != nil {
		return 0, conflict(err)
	}
	if ev.StateKey != nil {
		_, err = q.exec(ctx, `INSERT INTO room_state(room_id, type, state_key, event_id, pos, membership) VALUES(?, ?, ?, ?, ?, ?)
			ON CONFLICT(room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id, pos = excluded.pos, membership = excluded.membership`,
			ev.RoomID, ev.Type, *ev.StateKey, ev.EventID, ev.Pos, nullString(ev.Membership))
		if err != nil {
			return 0, err
		}
	}
	if ev.RelatesTo != "" && ev.RelType != "" {
		_, err = q.exec(ctx, `INSERT INTO event_relations(event_pos, room_id, relates_to, rel_type, event_type, sender)
			VALUES(?, ?, ?, ?, ?, ?)`, ev.Pos, ev.RoomID, ev.RelatesTo, ev.RelType, ev.Type, ev.Sender)
		if err != nil {
			return 0, err
		}
	}
	_, err = q.exec(ctx, `UPDATE rooms SET latest_event_id = ?, depth = ?, bump_pos = CASE WHEN ? THEN ? ELSE bump_pos END
		WHERE room_id = ?`, ev.EventID, depth, bumps[ev.Type], ev.Pos, ev.RoomID)
	return ev.Pos, err
}

const eventCols = `e.pos, e.event_id, e.room_id, e.type, e.state_key, e.sender, e.origin_ts, e.membership, e.json, e.replaces, e.redacted_by, e.device_id, e.txn_id`

func scanEvent(s interface{ Scan(...any) error }) (Event, error) {
	var e Event
	var sk, mem, rep, red, dev, txn sql.NullString
	err := s.Scan(&e.Pos, &e.EventID, &e.RoomID, &e.Type, &sk, &e.Sender, &e.OriginTS, &mem, &e.JSON, &rep, &red, &dev, &txn)
	if sk.Valid {
		e.StateKey = &sk.String
	}
	e.Membership, e.Replaces, e.RedactedBy, e.DeviceID, e.TxnID = mem.String, rep.String, red.String, dev.String, txn.String
	return e, err
}

func (q Q) queryEvents(ctx context.Context, query string, args ...any) ([]Event, error) {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Event loads one event by ID.
func (q Q) Event(ctx context.Context, eventID string) (Event, error) {
	e, err := scanEvent(q.queryRow(ctx, `SELECT `+eventCols+` FROM events e WHERE e.event_id = ?`, eventID))
	return e, notFound(err)
}

// EventsByID loads events by ID, in stream order; unknown IDs are skipped.
func (q Q) EventsByID(ctx context.Context, ids []string) ([]Event, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return q.queryEvents(ctx, `SELECT `+eventCols+` FROM events e WHERE e.event_id IN (`+placeholders(len(ids))+`) ORDER BY e.pos`, args...)
}

// EventIDByTxn finds the event a device already sent into a room with a
// transaction ID.
func (q Q) EventIDByTxn(ctx context.Context, roomID, sender, deviceID, txnID string) (string, error) {
	var id string
	err := q.queryRow(ctx, `SELECT event_id FROM events WHERE room_id = ? AND sender = ? AND device_id = ? AND txn_id = ?`,
		roomID, sender, deviceID, txnID).Scan(&id)
	return id, notFound(err)
}

// CurrentState returns the room's current state events.
func (q Q) CurrentState(ctx context.Context, roomID string) ([]Event, error) {
	return q.queryEvents(ctx, `SELECT `+eventCols+` FROM room_state s JOIN events e ON e.event_id = s.event_id
		WHERE s.room_id = ? ORDER BY e.pos`, roomID)
}

// CurrentStateEvent returns one current state event.
func (q Q) CurrentStateEvent(ctx context.Context, roomID, typ, stateKey string) (Event, error) {
	e, err := scanEvent(q.queryRow(ctx, `SELECT `+eventCols+` FROM room_state s JOIN events e ON e.event_id = s.event_id
		WHERE s.room_id = ? AND s.type = ? AND s.state_key = ?`, roomID, typ, stateKey))
	return e, notFound(err)
}

// StateAt returns the room's state after the event at position pos: for each
// (type, state_key), the latest state event at or before it. History is
// linear, so this is all there is to state at a point.
func (q Q) StateAt(ctx context.Context, roomID string, pos int64) ([]Event, error) {
	return q.queryEvents(ctx, `SELECT `+eventCols+` FROM events e JOIN (
			SELECT MAX(pos) AS pos FROM events WHERE room_id = ? AND state_key IS NOT NULL AND pos <= ?
			GROUP BY type, state_key
		) latest ON latest.pos = e.pos ORDER BY e.pos`, roomID, pos)
}

// MembersAt returns the membership events of some users in a room as of
// pos (the users without one are left out): one index seek each, where
// StateAt reads every member of the room.
func (q Q) MembersAt(ctx context.Context, roomID string, pos int64, userIDs []string) ([]Event, error) {
	return q.queryEvents(ctx, `SELECT `+eventCols+` FROM events e WHERE e.pos IN (
			SELECT (SELECT MAX(pos) FROM events WHERE room_id = ? AND type = 'm.room.member'
				AND state_key = u.value AND state_key IS NOT NULL AND pos <= ?) FROM json_each(?) u
		) ORDER BY e.pos`, roomID, pos, jsonStrings(userIDs))
}

// RoomEvents returns up to limit events of a room after `after` (ascending)
// or, when backwards, at or before `before` (descending).
func (q Q) RoomEvents(ctx context.Context, roomID string, from int64, backwards bool, limit int) ([]Event, error) {
	if backwards {
		return q.queryEvents(ctx, `SELECT `+eventCols+` FROM events e WHERE e.room_id = ? AND e.pos <= ? ORDER BY e.pos DESC LIMIT ?`,
			roomID, from, limit)
	}
	return q.queryEvents(ctx, `SELECT `+eventCols+` FROM events e WHERE e.room_id = ? AND e.pos > ? ORDER BY e.pos LIMIT ?`,
		roomID, from, limit)
}

// StateChange is one past value of a piece of state.
type StateChange struct {
	Pos     int64
	EventID string
	// Value is the content field StateHistory was asked for.
	Value string
}

// StateHistory lists every event of one (type, state_key) in a room, oldest
// first, with one content field (a JSON path such as
// '$.content.membership') of each.
func (q Q) StateHistory(ctx context.Context, roomID, typ, stateKey, field string) ([]StateChange, error) {
	rows, err := q.query(ctx, `SELECT pos, event_id, json_extract(json, ?) FROM events
		WHERE room_id = ? AND type = ? AND state_key = ? ORDER BY pos`, field, roomID, typ, stateKey)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []StateChange
	for rows.Next() {
		var c StateChange
		var v sql.NullString
		if err := rows.Scan(&c.Pos, &c.EventID, &v); err != nil {
			return nil, err
		}
		c.Value = v.String
		out = append(out, c)
	}
	return out, rows.Err()
}

// Membership returns a user's current membership in a room ("" if none) and
// the position of that membership event.
func (q Q) Membership(ctx context.Context, roomID, userID string) (string, int64, error) {
	var m sql.NullString
	var pos int64
	err := q.queryRow(ctx, `SELECT membership, pos FROM room_state WHERE room_id = ? AND type = 'm.room.member' AND state_key = ?`,
		roomID, userID).Scan(&m, &pos)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, nil
	}
	return m.String, pos, err
}

// RoomsWithMembership lists the rooms where a user's current membership is one of those given.
func (q Q) RoomsWithMembership(ctx context.Context, userID string, memberships ...string) ([]string, error) {
	args := []any{userID}
	for _, m := range memberships {
		args = append(args, m)
	}
	rows, err := q.query(ctx, `SELECT room_id FROM room_state WHERE type = 'm.room.member' AND state_key = ?
		AND membership IN (`+placeholders(len(memberships))+`) ORDER BY pos`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// ReplaceEventJSON overwrites an event's stored JSON, as redaction does, and
// records which event redacted it.
func (q Q) ReplaceEventJSON(ctx context.Context, eventID string, json []byte, redactedBy string) error {
	if err := q.rewritesEvents(ctx); err != nil {
		return err
	}
	if err := q.execOne(ctx, `UPDATE events SET json = ?, redacted_by = ? WHERE event_id = ?`, json, nullString(redactedBy), eventID); err != nil {
		return err
	}
	return q.dropRelation(ctx, eventID)
}

// MaxEventPos is the newest event position of the whole server.
func (q Q) MaxEventPos(ctx context.Context) (int64, error) {
	var pos sql.NullInt64
	err := q.queryRow(ctx, `SELECT MAX(pos) FROM events`).Scan(&pos)
	return pos.Int64, err
}

// ForgetRoom records that a user forgot a room they left.
func (q Q) ForgetRoom(ctx context.Context, userID, roomID string) error {
	_, err := q.exec(ctx, `INSERT OR IGNORE INTO forgotten_rooms(user_id, room_id) VALUES(?, ?)`, userID, roomID)
	return err
}

// Forgotten reports whether a user forgot a room.
func (q Q) Forgotten(ctx context.Context, userID, roomID string) (bool, error) {
	var n int
	err := q.queryRow(ctx, `SELECT COUNT(*) FROM forgotten_rooms WHERE user_id = ? AND room_id = ?`, userID, roomID).Scan(&n)
	return n > 0, err
}

// UnforgetRoom clears the forgotten mark, as joining again does.
func (q Q) UnforgetRoom(ctx context.Context, userID, roomID string) error {
	_, err := q.exec(ctx, `DELETE FROM forgotten_rooms WHERE user_id = ? AND room_id = ?`, userID, roomID)
	return err
}

// SetAlias maps a local alias to a room; ErrConflict if the alias is taken.
func (q Q) SetAlias(ctx context.Context, alias, roomID, creator string) error {
	_, err := q.exec(ctx, `INSERT INTO room_aliases(alias, room_id, creator) VALUES(?, ?, ?)`, alias, roomID, creator)
	return conflict(err)
}

// Alias resolves an alias to its room and creator.
func (q Q) Alias(ctx context.Context, alias string) (roomID, creator string, err error) {
	err = q.queryRow(ctx, `SELECT room_id, creator FROM room_aliases WHERE alias = ?`, alias).Scan(&roomID, &creator)
	return roomID, creator, notFound(err)
}

// DeleteAlias removes an alias.
func (q Q) DeleteAlias(ctx context.Context, alias string) error {
	return q.execOne(ctx, `DELETE FROM room_aliases WHERE alias = ?`, alias)
}

// RoomAliases lists a room's local aliases.
func (q Q) RoomAliases(ctx context.Context, roomID string) ([]string, error) {
	rows, err := q.query(ctx, `SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias`, roomID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// dropRelation forgets an event's relation: its content, which held it,
// is gone.
func (q Q) dropRelation(ctx context.Context, eventID string) error {
	_, err := q.exec(ctx, `DELETE FROM event_relations WHERE event_pos = (SELECT pos FROM events WHERE event_id = ?)`, eventID)
	return err
}

// EventNear returns the room's first event at or after ts (forwards) or
// its last at or before ts (backwards).
func (q Q) EventNear(ctx context.Context, roomID string, ts int64, forwards bool) (Event, error) {
	query := `SELECT ` + eventCols + ` FROM events e WHERE e.room_id = ? AND e.origin_ts >= ? ORDER BY e.origin_ts, e.pos LIMIT 1`
	if !forwards {
		query = `SELECT ` + eventCols + ` FROM events e WHERE e.room_id = ? AND e.origin_ts <= ? ORDER BY e.origin_ts DESC, e.pos DESC LIMIT 1`
	}
	e, err := scanEvent(q.queryRow(ctx, query, roomID, ts))
	return e, notFound(err)
}
