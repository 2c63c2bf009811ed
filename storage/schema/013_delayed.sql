-- Delayed events (MSC4140): events a client scheduled, sent by the server
-- when their time comes unless cancelled; they survive restarts.
CREATE TABLE delayed_events (
    delay_id   TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    device_id  TEXT NOT NULL,
    room_id    TEXT NOT NULL,
    type       TEXT NOT NULL,
    state_key  TEXT,           -- NULL for a message event
    content    BLOB NOT NULL,
    delay_ms   INTEGER NOT NULL,
    send_ts    INTEGER NOT NULL
);
CREATE INDEX delayed_events_due ON delayed_events(send_ts);
CREATE INDEX delayed_events_user ON delayed_events(user_id, send_ts);

-- Which delay a client's transaction made, so that a retried request gets
-- the same delay_id, even once the event was sent or cancelled.
CREATE TABLE delayed_event_txns (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    txn_id     TEXT NOT NULL,
    delay_id   TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices(user_id, device_id) ON DELETE CASCADE
);
