//! PagerDuty's Analytics API, answered from mttx's facts: the same paths, request bodies
//! and response fields as PagerDuty's REST API v2 (its public OpenAPI description), so a
//! team's scripts, the official `pagerduty` client and integrations switch by changing a
//! base URL. The answers are minutes fresh and carry percentiles on every row.
//!
//! - `POST /analytics/metrics/incidents/{all,services,teams,escalation_policies}` and the
//!   `/…/all` forms: [`rows::MetricsRow`]s, per group and per local day/week/month;
//! - `POST /analytics/metrics/responders/all`: [`rows::ResponderRow`];
//! - `POST /analytics/raw/incidents` (cursor paging) and `GET /analytics/raw/incidents/{id}`:
//!   [`rows::RawIncident`]s.
//!
//! Tokens are mttx's, sent as PagerDuty's `Authorization: Token token=…` (or `Bearer …`),
//! each seeing one account. Ids are PagerDuty's for data imported from PagerDuty, mttx's as
//! strings otherwise. Errors come in PagerDuty's shape ([`PdError`]).

pub mod request;
pub mod rows;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mttx_query::{Buckets, Dimension, Engine, Page, Sort};
use mttx_replica::Directory;
use serde::Serialize;
use utoipa::ToSchema;

use self::request::{
    AggregateUnit, IncidentFilters, MetricsRequest, Order, RawOrderBy, RawRequest,
    ResponderFilters, RespondersRequest, parse, zone,
};
use self::rows::{MetricsRow, RawIncident, ResponderRow};
use super::auth::Account;
use super::cache::cached;
use super::{ApiError, App};

/// PagerDuty's error body: `{"error": {"code", "message", "errors"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PdErrorBody {
    pub error: PdErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PdErrorDetail {
    /// PagerDuty's error code: 2001 invalid input, 2006 authentication failed, 2100 not
    /// found, 2000 the server's own failure.
    pub code: u32,
    /// What to fix.
    pub message: String,
    pub errors: Vec<String>,
}

/// An [`ApiError`] answered in PagerDuty's shape.
#[derive(Debug)]
pub struct PdError(pub ApiError);

impl From<ApiError> for PdError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<mttx_query::Error> for PdError {
    fn from(e: mttx_query::Error) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for PdError {
    fn into_response(self) -> Response {
        let (status, message) = self.0.answer();
        let code = match status {
            StatusCode::BAD_REQUEST => 2001,
            StatusCode::UNAUTHORIZED => 2006,
            StatusCode::NOT_FOUND => 2100,
            _ => 2000,
        };
        let body = PdErrorBody {
            error: PdErrorDetail {
                code,
                errors: vec![message.clone()],
                message,
            },
        };
        (status, Json(body)).into_response()
    }
}

/// The token's account, refused in PagerDuty's shape.
#[derive(Debug, Clone, Copy)]
pub struct PdAccount(pub i64);

impl FromRequestParts<Arc<App>> for PdAccount {
    type Rejection = PdError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, PdError> {
        Ok(Self(Account::from_request_parts(parts, app).await?.0))
    }
}

/// The metrics answer: the rows and the question echoed.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricsBody {
    pub data: Vec<MetricsRow>,
    pub filters: IncidentFilters,
    pub time_zone: String,
    /// The replica time up to which the facts are complete: the created time of the last
    /// log entry folded with none awaited below it (null: no ETL has recorded
    /// it). Not in PagerDuty's answers; their clients ignore it.
    pub data_as_of: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate_unit: Option<AggregateUnit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_by: Option<String>,
}

/// The responder answer: the row and the question echoed.
#[derive(Debug, Serialize, ToSchema)]
pub struct RespondersBody {
    pub data: Vec<ResponderRow>,
    pub filters: ResponderFilters,
    pub time_zone: String,
    /// The replica time up to which the facts are complete: the created time of the last
    /// log entry folded with none awaited below it (null: no ETL has recorded
    /// it). Not in PagerDuty's answers; their clients ignore it.
    pub data_as_of: Option<chrono::DateTime<chrono::Utc>>,
}

