-- Matrix's OAuth 2.0 API: Redoubt as its own authorization server.

-- Clients registered by dynamic client registration: the metadata as
-- accepted.
CREATE TABLE oauth_clients (
    client_id  TEXT PRIMARY KEY,
    metadata   TEXT NOT NULL,
    created_ts INTEGER NOT NULL
) WITHOUT ROWID;

-- Authorization requests under way: the request as the client made it,
-- then who allowed it, then the hash of the code it was answered with.
CREATE TABLE oauth_requests (
    id            TEXT PRIMARY KEY,
    request       TEXT NOT NULL,
    user_id       TEXT NOT NULL DEFAULT '',
    auth_time     INTEGER NOT NULL DEFAULT 0,
    auth_provider TEXT NOT NULL DEFAULT '',
    sid           TEXT NOT NULL DEFAULT '',
    code_hash     BLOB UNIQUE,
    created_ts    INTEGER NOT NULL
) WITHOUT ROWID;

-- The grant behind a device logged in through the API: its client and
-- scopes, for refreshing and revoking.
CREATE TABLE oauth_grants (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scopes    TEXT NOT NULL,
    auth_time INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices(user_id, device_id) ON DELETE CASCADE
) WITHOUT ROWID;

-- Refresh tokens already exchanged. One presented again was copied: the
-- session it belongs to ends.
CREATE TABLE oauth_used_refresh (
    token_hash BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    used_ts    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX oauth_used_refresh_ts ON oauth_used_refresh(used_ts);

-- Signed-in browsers of the authorization server's pages.
CREATE TABLE oauth_browser_sessions (
    token_hash    BLOB PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    auth_provider TEXT NOT NULL,
    sid           TEXT NOT NULL,
    auth_time     INTEGER NOT NULL,
    expires_ts    INTEGER NOT NULL
) WITHOUT ROWID;

-- The key ID tokens are signed with.
CREATE TABLE oauth_keys (
    key_id      TEXT PRIMARY KEY,
    private_key BLOB NOT NULL,
    created_ts  INTEGER NOT NULL
) WITHOUT ROWID;
