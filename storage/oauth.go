package storage

import (
	"context"
)

// AddOAuthClient stores a registered client's metadata.
func (q Q) AddOAuthClient(ctx context.Context, clientID string, metadata []byte, ts int64) error {
	_, err := q.exec(ctx, `INSERT INTO oauth_clients(client_id, metadata, created_ts) VALUES(?, ?, ?)`, clientID, metadata, ts)
	return conflict(err)
}

// OAuthClient returns a registered client's metadata.
func (q Q) OAuthClient(ctx context.Context, clientID string) ([]byte, error) {
	var m []byte
	err := q.queryRow(ctx, `SELECT metadata FROM oauth_clients WHERE client_id = ?`, clientID).Scan(&m)
	return m, notFound(err)
}

// OAuthRequest is an authorization request under way.
type OAuthRequest struct {
	ID string
	// Request is the request as the client made it (JSON).
	Request []byte
	// UserID, AuthTime and the provider's session are set once the user
	// allowed the request.
	UserID            string
	AuthTime          int64
	AuthProvider, SID string
	CreatedTS         int64
}

// AddOAuthRequest records an authorization request, forgetting those
// begun before expiredBefore.
func (q Q) AddOAuthRequest(ctx context.Context, r OAuthRequest, expiredBefore int64) error {
	if _, err := q.exec(ctx, `DELETE FROM oauth_requests WHERE created_ts < ?`, expiredBefore); err != nil {
		return err
	}
	_, err := q.exec(ctx, `INSERT INTO oauth_requests(id, request, created_ts) VALUES(?, ?, ?)`, r.ID, r.Request, r.CreatedTS)
	return conflict(err)
}

const oauthRequestCols = `id, request, user_id, auth_time, auth_provider, sid, created_ts`

func scanOAuthRequest(row row) (OAuthRequest, error) {
	var r OAuthRequest
	err := row.Scan(&r.ID, &r.Request, &r.UserID, &r.AuthTime, &r.AuthProvider, &r.SID, &r.CreatedTS)
	return r, notFound(err)
}

// OAuthRequestByID returns an authorization request begun at or after
// notBefore.
func (q Q) OAuthRequestByID(ctx context.Context, id string, notBefore int64) (OAuthRequest, error) {
	return scanOAuthRequest(q.queryRow(ctx, `SELECT `+oauthRequestCols+` FROM oauth_requests WHERE id = ? AND created_ts >= ?`, id, notBefore))
}

// OAuthRequestByCode returns the authorization request a code answered.
func (q Q) OAuthRequestByCode(ctx context.Context, codeHash []byte, notBefore int64) (OAuthRequest, error) {
	return scanOAuthRequest(q.queryRow(ctx, `SELECT `+oauthRequestCols+` FROM oauth_requests WHERE code_hash = ? AND created_ts >= ?`, codeHash, notBefore))
}

// AllowOAuthRequest records that a user allowed an authorization request.
func (q Q) AllowOAuthRequest(ctx context.Context, id, userID string, authTime int64, provider, sid string) error {
	return q.execOne(ctx, `UPDATE oauth_requests SET user_id = ?, auth_time = ?, auth_provider = ?, sid = ? WHERE id = ? AND user_id = ''`,
		userID, authTime, provider, sid, id)
}

// SetOAuthCode records the hash of the code an allowed request was
// answered with.
func (q Q) SetOAuthCode(ctx context.Context, id string, codeHash []byte) error {
	return q.execOne(ctx, `UPDATE oauth_requests SET code_hash = ? WHERE id = ? AND user_id != '' AND code_hash IS NULL`, codeHash, id)
}

// DeleteOAuthRequest forgets an authorization request (its code was used).
func (q Q) DeleteOAuthRequest(ctx context.Context, id string) error {
	return q.execOne(ctx, `DELETE FROM oauth_requests WHERE id = ?`, id)
}

// OAuthGrant is what a device logged in through the API was granted.
type OAuthGrant struct {
	UserID, DeviceID, ClientID string
	Scopes                     string // space-separated
	AuthTime                   int64
}

// SetOAuthGrant records (or replaces) a device's grant.
func (q Q) SetOAuthGrant(ctx context.Context, g OAuthGrant) error {
	_, err := q.exec(ctx, `INSERT OR REPLACE INTO oauth_grants(user_id, device_id, client_id, scopes, auth_time) VALUES(?, ?, ?, ?, ?)`,
		g.UserID, g.DeviceID, g.ClientID, g.Scopes, g.AuthTime)
	return err
}

