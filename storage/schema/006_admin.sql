-- Administration: the audit log, registration tokens, blocked (deleted)
-- rooms, server notice rooms and small facts about the instance.
ALTER TABLE users ADD COLUMN erased INTEGER NOT NULL DEFAULT 0;

-- Every admin action: who, what, to whom, when. Never message content.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    ts      INTEGER NOT NULL,
    admin   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    detail  TEXT
);

CREATE TABLE registration_tokens (
    token         TEXT PRIMARY KEY,
    uses_allowed  INTEGER,
    pending       INTEGER NOT NULL DEFAULT 0,
    completed     INTEGER NOT NULL DEFAULT 0,
    expiry_time   INTEGER
);

CREATE TABLE blocked_rooms (
    room_id     TEXT PRIMARY KEY,
    blocked_by  TEXT NOT NULL,
    ts          INTEGER NOT NULL
);

CREATE TABLE server_notice_rooms (
    user_id  TEXT PRIMARY KEY,
    room_id  TEXT NOT NULL
);

CREATE TABLE instance_state (
    key    TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);
