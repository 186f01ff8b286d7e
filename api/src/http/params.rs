//! The query string, read: the parameters each endpoint declares (the OpenAPI document is
//! made from the same declarations, so the two cannot disagree), and the parsers that turn
//! them into the engine's period, filters and page, or into a 400 that says what to fix.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;

use chrono::NaiveDate;
use mttx_query::{Filters, GroupBy, NoisyOptions, Page, Period, Sort, Unit};
use utoipa::IntoParams;
use utoipa::openapi::path::ParameterIn;

use super::error::{ApiError, bad};

/// The period: local dates in a time zone.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "declares parameters for the document; handlers parse them"
)]
pub struct PeriodParams {
    /// First local date of the period (inclusive), e.g. 2026-10-26.
    from: NaiveDate,
    /// The local date after the period (exclusive), e.g. 2026-11-02. At most 400 days after `from`.
    to: NaiveDate,
    /// IANA time zone of the dates and of day/week/month buckets; default UTC.
    #[param(example = "Europe/Berlin")]
    tz: Option<String>,
}

/// Which incidents count: every filter given must hold.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "declares parameters for the document; handlers parse them"
)]
pub struct FilterParams {
    /// Team id (the team at trigger).
    team: Option<i64>,
    /// Service id.
    service: Option<i64>,
    /// Escalation policy id (at trigger).
    escalation_policy: Option<i64>,
    /// A user id among the incident's acknowledgers.
    responder: Option<i64>,
    /// `high` or `low`.
    urgency: Option<String>,
    /// `P1` … `P5`.
    priority: Option<String>,
    /// Major incidents (P1 or P2) only, or none of them.
    major: Option<bool>,
    /// Escalated incidents only (true), or never escalated ones (false).
    escalated: Option<bool>,
    /// One alert of the noisy-alerts view: its `key` (the title, lower-case, with every
    /// word holding a digit masked as `#`).
    alert: Option<String>,
    /// Incidents that interrupted someone in sleep hours (true), or none (false).
    interrupted_sleep: Option<bool>,
    /// Incidents reopened after a resolve at least once (true), or never (false).
    reopened: Option<bool>,
}

/// Breakdown and trend of a report.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "declares parameters for the document; handlers parse them"
)]
pub struct ReportParams {
    /// One row per team, service, escalation_policy, urgency, priority or responder, each
    /// with the account-wide value as its norm.
    #[param(value_type = Option<GroupBy>)]
    group_by: Option<String>,
    /// Trend buckets: day, week (ISO, in the time zone) or month.
    #[param(value_type = Option<Unit>)]
    unit: Option<String>,
}

/// The answer's format.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "declares parameters for the document; handlers parse them"
)]
pub struct FormatParams {
    /// `json` (default) or `csv`; `Accept: text/csv` asks for CSV too. A report's CSV has
    /// one row per group (the account total first, then trend buckets) and metric; a
    /// drilldown's has one row per incident, every page of the selection from `after` on,
    /// streamed (`limit` does not apply).
    format: Option<String>,
}

/// Drilldown order and paging.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "declares parameters for the document; handlers parse them"
)]
pub struct PageParams {
    /// created_at, time_to_ack, time_to_resolve, reopen_count or final_resolved_at; a
    /// leading `-` sorts descending (default `-created_at`). Missing values sort last.
    sort: Option<String>,
    /// The `next` cursor of the previous page.
    after: Option<String>,
    /// Incidents per page, 1 to 1000 (default 50).
    limit: Option<u32>,
}

/// How the noisy-alerts view is cut.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "declares parameters for the document; handlers parse them"
)]
pub struct NoisyParams {
    /// Rows per list, 1 to 100 (default 10).
    limit: Option<u32>,
    /// An auto-resolved incident resolved within this many seconds is a flap (default 300).
    flap_seconds: Option<f64>,
    /// Similar incidents each within this many minutes of the previous form a burst
    /// (default 5, up to 1440).
    burst_minutes: Option<u32>,
    /// The fewest incidents a burst has (default 3, at least 2).
    burst_min: Option<u32>,
}

