-- Two additions to the generations: drops in progress, and accounts reprocessed on their own.

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

-- Accounts whose facts in a generation were made by another metrics version than the
-- generation's own (`mttx reprocess --account`).
CREATE TABLE facts_generation_accounts (
    generation_id       BIGINT NOT NULL REFERENCES facts_generations (id) ON DELETE CASCADE,
    account_id          BIGINT NOT NULL,
    metrics_version     INTEGER NOT NULL,
    PRIMARY KEY (generation_id, account_id)
);
