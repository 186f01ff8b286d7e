//! The dashboard: pages for team leads, rendered on the server from the same numbers the
//! report API answers (no script, no front-end build).
//!
//! Sign in with a token (`POST /login` sets an HttpOnly session cookie holding it; an
//! `Authorization: Bearer` header works too). `/dashboard` shows the account, or one team,
//! for an ISO week and time zone: metric cards beside last week with arrows that know
//! which way is better, the team beside the company norm, 12-week trend charts, tables by
//! team, service and responder, the escalated incidents and the noisy alerts. Every number
//! links to the incidents behind it (`/dashboard/incidents`), each incident to its
//! timeline (`/dashboard/incidents/{id}`), and every table downloads as CSV.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, RawQuery, State as AxState};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use mttx_facts::Fact;
use mttx_query::{Filters, Page, Period};
use serde::Serialize;

use crate::body::{BucketBody, RowBody};
use crate::http::error::Source;
use crate::http::params::{filters, id_param, known, page, period, query_params, time_zone};
use crate::http::auth::{bearer, token_account};
use crate::http::error::bad;
use crate::http::{ApiError, App};
use crate::weekly::{self, Refusal, Weekly, duration};

/// The session cookie: it holds the token, HttpOnly and SameSite=Strict.
const COOKIE: &str = "mttx_session";
/// How long a sign-in lasts in the browser (the token's own expiry still applies).
const SESSION_SECONDS: u32 = 12 * 3600;
/// The most incidents one CSV export holds.
const CSV_MAX_ROWS: usize = 1_000_000;

/// The pages' routes.
pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/dashboard", get(overview))
        .route("/dashboard/table.csv", get(table_csv))
        .route("/dashboard/incidents", get(incidents_page))
        .route("/dashboard/incidents.csv", get(incidents_csv))
        .route("/dashboard/incidents/{id}", get(incident_page))
}

static PAGES: LazyLock<minijinja::Environment<'static>> = LazyLock::new(|| {
    let mut env = minijinja::Environment::new();
    weekly::filters(&mut env);
    for (name, source) in [
        ("base.html", include_str!("dashboard/templates/base.html.j2")),
        ("login.html", include_str!("dashboard/templates/login.html.j2")),
        ("message.html", include_str!("dashboard/templates/message.html.j2")),
        ("overview.html", include_str!("dashboard/templates/overview.html.j2")),
        (
            "incidents.html",
            include_str!("dashboard/templates/incidents.html.j2"),
        ),
        ("incident.html", include_str!("dashboard/templates/incident.html.j2")),
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

// ---------------------------------------------------------------------------------------
// Signing in

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
    token_account(app, token).await.map_err(|e| {
        let (status, m) = e.answer();
        login_page(status, Some(&m), &next, from_cookie.is_some())
    })
}

/// The signed-in account of a page request; not signed in, the sign-in page (saying
/// why) is the answer instead.
struct SignedIn(i64);

impl FromRequestParts<Arc<App>> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        signed_in(app, &parts.headers, &parts.uri)
            .await
            .map(SignedIn)
    }
}

async fn login_form(RawQuery(query): RawQuery) -> Response {
    let params = query_params(query.as_deref()).unwrap_or_default();
    login_page(
        StatusCode::OK,
        None,
        &safe_next(params.get("next").map(String::as_str)),
        false,
    )
}

