//! `/api/v1/incidents`: the incidents behind a number (same period and filters, sorted,
//! keyset paged) and one incident with its log timeline from the replica, as JSON with the
//! names of its service, team, policy and users beside their ids. The
//! dashboard's incident pages read through [`incident_fact`] and [`timeline`] too.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use mttx_query::Engine;

use super::auth::Account;
use super::cache::cached_named;
use super::params::{Asked, FilterParams, FormatParams, PageParams, PeriodParams, asked, page};
use super::wire::{DetailBody, Entry, ErrorBody, IncidentsBody, NamedFact};
use super::{ApiError, App};

/// The incidents behind a number: same period and filters, sorted, keyset paged.
#[utoipa::path(
    get,
    path = "/api/v1/incidents",
    tag = "incidents",
    params(PeriodParams, FilterParams, PageParams, FormatParams),
    responses(
        (status = 200, description = "A page of incidents (as CSV with format=csv or Accept: text/csv: every incident from the cursor on, one row each, streamed)", content(
            (IncidentsBody = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "A parameter to fix", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(account = account), err(level = "info"))]
pub(crate) async fn drilldown(
    State(app): State<Arc<App>>,
    Account(account): Account,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Asked {
        mut params,
        period,
        filters,
    } = asked(query.as_deref(), &app.accepted.drilldown)?;
    let csv = super::csv_answer::wanted(&mut params, &headers)?;
    let page = page(&params)?;
    let names = app.directory(account).await;
    if csv {
        return super::csv_answer::incidents(&app, account, period, filters, page, names).await;
    }
    cached_named(
        &app,
        "incidents",
        account,
        Some(&names),
        &params,
        async |engine: &Engine| {
            let found = engine.drilldown(account, &period, &filters, &page).await?;
            Ok(IncidentsBody {
                account_id: account,
                facts_version: engine.version(),
                generation: engine.generation(),
                data_as_of: engine.data_as_of(),
                metrics_version: engine.metrics_version(account).number(),
                incidents: NamedFact::all(&names, found.facts),
                next: found.next,
            })
        },
    )
    .await
}

/// One incident: its facts and its log timeline from the replica. 404 for any incident
/// that is not the token's account's.
#[utoipa::path(
    get,
    path = "/api/v1/incidents/{id}",
    tag = "incidents",
    params(("id" = i64, Path, description = "The incident id")),
    responses(
        (status = 200, description = "The incident's facts and timeline", body = DetailBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such incident in the token's account", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(account = account), err(level = "info"))]
pub(crate) async fn detail(
    State(app): State<Arc<App>>,
    Account(account): Account,
    id: Result<Path<String>, PathRejection>,
) -> Result<axum::Json<DetailBody>, ApiError> {
    let id = id.map_or_else(|_| String::new(), |Path(id)| id);
    let fact = incident_fact(&app, account, &id).await?;
    let id = fact.incident_id;
    let timeline = timeline(&app, id).await?;
    let names = app.directory(account).await;
    let data_as_of = app.engine.read().await.data_as_of();
    Ok(axum::Json(DetailBody {
        facts: NamedFact::new(&names, fact),
        timeline,
        data_as_of,
    }))
}

/// The account's incident `id` (as given in the path), or a 404 that says so.
#[tracing::instrument(skip(app))]
pub(crate) async fn incident_fact(
    app: &App,
    account: i64,
    id: &str,
) -> Result<mttx_facts::Fact, ApiError> {
    let not_found = || {
        ApiError::NotFound(format!(
            "no incident `{id}` in this account (ids are whole numbers)"
        ))
    };
    let id: i64 = id.parse().map_err(|_| not_found())?;
    app.engine
        .read()
        .await
        .incident(account, id)
        .await?
        .ok_or_else(not_found)
}

/// The incident's log entries from the replica, oldest first (None: no replica configured).
#[tracing::instrument(skip(app))]
pub(crate) async fn timeline(app: &App, id: i64) -> Result<Option<Vec<Entry>>, ApiError> {
    match &app.source {
        Some(source) => {
            let mut logs = source.logs(&[id]).await.map_err(|e| {
                ApiError::unavailable("the replica cannot be read right now; try again", e)
            })?;
            let mut entries = logs.remove(&id).map(|(_, e)| e).unwrap_or_default();
            entries.sort_by_key(|e| (e.created_at, e.id));
            Ok(Some(entries))
        }
        None => Ok(None),
    }
}
