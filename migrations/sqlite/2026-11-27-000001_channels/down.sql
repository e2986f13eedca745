-- SQLite cannot drop a NOT NULL constraint: rebuild the table. push_deliveries references it
-- (ON DELETE CASCADE), and dropping a parent with foreign keys on deletes its children, so
-- push_deliveries is set aside first and restored afterwards.
CREATE TABLE push_deliveries_keep AS SELECT * FROM push_deliveries;
DROP TABLE push_deliveries;

CREATE TABLE notifications_new (
    id TEXT PRIMARY KEY,
    dedupe_key TEXT NOT NULL UNIQUE,
    alert_id TEXT REFERENCES alerts(id) ON DELETE CASCADE,
    outing_id TEXT REFERENCES outings(id) ON DELETE CASCADE,
    recipient_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    channel TEXT NOT NULL,             -- webpush | email | webhook
    step TEXT NOT NULL,
    message_type TEXT NOT NULL,
    level INTEGER NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,              -- pending | sent | failed | no_subscription | expired
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at BIGINT,                     -- when the step was due (detection lag)
    created_at BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    sent_at BIGINT,
    last_error TEXT,
    claimed_by TEXT,
    claimed_until BIGINT
);
INSERT INTO notifications_new
    SELECT id, dedupe_key, alert_id, outing_id, recipient_id, channel, step, message_type, level,
           payload, status, attempts, due_at, created_at, next_attempt_at, expires_at, sent_at,
           last_error, claimed_by, claimed_until
    FROM notifications WHERE recipient_id IS NOT NULL;
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE INDEX notifications_pending ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_alert ON notifications (alert_id);

CREATE TABLE push_deliveries (
    id TEXT PRIMARY KEY,
    notification_id TEXT NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
    subscription_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_status_code INTEGER,
    last_error TEXT,
    sent_at BIGINT,
    UNIQUE (notification_id, subscription_id)
);
INSERT INTO push_deliveries
    SELECT id, notification_id, subscription_id, status, attempts, last_status_code, last_error, sent_at
    FROM push_deliveries_keep
    WHERE notification_id IN (SELECT id FROM notifications);
DROP TABLE push_deliveries_keep;
