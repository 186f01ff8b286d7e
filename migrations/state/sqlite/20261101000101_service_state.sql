-- mttx's own state for the embedded default; same tables as migrations/state/postgres.
-- Timestamps are RFC 3339 text in UTC.

CREATE TABLE etl_runs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    worker_id           TEXT NOT NULL,
    mode                TEXT NOT NULL,
    metrics_version     INTEGER NOT NULL,
    started_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    heartbeat_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at         TEXT NULL,
    status              TEXT NOT NULL DEFAULT 'running'
                        CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    entries_read        INTEGER NOT NULL DEFAULT 0,
    incidents_written   INTEGER NOT NULL DEFAULT 0,
    quarantined         INTEGER NOT NULL DEFAULT 0,
    facts_version       INTEGER NULL,
    error               TEXT NULL
);
CREATE INDEX etl_runs_started_idx ON etl_runs (started_at);

CREATE TABLE worker_leases (
    name                TEXT PRIMARY KEY,
    owner               TEXT NULL,
    fence               INTEGER NOT NULL DEFAULT 0,
    acquired_at         TEXT NULL,
    expires_at          TEXT NULL,
    done_at             TEXT NULL,
    payload             TEXT NULL CHECK (payload IS NULL OR json_valid(payload))
);

CREATE TABLE quarantine (
    account_id          INTEGER NOT NULL,
    incident_id         INTEGER NOT NULL,
    entry_id            INTEGER NOT NULL,
    reason              TEXT NOT NULL,
    detail              TEXT NOT NULL,
    first_seen_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_seen_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    run_id              INTEGER NULL REFERENCES etl_runs (id),
    PRIMARY KEY (incident_id, entry_id, reason)
);
CREATE INDEX quarantine_account_idx ON quarantine (account_id, reason);

CREATE TABLE api_tokens (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id          INTEGER NOT NULL,
    name                TEXT NOT NULL,
    token_prefix        TEXT NOT NULL,
    token_hash          TEXT NOT NULL UNIQUE,
    created_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    expires_at          TEXT NULL,
    revoked_at          TEXT NULL,
    last_used_at        TEXT NULL
);
CREATE INDEX api_tokens_account_idx ON api_tokens (account_id);
