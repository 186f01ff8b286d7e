//! Signing in and out. A token from the sign-in form opens a server-side session: the
//! cookie holds a random session id (HttpOnly, SameSite=Strict, `Secure` over HTTPS), the
//! state database its hash and the token it was opened with, so the cookie never holds the
//! token and a session ends with its token. [`SignedIn`] reads the session (or a bearer
//! header) back into the account on every page, or answers with the sign-in page saying
//! why not. Sign-in and sign-out accept only posts from the dashboard's own origin (login
//! CSRF), and wrong sign-ins are limited per client address ([`LoginLimit`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use mttx_state::TokenCheck;

use super::html;
use crate::http::auth::{bearer, token_account};
use crate::http::params::query_params;
use crate::http::{ApiError, App};

/// The session cookie: a random session id, HttpOnly and SameSite=Strict.
const COOKIE: &str = "mttx_session";

/// How long a sign-in lasts (the token's own expiry and revocation end it sooner).
const SESSION_SECONDS: u32 = 12 * 3600;

/// Sign-in attempts a client address may make per minute.
pub const LOGINS_PER_MINUTE: u32 = 20;

/// Sign-in attempts by client address: [`LOGINS_PER_MINUTE`], refilled steadily (GCRA).
#[derive(Debug)]
pub struct LoginLimit(DefaultKeyedRateLimiter<String>);

impl Default for LoginLimit {
    fn default() -> Self {
        let per_minute = NonZeroU32::new(LOGINS_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        Self(RateLimiter::keyed(Quota::per_minute(per_minute)))
    }
}

impl LoginLimit {
    /// Takes one attempt for `client`; when none is left, how many seconds until one is.
    fn take(&self, client: String) -> Result<(), u64> {
        self.0.check_key(&client).map_err(|not_until| {
            let clock = governor::clock::DefaultClock::default();
            not_until
                .wait_time_from(governor::clock::Clock::now(&clock))
                .as_secs()
                + 1
        })?;
        // Forget addresses whose attempts have all refilled, so the map stays small.
        if self.0.len() > 10_000 {
            self.0.retain_recent();
        }
        Ok(())
    }
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn session_cookie(id: &str, max_age: u32, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={id}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("mttx_session=; Path=/; Max-Age=0"))
}

/// Only a page of this dashboard is a place to go back to after signing in: a path under
/// `/dashboard` of visible ASCII, never `//` (another host); anything else, whatever its
/// bytes, goes to `/dashboard`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/dashboard")
                && !n.starts_with("//")
                && !n.contains("/\\")
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_owned()
        }
        _ => "/dashboard".to_owned(),
    }
}

fn login_page(status: StatusCode, message: Option<&str>, next: &str, clear: bool) -> Response {
    let mut page = html(
        status,
        "login.html",
        minijinja::context! { message, next, signed_in => false },
    );
    if clear {
        page.headers_mut()
            .insert(header::SET_COOKIE, session_cookie("", 0, false));
    }
    page
}

/// The sign-in page saying why `e` refused (a 5xx is logged by [`ApiError::answer`]).
fn refusal_page(e: ApiError, next: &str, clear: bool) -> Response {
    let (status, m) = e.answer();
    login_page(status, Some(&m), next, clear)
}

/// Why a check refused, in words for the sign-in page.
fn refused(check: TokenCheck) -> &'static str {
    match check {
        TokenCheck::Expired => "your sign-in has expired; sign in again",
        TokenCheck::Revoked => {
            "the token you signed in with has been revoked; sign in with another (`mttx token create`)"
        }
        _ => "you have been signed out; sign in again",
    }
}

/// The signed-in account (session cookie or bearer header), or the sign-in page to show
/// instead, saying why.
async fn signed_in(app: &App, headers: &HeaderMap, uri: &Uri) -> Result<i64, Response> {
    let next = safe_next(uri.path_and_query().map(|p| p.as_str()));
    // A bearer header (scripts, tests): the token itself; any scope reads the dashboard.
    if let Some(token) = headers.get(header::AUTHORIZATION).and_then(bearer) {
        return token_account(app, token)
            .await
            .map(|(account, _scope)| account)
            .map_err(|e| refusal_page(e, &next, false));
    }
    let Some(session) = cookie(headers, COOKIE).filter(|t| !t.is_empty()) else {
        let to: String = url::form_urlencoded::Serializer::new(String::from("/login?"))
            .append_pair("next", &next)
            .finish();
        return Err(Redirect::to(&to).into_response());
    };
    match app.state.check_session(session).await {
        Ok(TokenCheck::Account(account, _)) => Ok(account),
        Ok(other) => Err(login_page(
            StatusCode::UNAUTHORIZED,
            Some(refused(other)),
            &next,
            true,
        )),
        Err(e) => Err(refusal_page(
            ApiError::unavailable("cannot check sign-ins right now; try again", e),
            &next,
            false,
        )),
    }
}

/// The signed-in account of a page request; not signed in, the sign-in page (saying
/// why) is the answer instead.
pub(super) struct SignedIn(pub(super) i64);

impl FromRequestParts<Arc<App>> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        signed_in(app, &parts.headers, &parts.uri)
            .await
            .map(SignedIn)
    }
}

