-- How current each facts table is: the last log entry folded into it with no entry awaited
-- below it (its id and the replica's created time), written by the ETL after each commit.
-- Keyed by the Delta table's own id, so every spelling of its location finds it.

CREATE TABLE facts_freshness (
    table_id            TEXT PRIMARY KEY,
    complete_id         BIGINT NOT NULL,
    -- Microseconds since 1970 (UTC) of that entry's created_at; NULL for an empty log.
    data_as_of_us       BIGINT,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
