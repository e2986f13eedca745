-- Doorstep schema, SQLite flavour. Every instant is epoch milliseconds UTC (BIGINT) so the
-- same queries run on SQLite and PostgreSQL; ids are UUID text; JSON is text.

CREATE TABLE organisations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    escalation_policy TEXT,            -- JSON; NULL = server defaults
    require_totp BOOLEAN NOT NULL DEFAULT FALSE,
    webhook_url TEXT,
    webhook_secret TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,        -- normalised lower case
    password_hash TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'organiser', 'canvasser', 'police')),
    org_id TEXT REFERENCES organisations(id),
    phone TEXT,
    safe_pin_hash TEXT,
    duress_pin_hash TEXT,
    totp_secret TEXT,
    totp_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    totp_last_step BIGINT,
    email_alerts BOOLEAN NOT NULL DEFAULT FALSE,
    webhook_url TEXT,
    created_at BIGINT NOT NULL,
    disabled_at BIGINT
);
CREATE INDEX users_org_role ON users (org_id, role);

CREATE TABLE recovery_codes (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at BIGINT
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);

CREATE TABLE police_assignments (
    org_id TEXT NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX police_assignments_user ON police_assignments (user_id);

-- One row per password login; every refresh token of that login points at it.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revoked_reason TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,   -- SHA-256 of the opaque token
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    spent_at BIGINT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Login rate limiting, shared by every replica. `bucket` is 'addr:<ip>' or 'email:<address>'.
CREATE TABLE login_attempts (
    id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    attempted_at BIGINT NOT NULL,
    succeeded BOOLEAN NOT NULL
);
CREATE INDEX login_attempts_bucket_time ON login_attempts (bucket, attempted_at);

CREATE TABLE push_subscriptions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    endpoint TEXT NOT NULL UNIQUE,
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL,
    expiration_time BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id);

CREATE TABLE outings (
    id TEXT PRIMARY KEY,
    canvasser_id TEXT NOT NULL REFERENCES users(id),
    org_id TEXT NOT NULL REFERENCES organisations(id),
    status TEXT NOT NULL CHECK (status IN ('active', 'overdue', 'ended')),
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    checkin_interval_s BIGINT NOT NULL,
    next_checkin_due_at BIGINT,
    planned_end_at BIGINT,
    area TEXT,                         -- GeoJSON geometry or Circle, as accepted
    solo BOOLEAN NOT NULL,
    note TEXT,
    last_checkin_id TEXT,
    last_received_at BIGINT NOT NULL,
    inside_area BOOLEAN,
    low_battery_notified BOOLEAN NOT NULL DEFAULT FALSE,
    outside_area_notified BOOLEAN NOT NULL DEFAULT FALSE,
    reminder_sent_for BIGINT,          -- the due time whose reminder was recorded
    open_alert_id TEXT,
    next_action_at BIGINT,             -- earliest scheduler action; NULL when none
    claimed_by TEXT,
    claimed_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- A canvasser has at most one outing that is not ended.
CREATE UNIQUE INDEX outings_one_open_per_canvasser ON outings (canvasser_id) WHERE status <> 'ended';
-- The scheduler's claim query: due work, oldest first.
CREATE INDEX outings_next_action ON outings (next_action_at) WHERE next_action_at IS NOT NULL;
CREATE INDEX outings_org_status ON outings (org_id, status, started_at);
CREATE INDEX outings_canvasser ON outings (canvasser_id, started_at);

CREATE TABLE outing_companions (
    outing_id TEXT NOT NULL REFERENCES outings(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id),
    PRIMARY KEY (outing_id, user_id)
);
CREATE INDEX outing_companions_user ON outing_companions (user_id);

CREATE TABLE checkins (
    id TEXT PRIMARY KEY,
    outing_id TEXT NOT NULL REFERENCES outings(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id),
    lat DOUBLE,              -- NULL once removed by the retention job
    lon DOUBLE,
    accuracy_m DOUBLE,
    battery_pct INTEGER,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,              -- live | batch | start | panic | end
    recorded_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    inside_area BOOLEAN,
    client_id TEXT,
    location_purged_at BIGINT
);
CREATE INDEX checkins_outing_recorded ON checkins (outing_id, recorded_at);
CREATE UNIQUE INDEX checkins_outing_client_id ON checkins (outing_id, client_id) WHERE client_id IS NOT NULL;

-- Replays of requests sent with an Idempotency-Key.
CREATE TABLE idempotency_keys (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response_status INTEGER NOT NULL,
    response_body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    outing_id TEXT NOT NULL REFERENCES outings(id) ON DELETE CASCADE,
    org_id TEXT NOT NULL REFERENCES organisations(id),
    canvasser_id TEXT NOT NULL REFERENCES users(id),
    kind TEXT NOT NULL CHECK (kind IN ('missed_checkin', 'need_help', 'panic', 'duress')),
    level INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    policy TEXT NOT NULL,              -- JSON snapshot of the policy when the alert opened
    opened_at BIGINT NOT NULL,
    escalated_at BIGINT,
    acknowledged_at BIGINT,
    acknowledged_by TEXT REFERENCES users(id),
    resolved_at BIGINT,
    resolved_by TEXT REFERENCES users(id),
    resolution TEXT,
    note TEXT,
    last_lat DOUBLE,
    last_lon DOUBLE,
    last_accuracy_m DOUBLE,
    last_recorded_at BIGINT,
    repeats_sent INTEGER NOT NULL DEFAULT 0,
    ack_timeouts INTEGER NOT NULL DEFAULT 0,
    last_pushed_at BIGINT,
    next_action_at BIGINT,
    claimed_by TEXT,
    claimed_until BIGINT,
    updated_at BIGINT NOT NULL
);
-- An outing has at most one alert that is not resolved.
CREATE UNIQUE INDEX alerts_one_unresolved_per_outing ON alerts (outing_id) WHERE status <> 'resolved';
CREATE INDEX alerts_next_action ON alerts (next_action_at) WHERE next_action_at IS NOT NULL;
CREATE INDEX alerts_org_status ON alerts (org_id, status, opened_at);

-- The outbox: one row per (step, recipient, channel). `dedupe_key` makes every step
-- exactly-once whatever crashes or races between replicas.
CREATE TABLE notifications (
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
CREATE INDEX notifications_pending ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_alert ON notifications (alert_id);

-- Per-subscription delivery state of a push notification.
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

-- Notable things about an outing that are not alerts: left the area, low battery.
CREATE TABLE outing_events (
    id TEXT PRIMARY KEY,
    outing_id TEXT NOT NULL REFERENCES outings(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    at BIGINT NOT NULL,
    detail TEXT
);
CREATE INDEX outing_events_outing ON outing_events (outing_id, at);

-- Who saw whose location, and when.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor_id TEXT NOT NULL,
    actor_role TEXT NOT NULL,
    action TEXT NOT NULL,
    subject_id TEXT,                   -- the person whose location was read
    org_id TEXT,
    outing_id TEXT,
    alert_id TEXT,
    detail TEXT
);
CREATE INDEX audit_log_subject ON audit_log (subject_id, at);
CREATE INDEX audit_log_org ON audit_log (org_id, at);