/// The names of the query parameters `P` declares.
pub fn names<P: IntoParams>() -> Vec<String> {
    P::into_params(|| Some(ParameterIn::Query))
        .into_iter()
        .map(|p| p.name)
        .collect()
}

/// The query parameters each endpoint accepts, as the document declares them.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub report: Vec<String>,
    pub drilldown: Vec<String>,
    pub noisy: Vec<String>,
}

/// Reads [`Accepted`] from the parameter declarations.
pub fn accepted() -> Accepted {
    let base = || {
        let mut v = names::<PeriodParams>();
        v.extend(names::<FilterParams>());
        v
    };
    let with = |more: Vec<String>| {
        let mut v = base();
        v.extend(more);
        v
    };
    Accepted {
        report: with([names::<ReportParams>(), names::<FormatParams>()].concat()),
        drilldown: with([names::<PageParams>(), names::<FormatParams>()].concat()),
        noisy: with(names::<NoisyParams>()),
    }
}

/// The longest period a report may cover.
pub const MAX_DAYS: u64 = 400;

/// The query string's parameters (percent-decoded; bytes that are not UTF-8 become U+FFFD).
/// A parameter given twice is refused rather than silently picked.
pub(crate) fn query_params(query: Option<&str>) -> Result<HashMap<String, String>, ApiError> {
    let mut params = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if params.insert(k.to_string(), v.to_string()).is_some() {
            return Err(bad(format!(
                "`{k}` is given twice: give each parameter once"
            )));
        }
    }
    Ok(params)
}

/// Refuses parameters the endpoint does not declare, naming the ones it does.
pub(crate) fn known<S: AsRef<str>>(
    params: &HashMap<String, String>,
    accepted: &[S],
) -> Result<(), ApiError> {
    match params
        .keys()
        .find(|k| !accepted.iter().any(|a| a.as_ref() == k.as_str()))
    {
        Some(k) => Err(bad(format!(
            "unknown parameter `{k}`: use {}",
            accepted
                .iter()
                .map(AsRef::as_ref)
                .collect::<Vec<&str>>()
                .join(", ")
        ))),
        None => Ok(()),
    }
}

/// The `tz` parameter (default UTC).
pub(crate) fn time_zone(params: &HashMap<String, String>) -> Result<chrono_tz::Tz, ApiError> {
    let tz_name = params.get("tz").map_or("UTC", String::as_str);
    tz_name.parse().map_err(|_| {
        bad(format!(
            "unknown time zone `{tz_name}`: use an IANA name such as Europe/Berlin"
        ))
    })
}

pub(crate) fn period(params: &HashMap<String, String>) -> Result<Period, ApiError> {
    let tz = time_zone(params)?;
    let (from, to) = (date(params, "from")?, date(params, "to")?);
    Period::new(tz, from, to, MAX_DAYS).map_err(|e| bad(e.to_string()))
}

pub(crate) fn id_param(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<i64>, ApiError> {
    params
        .get(name)
        .map(|v| {
            v.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                bad(format!(
                    "`{name}` = `{v}` is not an id (a whole number from 1)"
                ))
            })
        })
        .transpose()
}

pub(crate) fn filters(params: &HashMap<String, String>) -> Result<Filters, ApiError> {
    let urgency = params.get("urgency").cloned();
    if let Some(u) = &urgency
        && !["high", "low"].contains(&u.as_str())
    {
        return Err(bad(format!("`urgency` = `{u}`: use high or low")));
    }
    let priority = params.get("priority").cloned();
    if let Some(p) = &priority
        && !["P1", "P2", "P3", "P4", "P5"].contains(&p.as_str())
    {
        return Err(bad(format!("`priority` = `{p}`: use P1, P2, P3, P4 or P5")));
    }
    let flag = |name: &str| {
        params
            .get(name)
            .map(|m| match m.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(bad(format!("`{name}` = `{m}`: use true or false"))),
            })
            .transpose()
    };
    let major = flag("major")?;
    let escalated = flag("escalated")?;
    let interrupted_sleep = flag("interrupted_sleep")?;
    let reopened = flag("reopened")?;
    Ok(Filters {
        team: id_param(params, "team")?,
        service: id_param(params, "service")?,
        escalation_policy: id_param(params, "escalation_policy")?,
        responder: id_param(params, "responder")?,
        urgency,
        priority,
        major,
        escalated,
        alert: params.get("alert").filter(|a| !a.is_empty()).cloned(),
        interrupted_sleep,
        reopened,
    })
}

