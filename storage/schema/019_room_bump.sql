-- A room's bump stamp (what moves it up a sliding sync list) is kept on
-- the room as its events are appended, not found again among its events
-- for every list; with that, the index of events by type and state key
-- serves state events only, and costs a message nothing.
ALTER TABLE rooms ADD COLUMN bump_pos INTEGER NOT NULL DEFAULT 0;
UPDATE rooms SET bump_pos = COALESCE((SELECT MAX(e.pos) FROM events e WHERE e.room_id = rooms.room_id AND e.type IN
    ('m.room.create', 'm.room.message', 'm.room.encrypted', 'm.sticker', 'm.call.invite', 'm.poll.start', 'm.beacon_info')), 0);
DROP INDEX events_state;
CREATE INDEX events_state ON events(room_id, type, state_key, pos) WHERE state_key IS NOT NULL;
