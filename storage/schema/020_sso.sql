-- Sign-in with the organisation's OpenID providers.

-- An account's identities at the providers: who "sub" is at "auth_provider".
CREATE TABLE external_ids (
    auth_provider TEXT NOT NULL,
    external_id   TEXT NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    created_ts    INTEGER NOT NULL,
    PRIMARY KEY (auth_provider, external_id)
) WITHOUT ROWID;
CREATE INDEX external_ids_user ON external_ids(user_id);

-- A sign-in under way at a provider, found again by the hash of its state
-- when the browser comes back: what the callback checks (the hash of the
-- cookie of the browser that began it among them) and where it goes.
CREATE TABLE sso_logins (
    state_hash   BLOB PRIMARY KEY,
    auth_provider TEXT NOT NULL,
    nonce        TEXT NOT NULL,
    verifier     TEXT NOT NULL,
    redirect_url TEXT NOT NULL,
    uia_session  TEXT NOT NULL,
    browser_hash BLOB NOT NULL,
    created_ts   INTEGER NOT NULL
) WITHOUT ROWID;

-- m.login.token: short-lived, used once, kept as hashes. A token made by a
-- provider's sign-in carries the provider's session, so the devices it
-- logs in end when the provider says that session ended; a token for the
-- sign-in pages also names the browser it is for.
CREATE TABLE login_tokens (
    token_hash    BLOB PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    auth_provider TEXT NOT NULL,
    sid           TEXT NOT NULL,
    browser_hash  BLOB NOT NULL,
    expires_ts    INTEGER NOT NULL
) WITHOUT ROWID;

-- The devices a provider's session logged in.
CREATE TABLE sso_devices (
    user_id       TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    auth_provider TEXT NOT NULL,
    sid           TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices(user_id, device_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX sso_devices_sid ON sso_devices(auth_provider, sid);

-- User-interactive auth sessions that may be completed by signing in at a
-- provider: whose, for what (shown on the page before the provider), and
-- whether that user signed in. A completed session is used once.
CREATE TABLE uia_sso (
    session     TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    description TEXT NOT NULL,
    completed   INTEGER NOT NULL DEFAULT 0,
    expires_ts  INTEGER NOT NULL
) WITHOUT ROWID;

-- For providers whose sessions are checked at refresh: the refresh token
-- of an identity's latest sign-in, and when the provider last vouched for
-- it. A refusal ends the account's sessions.
CREATE TABLE sso_refresh (
    auth_provider TEXT NOT NULL,
    external_id   TEXT NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    refresh_token TEXT NOT NULL,
    checked_ts    INTEGER NOT NULL,
    PRIMARY KEY (auth_provider, external_id)
) WITHOUT ROWID;
CREATE INDEX sso_refresh_user ON sso_refresh(user_id);
