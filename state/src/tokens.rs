//! `api_tokens`: bearer tokens, each scoped to one account. Only a token's SHA-256 hash and
//! its first characters (to tell tokens apart when revoking) are stored.

use chrono::{DateTime, Utc};

use crate::dialect::dialect;
use crate::{Error, Result, State, err};

/// What a presented API token turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// Valid, for this account, with this scope.
    Account(i64, Scope),
    Unknown,
    Expired,
    Revoked,
}

/// What a token may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// Every endpoint: the report API, the Analytics API and the dashboard.
    #[default]
    Api,
    /// The dashboard's pages and downloads only: a token on a shared screen cannot read
    /// the JSON APIs.
    Dashboard,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Api => "api",
            Scope::Dashboard => "dashboard",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "api" => Ok(Scope::Api),
            "dashboard" => Ok(Scope::Dashboard),
            _ => Err(format!("`{s}` is not a scope: use api or dashboard")),
        }
    }
}

/// One token as `mttx token list` shows it: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    /// The token's first characters, to tell tokens apart.
    pub prefix: String,
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// When the API last checked it (at most once per token check period of a server).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// `bytes` bytes from the operating system's random source, as hex.
pub(crate) fn random_hex(bytes: usize) -> Result<String> {
    let mut raw = vec![0_u8; bytes];
    getrandom::fill(&mut raw).map_err(Error::Random)?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// A token's or session's check from its row: (account, expired, revoked, scope). A scope
/// this mttx does not know reads as the narrowest.
pub(crate) fn checked(row: Option<(i64, bool, bool, String)>) -> TokenCheck {
    match row {
        None => TokenCheck::Unknown,
        Some((_, _, true, _)) => TokenCheck::Revoked,
        Some((_, true, _, _)) => TokenCheck::Expired,
        Some((account, false, false, scope)) => {
            TokenCheck::Account(account, scope.parse().unwrap_or(Scope::Dashboard))
        }
    }
}

pub(crate) fn sha256_hex(text: &str) -> String {
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
        self.create_scoped_token(account, name, ttl_s, Scope::Api)
            .await
    }

    /// [`State::create_token`] with a [`Scope`].
    #[tracing::instrument(skip_all, fields(account, name, scope = scope.as_str()), err)]
    pub async fn create_scoped_token(
        &self,
        account: i64,
        name: &str,
        ttl_s: Option<i64>,
        scope: Scope,
    ) -> Result<String> {
        let token = format!("mttx_{}", random_hex(24)?);
        let sql = dialect(
            &self.pool,
            "INSERT INTO api_tokens (account_id, name, token_prefix, token_hash, expires_at, scope) \
             VALUES ($1, $2, $3, $4, CASE WHEN $5 < 0 THEN NULL ELSE {now+$5} END, $6)",
        );
        on_pool!(&self.pool, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(account)
                .bind(name)
                .bind(&token[..13])
                .bind(sha256_hex(&token))
                .bind(ttl_s.unwrap_or(-1))
                .bind(scope.as_str())
                .execute(p)
                .await
                .map(drop)
                .map_err(err("creating a token"))?
        });
        Ok(token)
    }

    /// Checks a presented token, and records that a valid one was used.
    #[tracing::instrument(skip_all, err)]
    pub async fn check_token(&self, token: &str) -> Result<TokenCheck> {
        let sql = dialect(
            &self.pool,
            "SELECT account_id, expires_at IS NOT NULL AND expires_at < {now}, revoked_at IS NOT NULL, scope \
             FROM api_tokens WHERE token_hash = $1",
        );
        let hash = sha256_hex(token);
        let row: Option<(i64, bool, bool, String)> = on_pool!(&self.pool, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&hash)
                .fetch_optional(p)
                .await
                .map_err(err("checking a token"))?
        });
        let check = checked(row);
        if matches!(check, TokenCheck::Account(..)) {
            let used = dialect(
                &self.pool,
                "UPDATE api_tokens SET last_used_at = {now} WHERE token_hash = $1",
            );
            on_pool!(&self.pool, p => {
                sqlx::query(sqlx::AssertSqlSafe(used.as_str()))
                    .bind(&hash)
                    .execute(p)
                    .await
                    .map(drop)
                    .map_err(err("recording a token's use"))?
            });
        }
        Ok(check)
    }

    /// The tokens of `account`, oldest first (never the tokens themselves).
    #[tracing::instrument(skip_all, fields(account), err)]
    pub async fn list_tokens(&self, account: i64) -> Result<Vec<TokenInfo>> {
        self.tokens_where("account_id = $1", account).await
    }

    /// Revokes the token with id `id`: the token as it is now (None: no such token). A
    /// token revoked before keeps its first revocation time.
    #[tracing::instrument(skip_all, fields(id), err)]
    pub async fn revoke_token(&self, id: i64) -> Result<Option<TokenInfo>> {
        let sql = dialect(
            &self.pool,
            "UPDATE api_tokens SET revoked_at = {now} WHERE id = $1 AND revoked_at IS NULL",
        );
        on_pool!(&self.pool, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(id)
                .execute(p)
                .await
                .map(drop)
                .map_err(err("revoking a token"))?
        });
        Ok(self.tokens_where("id = $1", id).await?.pop())
    }

    /// The tokens whose row meets `condition` (on the one parameter `value`), oldest first.
    async fn tokens_where(&self, condition: &str, value: i64) -> Result<Vec<TokenInfo>> {
        let sql = dialect(
            &self.pool,
            &format!(
                "SELECT id, account_id, name, token_prefix, scope, created_at, expires_at, revoked_at, last_used_at \
                 FROM api_tokens WHERE {condition} ORDER BY id"
            ),
        );
        type Row = (
            i64,
            i64,
            String,
            String,
            String,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        );
        let rows: Vec<Row> = on_pool!(&self.pool, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(value)
                .fetch_all(p)
                .await
                .map_err(err("reading tokens"))?
        });
        Ok(rows
            .into_iter()
            .map(|r| TokenInfo {
                id: r.0,
                account_id: r.1,
                name: r.2,
                prefix: r.3,
                scope: r.4,
                created_at: r.5,
                expires_at: r.6,
                revoked_at: r.7,
                last_used_at: r.8,
            })
            .collect())
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
