package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
)

// Positions is the head of every stored stream, read in one snapshot.
type Positions struct {
	Events, AccountData, Receipts, Presence, ToDevice, DeviceLists int64
}

// eventsPosition is the events stream's head in SQL.
const eventsPosition = `COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)`

// Positions reads the stream heads. Events use the AUTOINCREMENT high-water
// mark, which pruning the newest event does not lower.
func (q Q) Positions(ctx context.Context) (Positions, error) {
	var p Positions
	err := q.queryRow(ctx, `SELECT `+eventsPosition+`,
		COALESCE((SELECT pos FROM stream_positions WHERE stream = 'account_data'), 0),
		COALESCE((SELECT pos FROM stream_positions WHERE stream = 'receipts'), 0),
		COALESCE((SELECT pos FROM stream_positions WHERE stream = 'presence'), 0),
		COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'to_device'), 0),
		COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'device_list_changes'), 0)`).
		Scan(&p.Events, &p.AccountData, &p.Receipts, &p.Presence, &p.ToDevice, &p.DeviceLists)
	return p, err
}

// positionsAt are the stream positions of the database as it was when
// commits had that (even) value.
type positionsAt struct {
	commits  uint64
	pos      Positions
	rewrites int64 // rewritesKey's count
	memo     *memo
}

// ReadPositioned is Read that also gives fn the stream positions of its
// snapshot. Every woken /sync needs them, and reading them is a statement
// of six lookups; so they are kept from the first read after a write
// transaction until the next one begins. A snapshot may use them only if
// no write transaction was open from before it began until after: then it
// is exactly the database they were read from (a sync reads current state
// beside them, which must not be ahead of them). The first statement
// begins the snapshot; it reads one position, which must agree too, and
// the count of events rewritten in place, which another process (a command
// run beside the server) moves without moving DB.commits. Such a snapshot
// also shares what it reads alike with the others of its state (memo).
// The statement also reads sync_epoch, which lets every snapshot take a
// device's key counts and its user's global account data from memory.
// A kept snapshot (keep.go) that has read the statement already is still
// that database if no write transaction has begun since, and reads it no
// more.
func (db *DB) ReadPositioned(ctx context.Context, fn func(Q, Positions) error) error {
	// Read once the reader is taken (a commit while it waited for one
	// leaves the state settled) and before its kept snapshot is found to
	// be the database as it is then.
	var c uint64
	return db.readAfter(ctx, func() { c = db.commits.Load() }, func(q Q) error {
		q.db, q.positioned = db, true
		p := q.pc
		if at := p.checked; at != nil && at.commits == c && db.commits.Load() == c {
			q.syncEpoch, q.memo = p.checkedEpoch, at.memo
			return fn(q, at.pos)
		}
		var seq, rewrites int64
		if err := q.queryRow(ctx, `SELECT `+eventsPosition+`,
			COALESCE((SELECT value FROM instance_state WHERE key = '`+rewritesKey+`'), 0),
			COALESCE((SELECT value FROM instance_state WHERE key = '`+syncEpochKey+`'), -1)`).Scan(&seq, &rewrites, &q.syncEpoch); err != nil {
			return err
		}
		settled := c%2 == 0 && db.commits.Load() == c
		at := db.positions.Load()
		if !settled || at == nil || at.commits != c || at.pos.Events != seq || at.rewrites != rewrites {
			pos, err := q.Positions(ctx)
			if err != nil {
				return err
			}
			if !settled {
				return fn(q, pos)
			}
			at = &positionsAt{c, pos, rewrites, newMemo()}
			db.positions.Store(at)
		}
		if p.open {
			p.checked, p.checkedEpoch = at, q.syncEpoch
		}
		q.memo = at.memo
		return fn(q, at.pos)
	})
}

// RoomMembership is a user's current membership in one room.
type RoomMembership struct {
	RoomID     string
	Membership string
	Pos        int64 // of the membership event
	Forgotten  bool
}

// membershipsFrom reads RoomMembership rows: a user's member rows (s), with
// whether the user forgot the room.
const membershipsFrom = `SELECT s.room_id, s.membership, s.pos, f.user_id IS NOT NULL
	FROM room_state s LEFT JOIN forgotten_rooms f ON f.room_id = s.room_id AND f.user_id = s.state_key `

// Memberships lists every room a user has a membership in.
func (q Q) Memberships(ctx context.Context, userID string) ([]RoomMembership, error) {
	return q.memberships(ctx, membershipsFrom+`WHERE s.type = 'm.room.member' AND s.state_key = ? ORDER BY s.pos`, userID)
}

