-- mttx's own state: ETL runs, worker leases, quarantined input and API tokens.
-- The facts and the ETL's cursor live in the Delta table (they commit together there);
-- this database holds what coordinates workers and what people look at.

CREATE TABLE etl_runs (
    id                  BIGSERIAL PRIMARY KEY,
    worker_id           TEXT NOT NULL,
    mode                TEXT NOT NULL,              -- once | follow | backfill | reprocess
    metrics_version     INTEGER NOT NULL,
    started_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at         TIMESTAMPTZ NULL,
    status              TEXT NOT NULL DEFAULT 'running'
                        CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    entries_read        BIGINT NOT NULL DEFAULT 0,
    incidents_written   BIGINT NOT NULL DEFAULT 0,
    quarantined         BIGINT NOT NULL DEFAULT 0,
    facts_version       BIGINT NULL,                -- Delta table version after the run
    error               TEXT NULL
);
CREATE INDEX etl_runs_started_idx ON etl_runs (started_at);

-- A lease is a named piece of work (a backfill range, the follow cursor of a source) held
-- by one worker until expires_at; a worker renews it by heartbeat. `fence` grows at every
-- change of owner, so a worker that lost its lease can tell its writes are stale.
CREATE TABLE worker_leases (
    name                TEXT PRIMARY KEY,
    owner               TEXT NULL,
    fence               BIGINT NOT NULL DEFAULT 0,
    acquired_at         TIMESTAMPTZ NULL,
    expires_at          TIMESTAMPTZ NULL,
    done_at             TIMESTAMPTZ NULL,
    payload             JSONB NULL
);

-- Bad input, one row per (incident, entry, reason). entry_id is 0 where the problem is the
-- incident as a whole (for example an incident whose log has no trigger).
CREATE TABLE quarantine (
    account_id          BIGINT NOT NULL,
    incident_id         BIGINT NOT NULL,
    entry_id            BIGINT NOT NULL,
    reason              TEXT NOT NULL,
    detail              TEXT NOT NULL,
    first_seen_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    run_id              BIGINT NULL REFERENCES etl_runs (id),
    PRIMARY KEY (incident_id, entry_id, reason)
);
CREATE INDEX quarantine_account_idx ON quarantine (account_id, reason);

-- API tokens are stored as SHA-256 hashes; the token itself is shown once, at creation.
CREATE TABLE api_tokens (
    id                  BIGSERIAL PRIMARY KEY,
    account_id          BIGINT NOT NULL,
    name                TEXT NOT NULL,
    token_prefix        TEXT NOT NULL,
    token_hash          TEXT NOT NULL UNIQUE,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at          TIMESTAMPTZ NULL,
    revoked_at          TIMESTAMPTZ NULL,
    last_used_at        TIMESTAMPTZ NULL
);
CREATE INDEX api_tokens_account_idx ON api_tokens (account_id);
