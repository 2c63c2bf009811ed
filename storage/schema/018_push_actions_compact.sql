-- Push actions, compact: they are the largest cost of an event in a busy
-- room (a row per member it notifies). The rows are kept in the order
-- they are written (by event position, so pages fill), with one index, for
-- unread counts, that holds all they read; no rowid; the time is the
-- event's (events.origin_ts), not a copy; the commonest actions,
-- ["notify"], are stored as NULL.
CREATE TABLE push_actions_compact (
    event_pos  INTEGER NOT NULL REFERENCES events(pos) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    room_id    TEXT NOT NULL,
    thread_id  TEXT NOT NULL,
    highlight  INTEGER NOT NULL,
    actions    BLOB,
    PRIMARY KEY (event_pos, user_id)
) WITHOUT ROWID;
INSERT INTO push_actions_compact(event_pos, user_id, room_id, thread_id, highlight, actions)
    SELECT event_pos, user_id, room_id, thread_id, highlight, CASE WHEN actions = CAST('["notify"]' AS BLOB) THEN NULL ELSE actions END
    FROM push_actions ORDER BY event_pos, user_id;
DROP TABLE push_actions;
ALTER TABLE push_actions_compact RENAME TO push_actions;
CREATE INDEX push_actions_unread ON push_actions(user_id, room_id, event_pos, highlight, thread_id);