async fn login(AxState(app): AxState<Arc<App>>, body: Bytes) -> Response {
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

async fn logout() -> Response {
    let mut to = Redirect::to("/login").into_response();
    to.headers_mut()
        .insert(header::SET_COOKIE, session_cookie("", 0));
    to
}

// ---------------------------------------------------------------------------------------
// The overview (account or team)

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

fn week_of(params: &HashMap<String, String>) -> Result<Week, ApiError> {
    let tz = time_zone(params)?;
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

/// How a metric is shown, and which of its drilldowns holds the incidents behind it.
struct Spec {
    metric: &'static str,
    label: &'static str,
    kind: Kind,
    /// The drilldown's order, or a filter, that shows the incidents behind the number.
    behind: (&'static str, &'static str),
}

#[derive(Clone, Copy)]
enum Kind {
    Count,
    Duration,
    Rate,
}

/// The cards, in order. For every one of them lower is better.
const CARDS: [Spec; 9] = [
    spec(
        "incident_count",
        "Incidents",
        Kind::Count,
        ("sort", "-created_at"),
    ),
    spec(
        "mtta_p50",
        "MTTA p50",
        Kind::Duration,
        ("sort", "-time_to_ack"),
    ),
    spec(
        "mtta_p90",
        "MTTA p90",
        Kind::Duration,
        ("sort", "-time_to_ack"),
    ),
    spec(
        "mtta_mean",
        "MTTA mean",
        Kind::Duration,
        ("sort", "-time_to_ack"),
    ),
    spec(
        "mttr_p50",
        "MTTR p50",
        Kind::Duration,
        ("sort", "-time_to_resolve"),
    ),
    spec(
        "mttr_p90",
        "MTTR p90",
        Kind::Duration,
        ("sort", "-time_to_resolve"),
    ),
    spec(
        "mttr_mean",
        "MTTR mean",
        Kind::Duration,
        ("sort", "-time_to_resolve"),
    ),
    spec(
        "escalated_rate",
        "Escalation rate",
        Kind::Rate,
        ("escalated", "true"),
    ),
    spec(
        "interruptions_sleep",
        "Sleep-hour interruptions",
        Kind::Count,
        ("interrupted_sleep", "true"),
    ),
];

const fn spec(
    metric: &'static str,
    label: &'static str,
    kind: Kind,
    behind: (&'static str, &'static str),
) -> Spec {
    Spec {
        metric,
        label,
        kind,
        behind,
    }
}

fn show(kind: Kind, v: Option<f64>) -> String {
    match (kind, v) {
        (_, None) => "–".to_owned(),
        (Kind::Count, Some(v)) => format!("{v:.0}"),
        (Kind::Duration, v) => duration(v),
        (Kind::Rate, Some(v)) => format!("{:.1}%", v * 100.0),
    }
}

/// One metric card.
#[derive(Debug, Serialize)]
struct Card {
    metric: &'static str,
    label: &'static str,
    value: Option<f64>,
    value_text: String,
    previous: Option<f64>,
    previous_text: String,
    /// ▲, ▼ or nothing.
    arrow: &'static str,
    /// better, worse or same: the arrow's colour.
    judgement: &'static str,
    change_text: String,
    norm: Option<f64>,
    norm_text: Option<String>,
    href: String,
    previous_href: String,
    norm_href: Option<String>,
}

/// One bar of a trend chart: an SVG rectangle that links to the week's incidents.
#[derive(Debug, Serialize)]
struct Bar {
    x: f64,
    y: f64,
    height: f64,
    label: String,
    href: String,
}

#[derive(Debug, Serialize)]
struct Chart {
    metric: &'static str,
    label: &'static str,
    max_text: String,
    bars: Vec<Bar>,
}

const CHART_HEIGHT: f64 = 110.0;
const BAR_STEP: f64 = 30.0;

fn chart(spec: &Spec, trend: &[BucketBody], tz: Tz, team: &[(&str, String)]) -> Chart {
    let value = |b: &BucketBody| b.metrics.get(spec.metric).copied().flatten();
    let max = trend.iter().filter_map(value).fold(0.0_f64, f64::max);
    let bars = trend
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let v = value(b);
            let height = match v {
                Some(v) if max > 0.0 => {
                    (v / max * CHART_HEIGHT).max(if v > 0.0 { 2.0 } else { 0.0 })
                }
                _ => 0.0,
            };
            let mut filters = team.to_vec();
            filters.push((spec.behind.0, spec.behind.1.to_owned()));
            Bar {
                x: i as f64 * BAR_STEP + 4.0,
                y: CHART_HEIGHT + 10.0 - height,
                height,
                label: format!("Week of {}: {}", b.start, show(spec.kind, v)),
                href: format!(
                    "/dashboard/incidents?{}",
                    incidents_query(b.start, b.start + Days::new(7), tz, &filters)
                ),
            }
        })
        .collect();
    Chart {
        metric: spec.metric,
        label: spec.label,
        max_text: show(spec.kind, Some(max)),
        bars,
    }
}

