-- Push notifications a gateway did not take, waiting for their next
-- attempt: kept in the file, so a restart drops none. The notification is
-- built again when it is sent (so a redaction in between is honoured),
-- from the event's position and the pusher.
CREATE TABLE push_retries (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_pos  INTEGER NOT NULL,
    user_id    TEXT NOT NULL,
    app_id     TEXT NOT NULL,
    pushkey    TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    next_ts    INTEGER NOT NULL
);
CREATE INDEX push_retries_due ON push_retries(next_ts);
