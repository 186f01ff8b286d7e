-- Generations of the facts table; same tables as migrations/state/postgres.

CREATE TABLE facts_generations (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    base                TEXT NOT NULL,          -- the --facts location they stand for
    location            TEXT NOT NULL UNIQUE,
    metrics_version     INTEGER NOT NULL,
    status              TEXT NOT NULL DEFAULT 'building'
                        CHECK (status IN ('building', 'ready')),
    created_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    ready_at            TEXT NULL
);

CREATE TABLE facts_serving (
    base                TEXT PRIMARY KEY,
    generation_id       INTEGER NOT NULL REFERENCES facts_generations (id),
    previous_id         INTEGER NULL REFERENCES facts_generations (id),
    switched_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