fn cards(report: &Weekly, tz: Tz) -> Vec<Card> {
    let (this, last) = (&report.period, &report.previous_period);
    let team: Vec<(&str, String)> = report
        .team_id
        .map(|t| ("team", t.to_string()))
        .into_iter()
        .collect();
    CARDS
        .iter()
        .map(|spec| {
            let m = report.team.metrics.get(spec.metric);
            let (value, previous) = (m.and_then(|m| m.value), m.and_then(|m| m.previous));
            let norm = m.and_then(|m| m.norm).flatten();
            let delta = m.and_then(|m| m.delta);
            let (arrow, judgement) = match delta {
                Some(d) if d > 0.0 => ("▲", "worse"),
                Some(d) if d < 0.0 => ("▼", "better"),
                _ => ("", "same"),
            };
            let change_text = match (delta, m.and_then(|m| m.delta_ratio)) {
                (None, _) => "no comparison".to_owned(),
                (Some(0.0), _) => "no change".to_owned(),
                (Some(_), Some(r)) => format!("{:+.0}% vs last week, {judgement}", r * 100.0),
                (Some(d), None) => format!(
                    "{}{} vs last week, {judgement}",
                    if d > 0.0 { "+" } else { "−" },
                    show(spec.kind, Some(d.abs()))
                ),
            };
            let mut filters = team.clone();
            filters.push((spec.behind.0, spec.behind.1.to_owned()));
            let href = |from, to, f: &[(&str, String)]| {
                format!("/dashboard/incidents?{}", incidents_query(from, to, tz, f))
            };
            let account_only = [(spec.behind.0, spec.behind.1.to_owned())];
            Card {
                metric: spec.metric,
                label: spec.label,
                value,
                value_text: show(spec.kind, value),
                previous,
                previous_text: show(spec.kind, previous),
                arrow,
                judgement,
                change_text,
                norm,
                norm_text: report.team_id.map(|_| show(spec.kind, norm)),
                href: href(this.from, this.to, &filters),
                previous_href: href(last.from, last.to, &filters),
                norm_href: report
                    .team_id
                    .map(|_| href(this.from, this.to, &account_only)),
            }
        })
        .collect()
}

async fn overview(
    AxState(app): AxState<Arc<App>>,
    SignedIn(account): SignedIn,
    RawQuery(query): RawQuery,
) -> Response {
    overview_page(&app, account, query.as_deref())
        .await
        .unwrap_or_else(error_page)
}

