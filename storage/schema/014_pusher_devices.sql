-- The device that set each pusher: logging it out (or deleting it) removes
-- its pushers, so a phone signed out gets no more notifications.
ALTER TABLE pushers ADD COLUMN device_id TEXT;
