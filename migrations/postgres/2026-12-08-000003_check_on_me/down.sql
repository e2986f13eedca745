ALTER TABLE alerts DROP COLUMN reason;
ALTER TABLE outings DROP COLUMN welfare_token_hash;
ALTER TABLE outings DROP COLUMN welfare_note;
ALTER TABLE outings DROP COLUMN welfare_due_at;
ALTER TABLE outings DROP COLUMN check_on_me_note;
ALTER TABLE outings DROP COLUMN check_on_me_due_at;