async fn overview_page(app: &App, account: i64, query: Option<&str>) -> Result<Response, ApiError> {
    let params = page_params(query, &["week", "tz", "team"])?;
    let Week { tz, monday, team } = week_of(&params)?;
    let engine = app.engine.read().await;
    let Some(latest) = engine.latest(account).await? else {
        return Ok(message(
            StatusCode::OK,
            "No incidents yet",
            &format!(
                "Account {account} has no incidents in the facts yet. The ETL loads them from the replica: run `mttx etl run` (or leave `mttx serve` following it), then reload this page."
            ),
            vec![link("Reload", "/dashboard")],
        ));
    };
    let latest_monday = weekly::monday_of(latest.with_timezone(&tz).date_naive());
    let report = match weekly::weekly(&engine, account, team, monday, tz).await {
        Ok(r) => r,
        Err(e) => return Ok(refused(e, tz, team, latest_monday)),
    };
    drop(engine);
    let notice = (report
        .team
        .metrics
        .get("incident_count")
        .and_then(|c| c.value)
        == Some(0.0))
    .then(|| {
        link(
            format!(
                "No incidents in week {}{}. The latest incident is in week {}.",
                report.week,
                team.map_or(String::new(), |t| format!(" for team {t}")),
                weekly::iso(latest_monday)
            ),
            dashboard_href(latest_monday, tz, team),
        )
    });
    let team_filter: Vec<(&str, String)> =
        team.map(|t| ("team", t.to_string())).into_iter().collect();
    let charts: Vec<Chart> = [0_usize, 1, 4, 7]
        .iter()
        .map(|&i| chart(&CARDS[i], &report.trend, tz, &team_filter))
        .collect();
    let (this, last) = (&report.period, &report.previous_period);
    let teams: Vec<&str> = report
        .teams
        .iter()
        .filter_map(|r| r.key.as_deref())
        .collect();
    let today = Utc::now().with_timezone(&tz).date_naive();
    let next_monday = monday + Days::new(7);
    let mut table_query = url::form_urlencoded::Serializer::new(String::new());
    table_query
        .append_pair("week", &report.week)
        .append_pair("tz", tz.name());
    if let Some(t) = team {
        table_query.append_pair("team", &t.to_string());
    }
    let table_query = table_query.finish();
    Ok(html(
        StatusCode::OK,
        "overview.html",
        minijinja::context! {
            signed_in => true,
            account_id => account,
            team,
            week => &report.week,
            tz => tz.name(),
            zones => chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()).collect::<Vec<_>>(),
            teams,
            report => &report,
            cards => cards(&report, tz),
            charts,
            notice,
            base => incidents_query(this.from, this.to, tz, &team_filter),
            account_base => incidents_query(this.from, this.to, tz, &[]),
            previous_base => incidents_query(last.from, last.to, tz, &team_filter),
            table_query,
            previous_week_href => dashboard_href(monday - Days::new(7), tz, team),
            next_week_href => (next_monday <= today).then(|| dashboard_href(next_monday, tz, team)),
            overview_href => dashboard_href(monday, tz, None),
        },
    ))
}

/// The page for a week not begun or a team without incidents.
fn refused(e: anyhow::Error, tz: Tz, team: Option<i64>, latest: NaiveDate) -> Response {
    match e.downcast_ref::<Refusal>() {
        Some(r @ Refusal::Future { .. }) => message(
            StatusCode::NOT_FOUND,
            "That week has not begun",
            &r.to_string(),
            vec![
                link(
                    format!(
                        "Last complete week ({})",
                        weekly::iso(weekly::last_week(tz))
                    ),
                    dashboard_href(weekly::last_week(tz), tz, team),
                ),
                link(
                    format!("Week of the latest incident ({})", weekly::iso(latest)),
                    dashboard_href(latest, tz, team),
                ),
            ],
        ),
        Some(r @ Refusal::UnknownTeam { known, week, .. }) => {
            let monday = weekly::parse_week(week).unwrap_or(latest);
            let mut links = vec![link(
                format!("The whole account in {week}"),
                dashboard_href(monday, tz, None),
            )];
            links.extend(
                known
                    .iter()
                    .map(|t| link(format!("Team {t}"), dashboard_href(monday, tz, Some(*t)))),
            );
            message(
                StatusCode::NOT_FOUND,
                "No such team this week",
                &r.to_string(),
                links,
            )
        }
        None => error_page(ApiError::internal(
            "the report could not be computed; the server log says why",
            e,
        )),
    }
}

// ---------------------------------------------------------------------------------------
// CSV exports

fn csv_response(name: &str, body: Vec<u8>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            ),
        ],
        body,
    )
        .into_response()
}

fn csv_error(e: impl Into<Source>) -> ApiError {
    ApiError::internal("the CSV could not be written; the server log says why", e)
}

