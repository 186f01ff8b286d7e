//! The dashboard's CSV files: each table of the overview (`/dashboard/table.csv`) and
//! every incident behind a number, all pages of it (`/dashboard/incidents.csv`), times in
//! the page's time zone, a name column beside each id column.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono_tz::Tz;

use super::session::SignedIn;
use super::{Drill, Week, drill, home_zone, local, page_params, week_of};
use crate::body::RowBody;
use crate::http::error::{Source, bad};
use crate::http::{ApiError, App};
use crate::named::NamedFact;
use crate::weekly::{self, Weekly};

/// The most incidents one CSV export holds.
const CSV_MAX_ROWS: usize = 1_000_000;

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
pub(super) async fn table_csv(
    State(app): State<Arc<App>>,
    SignedIn(account): SignedIn,
    RawQuery(query): RawQuery,
) -> Response {
    table_csv_of(&app, account, query.as_deref())
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

#[tracing::instrument(skip_all, fields(account = account), err(level = "info"))]
async fn table_csv_of(app: &App, account: i64, query: Option<&str>) -> Result<Response, ApiError> {
    let params = page_params(query, &["week", "tz", "team", "table"])?;
    let names = app.directory(account).await;
    let Week { tz, monday, team } = week_of(&params, home_zone(&names))?;
    let table = params.get("table").map_or("", String::as_str);
    let report = weekly::weekly(
        &*app.engine.read().await,
        &names,
        app.source.as_ref(),
        account,
        team,
        monday,
        tz,
    )
    .await
    .map_err(|e| match e {
        crate::Error::Refused(r) => ApiError::NotFound(r.to_string()),
        e => ApiError::internal(
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
    let mut w = crate::export::Csv::new();
    // Means and percentiles carry their sample sizes, interval and verdict.
    let judged: Vec<bool> = metrics
        .iter()
        .map(|m| {
            rows.first()
                .and_then(|r| r.metrics.get(*m))
                .is_some_and(|c| c.verdict.is_some())
        })
        .collect();
    let mut head = vec!["key".to_owned(), "name".to_owned()];
    for (m, judged) in metrics.iter().zip(&judged) {
        head.extend([m.to_string(), format!("{m}_previous"), format!("{m}_norm")]);
        if *judged {
            head.extend([
                format!("{m}_n"),
                format!("{m}_previous_n"),
                format!("{m}_delta_low"),
                format!("{m}_delta_high"),
                format!("{m}_verdict"),
            ]);
        }
    }
    w.write_record(&head).map_err(csv_error)?;
    let num = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for r in rows {
        let mut line = vec![
            r.key.clone().unwrap_or_default(),
            r.name.clone().unwrap_or_default(),
        ];
        for (m, judged) in metrics.iter().zip(&judged) {
            let c = r.metrics.get(*m);
            line.extend([
                num(c.and_then(|c| c.value)),
                num(c.and_then(|c| c.previous)),
                num(c.and_then(|c| c.norm).flatten()),
            ]);
            if *judged {
                let interval = c.and_then(|c| c.interval).flatten();
                line.extend([
                    c.and_then(|c| c.n).map_or(String::new(), |n| n.to_string()),
                    c.and_then(|c| c.previous_n)
                        .map_or(String::new(), |n| n.to_string()),
                    num(interval.map(|i| i[0])),
                    num(interval.map(|i| i[1])),
                    c.and_then(|c| c.verdict)
                        .map_or(String::new(), |v| v.as_str().to_owned()),
                ]);
            }
        }
        w.write_record(&line).map_err(csv_error)?;
    }
    let body = w.into_inner().map_err(csv_error)?;
    Ok(csv_response(&format!("{table}-{}.csv", report.week), body))
}

fn trend_csv(report: &Weekly) -> Result<Response, ApiError> {
    let mut w = crate::export::Csv::new();
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
    let body = w.into_inner().map_err(csv_error)?;
    Ok(csv_response(&format!("trend-{}.csv", report.week), body))
}

/// Incidents as CSV, one row each, times in `tz` (RFC 3339 with offset), each id with its
/// name beside it.
fn facts_csv(name: &str, facts: &[NamedFact], tz: Tz) -> Result<Response, ApiError> {
    let mut w = crate::export::Csv::new();
    w.write_record(crate::http::csv_answer::INCIDENT_COLUMNS)
        .map_err(csv_error)?;
    for named in facts {
        w.write_record(crate::http::csv_answer::incident_record(named, |t| {
            local(t, tz)
        }))
        .map_err(csv_error)?;
    }
    let body = w.into_inner().map_err(csv_error)?;
    Ok(csv_response(name, body))
}

pub(super) async fn incidents_csv(
    State(app): State<Arc<App>>,
    SignedIn(account): SignedIn,
    RawQuery(query): RawQuery,
) -> Response {
    incidents_csv_of(&app, account, query.as_deref())
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Every incident of the question (all pages, in the page's order), as CSV.
#[tracing::instrument(skip_all, fields(account = account), err(level = "info"))]
async fn incidents_csv_of(
    app: &App,
    account: i64,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let names = app.directory(account).await;
    let Drill {
        period,
        filters,
        mut page,
        ..
    } = drill(app, query, home_zone(&names))?;
    page.limit = 1000;
    let engine = app.engine.read().await;
    let mut all = Vec::new();
    loop {
        let found = engine.drilldown(account, &period, &filters, &page).await?;
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
        &NamedFact::all(&names, all),
        period.tz,
    )
}
