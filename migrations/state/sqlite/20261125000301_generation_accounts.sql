-- Accounts whose facts in a generation were made by another metrics version; same table as
-- migrations/state/postgres.

CREATE TABLE facts_generation_accounts (
    generation_id       INTEGER NOT NULL REFERENCES facts_generations (id) ON DELETE CASCADE,
    account_id          INTEGER NOT NULL,
    metrics_version     INTEGER NOT NULL,
    PRIMARY KEY (generation_id, account_id)
);
