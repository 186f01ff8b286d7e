//! Signing in and out: a token from the sign-in form becomes an HttpOnly, SameSite=Strict
//! session cookie holding it; [`SignedIn`] reads the cookie (or a bearer header) back into
//! the account on every page, or answers with the sign-in page saying why not.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::html;
use crate::http::App;
use crate::http::auth::{bearer, token_account};
use crate::http::params::query_params;

/// The session cookie: it holds the token, HttpOnly and SameSite=Strict.
const COOKIE: &str = "mttx_session";

/// How long a sign-in lasts in the browser (the token's own expiry still applies).
const SESSION_SECONDS: u32 = 12 * 3600;

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

fn session_cookie(token: &str, max_age: u32) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("mttx_session=; Path=/; Max-Age=0"))
}

/// Only a page of this server is a place to go back to after signing in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/dashboard") && !n.starts_with("//") => n.to_owned(),
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
            .insert(header::SET_COOKIE, session_cookie("", 0));
    }
    page
}

/// The signed-in account (session cookie or bearer header), or the sign-in page to show
/// instead, saying why.
async fn signed_in(app: &App, headers: &HeaderMap, uri: &Uri) -> Result<i64, Response> {
    let next = safe_next(uri.path_and_query().map(|p| p.as_str()));
    let from_cookie = cookie(headers, COOKIE).filter(|t| !t.is_empty());
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(bearer)
        .or(from_cookie);
    let Some(token) = token else {
        let to: String = url::form_urlencoded::Serializer::new(String::from("/login?"))
            .append_pair("next", &next)
            .finish();
        return Err(Redirect::to(&to).into_response());
    };
    // Any scope reads the dashboard.
    token_account(app, token)
        .await
        .map(|(account, _scope)| account)
        .map_err(|e| {
            let (status, m) = e.answer();
            login_page(status, Some(&m), &next, from_cookie.is_some())
        })
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

pub(super) async fn login_form(RawQuery(query): RawQuery) -> Response {
    let params = query_params(query.as_deref()).unwrap_or_default();
    login_page(
        StatusCode::OK,
        None,
        &safe_next(params.get("next").map(String::as_str)),
        false,
    )
}

pub(super) async fn login(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let next = safe_next(form.get("next").map(String::as_str));
    let token = form.get("token").map_or("", |t| t.trim());
    if token.is_empty() {
        return login_page(
            StatusCode::BAD_REQUEST,
            Some("paste a token; create one with `mttx token create --account <id>`"),
            &next,
            false,
        );
    }
    match token_account(&app, token).await {
        Ok(_) => {
            let mut to = Redirect::to(&next).into_response();
            to.headers_mut()
                .insert(header::SET_COOKIE, session_cookie(token, SESSION_SECONDS));
            to
        }
        Err(e) => {
            let (status, m) = e.answer();
            login_page(status, Some(&m), &next, true)
        }
    }
}

pub(super) async fn logout() -> Response {
    let mut to = Redirect::to("/login").into_response();
    to.headers_mut()
        .insert(header::SET_COOKIE, session_cookie("", 0));
    to
}
