-- Full-text search over unencrypted messages, room names and topics (the
-- spec's content.body, content.name, content.topic). secure-delete removes
-- a deleted event's entries from the index at once, not at some later
-- merge; it needs the indexed text to find them, so the table keeps its
-- own copy (a contentless table would leave the words behind). The
-- triggers keep it in step with every event insert, deletion (retention,
-- room purges) and redaction or erasure.
CREATE VIRTUAL TABLE event_search USING fts5(body, name, topic, tokenize='unicode61 remove_diacritics 2');
INSERT INTO event_search(event_search, rank) VALUES('secure-delete', 1);

CREATE TRIGGER event_search_insert AFTER INSERT ON events
WHEN NEW.type IN ('m.room.message', 'm.room.name', 'm.room.topic') AND NEW.redacted_by IS NULL BEGIN
    INSERT INTO event_search(rowid, body, name, topic) VALUES(NEW.pos,
        CASE WHEN NEW.type = 'm.room.message' THEN json_extract(NEW.json, '$.content.body') END,
        CASE WHEN NEW.type = 'm.room.name' THEN json_extract(NEW.json, '$.content.name') END,
        CASE WHEN NEW.type = 'm.room.topic' THEN json_extract(NEW.json, '$.content.topic') END);
END;

CREATE TRIGGER event_search_delete AFTER DELETE ON events
WHEN OLD.type IN ('m.room.message', 'm.room.name', 'm.room.topic') BEGIN
    DELETE FROM event_search WHERE rowid = OLD.pos;
END;

CREATE TRIGGER event_search_redact AFTER UPDATE OF redacted_by ON events
WHEN NEW.redacted_by IS NOT NULL AND OLD.type IN ('m.room.message', 'm.room.name', 'm.room.topic') BEGIN
    DELETE FROM event_search WHERE rowid = OLD.pos;
END;

INSERT INTO event_search(rowid, body, name, topic)
    SELECT pos,
        CASE WHEN type = 'm.room.message' THEN json_extract(json, '$.content.body') END,
        CASE WHEN type = 'm.room.name' THEN json_extract(json, '$.content.name') END,
        CASE WHEN type = 'm.room.topic' THEN json_extract(json, '$.content.topic') END
    FROM events WHERE type IN ('m.room.message', 'm.room.name', 'm.room.topic') AND redacted_by IS NULL;
