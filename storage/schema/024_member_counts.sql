-- A room's joined and invited members, kept: sliding sync lists them for
-- every room of the user on every wake-up, and counting a room's member
-- rows each time was a fifth of its cost in a 100-member room. Triggers on
-- room_state keep them; room_state is written by an upsert, whose update
-- fires the update trigger.
ALTER TABLE rooms ADD COLUMN joined INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rooms ADD COLUMN invited INTEGER NOT NULL DEFAULT 0;
UPDATE rooms SET
    joined = (SELECT COUNT(*) FROM room_state s WHERE s.room_id = rooms.room_id AND s.type = 'm.room.member' AND s.membership = 'join'),
    invited = (SELECT COUNT(*) FROM room_state s WHERE s.room_id = rooms.room_id AND s.type = 'm.room.member' AND s.membership = 'invite');

CREATE TRIGGER member_counts_add AFTER INSERT ON room_state WHEN NEW.type = 'm.room.member' BEGIN
    UPDATE rooms SET joined = joined + (NEW.membership = 'join'), invited = invited + (NEW.membership = 'invite')
        WHERE room_id = NEW.room_id;
END;
CREATE TRIGGER member_counts_change AFTER UPDATE OF membership ON room_state WHEN NEW.type = 'm.room.member' BEGIN
    UPDATE rooms SET joined = joined + (NEW.membership = 'join') - (OLD.membership = 'join'),
        invited = invited + (NEW.membership = 'invite') - (OLD.membership = 'invite')
        WHERE room_id = NEW.room_id;
END;
CREATE TRIGGER member_counts_remove AFTER DELETE ON room_state WHEN OLD.type = 'm.room.member' BEGIN
    UPDATE rooms SET joined = joined - (OLD.membership = 'join'), invited = invited - (OLD.membership = 'invite')
        WHERE room_id = OLD.room_id;
END;
