-- The replica contract: the incident-management system's tables as mttx reads them.
-- The ETL never writes here; tests, fixtures and the demo create this schema.
-- Every table carries account_id (the tenant).

CREATE TABLE accounts (
    id          BIGINT PRIMARY KEY,
    name        TEXT NOT NULL,
    time_zone   TEXT NOT NULL
);

CREATE TABLE teams (
    id          BIGINT PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    name        TEXT NOT NULL
);
CREATE INDEX teams_account_idx ON teams (account_id);

CREATE TABLE users (
    id          BIGINT PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    name        TEXT NOT NULL,
    email       TEXT NOT NULL,
    time_zone   TEXT NOT NULL
);
CREATE INDEX users_account_idx ON users (account_id);

CREATE TABLE team_members (
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    team_id     BIGINT NOT NULL REFERENCES teams (id),
    user_id     BIGINT NOT NULL REFERENCES users (id),
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user_idx ON team_members (user_id);

CREATE TABLE escalation_policies (
    id          BIGINT PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    team_id     BIGINT NULL REFERENCES teams (id),
    name        TEXT NOT NULL
);
CREATE INDEX escalation_policies_account_idx ON escalation_policies (account_id);

-- Not named in the design brief's list, added to it: the levels of a policy, who is on call
-- at each and how long an unacknowledged incident waits there before it escalates.
CREATE TABLE escalation_rules (
    id                      BIGINT PRIMARY KEY,
    account_id              BIGINT NOT NULL REFERENCES accounts (id),
    escalation_policy_id    BIGINT NOT NULL REFERENCES escalation_policies (id),
    level                   INTEGER NOT NULL,
    escalation_delay_minutes INTEGER NOT NULL,
    target_user_ids         BIGINT[] NOT NULL,
    UNIQUE (escalation_policy_id, level)
);

CREATE TABLE services (
    id                      BIGINT PRIMARY KEY,
    account_id              BIGINT NOT NULL REFERENCES accounts (id),
    team_id                 BIGINT NULL REFERENCES teams (id),
    escalation_policy_id    BIGINT NOT NULL REFERENCES escalation_policies (id),
    name                    TEXT NOT NULL
);
CREATE INDEX services_account_idx ON services (account_id);

-- Current state only; the history is in incident_log_entries.
CREATE TABLE incidents (
    id                      BIGINT PRIMARY KEY,
    account_id              BIGINT NOT NULL REFERENCES accounts (id),
    incident_number         BIGINT NOT NULL,
    service_id              BIGINT NOT NULL REFERENCES services (id),
    escalation_policy_id    BIGINT NOT NULL REFERENCES escalation_policies (id),
    title                   TEXT NOT NULL,
    urgency                 TEXT NOT NULL CHECK (urgency IN ('high', 'low')),
    priority                TEXT NULL CHECK (priority IN ('P1', 'P2', 'P3', 'P4', 'P5')),
    status                  TEXT NOT NULL CHECK (status IN ('triggered', 'acknowledged', 'resolved')),
    created_at              TIMESTAMPTZ NOT NULL,
    UNIQUE (account_id, incident_number)
);
CREATE INDEX incidents_account_created_idx ON incidents (account_id, created_at);

-- The log. No foreign keys on purpose: a real log holds entries whose incident is gone,
-- unknown types and NULLs where a value is expected, and the ETL must see all of them.
-- Ids come from a sequence at insert, so transactions can commit out of id order.
CREATE TABLE incident_log_entries (
    id                      BIGINT PRIMARY KEY,
    account_id              BIGINT NOT NULL,
    incident_id             BIGINT NOT NULL,
    type                    TEXT NOT NULL,
    created_at              TIMESTAMPTZ NOT NULL,
    agent_type              TEXT NULL,
    agent_id                BIGINT NULL,
    channel                 TEXT NULL,
    user_id                 BIGINT NULL,
    assignee_ids            BIGINT[] NULL,
    escalation_policy_id    BIGINT NULL,
    details                 JSONB NULL
);
CREATE SEQUENCE incident_log_entries_id_seq OWNED BY incident_log_entries.id;
ALTER TABLE incident_log_entries ALTER COLUMN id SET DEFAULT nextval('incident_log_entries_id_seq');
-- What an ETL needs: by id (the primary key, for cursors), by incident and time (to refold
-- one incident from its whole log) and by time (backfills and windows).
CREATE INDEX incident_log_entries_incident_idx ON incident_log_entries (incident_id, created_at, id);
CREATE INDEX incident_log_entries_created_idx ON incident_log_entries (created_at);