/// One table of the dashboard as CSV: one row per key; each metric's value, last week's
/// value and (where there is one) the account-wide norm.
async fn table_csv(
    AxState(app): AxState<Arc<App>>,
    SignedIn(account): SignedIn,
    RawQuery(query): RawQuery,
) -> Response {
    table_csv_of(&app, account, query.as_deref())
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn table_csv_of(app: &App, account: i64, query: Option<&str>) -> Result<Response, ApiError> {
    let params = page_params(query, &["week", "tz", "team", "table"])?;
    let Week { tz, monday, team } = week_of(&params)?;
    let table = params.get("table").map_or("", String::as_str);
    let report = weekly::weekly(&*app.engine.read().await, account, team, monday, tz)
        .await
        .map_err(|e| match e.downcast_ref::<Refusal>() {
            Some(r) => ApiError::NotFound(r.to_string()),
            None => ApiError::internal(
                "the report could not be computed; the server log says why",
                e,
            ),
        })?;
    let rows: Vec<&RowBody> = match table {
        "summary" => vec![&report.team],
        "teams" => report.teams.iter().collect(),
        "services" => report.services.iter().collect(),
        "responders" => report.responders.iter().collect(),
        "trend" => return trend_csv(&report),
        "escalated" => {
            return facts_csv(
                &format!("escalated-{}.csv", report.week),
                &report.escalated,
                tz,
            );
        }
        _ => {
            return Err(bad(format!(
                "`table` = `{table}`: use summary, teams, services, responders, trend or escalated"
            )));
        }
    };
    let metrics: Vec<&String> = rows
        .first()
        .map(|r| r.metrics.keys().collect())
        .unwrap_or_default();
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut head = vec!["key".to_owned()];
    for m in &metrics {
        head.extend([m.to_string(), format!("{m}_previous"), format!("{m}_norm")]);
    }
    w.write_record(&head).map_err(csv_error)?;
    let num = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for r in rows {
        let mut line = vec![r.key.clone().unwrap_or_default()];
        for m in &metrics {
            let c = r.metrics.get(*m);
            line.extend([
                num(c.and_then(|c| c.value)),
                num(c.and_then(|c| c.previous)),
                num(c.and_then(|c| c.norm).flatten()),
            ]);
        }
        w.write_record(&line).map_err(csv_error)?;
    }
    let body = w.into_inner().map_err(|e| csv_error(e.into_error()))?;
    Ok(csv_response(&format!("{table}-{}.csv", report.week), body))
}

fn trend_csv(report: &Weekly) -> Result<Response, ApiError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let metrics: Vec<&String> = report
        .trend
        .first()
        .map(|b| b.metrics.keys().collect())
        .unwrap_or_default();
    let mut head = vec!["week_start"];
    head.extend(metrics.iter().map(|m| m.as_str()));
    w.write_record(&head).map_err(csv_error)?;
    for b in &report.trend {
        let mut line = vec![b.start.to_string()];
        line.extend(metrics.iter().map(|m| {
            b.metrics
                .get(*m)
                .copied()
                .flatten()
                .map_or(String::new(), |v| v.to_string())
        }));
        w.write_record(&line).map_err(csv_error)?;
    }
    let body = w.into_inner().map_err(|e| csv_error(e.into_error()))?;
    Ok(csv_response(&format!("trend-{}.csv", report.week), body))
}

/// Incidents as CSV, one row each, times in `tz` (RFC 3339 with offset).
fn facts_csv(name: &str, facts: &[Fact], tz: Tz) -> Result<Response, ApiError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "incident_id",
        "incident_number",
        "created_at",
        "title",
        "service_id",
        "team_id",
        "escalation_policy_id",
        "urgency",
        "priority",
        "major",
        "status",
        "acknowledged_at",
        "resolved_at",
        "seconds_to_first_ack",
        "seconds_to_resolve",
        "auto_resolved",
        "escalation_count",
        "interruptions",
        "interruptions_sleep",
        "acknowledged_user_ids",
    ])
    .map_err(csv_error)?;
    let opt = |v: Option<String>| v.unwrap_or_default();
    for f in facts {
        w.write_record([
            f.incident_id.to_string(),
            f.incident_number.to_string(),
            local(f.created_at, tz),
            f.title.clone(),
            f.service_id.to_string(),
            opt(f.team_id.map(|v| v.to_string())),
            opt(f.escalation_policy_id.map(|v| v.to_string())),
            f.urgency.clone(),
            opt(f.priority.clone()),
            f.major.to_string(),
            f.status.clone(),
            opt(f.acknowledged_at.map(|t| local(t, tz))),
            opt(f.resolved_at.map(|t| local(t, tz))),
            opt(f.seconds_to_first_ack.map(|v| v.to_string())),
            opt(f.seconds_to_resolve.map(|v| v.to_string())),
            f.auto_resolved.to_string(),
            f.escalation_count.to_string(),
            f.interruptions.to_string(),
            f.interruptions_sleep.to_string(),
            f.acknowledged_user_ids
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(" "),
        ])
        .map_err(csv_error)?;
    }
    let body = w.into_inner().map_err(|e| csv_error(e.into_error()))?;
    Ok(csv_response(name, body))
}

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

