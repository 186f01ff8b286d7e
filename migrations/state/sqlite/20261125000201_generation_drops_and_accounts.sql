-- Two additions to the generations: drops in progress, and accounts reprocessed on their own.

-- Generations being dropped; same table as migrations/state/postgres.

CREATE TABLE facts_drops (
    generation_id       INTEGER PRIMARY KEY,
    base                TEXT NOT NULL,
    location            TEXT NOT NULL,
    metrics_version     INTEGER NOT NULL,
    started_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE facts_generation_accounts (
    generation_id       INTEGER NOT NULL REFERENCES facts_generations (id) ON DELETE CASCADE,
    account_id          INTEGER NOT NULL,
    metrics_version     INTEGER NOT NULL,
    PRIMARY KEY (generation_id, account_id)
);
