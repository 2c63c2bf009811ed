package storage

import (
	"context"
	"database/sql"
)

// Pusher is a place a user's notifications are sent.
type Pusher struct {
	UserID            string `json:"-"`
	AppID             string `json:"app_id"`
	Pushkey           string `json:"pushkey"`
	Kind              string `json:"kind"`
	AppDisplayName    string `json:"app_display_name"`
	DeviceDisplayName string `json:"device_display_name"`
	ProfileTag        string `json:"profile_tag,omitempty"`
	Lang              string `json:"lang"`
	Data              []byte `json:"-"`
	CreatedTS         int64  `json:"-"`
	// DeviceID is the device that set the pusher; it goes with the device.
	DeviceID string `json:"-"`
}

const pusherCols = `user_id, app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data, created_ts, device_id`

func scanPushers(rows *Rows) ([]Pusher, error) {
	defer rows.Close()
	var out []Pusher
	for rows.Next() {
		var p Pusher
		var tag, device sql.NullString
		if err := rows.Scan(&p.UserID, &p.AppID, &p.Pushkey, &p.Kind, &p.AppDisplayName, &p.DeviceDisplayName, &tag, &p.Lang, &p.Data, &p.CreatedTS, &device); err != nil {
			return nil, err
		}
		p.ProfileTag, p.DeviceID = tag.String, device.String
		out = append(out, p)
	}
	return out, rows.Err()
}

// Pushers lists a user's pushers.
func (q Q) Pushers(ctx context.Context, userID string) ([]Pusher, error) {
	rows, err := q.query(ctx, `SELECT `+pusherCols+` FROM pushers WHERE user_id = ? ORDER BY created_ts`, userID)
	if err != nil {
		return nil, err
	}
	return scanPushers(rows)
}

