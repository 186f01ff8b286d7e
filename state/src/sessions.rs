//! `dashboard_sessions`: dashboard sign-ins. The browser's cookie holds a random session
//! id; only its SHA-256 hash is stored, with the token the session was opened with, so a
//! session never outlives that token (revoked or expired) and the cookie never holds it.

use crate::dialect::dialect;
use crate::tokens::{checked, random_hex, sha256_hex};
use crate::{Result, State, TokenCheck, err};

impl State {
    /// Opens a session of `ttl_s` seconds for the valid `token`: its id (what the cookie
    /// holds), or None when the token is not valid (check it first for why). Expired
    /// sessions are removed on the way.
    #[tracing::instrument(skip_all, err)]
    pub async fn open_session(&self, token: &str, ttl_s: i64) -> Result<Option<String>> {
        let id = random_hex(32)?;
        let purge = dialect(
            &self.pool,
            "DELETE FROM dashboard_sessions WHERE expires_at < {now}",
        );
        let insert = dialect(
            &self.pool,
            "INSERT INTO dashboard_sessions (session_hash, token_id, expires_at) \
             SELECT $1, id, {now+$2} FROM api_tokens \
             WHERE token_hash = $3 AND revoked_at IS NULL \
               AND (expires_at IS NULL OR expires_at > {now})",
        );
        let opened = on_pool!(&self.pool, p => {
            sqlx::query(sqlx::AssertSqlSafe(purge.as_str()))
                .execute(p)
                .await
                .map_err(err("removing expired sessions"))?;
            sqlx::query(sqlx::AssertSqlSafe(insert.as_str()))
                .bind(sha256_hex(&id))
                .bind(ttl_s)
                .bind(sha256_hex(token))
                .execute(p)
                .await
                .map_err(err("opening a session"))?
                .rows_affected()
        });
        Ok((opened == 1).then_some(id))
    }

    /// What the session `id` signs in as: its token's account and scope; Expired when the
    /// session or its token has expired, Revoked when the token was revoked, Unknown when
    /// there is no such session (signed out, or never opened).
    #[tracing::instrument(skip_all, err)]
    pub async fn check_session(&self, id: &str) -> Result<TokenCheck> {
        let sql = dialect(
            &self.pool,
            "SELECT t.account_id, \
                    s.expires_at < {now} OR (t.expires_at IS NOT NULL AND t.expires_at < {now}), \
                    t.revoked_at IS NOT NULL, t.scope \
             FROM dashboard_sessions s JOIN api_tokens t ON t.id = s.token_id \
             WHERE s.session_hash = $1",
        );
        let row: Option<(i64, bool, bool, String)> = on_pool!(&self.pool, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(sha256_hex(id))
                .fetch_optional(p)
                .await
                .map_err(err("checking a session"))?
        });
        Ok(checked(row))
    }

    /// Ends the session `id` (signing out); true if there was one.
    #[tracing::instrument(skip_all, err)]
    pub async fn close_session(&self, id: &str) -> Result<bool> {
        let sql = dialect(
            &self.pool,
            "DELETE FROM dashboard_sessions WHERE session_hash = $1",
        );
        on_pool!(&self.pool, p => {
            Ok(sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(sha256_hex(id))
                .execute(p)
                .await
                .map_err(err("closing a session"))?
                .rows_affected()
                == 1)
        })
    }
}
