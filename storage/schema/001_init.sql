-- Redoubt schema, version 1. Never edit a shipped migration: append a new file.

-- The server's own ed25519 key, used to sign events (room versions require
-- signatures even without federation).
CREATE TABLE server_keys (
    key_id      TEXT PRIMARY KEY,
    seed        BLOB NOT NULL,
    created_ts  INTEGER NOT NULL
);

-- Monotonic positions for streams that have no table of their own to number
-- them (account data, device lists, …). Events use their own rowid.
CREATE TABLE stream_positions (
    stream  TEXT PRIMARY KEY,
    pos     INTEGER NOT NULL
);

CREATE TABLE users (
    user_id        TEXT PRIMARY KEY,
    password_hash  TEXT,
    is_admin       INTEGER NOT NULL DEFAULT 0,
    deactivated    INTEGER NOT NULL DEFAULT 0,
    created_ts     INTEGER NOT NULL,
    displayname    TEXT,
    avatar_url     TEXT
);

CREATE TABLE devices (
    user_id       TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    device_id     TEXT NOT NULL,
    display_name  TEXT,
    created_ts    INTEGER NOT NULL,
    last_seen_ts  INTEGER,
    last_seen_ip  TEXT,
    last_seen_ua  TEXT,
    PRIMARY KEY (user_id, device_id)
);

-- Access tokens are stored only as SHA-256 hashes; so are refresh tokens.
CREATE TABLE access_tokens (
    token_hash    BLOB PRIMARY KEY,
    user_id       TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    created_ts    INTEGER NOT NULL,
    expires_ts    INTEGER,
    refresh_hash  BLOB UNIQUE,
    FOREIGN KEY (user_id, device_id) REFERENCES devices(user_id, device_id) ON DELETE CASCADE
);
CREATE INDEX access_tokens_device ON access_tokens(user_id, device_id);

-- Nonces handed out by GET /_synapse/admin/v1/register, each usable once.
CREATE TABLE registration_nonces (
    nonce       TEXT PRIMARY KEY,
    created_ts  INTEGER NOT NULL
);

CREATE TABLE filters (
    user_id    TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    filter_id  INTEGER NOT NULL,
    filter     BLOB NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);

-- Global account data has room_id ''.
CREATE TABLE account_data (
    user_id  TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    room_id  TEXT NOT NULL,
    type     TEXT NOT NULL,
    content  BLOB NOT NULL,
    pos      INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_pos ON account_data(user_id, pos);

CREATE TABLE rooms (
    room_id          TEXT PRIMARY KEY,
    version          TEXT NOT NULL,
    creator          TEXT NOT NULL,
    created_ts       INTEGER NOT NULL,
    -- The head of the room's linear history: the next event's prev_events.
    latest_event_id  TEXT NOT NULL,
    depth            INTEGER NOT NULL
);

-- Every event of every room, in stream order. AUTOINCREMENT so that a
-- position is never reused, even after the newest event is pruned.
CREATE TABLE events (
    pos             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL UNIQUE,
    room_id         TEXT NOT NULL REFERENCES rooms(room_id) ON DELETE CASCADE,
    type            TEXT NOT NULL,
    state_key       TEXT,
    sender          TEXT NOT NULL,
    origin_ts       INTEGER NOT NULL,
    -- For m.room.member events: content.membership, for history visibility.
    membership      TEXT,
    -- The full event as built and signed (after redaction: as redacted).
    json            BLOB NOT NULL,
    -- For state events: the state event this one replaced (unsigned.prev_content).
    replaces        TEXT,
    redacted_by     TEXT,
    -- The sending device and its transaction ID, for idempotent sends and
    -- unsigned.transaction_id. A transaction is scoped to its room, as a
    -- request path is.
    device_id       TEXT,
    txn_id          TEXT
);
CREATE INDEX events_room ON events(room_id, pos);
-- Full indexes, not partial ones: a query whose bound parameters decide
-- whether a partial index applies is re-prepared on every execution.
CREATE INDEX events_state ON events(room_id, type, state_key, pos);
CREATE UNIQUE INDEX events_txn ON events(room_id, sender, device_id, txn_id); -- NULLs are distinct

-- The current state of each room. membership is set for m.room.member rows,
-- so a user's rooms are one index lookup.
CREATE TABLE room_state (
    room_id     TEXT NOT NULL REFERENCES rooms(room_id) ON DELETE CASCADE,
    type        TEXT NOT NULL,
    state_key   TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    pos         INTEGER NOT NULL,
    membership  TEXT,
    PRIMARY KEY (room_id, type, state_key)
);
CREATE INDEX room_state_member ON room_state(state_key, type, membership);

-- Rooms a user has forgotten after leaving them.
CREATE TABLE forgotten_rooms (
    user_id  TEXT NOT NULL,
    room_id  TEXT NOT NULL REFERENCES rooms(room_id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, room_id)
);

CREATE TABLE room_aliases (
    alias    TEXT PRIMARY KEY,
    room_id  TEXT NOT NULL REFERENCES rooms(room_id) ON DELETE CASCADE,
    creator  TEXT NOT NULL
);
CREATE INDEX room_aliases_room ON room_aliases(room_id);
