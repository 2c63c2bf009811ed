-- Relations between events (m.relates_to: threads, edits, reactions,
-- replies in threads): one row per relating event, deleted with it, and
-- by redaction (which removes the relation from the event's content).
CREATE TABLE event_relations (
    event_pos   INTEGER PRIMARY KEY REFERENCES events(pos) ON DELETE CASCADE,
    room_id     TEXT NOT NULL,
    relates_to  TEXT NOT NULL,
    rel_type    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    sender      TEXT NOT NULL
);
CREATE INDEX event_relations_parent ON event_relations(relates_to, rel_type, event_pos);
CREATE INDEX event_relations_threads ON event_relations(room_id, rel_type, event_pos);

INSERT INTO event_relations(event_pos, room_id, relates_to, rel_type, event_type, sender)
    SELECT pos, room_id, json_extract(json, '$.content."m.relates_to".event_id'),
        json_extract(json, '$.content."m.relates_to".rel_type'), type, sender
    FROM events
    WHERE redacted_by IS NULL AND json_type(json, '$.content."m.relates_to".event_id') = 'text'
        AND json_type(json, '$.content."m.relates_to".rel_type') = 'text';
