-- The display order of an outing's latest check-in (recorded_at, received_at), kept on the
-- outing so that recording a check-in does not read the previous one back.
ALTER TABLE outings ADD COLUMN last_checkin_recorded_at BIGINT;
ALTER TABLE outings ADD COLUMN last_checkin_received_at BIGINT;
UPDATE outings
SET last_checkin_recorded_at = (SELECT c.recorded_at FROM checkins c WHERE c.id = outings.last_checkin_id),
    last_checkin_received_at = (SELECT c.received_at FROM checkins c WHERE c.id = outings.last_checkin_id)
WHERE last_checkin_id IS NOT NULL;
