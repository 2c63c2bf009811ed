-- Dehydrated devices (MSC3814): at most one per user, a device with keys
-- but no access token, whose to-device messages a new login collects.
CREATE TABLE dehydrated_devices (
    user_id      TEXT PRIMARY KEY,
    device_id    TEXT NOT NULL,
    device_data  BLOB NOT NULL,
    FOREIGN KEY (user_id, device_id) REFERENCES devices(user_id, device_id) ON DELETE CASCADE
);
