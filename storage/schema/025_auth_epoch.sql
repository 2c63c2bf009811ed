-- auth_epoch moves whenever an access token could stop meaning what it
-- meant: a token, device or user deleted, a token changed, a user made or
-- unmade an admin, deactivated or reactivated, a token or user added.
-- Every request reads it, in place of the three-table lookup of its token,
-- and takes the session from memory if it has not moved since
-- (DB.Session). Triggers keep it, so a command run beside the server, or
-- any other writer, moves it too.
INSERT INTO instance_state(key, value) VALUES ('auth_epoch', 0);

CREATE TRIGGER auth_epoch_token_deleted AFTER DELETE ON access_tokens BEGIN
    UPDATE instance_state SET value = value + 1 WHERE key = 'auth_epoch';
END;
CREATE TRIGGER auth_epoch_token_changed AFTER UPDATE ON access_tokens BEGIN
    UPDATE instance_state SET value = value + 1 WHERE key = 'auth_epoch';
END;
-- Deleting a device or a user deletes its tokens by cascade, but only
-- where foreign keys are enforced (sqlite3's shell does not by default).
CREATE TRIGGER auth_epoch_device_deleted AFTER DELETE ON devices BEGIN
    UPDATE instance_state SET value = value + 1 WHERE key = 'auth_epoch';
END;
CREATE TRIGGER auth_epoch_device_renamed AFTER UPDATE OF user_id, device_id ON devices BEGIN
    UPDATE instance_state SET value = value + 1 WHERE key = 'auth_epoch';
END;
CREATE TRIGGER auth_epoch_user_deleted AFTER DELETE ON users BEGIN
    UPDATE instance_state SET value = value + 1 WHERE key = 'auth_epoch';
END;
CREATE TRIGGER auth_epoch_user_changed AFTER UPDATE OF user_id, is_admin, deactivated ON users BEGIN
    UPDATE instance_state SET value = value + 1 WHERE key = 'auth_epoch';
END;
-- A REPLACE deletes the row it conflicts with without firing delete
-- triggers (unless recursive_triggers is on), so a new token or user moves
-- it too: logins and registrations are rare next to requests.
CREATE TRIGGER auth_epoch_token_added AFTER INSERT ON access_tokens BEGIN
    UPDATE instance_state SET value = value + 1 WHERE key = 'auth_epoch';
END;
CREATE TRIGGER auth_epoch_user_added AFTER INSERT ON users BEGIN
    UPDATE instance_state SET value = value + 1 WHERE key = 'auth_epoch';
END;