// SetPusher adds or replaces a pusher; unless appendOthers, the same app
// and pushkey are removed from other users (a phone serves one account).
func (q Q) SetPusher(ctx context.Context, p Pusher, appendOthers bool) error {
	if !appendOthers {
		if _, err := q.exec(ctx, `DELETE FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id != ?`, p.AppID, p.Pushkey, p.UserID); err != nil {
			return err
		}
	}
	_, err := q.exec(ctx, `INSERT OR REPLACE INTO pushers(`+pusherCols+`) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.UserID, p.AppID, p.Pushkey, p.Kind, p.AppDisplayName, p.DeviceDisplayName, nullString(p.ProfileTag), p.Lang, p.Data, p.CreatedTS,
		nullString(p.DeviceID))
	return err
}

// DeletePusher removes a pusher; without userID, for every user (the
// gateway rejected the pushkey).
func (q Q) DeletePusher(ctx context.Context, userID, appID, pushkey string) error {
	_, err := q.exec(ctx, `DELETE FROM pushers WHERE app_id = ? AND pushkey = ? AND (? = '' OR user_id = ?)`, appID, pushkey, userID, userID)
	return err
}

// PushTarget is a pusher to notify of an event, with what push rules said.
type PushTarget struct {
	Pusher
	Highlight bool
	Actions   []byte
}

// PushTargets lists the pushers of the users an event notifies.
func (q Q) PushTargets(ctx context.Context, eventPos int64) ([]PushTarget, error) {
	rows, err := q.query(ctx, `SELECT p.user_id, p.app_id, p.pushkey, p.kind, p.app_display_name, p.device_display_name, p.profile_tag,
		p.lang, p.data, p.created_ts, a.highlight, a.actions
		FROM push_actions a JOIN pushers p ON p.user_id = a.user_id WHERE a.event_pos = ?`, eventPos)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []PushTarget
	for rows.Next() {
		var t PushTarget
		var tag sql.NullString
		if err := rows.Scan(&t.UserID, &t.AppID, &t.Pushkey, &t.Kind, &t.AppDisplayName, &t.DeviceDisplayName, &tag, &t.Lang,
			&t.Data, &t.CreatedTS, &t.Highlight, &t.Actions); err != nil {
			return nil, err
		}
		t.ProfileTag, t.Actions = tag.String, loadedActions(t.Actions)
		out = append(out, t)
	}
	return out, rows.Err()
}

// PushTargetOf is one pusher's target for an event, ErrNotFound if the
// pusher is gone or the event no longer notifies its user (read, pruned).
func (q Q) PushTargetOf(ctx context.Context, eventPos int64, userID, appID, pushkey string) (PushTarget, error) {
	var t PushTarget
	var tag sql.NullString
	err := q.queryRow(ctx, `SELECT p.user_id, p.app_id, p.pushkey, p.kind, p.app_display_name, p.device_display_name, p.profile_tag,
		p.lang, p.data, p.created_ts, a.highlight, a.actions
		FROM push_actions a JOIN pushers p ON p.user_id = a.user_id
		WHERE a.event_pos = ? AND p.user_id = ? AND p.app_id = ? AND p.pushkey = ?`, eventPos, userID, appID, pushkey).
		Scan(&t.UserID, &t.AppID, &t.Pushkey, &t.Kind, &t.AppDisplayName, &t.DeviceDisplayName, &tag, &t.Lang,
			&t.Data, &t.CreatedTS, &t.Highlight, &t.Actions)
	t.ProfileTag, t.Actions = tag.String, loadedActions(t.Actions)
	return t, notFound(err)
}

// PushRetry is a notification waiting for its next attempt.
type PushRetry struct {
	ID                     int64
	EventPos               int64
	UserID, AppID, Pushkey string
	Attempts               int
	NextTS                 int64
}

// AddPushRetry queues a notification for another attempt.
func (q Q) AddPushRetry(ctx context.Context, r PushRetry) error {
	_, err := q.exec(ctx, `INSERT INTO push_retries(event_pos, user_id, app_id, pushkey, attempts, next_ts) VALUES(?, ?, ?, ?, ?, ?)`,
		r.EventPos, r.UserID, r.AppID, r.Pushkey, r.Attempts, r.NextTS)
	return err
}

// UpdatePushRetry records a failed attempt and when the next is due.
func (q Q) UpdatePushRetry(ctx context.Context, id int64, attempts int, nextTS int64) error {
	_, err := q.exec(ctx, `UPDATE push_retries SET attempts = ?, next_ts = ? WHERE id = ?`, attempts, nextTS, id)
	return err
}

// DeletePushRetry removes a notification from the queue.
func (q Q) DeletePushRetry(ctx context.Context, id int64) error {
	_, err := q.exec(ctx, `DELETE FROM push_retries WHERE id = ?`, id)
	return err
}

// DuePushRetries lists up to limit notifications due by now, and when the
// next one after them is due (0 if none).
func (q Q) DuePushRetries(ctx context.Context, now int64, limit int) ([]PushRetry, int64, error) {
	rows, err := q.query(ctx, `SELECT id, event_pos, user_id, app_id, pushkey, attempts, next_ts FROM push_retries
		WHERE next_ts <= ? ORDER BY next_ts LIMIT ?`, now, limit)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []PushRetry
	for rows.Next() {
		var r PushRetry
		if err := rows.Scan(&r.ID, &r.EventPos, &r.UserID, &r.AppID, &r.Pushkey, &r.Attempts, &r.NextTS); err != nil {
			return nil, 0, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	var next sql.NullInt64
	err = q.queryRow(ctx, `SELECT MIN(next_ts) FROM push_retries WHERE next_ts > ?`, now).Scan(&next)
	return out, next.Int64, err
}

// CountPushers counts every pusher of the instance.
func (q Q) CountPushers(ctx context.Context) (int, error) {
	var n int
	err := q.queryRow(ctx, `SELECT COUNT(*) FROM pushers`).Scan(&n)
	return n, err
}
