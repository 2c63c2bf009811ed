package storage

import "context"

// AddOpenIDToken stores an OpenID token's hash, forgetting expired ones.
func (q Q) AddOpenIDToken(ctx context.Context, hash []byte, userID string, now, expires int64) error {
	if _, err := q.exec(ctx, `DELETE FROM openid_tokens WHERE expires_ts < ?`, now); err != nil {
		return err
	}
	_, err := q.exec(ctx, `INSERT INTO openid_tokens(token_hash, user_id, expires_ts) VALUES(?, ?, ?)`, hash, userID, expires)
	return err
}

// OpenIDTokenUser returns whose an unexpired OpenID token is.
func (q Q) OpenIDTokenUser(ctx context.Context, hash []byte, now int64) (string, error) {
	var userID string
	err := q.queryRow(ctx, `SELECT t.user_id FROM openid_tokens t JOIN users u ON u.user_id = t.user_id
		WHERE t.token_hash = ? AND t.expires_ts >= ? AND u.deactivated = 0`, hash, now).Scan(&userID)
	return userID, notFound(err)
}

// CallMembershipType is Element Call's call membership state event.
const CallMembershipType = "org.matrix.msc3401.call.member"

// ExpiringCallMemberships returns the current call memberships that say
// when they expire, oldest first.
func (q Q) ExpiringCallMemberships(ctx context.Context) ([]Event, error) {
	// The type is written out, not a parameter, so that the partial
	// index room_state_call_members serves the query.
	return q.queryEvents(ctx, `SELECT `+eventCols+` FROM room_state s JOIN events e ON e.event_id = s.event_id
		WHERE s.type = '`+CallMembershipType+`' AND json_extract(e.json, '$.content.expires') IS NOT NULL ORDER BY e.pos`)
}