/// A page of raw incidents.
#[derive(Debug, Serialize, ToSchema)]
pub struct RawBody {
    pub data: Vec<RawIncident>,
    /// The cursor of the first incident (pass as `ending_before` for the page before).
    pub first: Option<String>,
    /// The cursor of the last incident (pass as `starting_after` for the page after).
    pub last: Option<String>,
    pub limit: i64,
    /// Whether there are more incidents past this page, in the direction it was asked.
    pub more: bool,
    pub order: Order,
    pub order_by: RawOrderBy,
    pub filters: IncidentFilters,
    pub time_zone: String,
    /// The replica time up to which the facts are complete: the created time of the last
    /// log entry folded with none awaited below it (null: no ETL has recorded
    /// it). Not in PagerDuty's answers; their clients ignore it.
    pub data_as_of: Option<chrono::DateTime<chrono::Utc>>,
}

/// One raw incident.
#[derive(Debug, Serialize, ToSchema)]
pub struct RawOneBody {
    pub time_zone: String,
    /// The replica time up to which the facts are complete: the created time of the last
    /// log entry folded with none awaited below it (null: no ETL has recorded
    /// it). Not in PagerDuty's answers; their clients ignore it.
    pub data_as_of: Option<chrono::DateTime<chrono::Utc>>,
    pub data: RawIncident,
}

/// The cache key of a question: its body and the names it will show.
fn key_of(body: &[u8], d: &Directory) -> HashMap<String, String> {
    HashMap::from([
        (
            "body".to_owned(),
            String::from_utf8_lossy(body).into_owned(),
        ),
        ("names".to_owned(), d.fingerprint().to_string()),
    ])
}

/// Every metrics endpoint: rows per `by` (None: all), per bucket when asked.
async fn incident_metrics(
    app: Arc<App>,
    account: i64,
    body: Bytes,
    endpoint: &'static str,
    by: Option<Dimension>,
) -> Result<Response, PdError> {
    let asked: MetricsRequest = parse(&body)?;
    let tz = zone(asked.time_zone.as_deref())?;
    let directory = app.directory(account).await;
    let selection = asked.filters.selection(&directory, tz)?;
    let buckets = asked.aggregate_unit.map(|u| Buckets { unit: u.into(), tz });
    let order_by = asked.order_by.clone();
    if let Some(f) = &order_by
        && !rows::ORDERABLE.contains(f)
    {
        return Err(ApiError::BadRequest(format!(
            "order_by `{f}` is not a field of the rows; use one of {}",
            rows::ORDERABLE.join(", ")
        ))
        .into());
    }
    let key = key_of(&body, &directory);
    Ok(
        cached(&app, endpoint, account, &key, async |engine: &Engine| {
            let tallies = engine.analytics(account, &selection, by, buckets).await?;
            let mut data: Vec<MetricsRow> = tallies
                .iter()
                // Rows are per team: incidents without one are in no team's row.
                .filter(|t| by.is_none() || t.key.is_some())
                .map(|t| MetricsRow::new(t, by, &directory))
                .collect();
            rows::sort(&mut data, order_by.as_deref(), asked.order);
            Ok(MetricsBody {
                data,
                filters: asked.filters.clone(),
                time_zone: tz.name().to_owned(),
                data_as_of: engine.data_as_of(),
                aggregate_unit: asked.aggregate_unit,
                order: asked.order,
                order_by: asked.order_by.clone(),
            })
        })
        .await?,
    )
}

/// Declares one metrics endpoint: its path in the document and its handler.
macro_rules! metrics_endpoint {
    ($name:ident, $path:literal, $by:expr, $summary:literal) => {
        #[doc = $summary]
        #[utoipa::path(
                            post,
                            path = $path,
                            tag = "pagerduty-analytics",
                            request_body = Option<MetricsRequest>,
                            security(("pagerduty_token" = []), ("bearer" = [])),
                            responses(
                                (status = 200, description = "The rows", body = MetricsBody),
                                (status = 400, description = "A field to fix", body = PdErrorBody),
                                (status = 401, description = "No valid token", body = PdErrorBody),
                            )
                        )]
        pub(crate) async fn $name(
            State(app): State<Arc<App>>,
            PdAccount(account): PdAccount,
            body: Bytes,
        ) -> Result<Response, PdError> {
            incident_metrics(app, account, body, $path, $by).await
        }
    };
}

