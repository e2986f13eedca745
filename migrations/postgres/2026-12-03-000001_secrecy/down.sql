DROP TABLE pin_attempts;
DELETE FROM alerts WHERE kind = 'wrong_pins';
ALTER TABLE alerts DROP CONSTRAINT alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check
    CHECK (kind IN ('missed_checkin', 'need_help', 'panic', 'duress'));
