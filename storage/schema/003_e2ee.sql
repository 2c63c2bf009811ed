-- End-to-end encryption: the server stores public keys and relays
-- to-device messages; it never sees plaintext.

CREATE TABLE device_keys (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    keys       BLOB NOT NULL,
    PRIMARY KEY (user_id, device_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices(user_id, device_id) ON DELETE CASCADE
);

CREATE TABLE one_time_keys (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    algorithm  TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    key_json   BLOB NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm, key_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices(user_id, device_id) ON DELETE CASCADE
);

-- One fallback key per device and algorithm; handed out (and marked used)
-- when no one-time key is left.
CREATE TABLE fallback_keys (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    algorithm  TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    key_json   BLOB NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, device_id, algorithm),
    FOREIGN KEY (user_id, device_id) REFERENCES devices(user_id, device_id) ON DELETE CASCADE
);

-- master, self_signing and user_signing keys.
CREATE TABLE cross_signing_keys (
    user_id   TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    purpose   TEXT NOT NULL,
    key_json  BLOB NOT NULL,
    PRIMARY KEY (user_id, purpose)
);

-- Signatures uploaded after the keys they sign, merged in on query.
-- target_key is a device ID or a cross-signing public key.
CREATE TABLE key_signatures (
    target_user  TEXT NOT NULL,
    target_key   TEXT NOT NULL,
    signer_user  TEXT NOT NULL,
    signer_key   TEXT NOT NULL,
    signature    TEXT NOT NULL,
    PRIMARY KEY (target_user, target_key, signer_user, signer_key)
);

-- The device list stream: a row each time a user's devices or keys change.
CREATE TABLE device_list_changes (
    pos      INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id  TEXT NOT NULL
);
CREATE INDEX device_list_changes_user ON device_list_changes(user_id, pos);

-- To-device messages waiting for their device, kept until it acknowledges
-- them with a later sync token.
CREATE TABLE to_device (
    pos        INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    sender     TEXT NOT NULL,
    type       TEXT NOT NULL,
    content    BLOB NOT NULL,
    FOREIGN KEY (user_id, device_id) REFERENCES devices(user_id, device_id) ON DELETE CASCADE
);
CREATE INDEX to_device_target ON to_device(user_id, device_id, pos);

-- sendToDevice transactions already handled, per sending device.
CREATE TABLE to_device_txns (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    txn_id     TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices(user_id, device_id) ON DELETE CASCADE
);

-- Server-side key backup: versions and the (client-encrypted) session keys.
CREATE TABLE backup_versions (
    user_id    TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    algorithm  TEXT NOT NULL,
    auth_data  BLOB NOT NULL,
    etag       INTEGER NOT NULL DEFAULT 0,
    deleted    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, version)
);

CREATE TABLE backup_keys (
    user_id              TEXT NOT NULL,
    version              INTEGER NOT NULL,
    room_id              TEXT NOT NULL,
    session_id           TEXT NOT NULL,
    first_message_index  INTEGER NOT NULL,
    forwarded_count      INTEGER NOT NULL,
    is_verified          INTEGER NOT NULL,
    session_data         BLOB NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id),
    FOREIGN KEY (user_id, version) REFERENCES backup_versions(user_id, version) ON DELETE CASCADE
);
