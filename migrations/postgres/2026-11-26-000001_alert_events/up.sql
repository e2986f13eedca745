-- Alert lifecycle events, for live watchers on every replica (each replica polls this log and
-- fans new events out to its own SSE clients). Short-lived: pruned after a day.
CREATE TABLE alert_events (
    seq BIGSERIAL PRIMARY KEY,
    alert_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    event TEXT NOT NULL,               -- alert.opened | alert.escalated | alert.acknowledged | alert.resolved
    at BIGINT NOT NULL
);
CREATE INDEX alert_events_at ON alert_events (at);