/// Whether a form post comes from a page of this server: its `Origin` (or, without one,
/// its `Referer`) names the host the request was sent to, and the browser does not call
/// it cross-site. A post with none of these headers is no browser's, so no forgery.
fn same_origin(headers: &HeaderMap, trust_proxy: bool) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if matches!(text("sec-fetch-site"), Some("cross-site" | "same-site")) {
        return false;
    }
    let host = trust_proxy
        .then(|| text("x-forwarded-host"))
        .flatten()
        .or_else(|| text("host"));
    let authority = |u: &str| -> Option<String> {
        let url = url::Url::parse(u).ok()?;
        let host = url.host_str()?;
        Some(match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        })
    };
    let from = match (text("origin"), text("referer")) {
        (Some(o), _) => o,
        (None, Some(r)) => r,
        (None, None) => return true,
    };
    match (authority(from), host) {
        (Some(a), Some(h)) => a.eq_ignore_ascii_case(h),
        _ => false,
    }
}

fn forged(next: &str) -> Response {
    login_page(
        StatusCode::FORBIDDEN,
        Some("this form was sent from another site; sign in from this page"),
        next,
        false,
    )
}

/// The client's address: the connection's peer, or behind a trusted proxy the first
/// address of `X-Forwarded-For`.
fn client(parts_headers: &HeaderMap, peer: Option<SocketAddr>, trust_proxy: bool) -> String {
    let forwarded = trust_proxy
        .then(|| {
            parts_headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(|a| a.trim().to_owned())
        })
        .flatten();
    forwarded
        .or_else(|| peer.map(|p| p.ip().to_string()))
        .unwrap_or_else(|| "unknown".to_owned())
}

pub(super) async fn login_form(RawQuery(query): RawQuery) -> Response {
    let params = query_params(query.as_deref()).unwrap_or_default();
    login_page(
        StatusCode::OK,
        None,
        &safe_next(params.get("next").map(String::as_str)),
        false,
    )
}

pub(super) async fn login(
    State(app): State<Arc<App>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let peer = extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let next = safe_next(form.get("next").map(String::as_str));
    if !same_origin(&headers, app.reach.trust_proxy) {
        return forged(&next);
    }
    let who = client(&headers, peer, app.reach.trust_proxy);
    if let Err(wait) = app.login_limit.take(who.clone()) {
        tracing::info!(client = who, "sign-in attempts over the limit");
        let mut page = login_page(
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!(
                "too many sign-in attempts from your address; try again in {wait} s"
            )),
            &next,
            false,
        );
        page.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return page;
    }
    let token = form.get("token").map_or("", |t| t.trim());
    if token.is_empty() {
        return login_page(
            StatusCode::BAD_REQUEST,
            Some("paste a token; create one with `mttx token create --account <id>`"),
            &next,
            false,
        );
    }
    if let Err(e) = token_account(&app, token).await {
        return refusal_page(e, &next, true);
    }
    match app
        .state
        .open_session(token, i64::from(SESSION_SECONDS))
        .await
    {
        Ok(Some(id)) => {
            let mut to = Redirect::to(&next).into_response();
            to.headers_mut().insert(
                header::SET_COOKIE,
                session_cookie(&id, SESSION_SECONDS, app.reach.https(&headers)),
            );
            to
        }
        // Revoked or expired between the check and now.
        Ok(None) => login_page(
            StatusCode::UNAUTHORIZED,
            Some("this token is no longer valid; create a new one with `mttx token create`"),
            &next,
            true,
        ),
        Err(e) => refusal_page(
            ApiError::unavailable("cannot sign in right now; try again", e),
            &next,
            false,
        ),
    }
}

pub(super) async fn logout(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if !same_origin(&headers, app.reach.trust_proxy) {
        return forged("/dashboard");
    }
    if let Some(id) = cookie(&headers, COOKIE).filter(|t| !t.is_empty())
        && let Err(e) = app.state.close_session(id).await
    {
        tracing::warn!(error = %e, "could not end a session in the state database");
    }
    let mut to = Redirect::to("/login").into_response();
    to.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie("", 0, app.reach.https(&headers)),
    );
    to
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// `next` of any bytes is a dashboard path that can go in a header as it is.
        #[test]
        fn next_of_any_bytes_is_a_dashboard_path(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let text = String::from_utf8_lossy(&raw);
            for n in [text.to_string(), format!("/dashboard{text}")] {
                let next = safe_next(Some(&n));
                prop_assert!(next.starts_with("/dashboard"));
                prop_assert!(HeaderValue::from_str(&next).is_ok(), "{next:?}");
            }
        }
    }

    #[test]
    fn only_dashboard_paths_are_kept() {
        for (given, want) in [
            ("/dashboard?week=2026-W44", "/dashboard?week=2026-W44"),
            ("/dashboard\r\nSet-Cookie: x=1", "/dashboard"),
            ("//evil.example/dashboard", "/dashboard"),
            ("https://evil.example/", "/dashboard"),
            ("/dashboard/\\evil.example", "/dashboard"),
            ("/login", "/dashboard"),
        ] {
            assert_eq!(safe_next(Some(given)), want, "{given:?}");
        }
    }

    #[test]
    fn only_posts_from_the_same_origin_pass() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        let host = ("host", "127.0.0.1:8080");
        assert!(same_origin(&headers(&[host]), false));
        assert!(same_origin(
            &headers(&[host, ("origin", "http://127.0.0.1:8080")]),
            false
        ));
        assert!(!same_origin(
            &headers(&[host, ("origin", "http://127.0.0.1:9999")]),
            false
        ));
        assert!(!same_origin(&headers(&[host, ("origin", "null")]), false));
        assert!(!same_origin(
            &headers(&[host, ("referer", "http://evil.example/x")]),
            false
        ));
        assert!(!same_origin(
            &headers(&[host, ("sec-fetch-site", "cross-site")]),
            false
        ));
        let proxied = [
            host,
            ("x-forwarded-host", "mttx.example"),
            ("origin", "https://mttx.example"),
        ];
        assert!(same_origin(&headers(&proxied), true));
        assert!(!same_origin(&headers(&proxied), false));
    }
}
