-- Alerts gain the kind `wrong_pins`.
ALTER TABLE alerts DROP CONSTRAINT alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check
    CHECK (kind IN ('missed_checkin', 'need_help', 'panic', 'duress', 'wrong_pins'));

-- Wrong PINs in a row per scope (an outing's id, or `user:<id>` for a PIN change without an
-- outing): after five, PIN prompts answer 429 until `locked_until`.
CREATE TABLE pin_attempts (
    scope TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    locked_until BIGINT,
    updated_at BIGINT NOT NULL
);