// OAuthGrantOf returns a device's grant.
func (q Q) OAuthGrantOf(ctx context.Context, userID, deviceID string) (OAuthGrant, error) {
	g := OAuthGrant{UserID: userID, DeviceID: deviceID}
	err := q.queryRow(ctx, `SELECT client_id, scopes, auth_time FROM oauth_grants WHERE user_id = ? AND device_id = ?`,
		userID, deviceID).Scan(&g.ClientID, &g.Scopes, &g.AuthTime)
	return g, notFound(err)
}

// UseRefreshToken records a refresh token exchanged, forgetting those
// recorded before expiredBefore.
func (q Q) UseRefreshToken(ctx context.Context, hash []byte, userID, deviceID string, now, expiredBefore int64) error {
	if _, err := q.exec(ctx, `DELETE FROM oauth_used_refresh WHERE used_ts < ?`, expiredBefore); err != nil {
		return err
	}
	_, err := q.exec(ctx, `INSERT OR IGNORE INTO oauth_used_refresh(token_hash, user_id, device_id, used_ts) VALUES(?, ?, ?, ?)`,
		hash, userID, deviceID, now)
	return err
}

// UsedRefreshToken returns the device whose refresh token, already
// exchanged, this is.
func (q Q) UsedRefreshToken(ctx context.Context, hash []byte) (userID, deviceID string, err error) {
	err = q.queryRow(ctx, `SELECT user_id, device_id FROM oauth_used_refresh WHERE token_hash = ?`, hash).Scan(&userID, &deviceID)
	return userID, deviceID, notFound(err)
}

// BrowserSession is a browser signed in to the authorization server's
// pages.
type BrowserSession struct {
	Hash              []byte
	UserID            string
	AuthProvider, SID string
	AuthTime          int64
	ExpiresTS         int64
}

// AddBrowserSession records a signed-in browser, forgetting expired ones.
func (q Q) AddBrowserSession(ctx context.Context, s BrowserSession, now int64) error {
	if _, err := q.exec(ctx, `DELETE FROM oauth_browser_sessions WHERE expires_ts < ?`, now); err != nil {
		return err
	}
	_, err := q.exec(ctx, `INSERT INTO oauth_browser_sessions(token_hash, user_id, auth_provider, sid, auth_time, expires_ts) VALUES(?, ?, ?, ?, ?, ?)`,
		s.Hash, s.UserID, s.AuthProvider, s.SID, s.AuthTime, s.ExpiresTS)
	return err
}

// BrowserSessionOf returns an unexpired browser session of an active
// account.
func (q Q) BrowserSessionOf(ctx context.Context, hash []byte, now int64) (BrowserSession, error) {
	s := BrowserSession{Hash: hash}
	err := q.queryRow(ctx, `SELECT b.user_id, b.auth_provider, b.sid, b.auth_time, b.expires_ts FROM oauth_browser_sessions b
		JOIN users u ON u.user_id = b.user_id
		WHERE b.token_hash = ? AND b.expires_ts >= ? AND u.deactivated = 0`, hash, now).
		Scan(&s.UserID, &s.AuthProvider, &s.SID, &s.AuthTime, &s.ExpiresTS)
	return s, notFound(err)
}

// DeleteBrowserSession signs a browser out.
func (q Q) DeleteBrowserSession(ctx context.Context, hash []byte) error {
	_, err := q.exec(ctx, `DELETE FROM oauth_browser_sessions WHERE token_hash = ?`, hash)
	return err
}

// DeleteBrowserSessionsOf signs out the browsers of a user, or of one of
// their sessions at a provider (sid not empty).
func (q Q) DeleteBrowserSessionsOf(ctx context.Context, userID, provider, sid string) error {
	_, err := q.exec(ctx, `DELETE FROM oauth_browser_sessions WHERE user_id = ? AND (? = '' OR (auth_provider = ? AND sid = ?))`,
		userID, sid, provider, sid)
	return err
}

// OAuthKey returns the key ID tokens are signed with.
func (q Q) OAuthKey(ctx context.Context) (string, []byte, error) {
	var id string
	var der []byte
	err := q.queryRow(ctx, `SELECT key_id, private_key FROM oauth_keys ORDER BY created_ts LIMIT 1`).Scan(&id, &der)
	return id, der, notFound(err)
}

// AddOAuthKey stores the signing key unless one is there (another process
// made it first), and returns the one kept.
func (q Q) AddOAuthKey(ctx context.Context, keyID string, der []byte, ts int64) (string, []byte, error) {
	if id, kept, err := q.OAuthKey(ctx); err == nil {
		return id, kept, nil
	}
	_, err := q.exec(ctx, `INSERT INTO oauth_keys(key_id, private_key, created_ts) VALUES(?, ?, ?)`, keyID, der, ts)
	return keyID, der, err
}
