-- Weekly reports sent by `mttx report send`: one row per account, team (-1: the whole
-- account), ISO week and channel (email or webhook). A row is claimed (`sending`) before the
-- send and marked `sent` or `failed` after it, so a failed send is retried and a sent one is
-- never sent again; a claim left `sending` by a crash is reported, not resent.
CREATE TABLE report_deliveries (
    account_id          BIGINT NOT NULL,
    team_id             BIGINT NOT NULL,
    week                TEXT NOT NULL,
    channel             TEXT NOT NULL,
    status              TEXT NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    detail              TEXT,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at             TIMESTAMPTZ,
    PRIMARY KEY (account_id, team_id, week, channel)
);
