package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"maps"
	"slices"
)

// SetDeviceKeys stores a device's identity keys (as uploaded, signatures included).
func (q Q) SetDeviceKeys(ctx context.Context, userID, deviceID string, keys []byte) error {
	_, err := q.exec(ctx, `INSERT INTO device_keys(user_id, device_id, keys) VALUES(?, ?, ?)
		ON CONFLICT(user_id, device_id) DO UPDATE SET keys = excluded.keys`, userID, deviceID, keys)
	return err
}

// DeviceKeys loads one device's keys.
func (q Q) DeviceKeys(ctx context.Context, userID, deviceID string) ([]byte, error) {
	var k []byte
	err := q.queryRow(ctx, `SELECT keys FROM device_keys WHERE user_id = ? AND device_id = ?`, userID, deviceID).Scan(&k)
	return k, notFound(err)
}

// DeviceKeysEntry is a device's keys with its display name.
type DeviceKeysEntry struct {
	UserID, DeviceID, DisplayName string
	Keys                          []byte
}

// DeviceKeysOf lists the keys of all devices of the users that uploaded
// some, by user and device.
func (q Q) DeviceKeysOf(ctx context.Context, userIDs []string) ([]DeviceKeysEntry, error) {
	rows, err := q.query(ctx, `SELECT k.user_id, k.device_id, COALESCE(d.display_name, ''), k.keys
		FROM device_keys k JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id
		WHERE k.user_id IN (SELECT value FROM json_each(?)) ORDER BY k.user_id, k.device_id`, jsonStrings(userIDs))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DeviceKeysEntry
	for rows.Next() {
		var e DeviceKeysEntry
		if err := rows.Scan(&e.UserID, &e.DeviceID, &e.DisplayName, &e.Keys); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// OneTimeKey loads one stored one-time key.
func (q Q) OneTimeKey(ctx context.Context, userID, deviceID, algorithm, keyID string) ([]byte, error) {
	var k []byte
	err := q.queryRow(ctx, `SELECT key_json FROM one_time_keys WHERE user_id = ? AND device_id = ? AND algorithm = ? AND key_id = ?`,
		userID, deviceID, algorithm, keyID).Scan(&k)
	return k, notFound(err)
}

// AddOneTimeKey stores a one-time key.
func (q Q) AddOneTimeKey(ctx context.Context, userID, deviceID, algorithm, keyID string, key []byte) error {
	_, err := q.exec(ctx, `INSERT INTO one_time_keys(user_id, device_id, algorithm, key_id, key_json) VALUES(?, ?, ?, ?, ?)`,
		userID, deviceID, algorithm, keyID, key)
	return conflict(err)
}

// OneTimeKeyCounts counts a device's unclaimed one-time keys per algorithm.
func (q Q) OneTimeKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, error) {
	counts, _, err := q.DeviceKeyCounts(ctx, userID, deviceID)
	return counts, err
}

// SetFallbackKey replaces a device's fallback key of one algorithm.
func (q Q) SetFallbackKey(ctx context.Context, userID, deviceID, algorithm, keyID string, key []byte) error {
	_, err := q.exec(ctx, `INSERT INTO fallback_keys(user_id, device_id, algorithm, key_id, key_json, used) VALUES(?, ?, ?, ?, ?, 0)
		ON CONFLICT(user_id, device_id, algorithm) DO UPDATE SET key_id = excluded.key_id, key_json = excluded.key_json,
		used = CASE WHEN key_id = excluded.key_id AND key_json = excluded.key_json THEN used ELSE 0 END`,
		userID, deviceID, algorithm, keyID, key)
	return err
}

// DeviceKeyCounts is what every /sync tells a device of its keys: how
// many one-time keys it has left per algorithm, and the algorithms of its
// unused fallback keys (sorted). One statement: a sync asks each time.
//
// In a snapshot of ReadPositioned they come from memory while sync_epoch
// has not moved since they were read: a woken /sync would otherwise spend
// a statement on them, about a tenth of its time, though keys change far
// more rarely than syncs wake.
func (q Q) DeviceKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, []string, error) {
	if !q.positioned {
		return q.deviceKeyCounts(ctx, userID, deviceID)
	}
	c, err := q.db.keyCounts.read(userID+"\x00"+deviceID, q.syncEpoch, func() (c keyCounts, err error) {
		c.counts, c.fallback, err = q.deviceKeyCounts(ctx, userID, deviceID)
		return c, err
	})
	if err != nil {
		return nil, nil, err
	}
	return maps.Clone(c.counts), slices.Clone(c.fallback), nil
}