metrics_endpoint!(
    all,
    "/analytics/metrics/incidents/all",
    None,
    "Aggregated incident metrics: one row, or one per day, week or month."
);
metrics_endpoint!(
    services,
    "/analytics/metrics/incidents/services",
    Some(Dimension::Service),
    "Incident metrics per service (and per bucket)."
);
metrics_endpoint!(
    services_all,
    "/analytics/metrics/incidents/services/all",
    None,
    "Incident metrics across all (selected) services."
);
metrics_endpoint!(
    teams,
    "/analytics/metrics/incidents/teams",
    Some(Dimension::Team),
    "Incident metrics per team (and per bucket)."
);
metrics_endpoint!(
    teams_all,
    "/analytics/metrics/incidents/teams/all",
    None,
    "Incident metrics across all (selected) teams."
);
metrics_endpoint!(
    escalation_policies,
    "/analytics/metrics/incidents/escalation_policies",
    Some(Dimension::EscalationPolicy),
    "Incident metrics per escalation policy (and per bucket), with distinct responders."
);
metrics_endpoint!(
    escalation_policies_all,
    "/analytics/metrics/incidents/escalation_policies/all",
    None,
    "Incident metrics across all (selected) escalation policies."
);

/// Incident counts across the selected responders.
#[utoipa::path(
    post,
    path = "/analytics/metrics/responders/all",
    tag = "pagerduty-analytics",
    request_body = Option<RespondersRequest>,
    security(("pagerduty_token" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "One row", body = RespondersBody),
        (status = 400, description = "A field to fix", body = PdErrorBody),
        (status = 401, description = "No valid token", body = PdErrorBody),
    )
)]
pub(crate) async fn responders_all(
    State(app): State<Arc<App>>,
    PdAccount(account): PdAccount,
    body: Bytes,
) -> Result<Response, PdError> {
    let asked: RespondersRequest = parse(&body)?;
    let tz = zone(asked.time_zone.as_deref())?;
    let directory = app.directory(account).await;
    let selection = asked.filters.selection(&directory, tz)?;
    let key = key_of(&body, &directory);
    Ok(cached(
        &app,
        "/analytics/metrics/responders/all",
        account,
        &key,
        async |engine: &Engine| {
            let tallies = engine
                .analytics(account, &selection, Some(Dimension::Responder), None)
                .await?;
            let mut row = ResponderRow::default();
            for t in tallies.iter().filter(|t| {
                selection
                    .responders
                    .as_ref()
                    .is_none_or(|r| t.key.is_some_and(|k| r.contains(&k)))
            }) {
                row.total_incident_count += t.incident_count;
                row.total_incidents_acknowledged += t.acknowledged_by_key;
            }
            Ok(RespondersBody {
                data: vec![row],
                filters: asked.filters.clone(),
                time_zone: tz.name().to_owned(),
                data_as_of: engine.data_as_of(),
            })
        },
    )
    .await?)
}

/// The cursor named in an engine's refusal is the request's field.
fn cursor_error(e: mttx_query::Error, field: &str) -> PdError {
    match e {
        mttx_query::Error::BadRequest(m) => PdError(ApiError::BadRequest(
            m.replace("`after`", &format!("`{field}`")),
        )),
        other => other.into(),
    }
}

/// Raw incidents, a page at a time.
#[utoipa::path(
    post,
    path = "/analytics/raw/incidents",
    tag = "pagerduty-analytics",
    request_body = Option<RawRequest>,
    security(("pagerduty_token" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of incidents", body = RawBody),
        (status = 400, description = "A field to fix", body = PdErrorBody),
        (status = 401, description = "No valid token", body = PdErrorBody),
    )
)]
pub(crate) async fn raw_incidents(
    State(app): State<Arc<App>>,
    PdAccount(account): PdAccount,
    body: Bytes,
) -> Result<Response, PdError> {
    let asked: RawRequest = parse(&body)?;
    let tz = zone(asked.time_zone.as_deref())?;
    let limit = asked.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(
            ApiError::BadRequest(format!("limit must be between 1 and 1000, not {limit}")).into(),
        );
    }
    if asked.starting_after.is_some() && asked.ending_before.is_some() {
        return Err(
            ApiError::BadRequest("give starting_after or ending_before, not both".into()).into(),
        );
    }
    let directory = app.directory(account).await;
    let selection = asked.filters.selection(&directory, tz)?;
    let order = asked.order.unwrap_or(Order::Desc);
    let order_by = asked.order_by.unwrap_or(RawOrderBy::CreatedAt);
    let page = Page {
        sort: match order_by {
            RawOrderBy::CreatedAt => Sort::CreatedAt,
            RawOrderBy::SecondsToResolve => Sort::TimeToResolve,
        },
        descending: order == Order::Desc,
        limit: limit as usize,
        after: asked.starting_after.clone(),
    };
    // The page before a cursor: walked back from it, then turned round.
    let backwards = asked.ending_before.is_some();
    let asked_page = if backwards {
        Page {
            after: asked.ending_before.clone(),
            ..page.clone()
        }
    } else {
        page.clone()
    };
    let (mut facts, more, data_as_of) = {
        let engine = app.engine.read().await;
        let found = engine
            .selected(account, &selection, &asked_page, backwards)
            .await
            .map_err(|e| {
                cursor_error(
                    e,
                    if backwards {
                        "ending_before"
                    } else {
                        "starting_after"
                    },
                )
            })?;
        let more = found.next.is_some();
        (found.facts, more, engine.data_as_of())
    };
    if backwards {
        facts.reverse();
    }
    let ids: Vec<i64> = facts.iter().map(|f| f.incident_id).collect();
    let outside = outside_ids(&app, &ids).await?;
    let data: Vec<RawIncident> = facts
        .iter()
        .map(|f| {
            let id = outside
                .get(&f.incident_id)
                .cloned()
                .unwrap_or_else(|| f.incident_id.to_string());
            RawIncident::new(f, id, &directory, tz)
        })
        .collect();
    let body = RawBody {
        first: facts.first().map(|f| page.cursor_of(f)),
        last: facts.last().map(|f| page.cursor_of(f)),
        data,
        limit,
        more,
        order,
        order_by,
        filters: asked.filters,
        time_zone: tz.name().to_owned(),
        data_as_of,
    };
    Ok(Json(body).into_response())
}

