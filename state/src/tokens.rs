//! `api_tokens`: bearer tokens, each scoped to one account. Only a token's SHA-256 hash and
//! its first characters (to tell tokens apart when revoking) are stored.

use crate::dialect::dialect;
use crate::{Error, Result, State, err};

/// What a presented API token turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// Valid, for this account.
    Account(i64),
    Unknown,
    Expired,
    Revoked,
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl State {
    /// Creates an API token for `account` (valid for `ttl_s` seconds, or until revoked when
    /// None) from 24 bytes of the operating system's random source, and returns it.
    #[tracing::instrument(skip_all, fields(account, name), err)]
    pub async fn create_token(
        &self,
        account: i64,
        name: &str,
        ttl_s: Option<i64>,
    ) -> Result<String> {
        let mut bytes = [0_u8; 24];
        getrandom::fill(&mut bytes).map_err(Error::Random)?;
        let token: String = std::iter::once("mttx_".to_owned())
            .chain(bytes.iter().map(|b| format!("{b:02x}")))
            .collect();
        let sql = dialect(
            &self.pool,
            "INSERT INTO api_tokens (account_id, name, token_prefix, token_hash, expires_at) \
             VALUES ($1, $2, $3, $4, CASE WHEN $5 < 0 THEN NULL ELSE {now+$5} END)",
        );
        on_pool!(&self.pool, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(account)
                .bind(name)
                .bind(&token[..13])
                .bind(sha256_hex(&token))
                .bind(ttl_s.unwrap_or(-1))
                .execute(p)
                .await
                .map(drop)
                .map_err(err("creating a token"))?
        });
        Ok(token)
    }

    /// Checks a presented token.
    #[tracing::instrument(skip_all, err)]
    pub async fn check_token(&self, token: &str) -> Result<TokenCheck> {
        let sql = dialect(
            &self.pool,
            "SELECT account_id, expires_at IS NOT NULL AND expires_at < {now}, revoked_at IS NOT NULL \
             FROM api_tokens WHERE token_hash = $1",
        );
        let hash = sha256_hex(token);
        let row: Option<(i64, bool, bool)> = on_pool!(&self.pool, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&hash)
                .fetch_optional(p)
                .await
                .map_err(err("checking a token"))?
        });
        Ok(match row {
            None => TokenCheck::Unknown,
            Some((_, _, true)) => TokenCheck::Revoked,
            Some((_, true, _)) => TokenCheck::Expired,
            Some((account, false, false)) => TokenCheck::Account(account),
        })
    }

    /// Revokes every token of `account` whose text starts with `prefix`; returns how many.
    #[tracing::instrument(skip_all, fields(account), err)]
    pub async fn revoke_tokens(&self, account: i64, prefix: &str) -> Result<u64> {
        let sql = dialect(
            &self.pool,
            "UPDATE api_tokens SET revoked_at = {now} WHERE account_id = $1 AND token_prefix = $2 AND revoked_at IS NULL",
        );
        on_pool!(&self.pool, p => {
            Ok(sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(account)
                .bind(prefix)
                .execute(p)
                .await
                .map_err(err("revoking tokens"))?
                .rows_affected())
        })
    }
}