// keyCounts is what DeviceKeyCounts returns, kept.
type keyCounts struct {
	counts   map[string]int
	fallback []string
}

func (q Q) deviceKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, []string, error) {
	rows, err := q.query(ctx, `SELECT algorithm, COUNT(*), 0 FROM one_time_keys WHERE user_id = ?1 AND device_id = ?2 GROUP BY algorithm
		UNION ALL SELECT algorithm, 0, 1 FROM fallback_keys WHERE user_id = ?1 AND device_id = ?2 AND used = 0`, userID, deviceID)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	counts, fallback := map[string]int{}, []string{}
	for rows.Next() {
		var alg string
		var n int
		var isFallback bool
		if err := rows.Scan(&alg, &n, &isFallback); err != nil {
			return nil, nil, err
		}
		if isFallback {
			fallback = append(fallback, alg)
		} else {
			counts[alg] = n
		}
	}
	slices.Sort(fallback)
	return counts, fallback, rows.Err()
}

// ClaimKey takes one one-time key of a device, the oldest uploaded
// (MSC4225: clients expect their keys used in upload order), deleting it so
// that it is handed out once; with none left it returns the fallback key, which stays
// and is marked used. ErrNotFound if there is neither.
func (q Q) ClaimKey(ctx context.Context, userID, deviceID, algorithm string) (keyID string, key []byte, err error) {
	err = q.queryRow(ctx, `DELETE FROM one_time_keys WHERE rowid = (
			SELECT rowid FROM one_time_keys WHERE user_id = ? AND device_id = ? AND algorithm = ? ORDER BY rowid LIMIT 1
		) RETURNING key_id, key_json`, userID, deviceID, algorithm).Scan(&keyID, &key)
	if !errors.Is(err, sql.ErrNoRows) {
		return keyID, key, err
	}
	err = q.queryRow(ctx, `UPDATE fallback_keys SET used = 1 WHERE user_id = ? AND device_id = ? AND algorithm = ?
		RETURNING key_id, key_json`, userID, deviceID, algorithm).Scan(&keyID, &key)
	return keyID, key, notFound(err)
}

// SetCrossSigningKey stores a user's master, self_signing or user_signing key.
func (q Q) SetCrossSigningKey(ctx context.Context, userID, purpose string, key []byte) error {
	_, err := q.exec(ctx, `INSERT INTO cross_signing_keys(user_id, purpose, key_json) VALUES(?, ?, ?)
		ON CONFLICT(user_id, purpose) DO UPDATE SET key_json = excluded.key_json`, userID, purpose, key)
	return err
}

// CrossSigningKeys loads a user's cross-signing keys by purpose.
func (q Q) CrossSigningKeys(ctx context.Context, userID string) (map[string][]byte, error) {
	rows, err := q.query(ctx, `SELECT purpose, key_json FROM cross_signing_keys WHERE user_id = ?`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var p string
		var k []byte
		if err := rows.Scan(&p, &k); err != nil {
			return nil, err
		}
		out[p] = k
	}
	return out, rows.Err()
}

// Signature is one signature over a key, uploaded separately from it.
type Signature struct {
	TargetUser, TargetKey, SignerUser, SignerKey, Signature string
}

// AddSignature stores a signature.
func (q Q) AddSignature(ctx context.Context, s Signature) error {
	_, err := q.exec(ctx, `INSERT OR REPLACE INTO key_signatures(target_user, target_key, signer_user, signer_key, signature)
		VALUES(?, ?, ?, ?, ?)`, s.TargetUser, s.TargetKey, s.SignerUser, s.SignerKey, s.Signature)
	return err
}

