-- A token's scope: `api` (every endpoint, the default) or `dashboard` (the dashboard's pages
-- and downloads only: a token shown on a shared screen cannot read the JSON APIs).
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'api';
