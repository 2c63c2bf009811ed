package storage

import (
	"context"
	"database/sql"
	"errors"
)

// DelayedEvent is an event scheduled to be sent later (MSC4140).
type DelayedEvent struct {
	DelayID, UserID, DeviceID, RoomID, Type string
	StateKey                                *string
	Content                                 []byte
	DelayMS, SendTS                         int64
}

const delayedCols = `delay_id, user_id, device_id, room_id, type, state_key, content, delay_ms, send_ts`

func (q Q) delayedEvents(ctx context.Context, query string, args ...any) ([]DelayedEvent, error) {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DelayedEvent
	for rows.Next() {
		var d DelayedEvent
		var key sql.NullString
		if err := rows.Scan(&d.DelayID, &d.UserID, &d.DeviceID, &d.RoomID, &d.Type, &key, &d.Content, &d.DelayMS, &d.SendTS); err != nil {
			return nil, err
		}
		if key.Valid {
			d.StateKey = &key.String
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// AddDelayedEvent schedules an event; txnID, if set, records which
// transaction made it.
func (q Q) AddDelayedEvent(ctx context.Context, d DelayedEvent, txnID string) error {
	var key any
	if d.StateKey != nil {
		key = *d.StateKey
	}
	if _, err := q.exec(ctx, `INSERT INTO delayed_events(`+delayedCols+`) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.DelayID, d.UserID, d.DeviceID, d.RoomID, d.Type, key, d.Content, d.DelayMS, d.SendTS); err != nil {
		return err
	}
	if txnID == "" {
		return nil
	}
	_, err := q.exec(ctx, `INSERT INTO delayed_event_txns(user_id, device_id, txn_id, delay_id) VALUES(?, ?, ?, ?)`,
		d.UserID, d.DeviceID, txnID, d.DelayID)
	return conflict(err)
}

// DelayIDByTxn returns the delay a transaction made.
func (q Q) DelayIDByTxn(ctx context.Context, userID, deviceID, txnID string) (string, error) {
	var id string
	err := q.queryRow(ctx, `SELECT delay_id FROM delayed_event_txns WHERE user_id = ? AND device_id = ? AND txn_id = ?`,
		userID, deviceID, txnID).Scan(&id)
	return id, notFound(err)
}

// DelayedEvent loads one scheduled event.
func (q Q) DelayedEvent(ctx context.Context, delayID string) (DelayedEvent, error) {
	list, err := q.delayedEvents(ctx, `SELECT `+delayedCols+` FROM delayed_events WHERE delay_id = ?`, delayID)
	if err != nil {
		return DelayedEvent{}, err
	}
	if len(list) == 0 {
		return DelayedEvent{}, ErrNotFound
	}
	return list[0], nil
}

// UserDelayedEvents lists a user's scheduled events, soonest first.
func (q Q) UserDelayedEvents(ctx context.Context, userID string) ([]DelayedEvent, error) {
	return q.delayedEvents(ctx, `SELECT `+delayedCols+` FROM delayed_events WHERE user_id = ? ORDER BY send_ts, delay_id`, userID)
}

// CountDelayedEvents is how many events a user has scheduled.
func (q Q) CountDelayedEvents(ctx context.Context, userID string) (int, error) {
	var n int
	err := q.queryRow(ctx, `SELECT COUNT(*) FROM delayed_events WHERE user_id = ?`, userID).Scan(&n)
	return n, err
}

// DueDelayedEvents lists up to limit events due at or before ts, soonest first.
func (q Q) DueDelayedEvents(ctx context.Context, ts int64, limit int) ([]DelayedEvent, error) {
	return q.delayedEvents(ctx, `SELECT `+delayedCols+` FROM delayed_events WHERE send_ts <= ? ORDER BY send_ts, delay_id LIMIT ?`, ts, limit)
}

// NextDelayedSend is when the soonest scheduled event is due (ok false if none).
func (q Q) NextDelayedSend(ctx context.Context) (ts int64, ok bool, err error) {
	var next sql.NullInt64
	err = q.queryRow(ctx, `SELECT MIN(send_ts) FROM delayed_events`).Scan(&next)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return next.Int64, next.Valid, err
}

// RestartDelayedEvent moves a scheduled event's time to ts.
func (q Q) RestartDelayedEvent(ctx context.Context, delayID string, ts int64) error {
	return q.execOne(ctx, `UPDATE delayed_events SET send_ts = ? WHERE delay_id = ?`, ts, delayID)
}

// DeleteDelayedEvent removes a scheduled event (sent or cancelled).
func (q Q) DeleteDelayedEvent(ctx context.Context, delayID string) error {
	return q.execOne(ctx, `DELETE FROM delayed_events WHERE delay_id = ?`, delayID)
}