// ---------------------------------------------------------------------------------------
// The incidents behind a number, and one incident's timeline

/// What an incidents page was asked: the period, filters and order.
struct Drill {
    period: Period,
    filters: Filters,
    page: Page,
    params: HashMap<String, String>,
}

fn drill(app: &App, query: Option<&str>) -> Result<Drill, ApiError> {
    let params = page_params(query, &app.accepted.drilldown)?;
    Ok(Drill {
        period: period(&params)?,
        filters: filters(&params)?,
        page: page(&params)?,
        params,
    })
}

/// The filters in words, for the page's heading.
fn describe(f: &Filters) -> Vec<String> {
    let mut out = Vec::new();
    let mut id = |what: &str, v: Option<i64>| {
        if let Some(v) = v {
            out.push(format!("{what} {v}"));
        }
    };
    id("team", f.team);
    id("service", f.service);
    id("escalation policy", f.escalation_policy);
    id("acknowledged by user", f.responder);
    if let Some(u) = &f.urgency {
        out.push(format!("{u} urgency"));
    }
    if let Some(p) = &f.priority {
        out.push(format!("priority {p}"));
    }
    let mut flag = |v: Option<bool>, yes: &str, no: &str| {
        if let Some(v) = v {
            out.push(if v { yes } else { no }.to_owned());
        }
    };
    flag(f.major, "major", "not major");
    flag(f.escalated, "escalated", "never escalated");
    flag(f.interrupted_sleep, "woke someone up", "woke nobody up");
    if let Some(a) = &f.alert {
        out.push(format!("alert “{a}”"));
    }
    out
}

/// One incident as a row of the incidents page.
#[derive(Debug, Serialize)]
struct IncidentRow<'a> {
    fact: &'a Fact,
    created: String,
    href: String,
}

async fn incidents_page(
    AxState(app): AxState<Arc<App>>,
    SignedIn(account): SignedIn,
    RawQuery(query): RawQuery,
) -> Response {
    incidents_of(&app, account, query.as_deref())
        .await
        .unwrap_or_else(error_page)
}

async fn incidents_of(app: &App, account: i64, query: Option<&str>) -> Result<Response, ApiError> {
    let Drill {
        period,
        filters,
        page,
        params,
    } = drill(app, query)?;
    let engine = app.engine.read().await;
    let total = engine
        .report(account, &period, None, &filters)
        .await
        ?
        .account
        .current
        .incident_count;
    let found = engine
        .drilldown(account, &period, &filters, &page)
        .await
        ?;
    drop(engine);
    let tz = period.tz;
    let rows: Vec<IncidentRow> = found
        .facts
        .iter()
        .map(|f| IncidentRow {
            fact: f,
            created: f
                .created_at
                .with_timezone(&tz)
                .format("%a %Y-%m-%d %H:%M")
                .to_string(),
            href: format!("/dashboard/incidents/{}?tz={}", f.incident_id, tz.name()),
        })
        .collect();
    // The same question without order or page: the base of sort, CSV and next links.
    let mut base = url::form_urlencoded::Serializer::new(String::new());
    let mut keys: Vec<&String> = params
        .keys()
        .filter(|k| !["sort", "after", "limit"].contains(&k.as_str()))
        .collect();
    keys.sort();
    for k in keys {
        base.append_pair(k, &params[k]);
    }
    let base = base.finish();
    let sort = params.get("sort").map_or("-created_at", String::as_str);
    let next_href = found.next.as_ref().map(|n| {
        let mut q = url::form_urlencoded::Serializer::new(format!("/dashboard/incidents?{base}&"));
        q.append_pair("sort", sort).append_pair("after", n);
        if let Some(l) = params.get("limit") {
            q.append_pair("limit", l);
        }
        q.finish()
    });
    let days = (period.to - period.from).num_days();
    let back_href = (days == 7 && chrono::Datelike::weekday(&period.from) == chrono::Weekday::Mon)
        .then(|| dashboard_href(period.from, tz, filters.team));
    Ok(html(
        StatusCode::OK,
        "incidents.html",
        minijinja::context! {
            signed_in => true,
            account_id => account,
            from => period.from.to_string(),
            to => (period.to - Days::new(1)).to_string(),
            tz => tz.name(),
            what => describe(&filters),
            total,
            rows,
            sort,
            base,
            next_href,
            back_href,
            first_page => page.after.is_none(),
        },
    ))
}

