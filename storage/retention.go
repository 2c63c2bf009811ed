package storage

import (
	"context"
	"strconv"
)

// RoomRetention is a room with its m.room.retention content, if any.
type RoomRetention struct {
	RoomID  string
	Content []byte // nil without a policy
}

// RoomRetentions lists every room with its retention policy.
func (q Q) RoomRetentions(ctx context.Context) ([]RoomRetention, error) {
	rows, err := q.query(ctx, `SELECT r.room_id, e.json FROM rooms r
		LEFT JOIN room_state s ON s.room_id = r.room_id AND s.type = 'm.room.retention' AND s.state_key = ''
		LEFT JOIN events e ON e.event_id = s.event_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []RoomRetention
	for rows.Next() {
		var r RoomRetention
		if err := rows.Scan(&r.RoomID, &r.Content); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// PruneEvents deletes up to limit of a room's events older than beforeTS,
// oldest first, from position after on, except the room's current state.
// It returns how many it deleted, the position to continue after and
// whether older events may remain. History is linear and origin_server_ts
// is this server's clock, so the first event not older ends the room.
func (q Q) PruneEvents(ctx context.Context, roomID string, after, beforeTS int64, limit int) (deleted int, next int64, more bool, err error) {
	rows, err := q.query(ctx, `SELECT e.pos, e.origin_ts, EXISTS (SELECT 1 FROM room_state s WHERE s.event_id = e.event_id
			AND s.room_id = e.room_id AND s.type = e.type AND s.state_key = e.state_key)
		FROM events e WHERE e.room_id = ? AND e.pos > ? ORDER BY e.pos LIMIT ?`, roomID, after, limit)
	if err != nil {
		return 0, after, false, err
	}
	var doomed []int64
	next, more = after, true
	n := 0
	for rows.Next() {
		var pos, ts int64
		var current bool
		if err := rows.Scan(&pos, &ts, &current); err != nil {
			rows.Close()
			return 0, after, false, err
		}
		n++
		if ts >= beforeTS {
			more = false
			break
		}
		next = pos
		if !current {
			doomed = append(doomed, pos)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, after, false, err
	}
	if n < limit {
		more = false
	}
	if len(doomed) == 0 {
		return 0, next, more, nil
	}
	if err := q.rewritesEvents(ctx); err != nil {
		return 0, after, false, err
	}
	_, err = q.exec(ctx, `DELETE FROM events WHERE pos IN (SELECT value FROM json_each(?))`, jsonInts(doomed))
	return len(doomed), next, more, err
}

// ExpiredMedia lists up to limit media entries created before beforeTS, and
// reservations never filled that lapsed before now.
func (q Q) ExpiredMedia(ctx context.Context, beforeTS, now int64, limit int) ([]Media, error) {
	return q.mediaIDs(ctx, `SELECT media_id, in_dir FROM media
		WHERE (created_ts < ? AND state = 'ready') OR (state = 'pending' AND expires_ts < ?)
		ORDER BY created_ts LIMIT ?`, beforeTS, now, limit)
}

// DeleteMediaChunks deletes up to limit chunks of media's bytes and
// reports whether any remain: large files go in bounded steps.
func (q Q) DeleteMediaChunks(ctx context.Context, mediaID string, limit int) (bool, error) {
	q.forgets()
	res, err := q.exec(ctx, `DELETE FROM media_chunks WHERE rowid IN
		(SELECT rowid FROM media_chunks WHERE media_id = ? LIMIT ?)`, mediaID, limit)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == int64(limit), err
}

// DeleteMedia deletes a media entry with its thumbnails (and any chunks
// left).
func (q Q) DeleteMedia(ctx context.Context, mediaID string) error {
	q.forgets()
	_, err := q.exec(ctx, `DELETE FROM media WHERE media_id = ?`, mediaID)
	return err
}

// ForgetConnections deletes connection records (IP, user agent, last seen)
// older than beforeTS.
func (q Q) ForgetConnections(ctx context.Context, beforeTS int64) (int64, error) {
	q.forgets()
	res, err := q.exec(ctx, `UPDATE devices SET last_seen_ip = NULL, last_seen_ua = NULL, last_seen_ts = NULL
		WHERE last_seen_ts < ?`, beforeTS)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// jsonInts is a JSON array of integers, for json_each.
func jsonInts(v []int64) string {
	b := []byte{'['}
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, x, 10)
	}
	return string(append(b, ']'))
}
