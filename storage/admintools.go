package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// What Synapse's admin tools manage besides users and rooms themselves:
// deleted and blocked rooms, suspended users, quarantined media, rate
// limit overrides, and the counts their pages show (schema 016).

// MarkRoomDeleted takes a deleted room out of the admin lists; its ID
// answers "unknown room" from then on.
func (q Q) MarkRoomDeleted(ctx context.Context, roomID string, ts int64) error {
	return q.execOne(ctx, `UPDATE rooms SET deleted_ts = ? WHERE room_id = ?`, ts, roomID)
}

// RoomDeleted reports whether an admin deleted a room.
func (q Q) RoomDeleted(ctx context.Context, roomID string) (bool, error) {
	var deleted bool
	err := q.queryRow(ctx, `SELECT deleted_ts IS NOT NULL FROM rooms WHERE room_id = ?`, roomID).Scan(&deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return deleted, err
}

// UnblockRoom lets users join a room again.
func (q Q) UnblockRoom(ctx context.Context, roomID string) error {
	_, err := q.exec(ctx, `DELETE FROM blocked_rooms WHERE room_id = ?`, roomID)
	return err
}

// RoomBlock reports whether a room is blocked, and by whom.
func (q Q) RoomBlock(ctx context.Context, roomID string) (blocked bool, by string, err error) {
	err = q.queryRow(ctx, `SELECT blocked_by FROM blocked_rooms WHERE room_id = ?`, roomID).Scan(&by)
	if errors.Is(err, sql.ErrNoRows) {
		return false, "", nil
	}
	return err == nil, by, err
}

// SetSuspended suspends or reinstates a user (MSC3823).
func (q Q) SetSuspended(ctx context.Context, userID string, suspended bool) error {
	return q.execOne(ctx, `UPDATE users SET suspended = ? WHERE user_id = ?`, suspended, userID)
}

// UserSuspended reports whether a user is suspended.
func (q Q) UserSuspended(ctx context.Context, userID string) (bool, error) {
	var s bool
	err := q.queryRow(ctx, `SELECT suspended FROM users WHERE user_id = ?`, userID).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return s, err
}

// QuarantineMedia marks media as quarantined by an admin ("" lifts it):
// it is no longer served.
func (q Q) QuarantineMedia(ctx context.Context, mediaID, by string) error {
	return q.execOne(ctx, `UPDATE media SET quarantined_by = ? WHERE media_id = ?`, nullString(by), mediaID)
}

// RateLimitOverride is a user's replacement for the per-user rate limits.
type RateLimitOverride struct {
	MessagesPerSecond float64 `json:"messages_per_second"`
	BurstCount        int     `json:"burst_count"`
}

// RateLimitOverrideOf returns a user's override, ErrNotFound if none.
func (q Q) RateLimitOverrideOf(ctx context.Context, userID string) (RateLimitOverride, error) {
	var o RateLimitOverride
	err := q.queryRow(ctx, `SELECT messages_per_second, burst_count FROM ratelimit_overrides WHERE user_id = ?`, userID).
		Scan(&o.MessagesPerSecond, &o.BurstCount)
	return o, notFound(err)
}

// SetRateLimitOverride sets a user's override.
func (q Q) SetRateLimitOverride(ctx context.Context, userID string, o RateLimitOverride) error {
	_, err := q.exec(ctx, `INSERT OR REPLACE INTO ratelimit_overrides(user_id, messages_per_second, burst_count) VALUES(?, ?, ?)`,
		userID, o.MessagesPerSecond, o.BurstCount)
	return err
}

// DeleteRateLimitOverride removes a user's override.
func (q Q) DeleteRateLimitOverride(ctx context.Context, userID string) error {
	_, err := q.exec(ctx, `DELETE FROM ratelimit_overrides WHERE user_id = ?`, userID)
	return err
}

// SentInviteCount is how many invites a user sent since fromTS.
func (q Q) SentInviteCount(ctx context.Context, userID string, fromTS int64) (int, error) {
	var n int
	err := q.queryRow(ctx, `SELECT COUNT(*) FROM events WHERE sender = ?1 AND type = 'm.room.member' AND membership = 'invite'
		AND state_key != ?1 AND origin_ts >= ?2`, userID, fromTS).Scan(&n)
	return n, err
}

// CumulativeJoinedRoomCount is how many rooms a user has ever joined.
func (q Q) CumulativeJoinedRoomCount(ctx context.Context, userID string) (int, error) {
	var n int
	err := q.queryRow(ctx, `SELECT COUNT(DISTINCT room_id) FROM events WHERE type = 'm.room.member' AND state_key = ?
		AND membership = 'join'`, userID).Scan(&n)
	return n, err
}

// RoomMedia lists the media a room's events point to (content.url,
// content.info.thumbnail_url), unencrypted ones only: the server cannot
// see into encrypted events.
func (q Q) RoomMedia(ctx context.Context, roomID string) ([]string, error) {
	rows, err := q.query(ctx, `SELECT DISTINCT u FROM (
			SELECT json_extract(json, '$.content.url') AS u FROM events WHERE room_id = ?1
			UNION SELECT json_extract(json, '$.content.info.thumbnail_url') FROM events WHERE room_id = ?1)
		WHERE u LIKE 'mxc://%' ORDER BY u`, roomID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// UserMediaStats is one user's line in the media statistics.
type UserMediaStats struct {
	UserID      string  `json:"user_id"`
	DisplayName *string `json:"displayname"`
	MediaCount  int     `json:"media_count"`
	MediaLength int64   `json:"media_length"`
}

// UserMediaOrders are the orderings of the media statistics.
var UserMediaOrders = map[string]string{"user_id": "1", "displayname": "2", "media_length": "4", "media_count": "3"}

// MediaStats returns a page of users with the media they uploaded in
// [fromTS, untilTS), filtered by a search term (user ID or display name),
// and how many users there are in all.
func (q Q) MediaStats(ctx context.Context, fromTS, untilTS int64, search, orderBy string, backwards bool, from, limit int) ([]UserMediaStats, int, error) {
	order, ok := UserMediaOrders[orderBy]
	if !ok {
		order = "1"
	}
	dir := "ASC"
	if backwards {
		dir = "DESC"
	}
	where := `FROM media m JOIN users u ON u.user_id = m.uploader WHERE m.state = 'ready' AND m.created_ts >= ?1 AND m.created_ts < ?2
		AND (?3 = '' OR instr(lower(u.user_id), lower(?3)) > 0 OR instr(lower(COALESCE(u.displayname, '')), lower(?3)) > 0)`
	var total int
	if err := q.queryRow(ctx, `SELECT COUNT(DISTINCT m.uploader) `+where, fromTS, untilTS, search).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := q.query(ctx, `SELECT m.uploader, u.displayname, COUNT(*), SUM(m.size) `+where+
		fmt.Sprintf(` GROUP BY m.uploader ORDER BY %s %s, 1 LIMIT ?4 OFFSET ?5`, order, dir), fromTS, untilTS, search, limit, from)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []UserMediaStats{}
	for rows.Next() {
		var s UserMediaStats
		var name sql.NullString
		if err := rows.Scan(&s.UserID, &name, &s.MediaCount, &s.MediaLength); err != nil {
			return nil, 0, err
		}
		if name.Valid {
			s.DisplayName = &name.String
		}
		out = append(out, s)
	}
	return out, total, rows.Err()
}

// RoomSize is a room's share of the database, estimated from its events.
type RoomSize struct {
	RoomID        string `json:"room_id"`
	EstimatedSize int64  `json:"estimated_size"`
}

// RoomSizes lists the rooms by the bytes of their events, largest first.
func (q Q) RoomSizes(ctx context.Context) ([]RoomSize, error) {
	rows, err := q.query(ctx, `SELECT e.room_id, SUM(length(e.json)) FROM events e JOIN rooms r ON r.room_id = e.room_id
		WHERE r.deleted_ts IS NULL GROUP BY e.room_id ORDER BY 2 DESC, 1`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []RoomSize{}
	for rows.Next() {
		var s RoomSize
		if err := rows.Scan(&s.RoomID, &s.EstimatedSize); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
