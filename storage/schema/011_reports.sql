-- Events users reported to the administrators.
CREATE TABLE event_reports (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    ts        INTEGER NOT NULL,
    reporter  TEXT NOT NULL,
    room_id   TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    reason    TEXT,
    score     INTEGER
);
