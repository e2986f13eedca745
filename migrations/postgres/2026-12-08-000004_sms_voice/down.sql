DROP INDEX notifications_provider_sid;
ALTER TABLE notifications DROP COLUMN provider_sid;
ALTER TABLE alerts DROP COLUMN ack_code;
ALTER TABLE users DROP COLUMN voice_alerts;
ALTER TABLE users DROP COLUMN sms_alerts;
