package storage

import (
	"context"
	"database/sql"
	"errors"
	"slices"
)

// User is one account of the tenant.
type User struct {
	UserID       string
	PasswordHash string
	IsAdmin      bool
	Deactivated  bool
	CreatedTS    int64
	DisplayName  string
	AvatarURL    string
}

// CreateUser inserts a user; ErrConflict if the ID is taken.
func (q Q) CreateUser(ctx context.Context, u User) error {
	_, err := q.exec(ctx, `INSERT INTO users(user_id, password_hash, is_admin, created_ts, displayname)
		VALUES(?, ?, ?, ?, ?)`, u.UserID, nullString(u.PasswordHash), u.IsAdmin, u.CreatedTS, nullString(u.DisplayName))
	return conflict(err)
}

// User loads a user by ID.
func (q Q) User(ctx context.Context, userID string) (User, error) {
	var u User
	var pw, dn, av sql.NullString
	err := q.queryRow(ctx, `SELECT user_id, password_hash, is_admin, deactivated, created_ts, displayname, avatar_url
		FROM users WHERE user_id = ?`, userID).Scan(&u.UserID, &pw, &u.IsAdmin, &u.Deactivated, &u.CreatedTS, &dn, &av)
	u.PasswordHash, u.DisplayName, u.AvatarURL = pw.String, dn.String, av.String
	return u, notFound(err)
}