// MembershipsIn is Memberships restricted to some rooms, so an incremental
// sync looks only at the rooms that changed.
func (q Q) MembershipsIn(ctx context.Context, userID string, roomIDs []string) ([]RoomMembership, error) {
	switch len(roomIDs) {
	case 0:
		return nil, nil
	case 1: // a message's wake-up: a key lookup, without a list to parse
		if q.memo != nil {
			if m, ok := q.memo.lookUp(ctx, q, roomIDs[0]).member(userID); ok {
				return []RoomMembership{m}, nil
			}
		}
		return q.memberships(ctx, membershipsFrom+`WHERE s.room_id = ? AND s.type = 'm.room.member' AND s.state_key = ?`,
			roomIDs[0], userID)
	}
	list, err := json.Marshal(roomIDs)
	if err != nil {
		return nil, err
	}
	return q.memberships(ctx, membershipsFrom+`WHERE s.type = 'm.room.member' AND s.state_key = ?
		AND s.room_id IN (SELECT value FROM json_each(?)) ORDER BY s.pos`, userID, string(list))
}

func (q Q) memberships(ctx context.Context, query string, args ...any) ([]RoomMembership, error) {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []RoomMembership
	for rows.Next() {
		var m RoomMembership
		if err := rows.Scan(&m.RoomID, &m.Membership, &m.Pos, &m.Forgotten); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// RoomsWithEventsBetween returns the rooms with events in (from, to].
// The map may be shared with other syncs (memo): read it, do not change it.
func (q Q) RoomsWithEventsBetween(ctx context.Context, from, to int64) (map[string]bool, error) {
	return q.roomsBetween(ctx, `SELECT DISTINCT room_id FROM events WHERE pos > ? AND pos <= ?`, "events", from, to)
}

// roomsBetween returns the rooms a query of positions (from, to] finds,
// shared by the syncs of a settled snapshot.
func (q Q) roomsBetween(ctx context.Context, query, table string, from, to int64) (map[string]bool, error) {
	read := func() (map[string]bool, error) {
		ids, err := q.strings(ctx, query, from, to)
		out := make(map[string]bool, len(ids))
		for _, id := range ids {
			out[id] = true
		}
		return out, err
	}
	if q.memo == nil {
		return read()
	}
	return memoized(&q.memo.mu, q.memo.rooms, rangeKey{table, from, to}, read)
}

// EventsBetween returns a room's events in (from, to], oldest first, at most
// the newest limit of them; more reports whether older ones were left out.
// In a settled snapshot the read is shared with the other syncs asking the
// same (memo); each gets its own slice, of events whose JSON is shared.
func (q Q) EventsBetween(ctx context.Context, roomID string, from, to int64, limit int) ([]Event, bool, error) {
	read := func() (eventsRead, error) {
		evs, err := q.queryEvents(ctx, `SELECT `+eventCols+` FROM events e WHERE e.room_id = ? AND e.pos > ? AND e.pos <= ?
			ORDER BY e.pos DESC LIMIT ?`, roomID, from, to, limit+1)
		var more bool
		if len(evs) > limit {
			evs, more = evs[:limit], true
		}
		slices.Reverse(evs)
		return eventsRead{evs, more}, err
	}
	if q.memo == nil || from == 0 {
		// A room's whole timeline (an initial sync) is one user's alone.
		r, err := read()
		return r.evs, r.more, err
	}
	r, err := memoized(&q.memo.mu, q.memo.events, eventsKey{roomID, from, to, limit}, read)
	return slices.Clone(r.evs), r.more, err
}

// StateChangesBetween returns the state events of a room that took effect in
// (from, to], the latest per (type, state_key).
func (q Q) StateChangesBetween(ctx context.Context, roomID string, from, to int64) ([]Event, error) {
	return q.queryEvents(ctx, `SELECT `+eventCols+` FROM events e JOIN (
			SELECT MAX(pos) AS pos FROM events WHERE room_id = ? AND state_key IS NOT NULL AND pos > ? AND pos <= ?
			GROUP BY type, state_key
		) latest ON latest.pos = e.pos ORDER BY e.pos`, roomID, from, to)
}

// AccountDataEntry is one account data item.
type AccountDataEntry struct {
	RoomID, Type string
	Content      []byte
}

// AccountDataBetween returns a user's account data changed in (from, to].
func (q Q) AccountDataBetween(ctx context.Context, userID string, from, to int64) ([]AccountDataEntry, error) {
	rows, err := q.query(ctx, `SELECT room_id, type, content FROM account_data
		WHERE user_id = ? AND pos > ? AND pos <= ? ORDER BY pos`, userID, from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AccountDataEntry
	for rows.Next() {
		var e AccountDataEntry
		if err := rows.Scan(&e.RoomID, &e.Type, &e.Content); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// JoinedMembers lists the users joined to a room.
func (q Q) JoinedMembers(ctx context.Context, roomID string) ([]string, error) {
	return q.strings(ctx, `SELECT state_key FROM room_state WHERE room_id = ? AND type = 'm.room.member' AND membership = 'join'`, roomID)
}

// MemberCounts returns a room's joined and invited member counts.
func (q Q) MemberCounts(ctx context.Context, roomID string) (joined, invited int, err error) {
	err = q.queryRow(ctx, `SELECT COALESCE(MAX(joined), 0), COALESCE(MAX(invited), 0) FROM rooms WHERE room_id = ?`, roomID).Scan(&joined, &invited)
	return
}

// Heroes returns up to n members other than userID, for room summaries:
// joined and invited ones first, else those who left.
func (q Q) Heroes(ctx context.Context, roomID, userID string, n int) ([]string, error) {
	heroes, err := q.strings(ctx, `SELECT state_key FROM room_state WHERE room_id = ? AND type = 'm.room.member'
		AND state_key != ? AND membership IN ('join', 'invite') ORDER BY pos LIMIT ?`, roomID, userID, n)
	if err != nil || len(heroes) > 0 {
		return heroes, err
	}
	return q.strings(ctx, `SELECT state_key FROM room_state WHERE room_id = ? AND type = 'm.room.member'
		AND state_key != ? ORDER BY pos LIMIT ?`, roomID, userID, n)
}

// SharesRoom lists which of users share a joined room with userID
// (userID itself included).
func (q Q) UsersSharingRooms(ctx context.Context, userID string) (map[string]bool, error) {
	users, err := q.strings(ctx, `SELECT DISTINCT o.state_key FROM room_state me
		JOIN room_state o ON o.room_id = me.room_id AND o.type = 'm.room.member' AND o.membership = 'join'
		WHERE me.type = 'm.room.member' AND me.state_key = ? AND me.membership = 'join'`, userID)
	out := map[string]bool{userID: true}
	for _, u := range users {
		out[u] = true
	}
	return out, err
}

// UsersSharingRoomsAmong is UsersSharingRooms restricted to some users:
// which of them share a joined room with userID (userID itself always).
func (q Q) UsersSharingRoomsAmong(ctx context.Context, userID string, users []string) (map[string]bool, error) {
	out := map[string]bool{userID: true}
	if len(users) == 0 {
		return out, nil
	}
	list, err := json.Marshal(users)
	if err != nil {
		return nil, err
	}
	shared, err := q.strings(ctx, `SELECT DISTINCT o.state_key FROM room_state o
		JOIN room_state me ON me.room_id = o.room_id AND me.type = 'm.room.member' AND me.state_key = ? AND me.membership = 'join'
		WHERE o.type = 'm.room.member' AND o.membership = 'join' AND o.state_key IN (SELECT value FROM json_each(?))`, userID, string(list))
	for _, u := range shared {
		out[u] = true
	}
	return out, err
}

func (q Q) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Receipt is a user's read receipt in a room.
type Receipt struct {
	RoomID, UserID, Type, ThreadID, EventID string
	EventPos, TS, Pos                       int64
}

// SetReceipt stores a receipt unless the user already has a later one of the
// same kind; it reports whether anything changed.
func (q Q) SetReceipt(ctx context.Context, r Receipt) (bool, error) {
	var cur int64
	err := q.queryRow(ctx, `SELECT event_pos FROM receipts WHERE room_id = ? AND user_id = ? AND type = ? AND thread_id = ?`,
		r.RoomID, r.UserID, r.Type, r.ThreadID).Scan(&cur)
	if err == nil && cur >= r.EventPos {
		return false, nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, err
	}
	if r.Pos, err = q.nextPos(ctx, "receipts"); err != nil {
		return false, err
	}
	if r.Type == "m.read" || r.Type == "m.read.private" {
		if err := q.readUnread(ctx, r, cur, r.EventPos); err != nil {
			return false, err
		}
	}
	_, err = q.exec(ctx, `INSERT INTO receipts(room_id, user_id, type, thread_id, event_id, event_pos, ts, pos)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(room_id, user_id, type, thread_id) DO UPDATE SET
		event_id = excluded.event_id, event_pos = excluded.event_pos, ts = excluded.ts, pos = excluded.pos`,
		r.RoomID, r.UserID, r.Type, r.ThreadID, r.EventID, r.EventPos, r.TS, r.Pos)
	return err == nil, err
}

// ReceiptsBetween returns the receipts of a room set in (from, to].
func (q Q) ReceiptsBetween(ctx context.Context, roomID string, from, to int64) ([]Receipt, error) {
	rows, err := q.query(ctx, `SELECT room_id, user_id, type, thread_id, event_id, event_pos, ts, pos FROM receipts
		WHERE room_id = ? AND pos > ? AND pos <= ? ORDER BY pos`, roomID, from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Receipt
	for rows.Next() {
		var r Receipt
		if err := rows.Scan(&r.RoomID, &r.UserID, &r.Type, &r.ThreadID, &r.EventID, &r.EventPos, &r.TS, &r.Pos); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RoomsWithReceiptsBetween returns the rooms with receipts set in (from, to].
// The map may be shared with other syncs (memo): read it, do not change it.
func (q Q) RoomsWithReceiptsBetween(ctx context.Context, from, to int64) (map[string]bool, error) {
	return q.roomsBetween(ctx, `SELECT DISTINCT room_id FROM receipts WHERE pos > ? AND pos <= ?`, "receipts", from, to)
}

// Presence is a user's presence.
type Presence struct {
	UserID, State, StatusMsg string
	LastActiveTS, Pos        int64
}

// SetPresence stores a user's presence; unchanged presence is not rewritten
// unless touch is set (activity refreshes last_active_ts).
func (q Q) SetPresence(ctx context.Context, p Presence, touch bool) (bool, error) {
	var cur Presence
	var msg sql.NullString
	err := q.queryRow(ctx, `SELECT state, status_msg, last_active_ts FROM presence WHERE user_id = ?`, p.UserID).
		Scan(&cur.State, &msg, &cur.LastActiveTS)
	if err == nil && cur.State == p.State && msg.String == p.StatusMsg && !touch {
		return false, nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, err
	}
	pos, err := q.nextPos(ctx, "presence")
	if err != nil {
		return false, err
	}
	_, err = q.exec(ctx, `INSERT INTO presence(user_id, state, status_msg, last_active_ts, pos) VALUES(?, ?, ?, ?, ?)
		ON CONFLICT(user_id) DO UPDATE SET state = excluded.state, status_msg = excluded.status_msg,
		last_active_ts = excluded.last_active_ts, pos = excluded.pos`, p.UserID, p.State, nullString(p.StatusMsg), p.LastActiveTS, pos)
	return err == nil, err
}

// GetPresence loads a user's presence.
func (q Q) GetPresence(ctx context.Context, userID string) (Presence, error) {
	p := Presence{UserID: userID}
	var msg sql.NullString
	err := q.queryRow(ctx, `SELECT state, status_msg, last_active_ts, pos FROM presence WHERE user_id = ?`, userID).
		Scan(&p.State, &msg, &p.LastActiveTS, &p.Pos)
	p.StatusMsg = msg.String
	return p, notFound(err)
}

// PresenceBetween returns the presence changes in (from, to] that seenBy
// may see: its own and those of users it shares a joined room with. The
// sharing is decided per change in SQL: a sync after a few changes need
// not list everyone in a thousand-member room.
func (q Q) PresenceBetween(ctx context.Context, from, to int64, seenBy string) ([]Presence, error) {
	rows, err := q.query(ctx, `SELECT p.user_id, p.state, p.status_msg, p.last_active_ts, p.pos FROM presence p
		WHERE p.pos > ?1 AND p.pos <= ?2 AND (p.user_id = ?3 OR EXISTS (SELECT 1 FROM room_state o
			JOIN room_state me ON me.room_id = o.room_id AND me.type = 'm.room.member' AND me.state_key = ?3 AND me.membership = 'join'
			WHERE o.state_key = p.user_id AND o.type = 'm.room.member' AND o.membership = 'join'))
		ORDER BY p.pos`, from, to, seenBy)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Presence
	for rows.Next() {
		var p Presence
		var msg sql.NullString
		if err := rows.Scan(&p.UserID, &p.State, &msg, &p.LastActiveTS, &p.Pos); err != nil {
			return nil, err
		}
		p.StatusMsg = msg.String
		out = append(out, p)
	}
	return out, rows.Err()
}

// Member is a joined member's ID and room display name.
type Member struct {
	UserID, DisplayName string
}

// JoinedMembersWithNames lists a room's joined members with the display
// names of their member events.
func (q Q) JoinedMembersWithNames(ctx context.Context, roomID string) ([]Member, error) {
	rows, err := q.query(ctx, `SELECT s.state_key, COALESCE(json_extract(e.json, '$.content.displayname'), '')
		FROM room_state s JOIN events e ON e.event_id = s.event_id
		WHERE s.room_id = ? AND s.type = 'm.room.member' AND s.membership = 'join'`, roomID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		var m Member
		var dn any
		if err := rows.Scan(&m.UserID, &dn); err != nil {
			return nil, err
		}
		m.DisplayName, _ = dn.(string)
		out = append(out, m)
	}
	return out, rows.Err()
}

// RoomSummary is what sliding sync needs of a room to list it: the user's
// membership, the room's latest activity (bump stamp), type, name, avatar,
// encryption and member counts.
type RoomSummary struct {
	RoomID, Membership  string
	MembershipPos, Bump int64
	Type, Name, Avatar  string
	Encrypted           bool
	Joined, Invited     int
}

// bumps are the events that move a room up a sliding sync list: the room
// keeps the position of its latest (rooms.bump_pos).
var bumps = map[string]bool{"m.room.create": true, "m.room.message": true, "m.room.encrypted": true, "m.sticker": true,
	"m.call.invite": true, "m.poll.start": true, "m.beacon_info": true}

// RoomSummaries lists every room the user has a membership in, with what
// sliding sync orders and filters lists by. Invites and knocks are bumped
// by the membership event itself: the room's activity is not theirs to see.
func (q Q) RoomSummaries(ctx context.Context, userID string) ([]RoomSummary, error) {
	rows, err := q.query(ctx, `SELECT s.room_id, s.membership, s.pos,
		CASE WHEN s.membership = 'join' THEN COALESCE(NULLIF(r.bump_pos, 0), s.pos) ELSE s.pos END,
		COALESCE((SELECT json_extract(e.json, '$.content.type') FROM room_state c JOIN events e ON e.event_id = c.event_id
			WHERE c.room_id = s.room_id AND c.type = 'm.room.create' AND c.state_key = ''), ''),
		COALESCE((SELECT json_extract(e.json, '$.content.name') FROM room_state c JOIN events e ON e.event_id = c.event_id
			WHERE c.room_id = s.room_id AND c.type = 'm.room.name' AND c.state_key = ''), ''),
		COALESCE((SELECT json_extract(e.json, '$.content.url') FROM room_state c JOIN events e ON e.event_id = c.event_id
			WHERE c.room_id = s.room_id AND c.type = 'm.room.avatar' AND c.state_key = ''), ''),
		EXISTS (SELECT 1 FROM room_state c WHERE c.room_id = s.room_id AND c.type = 'm.room.encryption' AND c.state_key = ''),
		r.joined, r.invited
		FROM room_state s JOIN rooms r ON r.room_id = s.room_id WHERE s.type = 'm.room.member' AND s.state_key = ?
		AND NOT EXISTS (SELECT 1 FROM forgotten_rooms f WHERE f.user_id = s.state_key AND f.room_id = s.room_id)`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []RoomSummary
	for rows.Next() {
		var r RoomSummary
		var typ, name, avatar any
		if err := rows.Scan(&r.RoomID, &r.Membership, &r.MembershipPos, &r.Bump, &typ, &name, &avatar, &r.Encrypted, &r.Joined, &r.Invited); err != nil {
			return nil, err
		}
		r.Type, _ = typ.(string)
		r.Name, _ = name.(string)
		r.Avatar, _ = avatar.(string)
		out = append(out, r)
	}
	return out, rows.Err()
}

// SpaceChildren lists the rooms a space names as children.
func (q Q) SpaceChildren(ctx context.Context, spaceID string) ([]string, error) {
	return q.strings(ctx, `SELECT s.state_key FROM room_state s JOIN events e ON e.event_id = s.event_id
		WHERE s.room_id = ? AND s.type = 'm.space.child' AND json_array_length(e.json, '$.content.via') > 0`, spaceID)
}
