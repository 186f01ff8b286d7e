-- Dashboard sign-ins: the browser's cookie holds a random session id, stored here only as its
-- SHA-256 hash, never the API token. A session ends at its expiry, when signed out, or when
-- the token it was opened with is revoked or expires.
CREATE TABLE dashboard_sessions (
    session_hash        TEXT PRIMARY KEY,
    token_id            BIGINT NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX dashboard_sessions_expiry_idx ON dashboard_sessions (expires_at);
