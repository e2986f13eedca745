-- The incident log: a report and its append-only entries, hash-chained so an export shows
-- any later change. Nothing in the API edits or deletes either; retention removes a closed
-- incident whole after privacy.incident_retention_days.
CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organisations (id),
    reporter_id TEXT NOT NULL REFERENCES users (id),
    category TEXT NOT NULL CHECK (category IN ('verbal_abuse', 'threat', 'harassment', 'assault', 'damage', 'other')),
    description TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    reported_at BIGINT NOT NULL,
    lat DOUBLE,
    lon DOUBLE,
    outing_id TEXT REFERENCES outings (id),
    share_with_police BOOLEAN NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    closed_at BIGINT,
    -- SHA-256 (hex) of the report itself: the chain's first link.
    hash TEXT NOT NULL
);
CREATE INDEX incidents_org ON incidents (org_id, reported_at);
CREATE INDEX incidents_reporter ON incidents (reporter_id, reported_at);

CREATE TABLE incident_entries (
    id TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    at BIGINT NOT NULL,
    author_id TEXT NOT NULL REFERENCES users (id),
    kind TEXT NOT NULL CHECK (kind IN ('note', 'close')),
    text TEXT NOT NULL,
    -- SHA-256 (hex) of the previous link's hash and this entry.
    hash TEXT NOT NULL,
    UNIQUE (incident_id, seq)
);

-- The do-not-knock register: a point, a radius and what to expect there (never who lives
-- there). `caution_cells` lists the grid cells (0.01° of latitude by 0.01° of longitude) each
-- caution's circle touches, so a position finds its cautions by one indexed lookup.
CREATE TABLE cautions (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organisations (id),
    lat DOUBLE NOT NULL,
    lon DOUBLE NOT NULL,
    radius_m DOUBLE NOT NULL CHECK (radius_m BETWEEN 10 AND 500),
    level TEXT NOT NULL CHECK (level IN ('do_not_knock', 'pairs_only', 'note')),
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX cautions_org ON cautions (org_id, expires_at);

CREATE TABLE caution_cells (
    caution_id TEXT NOT NULL REFERENCES cautions (id) ON DELETE CASCADE,
    org_id TEXT NOT NULL,
    cell BIGINT NOT NULL,
    PRIMARY KEY (org_id, cell, caution_id)
);
CREATE INDEX caution_cells_caution ON caution_cells (caution_id);
