//! `/dashboard`: the account's or a team's ISO week as cards (each metric beside last week
//! and the company norm, with an arrow that knows which way is better), 12-week trend
//! charts, the breakdown tables, the escalated incidents and the noisy alerts, from
//! [`weekly::weekly`], with teams, services and people by name. A week not begun or a team
//! without incidents is a page that says which weeks and teams there are.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Days, NaiveDate, Utc};
use chrono_tz::Tz;
use mttx_query::Verdict;
use serde::Serialize;

use super::session::SignedIn;
use super::{
    Link, Week, dashboard_href, error_page, home_zone, html, incidents_query, link, message,
    page_params, week_of,
};
use crate::body::{BucketBody, ComparedBody};
use crate::http::{ApiError, App};
use crate::named::{account_label, label};
use crate::weekly::{self, Refusal, Weekly, duration};

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

/// A card's change: its arrow, class and words. Arrows and colours only where the verdict
/// says better or worse; a count or rate has no verdict, so its change is shown plain.
fn change(kind: Kind, m: Option<&ComparedBody>) -> (&'static str, &'static str, String) {
    let Some(m) = m else {
        return ("", "same", "no comparison".into());
    };
    let Some(delta) = m.delta else {
        return ("", "same", "no comparison".into());
    };
    let size = match m.delta_ratio {
        _ if delta == 0.0 => "no change".to_owned(),
        Some(r) => format!("{:+.0}% vs last week", r * 100.0),
        None => format!(
            "{}{} vs last week",
            if delta > 0.0 { "+" } else { "−" },
            show(kind, Some(delta.abs()))
        ),
    };
    let arrow = if delta > 0.0 { "▲" } else { "▼" };
    let interval = |i: Option<[f64; 2]>| {
        i.map_or_else(String::new, |[lo, hi]| {
            let at = |v: f64| {
                format!(
                    "{}{}",
                    if v < 0.0 { "−" } else { "+" },
                    show(kind, Some(v.abs()))
                )
            };
            format!(" (95%: {} to {})", at(lo), at(hi))
        })
    };
    match m.verdict {
        Some(Verdict::Better) => (
            arrow,
            "better",
            format!("{size}, better{}", interval(m.interval.flatten())),
        ),
        Some(Verdict::Worse) => (
            arrow,
            "worse",
            format!("{size}, worse{}", interval(m.interval.flatten())),
        ),
        Some(Verdict::NoClearChange) => ("", "same", format!("{size}, within noise")),
        Some(Verdict::InsufficientData) => (
            "",
            "same",
            format!(
                "{size}, not enough data (n = {} vs {})",
                m.n.unwrap_or(0),
                m.previous_n.unwrap_or(0)
            ),
        ),
        None => ("", "same", size),
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
            let (arrow, judgement, change_text) = change(spec.kind, m);
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

pub(super) async fn overview(
    State(app): State<Arc<App>>,
    SignedIn(account): SignedIn,
    RawQuery(query): RawQuery,
) -> Response {
    overview_page(&app, account, query.as_deref())
        .await
        .unwrap_or_else(error_page)
}

#[tracing::instrument(skip_all, fields(account = account), err(level = "info"))]
async fn overview_page(app: &App, account: i64, query: Option<&str>) -> Result<Response, ApiError> {
    let params = page_params(query, &["week", "tz", "team"])?;
    let names = app.directory(account).await;
    let Week { tz, monday, team } = week_of(&params, home_zone(&names))?;
    let account_name = account_label(&names);
    let team_name = team.map(|t| label(&names, mttx_replica::Kind::Team, t));
    let engine = app.engine.read().await;
    let Some(latest) = engine.latest(account).await? else {
        return Ok(message(
            StatusCode::OK,
            "No incidents yet",
            &format!(
                "{account_name} (account {account}) has no incidents in the facts yet. The ETL loads them from the replica: run `mttx etl run` (or leave `mttx serve` following it), then reload this page."
            ),
            vec![link("Reload", "/dashboard")],
        ));
    };
    let latest_monday = weekly::monday_of(latest.with_timezone(&tz).date_naive());
    let report = match weekly::weekly(
        &engine,
        &names,
        app.source.as_ref(),
        account,
        team,
        monday,
        tz,
    )
    .await
    {
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
                team_name
                    .as_ref()
                    .map_or(String::new(), |t| format!(" for {t}")),
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
    // The picker: each team of the week by name.
    let teams: Vec<Link> = report
        .teams
        .iter()
        .filter_map(|r| {
            let key = r.key.clone()?;
            Some(link(r.name.clone().unwrap_or_else(|| key.clone()), key))
        })
        .collect();
    let team_listed = team.is_some_and(|t| teams.iter().any(|l| l.href == t.to_string()));
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
            account_name,
            team,
            team_name,
            week => &report.week,
            tz => tz.name(),
            zones => chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()).collect::<Vec<_>>(),
            teams,
            team_listed,
            freshness => super::freshness(report.data_as_of, tz),
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
fn refused(e: crate::Error, tz: Tz, team: Option<i64>, latest: NaiveDate) -> Response {
    match e {
        crate::Error::Refused(r @ Refusal::Future { .. }) => message(
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
        crate::Error::Refused(r @ Refusal::UnknownTeam { .. }) => {
            let Refusal::UnknownTeam { known, week, .. } = &r else {
                unreachable!("matched above")
            };
            let monday = weekly::parse_week(week).unwrap_or(latest);
            let mut links = vec![link(
                format!("The whole account in {week}"),
                dashboard_href(monday, tz, None),
            )];
            links.extend(
                known
                    .iter()
                    .map(|(t, name)| link(name.clone(), dashboard_href(monday, tz, Some(*t)))),
            );
            message(
                StatusCode::NOT_FOUND,
                "No such team this week",
                &r.to_string(),
                links,
            )
        }
        e => error_page(ApiError::internal(
            "the report could not be computed; the server log says why",
            e,
        )),
    }
}
