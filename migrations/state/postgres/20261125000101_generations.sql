-- Generations of the facts table: each one a whole Delta table built by one metrics version.
-- Reports are served from the generation `facts_serving` names; a reprocess builds a new
-- generation beside it and switches this one row (atomically) when it is complete.

CREATE TABLE facts_generations (
    id                  BIGSERIAL PRIMARY KEY,
    base                TEXT NOT NULL,          -- the --facts location they stand for
    location            TEXT NOT NULL UNIQUE,
    metrics_version     INTEGER NOT NULL,
    status              TEXT NOT NULL DEFAULT 'building'
                        CHECK (status IN ('building', 'ready')),
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    ready_at            TIMESTAMPTZ NULL
);

CREATE TABLE facts_serving (
    base                TEXT PRIMARY KEY,
    generation_id       BIGINT NOT NULL REFERENCES facts_generations (id),
    previous_id         BIGINT NULL REFERENCES facts_generations (id),
    switched_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
