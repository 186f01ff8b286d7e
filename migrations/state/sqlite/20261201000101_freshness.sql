-- How current each facts table is; same table as migrations/state/postgres.

CREATE TABLE facts_freshness (
    table_id            TEXT PRIMARY KEY,
    complete_id         INTEGER NOT NULL,
    data_as_of_us       INTEGER,
    updated_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
