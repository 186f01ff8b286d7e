//! The dashboard: pages for team leads, rendered on the server from the same numbers the
//! report API answers (no script, no front-end build).
//!
//! Sign in with a token (`POST /login` sets an HttpOnly session cookie holding it; an
//! `Authorization: Bearer` header works too). `/dashboard` shows the account, or one team,
//! for an ISO week and time zone (by default the account's own): metric cards beside last week with arrows that know
//! which way is better, the team beside the company norm, 12-week trend charts, tables by
//! team, service and responder, the escalated incidents and the noisy alerts. Every number
//! links to the incidents behind it (`/dashboard/incidents`), each incident to its
//! timeline (`/dashboard/incidents/{id}`), and every table downloads as CSV. Teams,
//! services, policies and people show by name ([`crate::named`]), read at answer time.
//!
//! This module holds the routes and what every page shares (the templates in
//! `templates/`, message and error pages, the week and link helpers); [`session`] signs in
//! and out, [`overview`], [`incidents`] and [`exports`] answer the pages and the CSV files.
//! Numbers come from the engine through [`crate::weekly`] and the API's own parsers and
//! incident reads in [`crate::http`].

mod exports;
mod incidents;
mod overview;
mod session;

pub use session::LOGINS_PER_MINUTE;
pub(crate) use session::LoginLimit;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use mttx_query::{Filters, Page, Period};
use mttx_replica::Directory;
use serde::Serialize;

use crate::http::error::bad;
use crate::http::params::{filters, id_param, known, page, period, query_params, time_zone};
use crate::http::{ApiError, App};
use crate::{named, weekly};

/// The pages' routes.
pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/dashboard", get(overview::overview))
        .route("/dashboard/table.csv", get(exports::table_csv))
        .route("/dashboard/incidents", get(incidents::incidents_page))
        .route("/dashboard/incidents.csv", get(exports::incidents_csv))
        .route("/dashboard/incidents/{id}", get(incidents::incident_page))
}

static PAGES: LazyLock<minijinja::Environment<'static>> = LazyLock::new(|| {
    let mut env = minijinja::Environment::new();
    weekly::filters(&mut env);
    for (name, source) in [
        ("base.html", include_str!("templates/base.html.j2")),
        ("login.html", include_str!("templates/login.html.j2")),
        ("message.html", include_str!("templates/message.html.j2")),
        ("overview.html", include_str!("templates/overview.html.j2")),
        (
            "incidents.html",
            include_str!("templates/incidents.html.j2"),
        ),
        ("incident.html", include_str!("templates/incident.html.j2")),
    ] {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("template {name} does not parse: {e}"));
    }
    env
});

/// A rendered page, or a plain 500 that the log explains.
fn html(status: StatusCode, template: &str, context: impl Serialize) -> Response {
    let rendered = PAGES.get_template(template).and_then(|t| t.render(context));
    match rendered {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = ?e, template, "rendering a page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered; the server log says why\n",
            )
                .into_response()
        }
    }
}

/// How current the facts are, for the header of a page: "40 s ago", and the instant in the
/// page's zone.
#[derive(Debug, Serialize)]
struct Freshness {
    ago: String,
    at: String,
}

fn freshness(at: Option<DateTime<Utc>>, tz: Tz) -> Freshness {
    match at {
        Some(t) => Freshness {
            ago: crate::weekly::render::ago(t, Utc::now()),
            at: t
                .with_timezone(&tz)
                .format("%Y-%m-%d %H:%M:%S %Z")
                .to_string(),
        },
        None => Freshness {
            ago: "unknown".into(),
            at: "no ETL run has recorded how current the facts are yet".into(),
        },
    }
}

/// A link shown on a message page.
#[derive(Debug, Serialize)]
struct Link {
    label: String,
    href: String,
}

fn link(label: impl Into<String>, href: impl Into<String>) -> Link {
    Link {
        label: label.into(),
        href: href.into(),
    }
}

/// A page that explains a state (empty, refused, failed) and where to go instead.
fn message(status: StatusCode, title: &str, text: &str, links: Vec<Link>) -> Response {
    html(
        status,
        "message.html",
        minijinja::context! { title, text, links, signed_in => true },
    )
}

fn error_page(e: ApiError) -> Response {
    let (status, text) = e.answer();
    let title = match status {
        StatusCode::BAD_REQUEST => "Check the address",
        StatusCode::NOT_FOUND => "Not found",
        _ => "Something went wrong",
    };
    message(
        status,
        title,
        &text,
        vec![link("Back to the dashboard", "/dashboard")],
    )
}

/// The dashboard's own parameters, without the empty ones a form sends for "any".
fn page_params<S: AsRef<str>>(
    query: Option<&str>,
    accepted: &[S],
) -> Result<HashMap<String, String>, ApiError> {
    let mut params = query_params(query)?;
    params.retain(|_, v| !v.is_empty());
    known(&params, accepted)?;
    Ok(params)
}

/// The week, time zone and team a dashboard page is about.
struct Week {
    tz: Tz,
    monday: NaiveDate,
    team: Option<i64>,
}

/// The account's own time zone (UTC where the replica has none): the pages' default.
fn home_zone(names: &Directory) -> Tz {
    named::account_zone(names).unwrap_or(Tz::UTC)
}

/// `tz` as asked, else `home` (the account's own zone).
fn with_zone(params: &mut HashMap<String, String>, home: Tz) {
    params
        .entry("tz".to_owned())
        .or_insert_with(|| home.name().to_owned());
}

fn week_of(params: &HashMap<String, String>, home: Tz) -> Result<Week, ApiError> {
    let tz = match params.get("tz") {
        Some(_) => time_zone(params)?,
        None => home,
    };
    let monday = match params.get("week") {
        Some(w) => {
            weekly::parse_week(w).map_err(|e| bad(e.to_string().replacen("--week", "week", 1)))?
        }
        None => weekly::last_week(tz),
    };
    let team = id_param(params, "team")?;
    Ok(Week { tz, monday, team })
}

/// `week=…&tz=…[&team=…]`: a dashboard page of another week, zone or team.
fn dashboard_href(monday: NaiveDate, tz: Tz, team: Option<i64>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::from("/dashboard?"));
    q.append_pair("week", &weekly::iso(monday))
        .append_pair("tz", tz.name());
    if let Some(t) = team {
        q.append_pair("team", &t.to_string());
    }
    q.finish()
}

/// `from=…&to=…&tz=…` and the filters: the query of the incidents behind a number.
fn incidents_query(from: NaiveDate, to: NaiveDate, tz: Tz, filters: &[(&str, String)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("from", &from.to_string())
        .append_pair("to", &to.to_string())
        .append_pair("tz", tz.name());
    for (k, v) in filters {
        q.append_pair(k, v);
    }
    q.finish()
}

/// A time in `tz`, RFC 3339 with its offset.
fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// What an incidents page was asked: the period, filters and order.
struct Drill {
    period: Period,
    filters: Filters,
    page: Page,
    params: HashMap<String, String>,
}

/// The incidents page's question; without `tz`, in the account's zone `home`.
fn drill(app: &App, query: Option<&str>, home: Tz) -> Result<Drill, ApiError> {
    let mut params = page_params(query, &app.accepted.drilldown)?;
    with_zone(&mut params, home);
    Ok(Drill {
        period: period(&params)?,
        filters: filters(&params)?,
        page: page(&params)?,
        params,
    })
}