fn date(params: &HashMap<String, String>, name: &str) -> Result<NaiveDate, ApiError> {
    let v = params
        .get(name)
        .ok_or_else(|| bad(format!("`{name}` is required: a date like 2026-10-26")))?;
    v.parse()
        .map_err(|_| bad(format!("`{name}` = `{v}` is not a date like 2026-10-26")))
}

/// A whole number from `min` to `max`, or `default` when the parameter is absent.
pub(crate) fn bounded(
    params: &HashMap<String, String>,
    name: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ApiError> {
    match params.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                bad(format!(
                    "`{name}` = `{v}`: use a whole number from {min} to {max}"
                ))
            }),
    }
}

/// An optional parameter parsed as `T`; the parse error is the message of the 400.
pub(crate) fn optional<T>(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, ApiError>
where
    T: FromStr,
    T::Err: Display,
{
    params
        .get(name)
        .map(|v| v.parse::<T>())
        .transpose()
        .map_err(|e| bad(e.to_string()))
}

/// How the noisy-alerts view is cut: `limit`, `flap_seconds`, `burst_minutes`, `burst_min`
/// (the engine's defaults where absent).
pub(crate) fn noisy_options(params: &HashMap<String, String>) -> Result<NoisyOptions, ApiError> {
    let defaults = NoisyOptions::default();
    let flap_seconds = match params.get("flap_seconds") {
        None => defaults.flap_seconds,
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && (0.0..=86_400.0).contains(s))
            .ok_or_else(|| {
                bad(format!(
                    "`flap_seconds` = `{v}`: use seconds from 0 to 86400"
                ))
            })?,
    };
    Ok(NoisyOptions {
        limit: bounded(params, "limit", defaults.limit as u64, 1, 100)? as usize,
        flap_seconds,
        burst_gap_seconds: 60
            * bounded(
                params,
                "burst_minutes",
                (defaults.burst_gap_seconds / 60) as u64,
                1,
                1440,
            )? as i64,
        burst_min: bounded(params, "burst_min", defaults.burst_min as u64, 2, 10_000)? as usize,
        share_min: defaults.share_min,
    })
}

/// The drilldown's order and page: `sort` (a leading - for descending), `limit`, `after`.
pub(crate) fn page(params: &HashMap<String, String>) -> Result<Page, ApiError> {
    let sort_text = params.get("sort").map_or("-created_at", String::as_str);
    let (descending, name) = match sort_text.strip_prefix('-') {
        Some(n) => (true, n),
        None => (false, sort_text),
    };
    let sort = match name {
        "created_at" => Sort::CreatedAt,
        "time_to_ack" => Sort::TimeToAck,
        "time_to_resolve" => Sort::TimeToResolve,
        "reopen_count" => Sort::Reopenings,
        "final_resolved_at" => Sort::FinalResolve,
        _ => {
            return Err(bad(format!(
                "`sort` = `{sort_text}`: use created_at, time_to_ack, time_to_resolve, reopen_count or final_resolved_at, with a leading - for descending"
            )));
        }
    };
    Ok(Page {
        sort,
        descending,
        limit: bounded(params, "limit", 50, 1, 1000)? as usize,
        after: params.get("after").cloned(),
    })
}

/// What every report and drilldown call asks: which period, which incidents.
pub(crate) struct Asked {
    pub params: HashMap<String, String>,
    pub period: Period,
    pub filters: Filters,
}

/// The parameters `accepted` names, with the period and filters read.
pub(crate) fn asked(query: Option<&str>, accepted: &[String]) -> Result<Asked, ApiError> {
    let params = query_params(query)?;
    known(&params, accepted)?;
    Ok(Asked {
        period: period(&params)?,
        filters: filters(&params)?,
        params,
    })
}
