-- Unread counts, kept instead of counted. A woken /sync asked for them in
-- every room it returned, counting notification rows through an index
-- ordered by user; that index cost a page write per member per event (a
-- member's rows are nowhere near another's), most of an event's commit in
-- a busy room. The counts are now a row per member, room and thread ("" for
-- the main timeline) of the notifications past the member's read receipt
-- (the thread's own, "main" for the main timeline, or the unthreaded one,
-- whichever is later), ordered by room so that an event's updates share a
-- page. Rows reach 0 and stay until the room or the account goes.
CREATE TABLE unread_counts (
    room_id        TEXT NOT NULL REFERENCES rooms(room_id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL,
    thread_id      TEXT NOT NULL,
    notifications  INTEGER NOT NULL,
    highlights     INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id, thread_id)
) WITHOUT ROWID;

INSERT INTO unread_counts(room_id, user_id, thread_id, notifications, highlights)
    SELECT p.room_id, p.user_id, p.thread_id, COUNT(*), SUM(p.highlight) FROM push_actions p
    WHERE p.event_pos > COALESCE((SELECT MAX(r.event_pos) FROM receipts r
        WHERE r.room_id = p.room_id AND r.user_id = p.user_id AND r.type IN ('m.read', 'm.read.private')
            AND r.thread_id IN ('', CASE p.thread_id WHEN '' THEN 'main' ELSE p.thread_id END)), 0)
    GROUP BY p.room_id, p.user_id, p.thread_id;

-- A notification is written when its event is stored, after every receipt
-- in the room: it is unread.
CREATE TRIGGER unread_counts_add AFTER INSERT ON push_actions BEGIN
    INSERT INTO unread_counts(room_id, user_id, thread_id, notifications, highlights)
        VALUES (NEW.room_id, NEW.user_id, NEW.thread_id, 1, NEW.highlight)
        ON CONFLICT DO UPDATE SET notifications = notifications + 1, highlights = highlights + excluded.highlights;
END;

-- One deleted with its event (retention, a purge) is taken off if unread.
CREATE TRIGGER unread_counts_remove AFTER DELETE ON push_actions
    WHEN OLD.event_pos > COALESCE((SELECT MAX(r.event_pos) FROM receipts r
        WHERE r.room_id = OLD.room_id AND r.user_id = OLD.user_id AND r.type IN ('m.read', 'm.read.private')
            AND r.thread_id IN ('', CASE OLD.thread_id WHEN '' THEN 'main' ELSE OLD.thread_id END)), 0)
BEGIN
    UPDATE unread_counts SET notifications = notifications - 1, highlights = highlights - OLD.highlight
        WHERE room_id = OLD.room_id AND user_id = OLD.user_id AND thread_id = OLD.thread_id;
END;

-- What the per-user index served besides the counts: a receipt's share of
-- them (the events it reads, by room) and /notifications (the user's rooms'
-- events, newest first) go through the events of the room.
DROP INDEX push_actions_unread;
