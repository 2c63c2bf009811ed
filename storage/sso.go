package storage

import (
	"context"
	"database/sql"
)

// ExternalID is an account's identity at one of the identity providers.
type ExternalID struct {
	AuthProvider string `json:"auth_provider"`
	ExternalID   string `json:"external_id"`
}

// UserByExternalID returns the account an identity is linked to.
func (q Q) UserByExternalID(ctx context.Context, provider, externalID string) (string, error) {
	var userID string
	err := q.queryRow(ctx, `SELECT user_id FROM external_ids WHERE auth_provider = ? AND external_id = ?`,
		provider, externalID).Scan(&userID)
	return userID, notFound(err)
}

// ExternalIDs returns an account's linked identities.
func (q Q) ExternalIDs(ctx context.Context, userID string) ([]ExternalID, error) {
	rows, err := q.query(ctx, `SELECT auth_provider, external_id FROM external_ids WHERE user_id = ?
		ORDER BY auth_provider, external_id`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ids := []ExternalID{}
	for rows.Next() {
		var e ExternalID
		if err := rows.Scan(&e.AuthProvider, &e.ExternalID); err != nil {
			return nil, err
		}
		ids = append(ids, e)
	}
	return ids, rows.Err()
}

// AddExternalID links an identity to an account; ErrConflict if it is
// linked already (to any account).
func (q Q) AddExternalID(ctx context.Context, userID string, e ExternalID, ts int64) error {
	_, err := q.exec(ctx, `INSERT INTO external_ids(auth_provider, external_id, user_id, created_ts) VALUES(?, ?, ?, ?)`,
		e.AuthProvider, e.ExternalID, userID, ts)
	return conflict(err)
}

// SetExternalIDs replaces an account's linked identities; ErrConflict if
// one of them is another account's.
func (q Q) SetExternalIDs(ctx context.Context, userID string, ids []ExternalID, ts int64) error {
	if _, err := q.exec(ctx, `DELETE FROM external_ids WHERE user_id = ?`, userID); err != nil {
		return err
	}
	for _, e := range ids {
		if err := q.AddExternalID(ctx, userID, e, ts); err != nil {
			return err
		}
	}
	return nil
}

// SSOLogin is a sign-in under way at a provider.
type SSOLogin struct {
	StateHash    []byte
	AuthProvider string
	Nonce        string
	Verifier     string // PKCE
	// RedirectURL is the client's, for a login; empty for user-interactive
	// auth, which names its session instead.
	RedirectURL string
	UIASession  string
	// BrowserHash is the hash of the cookie of the browser that began it.
	BrowserHash []byte
	CreatedTS   int64
}

// AddSSOLogin records a sign-in under way, forgetting those begun before
// expiredBefore that never came back.
func (q Q) AddSSOLogin(ctx context.Context, l SSOLogin, expiredBefore int64) error {
	if _, err := q.exec(ctx, `DELETE FROM sso_logins WHERE created_ts < ?`, expiredBefore); err != nil {
		return err
	}
	_, err := q.exec(ctx, `INSERT INTO sso_logins(state_hash, auth_provider, nonce, verifier, redirect_url, uia_session, browser_hash, created_ts)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?)`, l.StateHash, l.AuthProvider, l.Nonce, l.Verifier, l.RedirectURL, l.UIASession, l.BrowserHash, l.CreatedTS)
	return conflict(err)
}

// TakeSSOLogin removes and returns the sign-in with a state's hash, if it
// began at or after notBefore: a state is good for one callback.
func (q Q) TakeSSOLogin(ctx context.Context, stateHash []byte, notBefore int64) (SSOLogin, error) {
	l := SSOLogin{StateHash: stateHash}
	err := q.queryRow(ctx, `DELETE FROM sso_logins WHERE state_hash = ?
		RETURNING auth_provider, nonce, verifier, redirect_url, uia_session, browser_hash, created_ts`, stateHash).
		Scan(&l.AuthProvider, &l.Nonce, &l.Verifier, &l.RedirectURL, &l.UIASession, &l.BrowserHash, &l.CreatedTS)
	if err == nil && l.CreatedTS < notBefore {
		err = sql.ErrNoRows
	}
	return l, notFound(err)
}

// LoginToken is an m.login.token not yet used.
type LoginToken struct {
	Hash   []byte
	UserID string
	// AuthProvider and SID are the provider's session the token came from
	// ("" for none).
	AuthProvider, SID string
	// BrowserHash is the browser the sign-in began in.
	BrowserHash []byte
	ExpiresTS   int64
}

// AddLoginToken records a login token, forgetting expired ones.
func (q Q) AddLoginToken(ctx context.Context, t LoginToken, now int64) error {
	if _, err := q.exec(ctx, `DELETE FROM login_tokens WHERE expires_ts < ?`, now); err != nil {
		return err
	}
	_, err := q.exec(ctx, `INSERT INTO login_tokens(token_hash, user_id, auth_provider, sid, browser_hash, expires_ts) VALUES(?, ?, ?, ?, ?, ?)`,
		t.Hash, t.UserID, t.AuthProvider, t.SID, t.BrowserHash, t.ExpiresTS)
	return err
}

// TakeLoginToken removes and returns an unexpired login token.
func (q Q) TakeLoginToken(ctx context.Context, hash []byte, now int64) (LoginToken, error) {
	t := LoginToken{Hash: hash}
	err := q.queryRow(ctx, `DELETE FROM login_tokens WHERE token_hash = ? RETURNING user_id, auth_provider, sid, browser_hash, expires_ts`, hash).
		Scan(&t.UserID, &t.AuthProvider, &t.SID, &t.BrowserHash, &t.ExpiresTS)
	if err == nil && t.ExpiresTS < now {
		err = sql.ErrNoRows
	}
	return t, notFound(err)
}

// AddSSODevice records the provider's session a device was logged in by.
func (q Q) AddSSODevice(ctx context.Context, userID, deviceID, provider, sid string) error {
	_, err := q.exec(ctx, `INSERT OR REPLACE INTO sso_devices(user_id, device_id, auth_provider, sid) VALUES(?, ?, ?, ?)`,
		userID, deviceID, provider, sid)
	return err
}

// SSODevices returns the devices of a user that a provider's session
// logged in.
func (q Q) SSODevices(ctx context.Context, userID, provider, sid string) ([]string, error) {
	return q.strings(ctx, `SELECT device_id FROM sso_devices WHERE auth_provider = ? AND sid = ? AND user_id = ?`,
		provider, sid, userID)
}

// UsersOfSSOSession returns the users a provider's session logged in (one,
// unless the provider reuses session IDs across people).
func (q Q) UsersOfSSOSession(ctx context.Context, provider, sid string) ([]string, error) {
	return q.strings(ctx, `SELECT DISTINCT user_id FROM sso_devices WHERE auth_provider = ? AND sid = ?`, provider, sid)
}

// UIASSO is a user-interactive auth session that signing in at a
// provider may complete.
type UIASSO struct {
	Session, UserID, Description string
	Completed                    bool
}

// StartUIASSO records a session for a user and what it is for; false if
// the session is another user's.
func (q Q) StartUIASSO(ctx context.Context, u UIASSO, now, expires int64) (bool, error) {
	if _, err := q.exec(ctx, `DELETE FROM uia_sso WHERE expires_ts < ?`, now); err != nil {
		return false, err
	}
	res, err := q.exec(ctx, `INSERT INTO uia_sso(session, user_id, description, expires_ts) VALUES(?, ?, ?, ?)
		ON CONFLICT(session) DO UPDATE SET description = excluded.description, expires_ts = excluded.expires_ts
		WHERE user_id = excluded.user_id AND completed = 0`, u.Session, u.UserID, u.Description, expires)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// UIASSOSession returns an unexpired session.
func (q Q) UIASSOSession(ctx context.Context, session string, now int64) (UIASSO, error) {
	u := UIASSO{Session: session}
	err := q.queryRow(ctx, `SELECT user_id, description, completed FROM uia_sso WHERE session = ? AND expires_ts >= ?`,
		session, now).Scan(&u.UserID, &u.Description, &u.Completed)
	return u, notFound(err)
}

// CompleteUIASSO marks a session completed by its own user's sign-in.
func (q Q) CompleteUIASSO(ctx context.Context, session, userID string, now int64) error {
	return q.execOne(ctx, `UPDATE uia_sso SET completed = 1 WHERE session = ? AND user_id = ? AND expires_ts >= ?`, session, userID, now)
}

// UseUIASSO uses up a completed session of a user: true if there was one.
func (q Q) UseUIASSO(ctx context.Context, session, userID string, now int64) (bool, error) {
	res, err := q.exec(ctx, `DELETE FROM uia_sso WHERE session = ? AND user_id = ? AND completed = 1 AND expires_ts >= ?`, session, userID, now)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// SSORefresh is the refresh token of an identity's latest sign-in at a
// provider that is asked again at refresh.
type SSORefresh struct {
	ExternalID
	UserID       string
	RefreshToken string
	CheckedTS    int64
}

// SetSSORefresh keeps an identity's refresh token at its provider.
func (q Q) SetSSORefresh(ctx context.Context, r SSORefresh) error {
	_, err := q.exec(ctx, `INSERT OR REPLACE INTO sso_refresh(auth_provider, external_id, user_id, refresh_token, checked_ts)
		VALUES(?, ?, ?, ?, ?)`, r.AuthProvider, r.ExternalID.ExternalID, r.UserID, r.RefreshToken, r.CheckedTS)
	return err
}

// SSORefreshOf returns an account's refresh tokens at a provider.
func (q Q) SSORefreshOf(ctx context.Context, userID, provider string) ([]SSORefresh, error) {
	rows, err := q.query(ctx, `SELECT external_id, refresh_token, checked_ts FROM sso_refresh WHERE user_id = ? AND auth_provider = ?`,
		userID, provider)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SSORefresh
	for rows.Next() {
		r := SSORefresh{UserID: userID, ExternalID: ExternalID{AuthProvider: provider}}
		if err := rows.Scan(&r.ExternalID.ExternalID, &r.RefreshToken, &r.CheckedTS); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// DeleteSSORefresh forgets an identity's refresh token.
func (q Q) DeleteSSORefresh(ctx context.Context, provider, externalID string) error {
	_, err := q.exec(ctx, `DELETE FROM sso_refresh WHERE auth_provider = ? AND external_id = ?`, provider, externalID)
	return err
}

// ClaimSSOCheck marks an identity's refresh token as being checked now,
// if nobody did since checkedTS: true if this caller is the one to ask
// the provider.
func (q Q) ClaimSSOCheck(ctx context.Context, provider, externalID string, checkedTS, now int64) (bool, error) {
	res, err := q.exec(ctx, `UPDATE sso_refresh SET checked_ts = ? WHERE auth_provider = ? AND external_id = ? AND checked_ts = ?`,
		now, provider, externalID, checkedTS)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
