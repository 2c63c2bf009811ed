-- Thread subscriptions (MSC4306): which threads a user follows. A row
-- stays after unsubscribing (subscribed = 0) so that an automatic
-- subscription caused by an event from before the unsubscription is
-- refused. pos is on the account_data stream, which sync reads.
CREATE TABLE thread_subscriptions (
    user_id          TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    room_id          TEXT NOT NULL,
    root_id          TEXT NOT NULL,
    subscribed       INTEGER NOT NULL,
    automatic        INTEGER NOT NULL,
    -- the room's latest event position when the user unsubscribed
    unsubscribed_at  INTEGER,
    pos              INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, root_id)
);
CREATE INDEX thread_subscriptions_pos ON thread_subscriptions(user_id, pos);
CREATE INDEX thread_subscriptions_root ON thread_subscriptions(room_id, root_id) WHERE subscribed = 1;
