-- Hand-off links: a capability URL for one alert that the police open without an account.
-- Only the SHA-256 (hex) of the token is kept; `expires_at` is the 24-hour cap (a resolved
-- alert's link stops an hour after it was resolved, worked out when it is opened). At most
-- one live link per alert: a new one revokes the last. The rows go with their alert.
CREATE TABLE handoff_links (
    id TEXT PRIMARY KEY,
    alert_id TEXT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX handoff_links_alert ON handoff_links (alert_id, created_at);
