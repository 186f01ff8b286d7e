-- What an importer (`mttx import pagerduty`) keeps in the replica it builds, beside the
-- contract's tables: the outside system's ids and the ones it gave them, how far it got,
-- and what it could not import.

-- Stable ids: an outside id (PagerDuty's `PQYACO3`) gets one integer id per kind, kept
-- here, so importing again changes nothing.
CREATE TABLE import_ids (
    source      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    external_id TEXT NOT NULL,
    id          INTEGER NOT NULL,
    PRIMARY KEY (source, kind, external_id),
    UNIQUE (source, kind, id)
);

-- Progress, committed with the rows it covers.
CREATE TABLE import_progress (
    source      TEXT NOT NULL,
    name        TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (source, name)
);

-- Input that could not be imported, with the reason and the raw JSON.
CREATE TABLE import_quarantine (
    source      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    external_id TEXT NOT NULL,
    reason      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    raw         TEXT NULL,
    seen_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (source, kind, external_id, reason)
);
