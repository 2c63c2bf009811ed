-- What Synapse's admin tools manage besides users and rooms.

-- A deleted room leaves the admin lists; blocking (no one may join) is
-- asked for separately. Rooms deleted before this were also blocked.
ALTER TABLE rooms ADD COLUMN deleted_ts INTEGER;
UPDATE rooms SET deleted_ts = (SELECT ts FROM blocked_rooms b WHERE b.room_id = rooms.room_id)
    WHERE room_id IN (SELECT room_id FROM blocked_rooms);

-- A suspended user (MSC3823) may log in and read, not send, join or invite.
ALTER TABLE users ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0;

-- Quarantined media is no longer served; who quarantined it.
ALTER TABLE media ADD COLUMN quarantined_by TEXT;

-- Per-user replacements of the per-user rate limits (0 and 0: none).
CREATE TABLE ratelimit_overrides (
    user_id              TEXT PRIMARY KEY,
    messages_per_second  REAL NOT NULL,
    burst_count          INTEGER NOT NULL
);