async fn incidents_csv(
    AxState(app): AxState<Arc<App>>,
    SignedIn(account): SignedIn,
    RawQuery(query): RawQuery,
) -> Response {
    incidents_csv_of(&app, account, query.as_deref())
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Every incident of the question (all pages, in the page's order), as CSV.
async fn incidents_csv_of(
    app: &App,
    account: i64,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let Drill {
        period,
        filters,
        mut page,
        ..
    } = drill(app, query)?;
    page.limit = 1000;
    let engine = app.engine.read().await;
    let mut all = Vec::new();
    loop {
        let found = engine
            .drilldown(account, &period, &filters, &page)
            .await
            ?;
        all.extend(found.facts);
        if all.len() > CSV_MAX_ROWS {
            return Err(bad(format!(
                "more than {CSV_MAX_ROWS} incidents: narrow the period or add a filter"
            )));
        }
        match found.next {
            Some(n) => page.after = Some(n),
            None => break,
        }
    }
    drop(engine);
    facts_csv(
        &format!("incidents-{}-{}.csv", period.from, period.to),
        &all,
        period.tz,
    )
}

/// One entry of the timeline as shown.
#[derive(Debug, Serialize)]
struct Step<'a> {
    entry: &'a crate::http::wire::Entry,
    at: String,
    since_trigger: String,
}

async fn incident_page(
    AxState(app): AxState<Arc<App>>,
    SignedIn(account): SignedIn,
    id: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    let id = id.map_or_else(|_| String::new(), |Path(id)| id);
    incident_of(&app, account, &id, query.as_deref())
        .await
        .unwrap_or_else(error_page)
}

async fn incident_of(
    app: &App,
    account: i64,
    id: &str,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let params = page_params(query, &["tz"])?;
    let Week { tz, .. } = week_of(&params)?;
    let fact = crate::http::incidents::incident_fact(app, account, id).await?;
    let id = fact.incident_id;
    let entries = crate::http::incidents::timeline(app, id).await?;
    let steps: Option<Vec<Step>> = entries.as_ref().map(|es| {
        es.iter()
            .map(|e| Step {
                entry: e,
                at: e
                    .created_at
                    .with_timezone(&tz)
                    .format("%a %Y-%m-%d %H:%M:%S")
                    .to_string(),
                since_trigger: {
                    let s = (e.created_at - fact.created_at).num_milliseconds() as f64 / 1000.0;
                    if s < 0.0 {
                        format!("−{}", duration(Some(-s)))
                    } else {
                        format!("+{}", duration(Some(s)))
                    }
                },
            })
            .collect()
    });
    let monday = weekly::monday_of(fact.created_at.with_timezone(&tz).date_naive());
    Ok(html(
        StatusCode::OK,
        "incident.html",
        minijinja::context! {
            signed_in => true,
            account_id => account,
            tz => tz.name(),
            fact => &fact,
            created => local(fact.created_at, tz),
            acknowledged => fact.acknowledged_at.map(|t| local(t, tz)),
            resolved => fact.resolved_at.map(|t| local(t, tz)),
            steps,
            week_href => dashboard_href(monday, tz, fact.team_id),
        },
    ))
}
