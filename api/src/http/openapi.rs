//! The API's OpenAPI document, generated from the wire types and from the handlers'
//! annotations. The query parameters each endpoint accepts are read from the same
//! declarations ([`accepted`]), so the document and the server cannot disagree.

use chrono::NaiveDate;
use mttx_query::{GroupBy, Unit};
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, OpenApi};

use super::wire::{DetailBody, ErrorBody, IncidentsBody, NoisyBody, ReportBody};

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

/// Drilldown order and paging.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "declares parameters for the document; handlers parse them"
)]
pub struct PageParams {
    /// created_at, time_to_ack or time_to_resolve; a leading `-` sorts descending
    /// (default `-created_at`). Missing values sort last.
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
        report: with(names::<ReportParams>()),
        drilldown: with(names::<PageParams>()),
        noisy: with(names::<NoisyParams>()),
    }
}

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token of one account, from `mttx token create --account <id>`",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document of the report API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "mttx report API",
        description = "Incident analytics: MTTA/MTTR, percentiles, deltas, breakdowns, drilldown. Every token sees one account."
    ),
    paths(
        crate::http::report,
        crate::http::drilldown,
        crate::http::detail,
        crate::http::noisy,
        crate::http::health,
        crate::http::metrics,
    ),
    components(schemas(ErrorBody, ReportBody, IncidentsBody, DetailBody, NoisyBody)),
    modifiers(&Bearer),
    security(("bearer" = [])),
)]
#[derive(Debug)]
pub struct ApiDoc;
