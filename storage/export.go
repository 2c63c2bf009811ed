package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// ExportSet is one JSON Lines file of an export: what it holds, for the
// whole instance and for one user's data-access request. Columns whose
// name ends in _json hold JSON and are exported as JSON (without the
// suffix); password hashes and token hashes are in the Secret sets only.
type ExportSet struct {
	Name string
	// Instance and User select the rows; User's ?1 is the user ID. An
	// empty User means the set has nothing for a user export.
	Instance, User string
	Secret         bool
}

// ExportSets are the export's files, in the order they are written.
var ExportSets = []ExportSet{
	{Name: "users", Instance: `SELECT user_id, displayname, avatar_url, is_admin AS admin, deactivated, erased, created_ts FROM users ORDER BY user_id`,
		User: `SELECT user_id, displayname, avatar_url, is_admin AS admin, deactivated, erased, created_ts FROM users WHERE user_id = ?1`},
	{Name: "external_ids", Instance: `SELECT user_id, auth_provider, external_id, created_ts FROM external_ids ORDER BY user_id, auth_provider, external_id`,
		User: `SELECT user_id, auth_provider, external_id, created_ts FROM external_ids WHERE user_id = ?1 ORDER BY auth_provider, external_id`},
	{Name: "password_hashes", Secret: true, Instance: `SELECT user_id, password_hash FROM users WHERE password_hash IS NOT NULL ORDER BY user_id`,
		User: `SELECT user_id, password_hash FROM users WHERE user_id = ?1 AND password_hash IS NOT NULL`},
	{Name: "devices", Instance: `SELECT d.user_id, d.device_id, d.display_name, d.created_ts, d.last_seen_ts, d.last_seen_ip, d.last_seen_ua,
		k.keys AS keys_json FROM devices d LEFT JOIN device_keys k ON k.user_id = d.user_id AND k.device_id = d.device_id ORDER BY d.user_id, d.device_id`,
		User: `SELECT d.user_id, d.device_id, d.display_name, d.created_ts, d.last_seen_ts, d.last_seen_ip, d.last_seen_ua,
		k.keys AS keys_json FROM devices d LEFT JOIN device_keys k ON k.user_id = d.user_id AND k.device_id = d.device_id WHERE d.user_id = ?1`},
	{Name: "access_tokens", Secret: true, Instance: `SELECT user_id, device_id, lower(hex(token_hash)) AS token_sha256, expires_ts FROM access_tokens ORDER BY user_id`,
		User: `SELECT user_id, device_id, lower(hex(token_hash)) AS token_sha256, expires_ts FROM access_tokens WHERE user_id = ?1`},
	{Name: "cross_signing_keys", Instance: `SELECT user_id, purpose, key_json FROM cross_signing_keys ORDER BY user_id, purpose`,
		User: `SELECT user_id, purpose, key_json FROM cross_signing_keys WHERE user_id = ?1`},
	{Name: "key_signatures", Instance: `SELECT target_user, target_key, signer_user, signer_key, signature FROM key_signatures`,
		User: `SELECT target_user, target_key, signer_user, signer_key, signature FROM key_signatures WHERE target_user = ?1 OR signer_user = ?1`},
	{Name: "rooms", Instance: `SELECT r.room_id, r.version, r.creator, r.created_ts,
		(SELECT json_group_array(json(e.json)) FROM room_state s JOIN events e ON e.event_id = s.event_id WHERE s.room_id = r.room_id) AS state_json
		FROM rooms r ORDER BY r.room_id`,
		// A user's rooms, and of their state only the user's own membership.
		User: `SELECT r.room_id, r.version, r.created_ts, (SELECT json_group_array(json(e.json)) FROM room_state s JOIN events e ON e.event_id = s.event_id
		WHERE s.room_id = r.room_id AND s.type = 'm.room.member' AND s.state_key = ?1) AS state_json
		FROM rooms r WHERE r.room_id IN (SELECT room_id FROM room_state WHERE type = 'm.room.member' AND state_key = ?1) ORDER BY r.room_id`},
	{Name: "events", Instance: `SELECT pos, room_id, redacted_by IS NOT NULL AS redacted, json AS event_json FROM events ORDER BY pos`,
		User: `SELECT pos, room_id, redacted_by IS NOT NULL AS redacted, json AS event_json FROM events WHERE sender = ?1 ORDER BY pos`},
	{Name: "account_data", Instance: `SELECT user_id, NULLIF(room_id, '') AS room_id, type, content AS content_json FROM account_data ORDER BY user_id, room_id, type`,
		User: `SELECT user_id, NULLIF(room_id, '') AS room_id, type, content AS content_json FROM account_data WHERE user_id = ?1 ORDER BY room_id, type`},
	{Name: "key_backup_versions", Instance: `SELECT user_id, version, algorithm, auth_data AS auth_data_json, etag, deleted FROM backup_versions ORDER BY user_id, version`,
		User: `SELECT user_id, version, algorithm, auth_data AS auth_data_json, etag, deleted FROM backup_versions WHERE user_id = ?1 ORDER BY version`},
	{Name: "key_backup_keys", Instance: `SELECT user_id, version, room_id, session_id, first_message_index, forwarded_count, is_verified,
		session_data AS session_data_json FROM backup_keys ORDER BY user_id, version, room_id, session_id`,
		User: `SELECT user_id, version, room_id, session_id, first_message_index, forwarded_count, is_verified,
		session_data AS session_data_json FROM backup_keys WHERE user_id = ?1 ORDER BY version, room_id, session_id`},
	{Name: "media", Instance: `SELECT media_id, uploader, content_type, filename, size, sha256, created_ts, in_dir FROM media WHERE state = 'ready' ORDER BY created_ts, media_id`,
		User: `SELECT media_id, uploader, content_type, filename, size, sha256, created_ts, in_dir FROM media WHERE state = 'ready' AND uploader = ?1 ORDER BY created_ts, media_id`},
}

// ExportRows streams one set's rows, each as a JSON object, to fn.
func (q Q) ExportRows(ctx context.Context, set ExportSet, userID string, fn func(row map[string]any) error) error {
	query, args := set.Instance, []any{}
	if userID != "" {
		if set.User == "" {
			return nil
		}
		query, args = set.User, []any{userID}
	}
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("export %s: %w", set.Name, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		row := make(map[string]any, len(cols))
		for i, c := range cols {
			v := vals[i]
			if name, ok := strings.CutSuffix(c, "_json"); ok {
				switch b := v.(type) {
				case []byte:
					v = json.RawMessage(b)
				case string:
					v = json.RawMessage(b)
				}
				c = name
			} else if b, ok := v.([]byte); ok {
				v = string(b)
			}
			row[c] = v
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	return rows.Err()
}
