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
		t.ProfileTag = tag.String
		out = append(out, t)
	}
	return out, rows.Err()
}

// CountPushers counts every pusher of the instance.
func (q Q) CountPushers(ctx context.Context) (int, error) {
	var n int
	err := q.queryRow(ctx, `SELECT COUNT(*) FROM pushers`).Scan(&n)
	return n, err
}
