-- Generations being dropped: `mttx generations drop` forgets a generation and records it
-- here in one transaction, deletes its table, then removes the record. A drop interrupted
-- in between is finished by the next `generations drop` (and shown by `generations list`),
-- so a table is never left behind untracked, and nothing can switch to a half-deleted one.

CREATE TABLE facts_drops (
    generation_id       BIGINT PRIMARY KEY,
    base                TEXT NOT NULL,
    location            TEXT NOT NULL,
    metrics_version     INTEGER NOT NULL,
    started_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
