package storage

import (
	"context"
	"database/sql"
	"errors"
)

// SetRoomPublished adds a room to the room directory or removes it.
func (q Q) SetRoomPublished(ctx context.Context, roomID string, published bool) error {
	query := `DELETE FROM room_directory WHERE room_id = ?`
	if published {
		query = `INSERT OR IGNORE INTO room_directory(room_id) VALUES(?)`
	}
	_, err := q.exec(ctx, query, roomID)
	return err
}

// RoomPublished reports whether a room is in the room directory.
func (q Q) RoomPublished(ctx context.Context, roomID string) (bool, error) {
	var one int
	err := q.queryRow(ctx, `SELECT 1 FROM room_directory WHERE room_id = ?`, roomID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// PublishedRooms lists the room directory, biggest rooms first.
func (q Q) PublishedRooms(ctx context.Context) ([]RoomListing, error) {
	rows, err := q.query(ctx, `SELECT `+roomListingCols+` FROM rooms r JOIN room_directory d ON d.room_id = r.room_id
		WHERE r.deleted_ts IS NULL AND NOT EXISTS (SELECT 1 FROM blocked_rooms b WHERE b.room_id = r.room_id) ORDER BY 14 DESC, 1`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []RoomListing
	for rows.Next() {
		l, err := scanRoomListing(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// DirectoryUser is a user as the user directory shows them.
type DirectoryUser struct {
	UserID, DisplayName, AvatarURL string
}

// SearchUsers finds active users whose ID or display name contains term,
// those sharing a room with searcher first when sharedOnly is false, or
// only those sharing a room (or in a public room), never searcher, when it
// is true.
func (q Q) SearchUsers(ctx context.Context, searcher, term string, sharedOnly bool, limit int) ([]DirectoryUser, error) {
	rows, err := q.query(ctx, `SELECT u.user_id, COALESCE(u.displayname, ''), COALESCE(u.avatar_url, '') FROM users u
		WHERE u.deactivated = 0 AND (instr(lower(u.user_id), lower(?1)) > 0 OR instr(lower(COALESCE(u.displayname, '')), lower(?1)) > 0)
		AND (?2 = 0 OR u.user_id != ?3 AND (EXISTS (SELECT 1 FROM room_state a JOIN room_state b ON a.room_id = b.room_id
			WHERE a.type = 'm.room.member' AND a.state_key = ?3 AND a.membership = 'join'
			AND b.type = 'm.room.member' AND b.state_key = u.user_id AND b.membership = 'join')
			OR EXISTS (SELECT 1 FROM room_directory d JOIN room_state s ON s.room_id = d.room_id
			WHERE s.type = 'm.room.member' AND s.state_key = u.user_id AND s.membership = 'join')))
		ORDER BY lower(COALESCE(u.displayname, u.user_id)), u.user_id LIMIT ?4`, term, sharedOnly, searcher, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DirectoryUser
	for rows.Next() {
		var u DirectoryUser
		if err := rows.Scan(&u.UserID, &u.DisplayName, &u.AvatarURL); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}
