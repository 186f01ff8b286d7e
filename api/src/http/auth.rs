//! Who is asking: a bearer token (or PagerDuty's `Token token=…`) in, its account out. The API's handlers take the
//! [`Account`] extractor; the dashboard's sign-in shares [`token_account`], the check
//! itself. Checks are kept for [`TOKEN_TTL`], so a revoked or expired token stops working
//! within that time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use mttx_state::{Scope, TokenCheck};
use quick_cache::sync::Cache;

use super::{ApiError, App};

/// The account of the request's bearer token. Without a usable token the request is
/// answered 401, with what to do.
#[derive(Debug, Clone, Copy)]
pub struct Account(pub i64);

impl FromRequestParts<Arc<App>> for Account {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::Unauthorized(
                "send `Authorization: Bearer <token>`; create a token with `mttx token create --account <id>`".into(),
            ));
        };
        let token = bearer(value).ok_or_else(|| {
            ApiError::Unauthorized(
                "the Authorization header must read `Bearer <token>` or `Token token=<token>`"
                    .into(),
            )
        })?;
        match token_account(app, token).await? {
            (account, Scope::Api) => Ok(Account(account)),
            (_, Scope::Dashboard) => Err(ApiError::Forbidden(
                "this token may only sign in to the dashboard; for the API create one with `mttx token create --account <id>` (scope api, the default)".into(),
            )),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header, or of PagerDuty's form
/// `Authorization: Token token=<token>` (what PagerDuty's clients send).
pub(crate) fn bearer(value: &HeaderValue) -> Option<&str> {
    let v = value.to_str().ok()?;
    let token = match v.strip_prefix("Bearer ") {
        Some(t) => t,
        None => v
            .strip_prefix("Token ")?
            .trim_start()
            .strip_prefix("token=")?,
    };
    Some(token.trim().trim_matches('"'))
}

/// The account and scope of `token`, or a 401 that says why not (unknown, expired,
/// revoked).
#[tracing::instrument(skip_all)]
pub(crate) async fn token_account(app: &App, token: &str) -> Result<(i64, Scope), ApiError> {
    let unauthorized = |m: &str| ApiError::Unauthorized(m.to_owned());
    let check = match app.tokens.get(token) {
        Some(c) => Ok(c),
        None => app.state.check_token(token).await.inspect(|c| {
            // A token not known now may be created in a moment: only outcomes that last
            // are kept.
            if *c != TokenCheck::Unknown {
                app.tokens.put(token, *c);
            }
        }),
    };
    match check {
        Ok(TokenCheck::Account(a, scope)) => Ok((a, scope)),
        Ok(TokenCheck::Unknown) => Err(unauthorized(
            "this token is not known; create one with `mttx token create`",
        )),
        Ok(TokenCheck::Expired) => Err(unauthorized(
            "this token has expired; create a new one with `mttx token create`",
        )),
        Ok(TokenCheck::Revoked) => Err(unauthorized(
            "this token has been revoked; create a new one with `mttx token create`",
        )),
        Err(e) => Err(ApiError::unavailable(
            "cannot check tokens right now; try again",
            e,
        )),
    }
}

/// How long a token check is trusted.
pub const TOKEN_TTL: Duration = Duration::from_secs(10);

/// Token checks by token, trusted for [`TOKEN_TTL`].
#[derive(Debug)]
pub struct Tokens {
    cache: Cache<String, (TokenCheck, Instant)>,
}

impl Default for Tokens {
    fn default() -> Self {
        Self {
            cache: Cache::new(10_000),
        }
    }
}

impl Tokens {
    pub fn get(&self, token: &str) -> Option<TokenCheck> {
        self.cache
            .get(token)
            .filter(|(_, at)| at.elapsed() < TOKEN_TTL)
            .map(|(c, _)| c)
    }

    pub fn put(&self, token: &str, check: TokenCheck) {
        self.cache.insert(token.to_owned(), (check, Instant::now()));
    }
}
