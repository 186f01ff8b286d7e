//! CSV answers of the report and drilldown endpoints (`format=csv` or `Accept: text/csv`):
//! a report as one row per group and metric, made from the JSON answer itself (so both say
//! the same numbers, and the answer cache serves both); a drilldown as one row per
//! incident, every page of the selection, streamed a page at a time from one facts
//! version, so a large one never sits in memory.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use mttx_query::{Engine, Filters, Page, Period};
use mttx_replica::Directory;
use serde_json::Value;

use super::error::bad;
use super::{ApiError, App};
use crate::export::Csv;
use crate::named::NamedFact;

/// Whether the request asks for CSV: `format=csv`, or `Accept: text/csv` without a
/// `format`. Takes `format` out of `params` (it does not change the numbers).
pub(crate) fn wanted(
    params: &mut HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<bool, ApiError> {
    match params.remove("format").as_deref() {
        Some("csv") => Ok(true),
        Some("json") => Ok(false),
        Some(other) => Err(bad(format!("`format` = `{other}`: use json or csv"))),
        None => Ok(headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().starts_with("text/csv"))),
    }
}

fn csv_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(
        "the CSV could not be written; the server log says why",
        e.to_string(),
    )
}

fn headers(name: &str) -> [(header::HeaderName, HeaderValue); 2] {
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
    ]
}

/// The columns of a report's CSV.
const REPORT_COLUMNS: [&str; 16] = [
    "row",
    "key",
    "name",
    "bucket_start",
    "metric",
    "value",
    "previous",
    "delta",
    "delta_ratio",
    "norm",
    "n",
    "previous_n",
    "delta_low",
    "delta_high",
    "verdict",
    "group_by",
];

/// A report's JSON answer (`json`, as the report endpoint answers it) as CSV: the account
/// total's metrics, then each group's, then each trend bucket's, one row per metric.
pub(crate) fn report(json: &[u8], cache: Option<HeaderValue>) -> Result<Response, ApiError> {
    let body: Value = serde_json::from_slice(json).map_err(csv_error)?;
    let text = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let group_by = text(&body["group_by"]);
    let mut w = Csv::new();
    w.write_record(REPORT_COLUMNS).map_err(csv_error)?;
    let mut rows: Vec<(&str, &Value)> = vec![("total", &body["total"])];
    if let Some(groups) = body["groups"].as_array() {
        rows.extend(groups.iter().map(|g| ("group", g)));
    }
    for (kind, row) in rows {
        let Some(metrics) = row["metrics"].as_object() else {
            continue;
        };
        for (metric, m) in metrics {
            let interval = &m["interval"];
            w.write_record([
                kind.to_owned(),
                text(&row["key"]),
                text(&row["name"]),
                String::new(),
                metric.clone(),
                text(&m["value"]),
                text(&m["previous"]),
                text(&m["delta"]),
                text(&m["delta_ratio"]),
                text(&m["norm"]),
                text(&m["n"]),
                text(&m["previous_n"]),
                text(&interval[0]),
                text(&interval[1]),
                text(&m["verdict"]),
                group_by.clone(),
            ])
            .map_err(csv_error)?;
        }
    }
    for bucket in body["buckets"].as_array().into_iter().flatten() {
        let Some(metrics) = bucket["metrics"].as_object() else {
            continue;
        };
        for (metric, value) in metrics {
            let mut record = vec![String::new(); REPORT_COLUMNS.len()];
            record[0] = "bucket".to_owned();
            record[3] = text(&bucket["start"]);
            record[4] = metric.clone();
            record[5] = text(value);
            w.write_record(&record).map_err(csv_error)?;
        }
    }
    let name = format!(
        "report-{}-{}.csv",
        text(&body["period"]["from"]),
        text(&body["period"]["to"])
    );
    let mut response = (headers(&name), w.into_inner().map_err(csv_error)?).into_response();
    if let Some(hit) = cache {
        response.headers_mut().insert("x-mttx-cache", hit);
    }
    Ok(response)
}

