-- Deadlines of their own beside the regular interval: a "check on me in 10 minutes" the
-- canvasser sets, and an "are you OK?" an organiser or the police ask. next_checkin_due_at is
-- the earliest of all that are pending; a check-in clears both. The welfare reply token lets
-- the phone's notification answer without the app (stored hashed).
ALTER TABLE outings ADD COLUMN check_on_me_due_at BIGINT;
ALTER TABLE outings ADD COLUMN check_on_me_note TEXT;
ALTER TABLE outings ADD COLUMN welfare_due_at BIGINT;
ALTER TABLE outings ADD COLUMN welfare_note TEXT;
ALTER TABLE outings ADD COLUMN welfare_token_hash TEXT;
-- Why an alert opened, when more than its kind says: a check-on-me's note, a welfare check.
ALTER TABLE alerts ADD COLUMN reason TEXT;