// UserExists reports whether a user ID is taken (deactivated accounts included).
func (q Q) UserExists(ctx context.Context, userID string) (bool, error) {
	var one int
	err := q.queryRow(ctx, `SELECT 1 FROM users WHERE user_id = ?`, userID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// SetPasswordHash replaces a user's password hash.
func (q Q) SetPasswordHash(ctx context.Context, userID, hash string) error {
	return q.execOne(ctx, `UPDATE users SET password_hash = ? WHERE user_id = ?`, hash, userID)
}

// SetProfile sets a user's display name and avatar URL ("" clears).
func (q Q) SetProfile(ctx context.Context, userID, displayName, avatarURL string) error {
	return q.execOne(ctx, `UPDATE users SET displayname = ?, avatar_url = ? WHERE user_id = ?`,
		nullString(displayName), nullString(avatarURL), userID)
}

// DeactivateUser marks a user deactivated, clears their password and profile
// and removes their devices (and with them their tokens).
func (q Q) DeactivateUser(ctx context.Context, userID string) error {
	if err := q.execOne(ctx, `UPDATE users SET deactivated = 1, password_hash = NULL, displayname = NULL, avatar_url = NULL
		WHERE user_id = ?`, userID); err != nil {
		return err
	}
	// A closed account's phones get no more notifications.
	if _, err := q.exec(ctx, `DELETE FROM pushers WHERE user_id = ?`, userID); err != nil {
		return err
	}
	return q.deleteDevices(ctx, userID, `DELETE FROM devices WHERE user_id = ?`, userID)
}

// deleteDevices runs a device deletion and, if it removed any, records the
// change in the device list stream, so other users learn of it.
func (q Q) deleteDevices(ctx context.Context, userID, query string, args ...any) error {
	deleted, err := q.strings(ctx, query+` RETURNING device_id`, args...)
	if err != nil || len(deleted) == 0 {
		return err
	}
	// A device's pushers go with it, and its own notification settings
	// (MSC3890), as deletions its user's other devices learn of.
	for _, id := range deleted {
		if _, err := q.exec(ctx, `DELETE FROM pushers WHERE user_id = ? AND device_id = ?`, userID, id); err != nil {
			return err
		}
		for _, prefix := range []string{"org.matrix.msc3890.local_notification_settings.", "m.local_notification_settings."} {
			c, err := q.AccountData(ctx, userID, "", prefix+id)
			if errors.Is(err, ErrNotFound) || string(c) == "{}" {
				continue
			} else if err != nil {
				return err
			}
			if _, err := q.SetAccountData(ctx, userID, "", prefix+id, []byte("{}")); err != nil {
				return err
			}
		}
	}
	return q.AddDeviceListChange(ctx, userID)
}

// Device is one login of a user.
type Device struct {
	UserID      string
	DeviceID    string
	DisplayName string
	CreatedTS   int64
	LastSeenTS  int64
	LastSeenIP  string
	LastSeenUA  string
}

// UpsertDevice creates a device, or keeps an existing one of the same ID
// (a login may name a device to reuse), setting its display name if given.
func (q Q) UpsertDevice(ctx context.Context, d Device) error {
	_, err := q.exec(ctx, `INSERT INTO devices(user_id, device_id, display_name, created_ts)
		VALUES(?, ?, ?, ?)
		ON CONFLICT(user_id, device_id) DO UPDATE SET display_name = COALESCE(excluded.display_name, display_name)`,
		d.UserID, d.DeviceID, nullString(d.DisplayName), d.CreatedTS)
	return err
}

const deviceCols = `user_id, device_id, display_name, created_ts, last_seen_ts, last_seen_ip, last_seen_ua`

func scanDevice(s interface{ Scan(...any) error }) (Device, error) {
	var d Device
	var dn, ip, ua sql.NullString
	var seen sql.NullInt64
	err := s.Scan(&d.UserID, &d.DeviceID, &dn, &d.CreatedTS, &seen, &ip, &ua)
	d.DisplayName, d.LastSeenTS, d.LastSeenIP, d.LastSeenUA = dn.String, seen.Int64, ip.String, ua.String
	return d, err
}

// Device loads one device of a user.
func (q Q) Device(ctx context.Context, userID, deviceID string) (Device, error) {
	d, err := scanDevice(q.queryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE user_id = ? AND device_id = ?`, userID, deviceID))
	return d, notFound(err)
}

// Devices lists a user's devices.
func (q Q) Devices(ctx context.Context, userID string) ([]Device, error) {
	rows, err := q.query(ctx, `SELECT `+deviceCols+` FROM devices WHERE user_id = ? ORDER BY created_ts, device_id`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// SetDeviceName renames a device.
func (q Q) SetDeviceName(ctx context.Context, userID, deviceID, name string) error {
	return q.execOne(ctx, `UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?`, name, userID, deviceID)
}

// TouchDevice records when and from where a device was last seen.
func (q Q) TouchDevice(ctx context.Context, userID, deviceID string, ts int64, ip, ua string) error {
	_, err := q.exec(ctx, `UPDATE devices SET last_seen_ts = ?, last_seen_ip = ?, last_seen_ua = ?
		WHERE user_id = ? AND device_id = ?`, ts, nullString(ip), nullString(ua), userID, deviceID)
	return err
}

// DeleteDevices removes devices (and, by cascade, their tokens). Unknown IDs
// are ignored.
func (q Q) DeleteDevices(ctx context.Context, userID string, deviceIDs []string) error {
	for _, id := range deviceIDs {
		if err := q.deleteDevices(ctx, userID, `DELETE FROM devices WHERE user_id = ? AND device_id = ?`, userID, id); err != nil {
			return err
		}
	}
	return nil
}

// DeleteDevicesExcept removes all of a user's devices but one ("" keeps none).
func (q Q) DeleteDevicesExcept(ctx context.Context, userID, keep string) error {
	return q.deleteDevices(ctx, userID, `DELETE FROM devices WHERE user_id = ? AND device_id != ?`, userID, keep)
}

// AccessToken is a stored token: only hashes are kept.
type AccessToken struct {
	Hash        []byte
	UserID      string
	DeviceID    string
	CreatedTS   int64
	ExpiresTS   int64 // 0: never
	RefreshHash []byte
}

// AddAccessToken stores a token's hash.
func (q Q) AddAccessToken(ctx context.Context, t AccessToken) error {
	var exp sql.NullInt64
	if t.ExpiresTS > 0 {
		exp = sql.NullInt64{Int64: t.ExpiresTS, Valid: true}
	}
	_, err := q.exec(ctx, `INSERT INTO access_tokens(token_hash, user_id, device_id, created_ts, expires_ts, refresh_hash)
		VALUES(?, ?, ?, ?, ?, ?)`, t.Hash, t.UserID, t.DeviceID, t.CreatedTS, exp, t.RefreshHash)
	return conflict(err)
}

// Session is what an access token authenticates.
type Session struct {
	UserID     string
	DeviceID   string
	ExpiresTS  int64
	IsAdmin    bool
	LastSeenTS int64
	LastSeenIP string
}

// SessionByToken looks up a token hash. Deactivated users have no devices,
// so their tokens are gone already.
func (q Q) SessionByToken(ctx context.Context, hash []byte) (Session, error) {
	var s Session
	var exp, seen sql.NullInt64
	var ip sql.NullString
	err := q.queryRow(ctx, `SELECT t.user_id, t.device_id, t.expires_ts, u.is_admin, d.last_seen_ts, d.last_seen_ip
		FROM access_tokens t
		JOIN devices d ON d.user_id = t.user_id AND d.device_id = t.device_id
		JOIN users u ON u.user_id = t.user_id
		WHERE t.token_hash = ? AND u.deactivated = 0`, hash).Scan(&s.UserID, &s.DeviceID, &exp, &s.IsAdmin, &seen, &ip)
	s.ExpiresTS, s.LastSeenTS, s.LastSeenIP = exp.Int64, seen.Int64, ip.String
	return s, notFound(err)
}

// TokenByRefresh finds the access token a refresh token belongs to.
func (q Q) TokenByRefresh(ctx context.Context, refreshHash []byte) (AccessToken, error) {
	var t AccessToken
	var exp sql.NullInt64
	err := q.queryRow(ctx, `SELECT token_hash, user_id, device_id, created_ts, expires_ts, refresh_hash
		FROM access_tokens WHERE refresh_hash = ?`, refreshHash).Scan(&t.Hash, &t.UserID, &t.DeviceID, &t.CreatedTS, &exp, &t.RefreshHash)
	t.ExpiresTS = exp.Int64
	return t, notFound(err)
}

// DeleteAccessToken removes one token.
func (q Q) DeleteAccessToken(ctx context.Context, hash []byte) error {
	_, err := q.exec(ctx, `DELETE FROM access_tokens WHERE token_hash = ?`, hash)
	return err
}

// AddFilter stores a filter and returns its per-user ID.
func (q Q) AddFilter(ctx context.Context, userID string, filter []byte) (int64, error) {
	var id int64
	err := q.queryRow(ctx, `INSERT INTO filters(user_id, filter_id, filter)
		VALUES(?, (SELECT COALESCE(MAX(filter_id), -1) + 1 FROM filters WHERE user_id = ?), ?)
		RETURNING filter_id`, userID, userID, filter).Scan(&id)
	return id, err
}

// Filter loads a stored filter.
func (q Q) Filter(ctx context.Context, userID string, filterID int64) ([]byte, error) {
	var f []byte
	err := q.queryRow(ctx, `SELECT filter FROM filters WHERE user_id = ? AND filter_id = ?`, userID, filterID).Scan(&f)
	return f, notFound(err)
}

// SetAccountData stores global (roomID "") or per-room account data.
func (q Q) SetAccountData(ctx context.Context, userID, roomID, typ string, content []byte) (int64, error) {
	pos, err := q.nextPos(ctx, "account_data")
	if err != nil {
		return 0, err
	}
	_, err = q.exec(ctx, `INSERT INTO account_data(user_id, room_id, type, content, pos) VALUES(?, ?, ?, ?, ?)
		ON CONFLICT(user_id, room_id, type) DO UPDATE SET content = excluded.content, pos = excluded.pos`,
		userID, roomID, typ, content, pos)
	return pos, err
}

// AccountData loads one account data entry. Global account data, in a
// snapshot of ReadPositioned, comes from memory while sync_epoch has not
// moved since it was read: every woken /sync that shows events reads the
// users its user ignores. (Room account data does not move the counter:
// every read marker is some.)
func (q Q) AccountData(ctx context.Context, userID, roomID, typ string) ([]byte, error) {
	if !q.positioned || roomID != "" {
		return q.accountData(ctx, userID, roomID, typ)
	}
	c, err := q.db.accountData.read(userID+"\x00"+typ, q.syncEpoch, func() ([]byte, error) {
		c, err := q.accountData(ctx, userID, roomID, typ)
		if errors.Is(err, ErrNotFound) {
			return nil, nil // kept as nil: there is none
		}
		return c, err
	})
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, ErrNotFound
	}
	return slices.Clone(c), nil
}

func (q Q) accountData(ctx context.Context, userID, roomID, typ string) ([]byte, error) {
	var c []byte
	err := q.queryRow(ctx, `SELECT content FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?`,
		userID, roomID, typ).Scan(&c)
	return c, notFound(err)
}

// ServerKey returns the server's signing key seed, creating it with gen on
// first use.
func (q Q) ServerKey(ctx context.Context, gen func() (keyID string, seed []byte, ts int64)) (string, []byte, error) {
	var id string
	var seed []byte
	err := q.queryRow(ctx, `SELECT key_id, seed FROM server_keys ORDER BY created_ts LIMIT 1`).Scan(&id, &seed)
	if errors.Is(err, sql.ErrNoRows) {
		var ts int64
		id, seed, ts = gen()
		_, err = q.exec(ctx, `INSERT INTO server_keys(key_id, seed, created_ts) VALUES(?, ?, ?)`, id, seed, ts)
	}
	return id, seed, err
}

// execOne runs a statement that must change exactly one row.
func (q Q) execOne(ctx context.Context, query string, args ...any) error {
	res, err := q.exec(ctx, query, args...)
	if err != nil {
		return conflict(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

func nullString(s string) sql.NullString {
	return sql.NullString{String: s, Valid: s != ""}
}

// CountUsers counts the accounts, deactivated ones included.
func (q Q) CountUsers(ctx context.Context) (int64, error) {
	var n int64
	err := q.queryRow(ctx, `SELECT COUNT(*) FROM users`).Scan(&n)
	return n, err
}