// SignaturesOf lists the separately uploaded signatures over the users'
// keys.
func (q Q) SignaturesOf(ctx context.Context, userIDs []string) ([]Signature, error) {
	rows, err := q.query(ctx, `SELECT target_user, target_key, signer_user, signer_key, signature FROM key_signatures
		WHERE target_user IN (SELECT value FROM json_each(?))`, jsonStrings(userIDs))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Signature
	for rows.Next() {
		var s Signature
		if err := rows.Scan(&s.TargetUser, &s.TargetKey, &s.SignerUser, &s.SignerKey, &s.Signature); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// CrossSigningKeysOf loads the users' cross-signing keys: user -> purpose
// -> key.
func (q Q) CrossSigningKeysOf(ctx context.Context, userIDs []string) (map[string]map[string][]byte, error) {
	rows, err := q.query(ctx, `SELECT user_id, purpose, key_json FROM cross_signing_keys
		WHERE user_id IN (SELECT value FROM json_each(?))`, jsonStrings(userIDs))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]map[string][]byte{}
	for rows.Next() {
		var u, p string
		var k []byte
		if err := rows.Scan(&u, &p, &k); err != nil {
			return nil, err
		}
		if out[u] == nil {
			out[u] = map[string][]byte{}
		}
		out[u][p] = k
	}
	return out, rows.Err()
}

// AddDeviceListChange records that a user's devices or keys changed.
func (q Q) AddDeviceListChange(ctx context.Context, userID string) error {
	_, err := q.exec(ctx, `INSERT INTO device_list_changes(user_id) VALUES(?)`, userID)
	return err
}

// DeviceListChangesBetween lists the users whose devices changed in (from,
// to], shared as MemberChangesBetween is.
func (q Q) DeviceListChangesBetween(ctx context.Context, from, to int64) ([]string, error) {
	read := func() ([]string, error) {
		return q.strings(ctx, `SELECT DISTINCT user_id FROM device_list_changes WHERE pos > ? AND pos <= ?`, from, to)
	}
	return sharedSlice(q, func(m *memo) map[rangeKey][]string { return m.users }, rangeKey{"device_list_changes", from, to}, read)
}

// ToDevice is a to-device message waiting for its device.
type ToDevice struct {
	Pos              int64
	UserID, DeviceID string
	Sender, Type     string
	Content          []byte
}

// AddToDeviceTxn records a sendToDevice transaction; ErrConflict if the
// device already sent it.
func (q Q) AddToDeviceTxn(ctx context.Context, userID, deviceID, txnID string) error {
	_, err := q.exec(ctx, `INSERT INTO to_device_txns(user_id, device_id, txn_id) VALUES(?, ?, ?)`, userID, deviceID, txnID)
	return conflict(err)
}

// AddToDevice queues a message for a device.
func (q Q) AddToDevice(ctx context.Context, m ToDevice) error {
	_, err := q.exec(ctx, `INSERT INTO to_device(user_id, device_id, sender, type, content) VALUES(?, ?, ?, ?, ?)`,
		m.UserID, m.DeviceID, m.Sender, m.Type, m.Content)
	return err
}

// ToDeviceFor returns up to limit messages for a device in (after, upto].
func (q Q) ToDeviceFor(ctx context.Context, userID, deviceID string, after, upto int64, limit int) ([]ToDevice, error) {
	rows, err := q.query(ctx, `SELECT pos, user_id, device_id, sender, type, content FROM to_device
		WHERE user_id = ? AND device_id = ? AND pos > ? AND pos <= ? ORDER BY pos LIMIT ?`, userID, deviceID, after, upto, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ToDevice
	for rows.Next() {
		var m ToDevice
		if err := rows.Scan(&m.Pos, &m.UserID, &m.DeviceID, &m.Sender, &m.Type, &m.Content); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// HasToDeviceUpTo reports whether a device has messages at or before pos,
// that is, acknowledged ones still to delete.
func (q Q) HasToDeviceUpTo(ctx context.Context, userID, deviceID string, pos int64) (bool, error) {
	var one int
	err := q.queryRow(ctx, `SELECT 1 FROM to_device WHERE user_id = ? AND device_id = ? AND pos <= ? LIMIT 1`,
		userID, deviceID, pos).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// DeleteToDeviceUpTo deletes a device's acknowledged messages.
func (q Q) DeleteToDeviceUpTo(ctx context.Context, userID, deviceID string, pos int64) error {
	_, err := q.exec(ctx, `DELETE FROM to_device WHERE user_id = ? AND device_id = ? AND pos <= ?`, userID, deviceID, pos)
	return err
}

// BackupVersion is a key backup version's metadata.
type BackupVersion struct {
	Version   int64
	Algorithm string
	AuthData  json.RawMessage
	Etag      int64
	Count     int64
}

// CreateBackupVersion starts a new backup version, which becomes current.
func (q Q) CreateBackupVersion(ctx context.Context, userID, algorithm string, authData []byte) (int64, error) {
	var v int64
	err := q.queryRow(ctx, `INSERT INTO backup_versions(user_id, version, algorithm, auth_data)
		VALUES(?, (SELECT COALESCE(MAX(version), 0) + 1 FROM backup_versions WHERE user_id = ?), ?, ?) RETURNING version`,
		userID, userID, algorithm, authData).Scan(&v)
	return v, err
}

// GetBackupVersion loads a version (0: the current one).
func (q Q) GetBackupVersion(ctx context.Context, userID string, version int64) (BackupVersion, error) {
	var b BackupVersion
	query := `SELECT v.version, v.algorithm, v.auth_data, v.etag,
		(SELECT COUNT(*) FROM backup_keys k WHERE k.user_id = v.user_id AND k.version = v.version)
		FROM backup_versions v WHERE v.user_id = ? AND v.deleted = 0 `
	var err error
	if version == 0 {
		err = q.queryRow(ctx, query+`ORDER BY v.version DESC LIMIT 1`, userID).Scan(&b.Version, &b.Algorithm, &b.AuthData, &b.Etag, &b.Count)
	} else {
		err = q.queryRow(ctx, query+`AND v.version = ?`, userID, version).Scan(&b.Version, &b.Algorithm, &b.AuthData, &b.Etag, &b.Count)
	}
	return b, notFound(err)
}

// UpdateBackupAuthData replaces a version's auth_data.
func (q Q) UpdateBackupAuthData(ctx context.Context, userID string, version int64, authData []byte) error {
	return q.execOne(ctx, `UPDATE backup_versions SET auth_data = ? WHERE user_id = ? AND version = ? AND deleted = 0`, authData, userID, version)
}

// DeleteBackupVersion deletes a version and its keys; its number is never reused.
func (q Q) DeleteBackupVersion(ctx context.Context, userID string, version int64) error {
	if _, err := q.exec(ctx, `DELETE FROM backup_keys WHERE user_id = ? AND version = ?`, userID, version); err != nil {
		return err
	}
	return q.execOne(ctx, `UPDATE backup_versions SET deleted = 1, auth_data = '{}' WHERE user_id = ? AND version = ? AND deleted = 0`, userID, version)
}

// BumpBackupEtag marks a version's keys as changed.
func (q Q) BumpBackupEtag(ctx context.Context, userID string, version int64) error {
	_, err := q.exec(ctx, `UPDATE backup_versions SET etag = etag + 1 WHERE user_id = ? AND version = ?`, userID, version)
	return err
}

// BackupKey is one backed-up session key (encrypted by the client).
type BackupKey struct {
	RoomID, SessionID string
	FirstMessageIndex int64
	ForwardedCount    int64
	IsVerified        bool
	SessionData       json.RawMessage
}

// PutBackupKey stores a key unless the stored one is better by the spec's
// rule: verified beats unverified, then the lower first_message_index, then
// the lower forwarded_count. It reports whether anything changed.
func (q Q) PutBackupKey(ctx context.Context, userID string, version int64, k BackupKey) (bool, error) {
	var cur BackupKey
	err := q.queryRow(ctx, `SELECT first_message_index, forwarded_count, is_verified FROM backup_keys
		WHERE user_id = ? AND version = ? AND room_id = ? AND session_id = ?`, userID, version, k.RoomID, k.SessionID).
		Scan(&cur.FirstMessageIndex, &cur.ForwardedCount, &cur.IsVerified)
	if err == nil {
		better := k.IsVerified && !cur.IsVerified ||
			k.IsVerified == cur.IsVerified && (k.FirstMessageIndex < cur.FirstMessageIndex ||
				k.FirstMessageIndex == cur.FirstMessageIndex && k.ForwardedCount < cur.ForwardedCount)
		if !better {
			return false, nil
		}
	} else if !errors.Is(err, sql.ErrNoRows) {
		return false, err
	}
	_, err = q.exec(ctx, `INSERT OR REPLACE INTO backup_keys(user_id, version, room_id, session_id, first_message_index,
		forwarded_count, is_verified, session_data) VALUES(?, ?, ?, ?, ?, ?, ?, ?)`,
		userID, version, k.RoomID, k.SessionID, k.FirstMessageIndex, k.ForwardedCount, k.IsVerified, []byte(k.SessionData))
	return err == nil, err
}

// BackupKeys lists backed-up keys of a version, optionally of one room or session.
func (q Q) BackupKeys(ctx context.Context, userID string, version int64, roomID, sessionID string) ([]BackupKey, error) {
	rows, err := q.query(ctx, `SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data
		FROM backup_keys WHERE user_id = ? AND version = ? AND (? = '' OR room_id = ?) AND (? = '' OR session_id = ?)
		ORDER BY room_id, session_id`, userID, version, roomID, roomID, sessionID, sessionID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []BackupKey
	for rows.Next() {
		var k BackupKey
		var data []byte
		if err := rows.Scan(&k.RoomID, &k.SessionID, &k.FirstMessageIndex, &k.ForwardedCount, &k.IsVerified, &data); err != nil {
			return nil, err
		}
		k.SessionData = data
		out = append(out, k)
	}
	return out, rows.Err()
}

// DeleteBackupKeys deletes backed-up keys of a version, optionally of one
// room or session, and reports how many.
func (q Q) DeleteBackupKeys(ctx context.Context, userID string, version int64, roomID, sessionID string) (int64, error) {
	res, err := q.exec(ctx, `DELETE FROM backup_keys WHERE user_id = ? AND version = ? AND (? = '' OR room_id = ?) AND (? = '' OR session_id = ?)`,
		userID, version, roomID, roomID, sessionID, sessionID)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// MemberChange is a membership event.
type MemberChange struct {
	RoomID, UserID, Membership string
}

// MemberChangesBetween lists the membership events in (from, to]. In a
// settled snapshot the read is shared with the other syncs asking the same
// (memo).
func (q Q) MemberChangesBetween(ctx context.Context, from, to int64) ([]MemberChange, error) {
	read := func() ([]MemberChange, error) {
		rows, err := q.query(ctx, `SELECT room_id, state_key, COALESCE(membership, '') FROM events
			WHERE pos > ? AND pos <= ? AND type = 'm.room.member' ORDER BY pos`, from, to)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []MemberChange
		for rows.Next() {
			var m MemberChange
			if err := rows.Scan(&m.RoomID, &m.UserID, &m.Membership); err != nil {
				return nil, err
			}
			out = append(out, m)
		}
		return out, rows.Err()
	}
	return sharedSlice(q, func(m *memo) map[rangeKey][]MemberChange { return m.members }, rangeKey{"events", from, to}, read)
}

// DehydratedDevice is a user's dehydrated device.
type DehydratedDevice struct {
	DeviceID string
	Data     []byte
}

// GetDehydratedDevice loads a user's dehydrated device.
func (q Q) GetDehydratedDevice(ctx context.Context, userID string) (DehydratedDevice, error) {
	var d DehydratedDevice
	err := q.queryRow(ctx, `SELECT device_id, device_data FROM dehydrated_devices WHERE user_id = ?`, userID).Scan(&d.DeviceID, &d.Data)
	return d, notFound(err)
}

// SetDehydratedDevice records a user's dehydrated device; the device row
// must exist.
func (q Q) SetDehydratedDevice(ctx context.Context, userID string, d DehydratedDevice) error {
	_, err := q.exec(ctx, `INSERT INTO dehydrated_devices(user_id, device_id, device_data) VALUES(?, ?, ?)
		ON CONFLICT(user_id) DO UPDATE SET device_id = excluded.device_id, device_data = excluded.device_data`, userID, d.DeviceID, d.Data)
	return err
}

// DropOneTimeKeys deletes every one-time key: done to a restored backup,
// whose keys may have been claimed since it was taken.
func (q Q) DropOneTimeKeys(ctx context.Context) error {
	_, err := q.exec(ctx, `DELETE FROM one_time_keys`)
	return err
}

// OneTimeKeyIDs lists every stored one-time key as "user|device|algorithm:key_id".
func (q Q) OneTimeKeyIDs(ctx context.Context) ([]string, error) {
	return q.strings(ctx, `SELECT user_id || '|' || device_id || '|' || algorithm || ':' || key_id FROM one_time_keys`)
}
