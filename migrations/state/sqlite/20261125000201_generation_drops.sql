-- Generations being dropped; same table as migrations/state/postgres.

CREATE TABLE facts_drops (
    generation_id       INTEGER PRIMARY KEY,
    base                TEXT NOT NULL,
    location            TEXT NOT NULL,
    metrics_version     INTEGER NOT NULL,
    started_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
