-- Sync: receipts, presence and the notifications push rules produce.

-- The latest receipt of each kind per user, room and thread ('' for the
-- main timeline).
CREATE TABLE receipts (
    room_id    TEXT NOT NULL REFERENCES rooms(room_id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    type       TEXT NOT NULL,
    thread_id  TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    event_pos  INTEGER NOT NULL,
    ts         INTEGER NOT NULL,
    pos        INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id, type, thread_id)
);
CREATE INDEX receipts_pos ON receipts(pos);

CREATE TABLE presence (
    user_id         TEXT PRIMARY KEY REFERENCES users(user_id) ON DELETE CASCADE,
    state           TEXT NOT NULL,
    status_msg      TEXT,
    last_active_ts  INTEGER NOT NULL,
    pos             INTEGER NOT NULL
);
CREATE INDEX presence_pos ON presence(pos);

-- What push rules decided for each user about each event that notifies:
-- the source of unread counts and /notifications. Deleted with the event.
CREATE TABLE push_actions (
    user_id    TEXT NOT NULL,
    event_pos  INTEGER NOT NULL REFERENCES events(pos) ON DELETE CASCADE,
    room_id    TEXT NOT NULL,
    thread_id  TEXT NOT NULL,
    highlight  INTEGER NOT NULL,
    actions    BLOB NOT NULL,
    ts         INTEGER NOT NULL,
    PRIMARY KEY (user_id, event_pos)
);
CREATE INDEX push_actions_room ON push_actions(user_id, room_id, event_pos);
CREATE INDEX push_actions_event ON push_actions(event_pos);
