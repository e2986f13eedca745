-- Alerts gain the kind `wrong_pins`. SQLite cannot change a CHECK constraint in place: the
-- table is rebuilt by the procedure of SQLite's ALTER TABLE documentation (foreign keys off
-- outside the transaction, new table, copy, drop, rename, indexes, foreign_key_check), which
-- is why this migration runs outside diesel's transaction (metadata.toml).
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE alerts_new (
    id TEXT PRIMARY KEY,
    outing_id TEXT NOT NULL REFERENCES outings(id) ON DELETE CASCADE,
    org_id TEXT NOT NULL REFERENCES organisations(id),
    canvasser_id TEXT NOT NULL REFERENCES users(id),
    kind TEXT NOT NULL CHECK (kind IN ('missed_checkin', 'need_help', 'panic', 'duress', 'wrong_pins')),
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
INSERT INTO alerts_new SELECT * FROM alerts;
DROP TABLE alerts;
ALTER TABLE alerts_new RENAME TO alerts;
-- An outing has at most one alert that is not resolved.
CREATE UNIQUE INDEX alerts_one_unresolved_per_outing ON alerts (outing_id) WHERE status <> 'resolved';
CREATE INDEX alerts_next_action ON alerts (next_action_at) WHERE next_action_at IS NOT NULL;
CREATE INDEX alerts_org_status ON alerts (org_id, status, opened_at);

-- Wrong PINs in a row per scope (an outing's id, or `user:<id>` for a PIN change without an
-- outing): after five, PIN prompts answer 429 until `locked_until`.
CREATE TABLE pin_attempts (
    scope TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    locked_until BIGINT,
    updated_at BIGINT NOT NULL
);
PRAGMA foreign_key_check;
COMMIT;
PRAGMA foreign_keys = ON;