/// One raw incident, by PagerDuty's id (for imported data) or mttx's.
#[utoipa::path(
    get,
    path = "/analytics/raw/incidents/{id}",
    tag = "pagerduty-analytics",
    params(("id" = String, Path, description = "PagerDuty's incident id (imported data) or mttx's")),
    security(("pagerduty_token" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The incident", body = RawOneBody),
        (status = 401, description = "No valid token", body = PdErrorBody),
        (status = 404, description = "No such incident in the token's account", body = PdErrorBody),
    )
)]
pub(crate) async fn raw_incident(
    State(app): State<Arc<App>>,
    PdAccount(account): PdAccount,
    Path(id): Path<String>,
) -> Result<Response, PdError> {
    let not_found = || {
        PdError(ApiError::NotFound(format!(
            "there is no incident `{id}` in this token's account"
        )))
    };
    let inside = match &app.source {
        Some(s) => s.inside_incident_id(&id).await.map_err(|e| {
            ApiError::unavailable("cannot read incident ids from the replica; try again", e)
        })?,
        None => None,
    };
    let inside = match inside {
        Some(inside) => inside,
        // Our own id, unless an import gave the incident PagerDuty's: then only that names it.
        None => match id.parse::<i64>() {
            Ok(ours) if !outside_ids(&app, &[ours]).await?.contains_key(&ours) => ours,
            _ => return Err(not_found()),
        },
    };
    let (fact, data_as_of) = {
        let engine = app.engine.read().await;
        let fact = engine.incident(account, inside).await?;
        (fact.ok_or_else(not_found)?, engine.data_as_of())
    };
    let directory = app.directory(account).await;
    let tz = chrono_tz::Tz::Etc__UTC;
    Ok(Json(RawOneBody {
        time_zone: tz.name().to_owned(),
        data_as_of,
        data: RawIncident::new(&fact, id.clone(), &directory, tz),
    })
    .into_response())
}

/// The outside ids an import gave these incidents (none without a replica).
async fn outside_ids(app: &App, ids: &[i64]) -> Result<HashMap<i64, String>, ApiError> {
    match &app.source {
        Some(s) => s.outside_incident_ids(ids).await.map_err(|e| {
            ApiError::unavailable("cannot read incident ids from the replica; try again", e)
        }),
        None => Ok(HashMap::new()),
    }
}

/// The routes of PagerDuty's Analytics API.
pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/analytics/metrics/incidents/all", post(all))
        .route("/analytics/metrics/incidents/services", post(services))
        .route(
            "/analytics/metrics/incidents/services/all",
            post(services_all),
        )
        .route("/analytics/metrics/incidents/teams", post(teams))
        .route("/analytics/metrics/incidents/teams/all", post(teams_all))
        .route(
            "/analytics/metrics/incidents/escalation_policies",
            post(escalation_policies),
        )
        .route(
            "/analytics/metrics/incidents/escalation_policies/all",
            post(escalation_policies_all),
        )
        .route("/analytics/metrics/responders/all", post(responders_all))
        .route("/analytics/raw/incidents", post(raw_incidents))
        .route("/analytics/raw/incidents/{id}", get(raw_incident))
}
