-- Group calls. OpenID tokens (POST /user/{userId}/openid/request_token): a user's
-- proof of who they are for a service beside the server (the call token
-- service), kept as hashes for an hour.
CREATE TABLE openid_tokens (
    token_hash BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    expires_ts INTEGER NOT NULL
) WITHOUT ROWID;

-- Call memberships (Element Call's state events) whose time is up are
-- found by type across rooms, once a minute.
CREATE INDEX room_state_call_members ON room_state(room_id, state_key) WHERE type = 'org.matrix.msc3401.call.member';
