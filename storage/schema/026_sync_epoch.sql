-- sync_epoch moves whenever what every /sync reads of its own user, apart
-- from the streams, could change: the device's one-time and fallback keys
-- (whose counts every response carries) and global account data (the
-- users the user ignores). Room account data does not move it: every read
-- marker is some, and a sync reads room account data by its stream. A
-- woken /sync reads the counter with the stream positions and takes those
-- from memory if it has not moved since they were read (Q.DeviceKeyCounts,
-- Q.AccountData). Triggers keep it, so every writer moves it; a cascade
-- from a deleted device fires them too.
INSERT INTO instance_state(key, value) VALUES ('sync_epoch', 0);

CREATE TRIGGER sync_epoch_otk_added AFTER INSERT ON one_time_keys BEGIN
    UPDATE instance_state SET value = value + 1 WHERE key = 'sync_epoch';
END;
CREATE TRIGGER sync_epoch_otk_changed AFTER UPDATE ON one_time_keys BEGIN
    UPDATE instance_state SET value = value + 1 WHERE key = 'sync_epoch';
END;
CREATE TRIGGER sync_epoch_otk_deleted AFTER DELETE ON one_time_keys BEGIN
    UPDATE instance_state SET value = value + 1 WHERE key = 'sync_epoch';
END;
CREATE TRIGGER sync_epoch_fallback_added AFTER INSERT ON fallback_keys BEGIN
    UPDATE instance_state SET value = value + 1 WHERE key = 'sync_epoch';
END;
CREATE TRIGGER sync_epoch_fallback_changed AFTER UPDATE ON fallback_keys BEGIN
    UPDATE instance_state SET value = value + 1 WHERE key = 'sync_epoch';
END;
CREATE TRIGGER sync_epoch_fallback_deleted AFTER DELETE ON fallback_keys BEGIN
    UPDATE instance_state SET value = value + 1 WHERE key = 'sync_epoch';
END;
CREATE TRIGGER sync_epoch_account_data_added AFTER INSERT ON account_data WHEN NEW.room_id = '' BEGIN
    UPDATE instance_state SET value = value + 1 WHERE key = 'sync_epoch';
END;
CREATE TRIGGER sync_epoch_account_data_changed AFTER UPDATE ON account_data WHEN NEW.room_id = '' OR OLD.room_id = '' BEGIN
    UPDATE instance_state SET value = value + 1 WHERE key = 'sync_epoch';
END;
CREATE TRIGGER sync_epoch_account_data_deleted AFTER DELETE ON account_data WHEN OLD.room_id = '' BEGIN
    UPDATE instance_state SET value = value + 1 WHERE key = 'sync_epoch';
END;
