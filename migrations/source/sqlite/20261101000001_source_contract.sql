-- The replica contract for the embedded SQLite default: the same tables and columns as
-- migrations/source/postgres. Timestamps are RFC 3339 text in UTC with six fractional
-- digits ('2026-03-29T01:30:00.000000Z'), so text order is time order; BIGINT[] columns
-- are JSON arrays ('[3,4]') and JSONB columns are JSON text.

CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    time_zone   TEXT NOT NULL
);

CREATE TABLE teams (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    name        TEXT NOT NULL
);
CREATE INDEX teams_account_idx ON teams (account_id);

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    name        TEXT NOT NULL,
    email       TEXT NOT NULL,
    time_zone   TEXT NOT NULL
);
CREATE INDEX users_account_idx ON users (account_id);

CREATE TABLE team_members (
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    team_id     INTEGER NOT NULL REFERENCES teams (id),
    user_id     INTEGER NOT NULL REFERENCES users (id),
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user_idx ON team_members (user_id);

CREATE TABLE escalation_policies (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts (id),
    team_id     INTEGER NULL REFERENCES teams (id),
    name        TEXT NOT NULL
);
CREATE INDEX escalation_policies_account_idx ON escalation_policies (account_id);

CREATE TABLE escalation_rules (
    id                      INTEGER PRIMARY KEY,
    account_id              INTEGER NOT NULL REFERENCES accounts (id),
    escalation_policy_id    INTEGER NOT NULL REFERENCES escalation_policies (id),
    level                   INTEGER NOT NULL,
    escalation_delay_minutes INTEGER NOT NULL,
    target_user_ids         TEXT NOT NULL CHECK (json_valid(target_user_ids)),
    UNIQUE (escalation_policy_id, level)
);

CREATE TABLE services (
    id                      INTEGER PRIMARY KEY,
    account_id              INTEGER NOT NULL REFERENCES accounts (id),
    team_id                 INTEGER NULL REFERENCES teams (id),
    escalation_policy_id    INTEGER NOT NULL REFERENCES escalation_policies (id),
    name                    TEXT NOT NULL
);
CREATE INDEX services_account_idx ON services (account_id);

CREATE TABLE incidents (
    id                      INTEGER PRIMARY KEY,
    account_id              INTEGER NOT NULL REFERENCES accounts (id),
    incident_number         INTEGER NOT NULL,
    service_id              INTEGER NOT NULL REFERENCES services (id),
    escalation_policy_id    INTEGER NOT NULL REFERENCES escalation_policies (id),
    title                   TEXT NOT NULL,
    urgency                 TEXT NOT NULL CHECK (urgency IN ('high', 'low')),
    priority                TEXT NULL CHECK (priority IN ('P1', 'P2', 'P3', 'P4', 'P5')),
    status                  TEXT NOT NULL CHECK (status IN ('triggered', 'acknowledged', 'resolved')),
    created_at              TEXT NOT NULL,
    UNIQUE (account_id, incident_number)
);
CREATE INDEX incidents_account_created_idx ON incidents (account_id, created_at);

CREATE TABLE incident_log_entries (
    id                      INTEGER PRIMARY KEY,
    account_id              INTEGER NOT NULL,
    incident_id             INTEGER NOT NULL,
    type                    TEXT NOT NULL,
    created_at              TEXT NOT NULL,
    agent_type              TEXT NULL,
    agent_id                INTEGER NULL,
    channel                 TEXT NULL,
    user_id                 INTEGER NULL,
    assignee_ids            TEXT NULL CHECK (assignee_ids IS NULL OR json_valid(assignee_ids)),
    escalation_policy_id    INTEGER NULL,
    details                 TEXT NULL CHECK (details IS NULL OR json_valid(details))
);
CREATE INDEX incident_log_entries_incident_idx ON incident_log_entries (incident_id, created_at, id);
CREATE INDEX incident_log_entries_created_idx ON incident_log_entries (created_at);