/// The columns of an incident list's CSV (the drilldown's, the dashboard's).
pub(crate) const INCIDENT_COLUMNS: [&str; 26] = [
    "incident_id",
    "incident_number",
    "created_at",
    "title",
    "service_id",
    "service_name",
    "team_id",
    "team_name",
    "escalation_policy_id",
    "escalation_policy_name",
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
    "acknowledged_user_names",
    "reopen_count",
    "final_resolved_at",
];

/// One incident as a CSV record, times written by `time`, each id with its name beside it.
pub(crate) fn incident_record(
    named: &NamedFact,
    time: impl Fn(chrono::DateTime<chrono::Utc>) -> String,
) -> Vec<String> {
    let f = &named.fact;
    let opt = |v: Option<String>| v.unwrap_or_default();
    vec![
        f.incident_id.to_string(),
        f.incident_number.to_string(),
        time(f.created_at),
        f.title.clone(),
        f.service_id.to_string(),
        named.service_name.clone(),
        opt(f.team_id.map(|v| v.to_string())),
        opt(named.team_name.clone()),
        opt(f.escalation_policy_id.map(|v| v.to_string())),
        opt(named.escalation_policy_name.clone()),
        f.urgency.clone(),
        opt(f.priority.clone()),
        f.major.to_string(),
        f.status.clone(),
        opt(f.acknowledged_at.map(&time)),
        opt(f.resolved_at.map(&time)),
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
        named.acknowledged_user_names.join("; "),
        opt(f.reopen_count.map(|v| v.to_string())),
        opt(f.final_resolved_at.map(&time)),
    ]
}

/// How many incidents each streamed chunk holds.
const CHUNK: usize = 1000;

/// Every incident of the selection from `page`'s cursor on, in `page`'s order, as a CSV
/// streamed a chunk at a time, all from the facts version being served now.
pub(crate) async fn incidents(
    app: &Arc<App>,
    account: i64,
    period: Period,
    filters: Filters,
    mut page: Page,
    names: Arc<Directory>,
) -> Result<Response, ApiError> {
    let engine: Engine = app.engine.read().await.clone();
    page.limit = CHUNK;
    // The first chunk is read before answering: a bad question is a 400, not a cut body.
    let first = engine.drilldown(account, &period, &filters, &page).await?;
    let name = format!("incidents-{}-{}.csv", period.from, period.to);
    let mut w = Csv::new();
    w.write_record(INCIDENT_COLUMNS).map_err(csv_error)?;
    let head = chunk(w, &names, first.facts)?;
    let next = first.next;
    let state = (Some(head), next, page);
    let stream = futures::stream::unfold(state, move |(ready, next, mut page)| {
        let (engine, names, filters) = (engine.clone(), names.clone(), filters.clone());
        async move {
            if let Some(bytes) = ready {
                return Some((Ok(bytes), (None, next, page)));
            }
            let after = next?;
            page.after = Some(after);
            let found = match engine.drilldown(account, &period, &filters, &page).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::error!(error = %e, "a CSV drilldown stopped part way");
                    return Some((
                        Err(std::io::Error::other(e.to_string())),
                        (None, None, page),
                    ));
                }
            };
            match chunk(Csv::new(), &names, found.facts) {
                Ok(bytes) => Some((Ok(bytes), (None, found.next, page))),
                Err(e) => Some((
                    Err(std::io::Error::other(format!("{e:?}"))),
                    (None, None, page),
                )),
            }
        }
    });
    Ok((headers(&name), Body::from_stream(stream)).into_response())
}

/// `facts` written after what `w` holds, as bytes.
fn chunk(mut w: Csv, names: &Directory, facts: Vec<mttx_facts::Fact>) -> Result<Bytes, ApiError> {
    for named in NamedFact::all(names, facts) {
        // Times in UTC, RFC 3339.
        let utc = |t: chrono::DateTime<chrono::Utc>| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        };
        w.write_record(incident_record(&named, utc))
            .map_err(csv_error)?;
    }
    Ok(Bytes::from(w.into_inner().map_err(csv_error)?))
}
