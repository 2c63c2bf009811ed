-- HTTP pushers: where a user's phones want their notifications sent.
CREATE TABLE pushers (
    user_id              TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    app_id               TEXT NOT NULL,
    pushkey              TEXT NOT NULL,
    kind                 TEXT NOT NULL,
    app_display_name     TEXT NOT NULL,
    device_display_name  TEXT NOT NULL,
    profile_tag          TEXT,
    lang                 TEXT NOT NULL,
    data                 BLOB NOT NULL,
    created_ts           INTEGER NOT NULL,
    PRIMARY KEY (app_id, pushkey, user_id)
);
CREATE INDEX pushers_user ON pushers(user_id);
