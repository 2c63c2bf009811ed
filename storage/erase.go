package storage

import "context"

// ErasedBy is the redacted_by of events whose sender's account was erased:
// redacted by no event, served as redacted to everyone.
const ErasedBy = "erased"

// EraseUserData deletes what an erased account leaves besides its events
// and media: keys, key backups, signatures, account data (push rules
// included), thread subscriptions, delayed events, filters, receipts, presence,
// notifications, forgotten rooms, to-device messages it sent and its
// identities at the identity providers. Devices (and what hangs off them) go
// with DeactivateUser.
func (q Q) EraseUserData(ctx context.Context, userID string) error {
	q.forgets()
	for _, query := range []string{
		`DELETE FROM cross_signing_keys WHERE user_id = ?1`,
		`DELETE FROM key_signatures WHERE target_user = ?1 OR signer_user = ?1`,
		`DELETE FROM backup_versions WHERE user_id = ?1`,
		`DELETE FROM account_data WHERE user_id = ?1`,
		`DELETE FROM thread_subscriptions WHERE user_id = ?1`,
		`DELETE FROM delayed_events WHERE user_id = ?1`,
		`DELETE FROM filters WHERE user_id = ?1`,
		`DELETE FROM receipts WHERE user_id = ?1`,
		`DELETE FROM presence WHERE user_id = ?1`,
		// Through the rooms the user has a membership in: push_actions is
		// ordered by event, not by user. That finds them all because an
		// event notifies only the room's members, whose member rows are
		// written before it and never deleted (PurgeRoom keeps them).
		`DELETE FROM push_actions WHERE user_id = ?1 AND event_pos IN (SELECT e.pos FROM events e
			WHERE e.room_id IN (SELECT room_id FROM room_state WHERE state_key = ?1 AND type = 'm.room.member'))`,
		`DELETE FROM unread_counts WHERE user_id = ?1`,
		`DELETE FROM forgotten_rooms WHERE user_id = ?1`,
		`DELETE FROM to_device WHERE sender = ?1`,
		`DELETE FROM pushers WHERE user_id = ?1`,
		`DELETE FROM external_ids WHERE user_id = ?1`,
		`DELETE FROM sso_refresh WHERE user_id = ?1`,
		`DELETE FROM openid_tokens WHERE user_id = ?1`,
	} {
		if _, err := q.exec(ctx, query, userID); err != nil {
			return err
		}
	}
	return nil
}

// ErasableEvents returns up to limit events of a user's that erasure
// redacts, after a position, oldest first: the messages they sent and
// their own membership events (which carry their name and avatar), not yet
// redacted. The room state they set (name, topic, avatar, aliases, join
// rules, power levels, encryption, other members' memberships) stays: it
// belongs to the room and its other members.
func (q Q) ErasableEvents(ctx context.Context, userID string, after int64, limit int) ([]Event, error) {
	return q.queryEvents(ctx, `SELECT `+eventCols+` FROM events e
		WHERE e.pos > ?1 AND e.sender = ?2 AND e.redacted_by IS NULL
			AND (e.state_key IS NULL OR (e.type = 'm.room.member' AND e.state_key = ?2))
		ORDER BY e.pos LIMIT ?3`, after, userID, limit)
}

// EraseEvent replaces an erased user's event by its redacted form and
// forgets the device and transaction it was sent with.
func (q Q) EraseEvent(ctx context.Context, eventID string, redacted []byte) error {
	if err := q.rewritesEvents(ctx); err != nil {
		return err
	}
	if err := q.execOne(ctx, `UPDATE events SET json = ?, redacted_by = ?, device_id = NULL, txn_id = NULL
		WHERE event_id = ?`, redacted, ErasedBy, eventID); err != nil {
		return err
	}
	return q.dropRelation(ctx, eventID)
}

// MediaOf lists up to limit media entries a user uploaded.
func (q Q) MediaOf(ctx context.Context, userID string, limit int) ([]Media, error) {
	return q.mediaIDs(ctx, `SELECT media_id, in_dir FROM media WHERE uploader = ? LIMIT ?`, userID, limit)
}
