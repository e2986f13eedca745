-- SMS and voice calls (api.md, "SMS and voice"): who wants them, the short code an alert's SMS
-- asks to be replied with, and the provider's id of each message or call (its status callbacks
-- name it).
ALTER TABLE users ADD COLUMN sms_alerts BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN voice_alerts BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE alerts ADD COLUMN ack_code TEXT;
ALTER TABLE notifications ADD COLUMN provider_sid TEXT;
CREATE INDEX notifications_provider_sid ON notifications (provider_sid);
