ALTER TABLE outings DROP COLUMN last_checkin_received_at;
ALTER TABLE outings DROP COLUMN last_checkin_recorded_at;
