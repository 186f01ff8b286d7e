-- Accounts whose facts in a generation were made by another metrics version than the
-- generation's own (`mttx reprocess --account`).

CREATE TABLE facts_generation_accounts (
    generation_id       BIGINT NOT NULL REFERENCES facts_generations (id) ON DELETE CASCADE,
    account_id          BIGINT NOT NULL,
    metrics_version     INTEGER NOT NULL,
    PRIMARY KEY (generation_id, account_id)
);
