//! The report API: JSON over HTTP, bearer tokens scoped to one account.
//!
//! `GET /api/v1/reports/incidents?from=2026-10-26&to=2026-11-02&tz=Europe/Berlin&group_by=team`
//! answers the period's aggregates beside the previous period of equal length (absolute and
//! relative deltas) and, with `group_by`, one row per group with the account-wide norm.
//! `/healthz` and `/metrics` need no token. Every error is JSON with a message that says
//! what to fix.

pub mod auth;
pub mod cache;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mttx_etl::sink::state::{Generation, State, TokenCheck};
use mttx_etl::source::Source;
use mttx_query::{Engine, Filters, GroupBy, NoisyOptions, Page, Period, Sort};
use serde::Serialize;
use tokio::sync::RwLock;
use utoipa::OpenApi;

use self::auth::{Account, Tokens};
use self::cache::Answers;
pub use self::error::ApiError;
pub(crate) use self::error::bad;
use self::openapi::ApiDoc;
use self::params::{
    Accepted, Asked, FilterParams, NoisyParams, PageParams, PeriodParams, ReportParams, asked,
    bounded, page,
};
use self::wire::{
    BucketBody, DetailBody, Entry, ErrorBody, ErrorDetail, IncidentsBody, NoisyBody, ReportBody,
    period_body, row_body,
};

/// The default size of the answer cache.
pub const CACHE_BYTES: u64 = 256 << 20;

/// What the handlers share.
#[derive(Debug)]
pub struct App {
    pub(crate) engine: RwLock<Engine>,
    /// The `--facts` location: generation 1, and where new generations are built beside.
    base: String,
    state: State,
    /// The replica, for incident timelines (None: detail without timeline).
    pub(crate) source: Option<Source>,
    answers: Answers,
    tokens: Tokens,
    pub(crate) accepted: Accepted,
}

impl App {
    /// Opens the facts table for serving, with an answer cache of `cache_bytes` (0: none).
    pub async fn open(
        facts: &str,
        state: State,
        source: Option<Source>,
        cache_bytes: u64,
    ) -> anyhow::Result<Arc<Self>> {
        let engine = open_served(&state, facts).await?;
        Ok(Arc::new(Self {
            engine: RwLock::new(engine),
            base: facts.to_owned(),
            state,
            source,
            answers: Answers::new(cache_bytes),
            tokens: Tokens::default(),
            accepted: params::accepted(),
        }))
    }

    /// Follows the table: new facts are served within `every` of their commit. The table is
    /// re-read on a copy, outside the lock, so requests never wait for the listing; only a
    /// new version is swapped in. When another facts generation starts being served (a
    /// reprocess switched), its table is opened and swapped in whole: every answer comes
    /// from one generation.
    pub fn follow(self: &Arc<Self>, every: Duration) {
        let app = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(app) = app.upgrade() else { return };
                let serving = app.engine.read().await.generation();
                match app.state.serving(&app.base, 1).await {
                    Ok(g) if g.id != serving => match open_generation(&g).await {
                        Ok(next) => {
                            tracing::info!(
                                generation = next.generation(),
                                metrics_version = g.describe_versions(),
                                "serving another facts generation"
                            );
                            *app.engine.write().await = next;
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "could not open the served facts generation")
                        }
                    },
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read which facts generation is served")
                    }
                }
                let mut next = app.engine.read().await.clone();
                let before = next.version();
                match next.refresh().await {
                    Ok(()) if next.version() != before => {
                        let mut engine = app.engine.write().await;
                        // A generation switch may have happened meanwhile; it wins.
                        if engine.generation() == next.generation() {
                            *engine = next;
                        }
                    }
                    Ok(()) => {}
                    Err(e) => tracing::warn!(error = %e, "could not refresh the facts table"),
                }
            }
        });
    }
}

/// An engine over the facts generation the state says is served (the first time:
/// `facts` itself, as generation 1).
pub async fn open_served(state: &State, facts: &str) -> anyhow::Result<Engine> {
    open_generation(&state.serving(facts, 1).await?).await
}

/// An engine over one facts generation.
async fn open_generation(g: &Generation) -> anyhow::Result<Engine> {
    // Registers the object stores compiled in, or says which feature a URL needs.
    let url = mttx_etl::sink::delta::table_url(&g.location)?;
    Ok(Engine::open(url.as_str()).await?.serving(
        g.id,
        g.metrics_version,
        g.account_versions.clone(),
    ))
}

/// The API's routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/api/v1/reports/incidents", get(report))
        .route("/api/v1/reports/noisy", get(noisy))
        .route("/api/v1/incidents", get(drilldown))
        .route("/api/v1/incidents/{id}", get(detail))
        .merge(crate::dashboard::routes())
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::NotFound(format!(
                "there is nothing at {uri}; the endpoints are listed at /openapi.json"
            ))
        })
        .with_state(app)
        .layer(axum::middleware::from_fn(crate::http::metrics::track))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(64 * 1024))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Serves `router` at `addr` until the process ends; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {addr}: {e} (is another server using the port? pick another with --listen)")
    })?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "the server stopped");
        }
    });
    Ok((bound, task))
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200, description = "The server is up", body = String)))]
pub(crate) async fn health() -> &'static str {
    "ok\n"
}

/// Prometheus counters of the server (and of an ETL in the same process).
#[utoipa::path(get, path = "/metrics", security(()), responses((status = 200, description = "OpenMetrics text", body = String)))]
pub(crate) async fn metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::http::metrics::render(),
    )
}

async fn openapi() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}

pub(crate) fn engine_error(e: mttx_query::Error) -> ApiError {
    match e {
        mttx_query::Error::BadRequest(m) => bad(m),
        other => ApiError::internal("the query failed; the server log says why", other),
    }
}

/// A JSON answer, and whether it came from the cache.
fn json_response(body: Bytes, hit: bool) -> Response {
    crate::http::metrics::cache(hit);
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::HeaderName::from_static("x-mttx-cache"),
                HeaderValue::from_static(if hit { "hit" } else { "miss" }),
            ),
        ],
        body,
    )
        .into_response()
}

fn to_json<T: Serialize>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value).map(Bytes::from).map_err(|e| {
        ApiError::internal(
            "the answer could not be encoded; the server log says why",
            e,
        )
    })
}

/// Answers from the cache when the same account asked the same of the same table version;
/// otherwise computes with `make` (under the same engine read lock, so the version in the
/// key is the version of the answer) and keeps the answer.
async fn cached<T, F>(
    app: &App,
    endpoint: &str,
    account: i64,
    params: &HashMap<String, String>,
    make: F,
) -> Result<Response, ApiError>
where
    T: Serialize,
    F: AsyncFnOnce(&Engine) -> Result<T, ApiError>,
{
    let engine = app.engine.read().await;
    let key = Answers::key(
        endpoint,
        account,
        (engine.generation(), engine.version()),
        params,
    );
    if let Some(body) = app.answers.get(&key) {
        return Ok(json_response(body, true));
    }
    let body = to_json(&make(&engine).await?)?;
    app.answers.put(key, body.clone());
    Ok(json_response(body, false))
}

/// A report of the period against the previous period of equal length.
#[utoipa::path(
    get,
    path = "/api/v1/reports/incidents",
    tag = "reports",
    params(PeriodParams, FilterParams, ReportParams),
    responses(
        (status = 200, description = "The period's metrics, breakdown and trend", body = ReportBody),
        (status = 400, description = "A parameter to fix", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
    )
)]
pub(crate) async fn report(
    AxState(app): AxState<Arc<App>>,
    Account(account): Account,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Asked {
        params,
        period,
        filters,
    } = asked(query.as_deref(), &app.accepted.report)?;
    let group_by = params
        .get("group_by")
        .map(|g| g.parse::<GroupBy>())
        .transpose()
        .map_err(|e| bad(e.to_string()))?;
    let unit = params
        .get("unit")
        .map(|u| u.parse::<mttx_query::Unit>())
        .transpose()
        .map_err(|e| bad(e.to_string()))?;
    cached(&app, "report", account, &params, async |engine: &Engine| {
        let report = engine
            .report(account, &period, group_by, &filters)
            .await
            .map_err(engine_error)?;
        let buckets = match unit {
            None => None,
            Some(unit) => Some(
                engine
                    .trend(account, &period, unit, &filters)
                    .await
                    .map_err(engine_error)?
                    .iter()
                    .map(|(start, m)| BucketBody::new(*start, m))
                    .collect(),
            ),
        };
        Ok(ReportBody {
            account_id: account,
            period: period_body(&period),
            previous_period: period_body(&period.previous()),
            facts_version: engine.version(),
            generation: engine.generation(),
            metrics_version: engine.metrics_version(account),
            total: row_body(&report.account, None),
            group_by: report.group_by,
            groups: report
                .groups
                .iter()
                .map(|g| row_body(g, Some(&report.account)))
                .collect(),
            unit,
            buckets,
        })
    })
    .await
}

/// Noisy alerts: the services and alerts with the most incidents, the highest auto-resolve
/// share, the most flapping, and bursts of similar incidents (titles equal once words with
/// digits are masked) within minutes, on one service or several.
#[utoipa::path(
    get,
    path = "/api/v1/reports/noisy",
    tag = "reports",
    params(PeriodParams, FilterParams, NoisyParams),
    responses(
        (status = 200, description = "The noisy-alerts view", body = NoisyBody),
        (status = 400, description = "A parameter to fix", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
    )
)]
pub(crate) async fn noisy(
    AxState(app): AxState<Arc<App>>,
    Account(account): Account,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Asked {
        params,
        period,
        filters,
    } = asked(query.as_deref(), &app.accepted.noisy)?;
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
    let options = NoisyOptions {
        limit: bounded(&params, "limit", defaults.limit as u64, 1, 100)? as usize,
        flap_seconds,
        burst_gap_seconds: 60
            * bounded(
                &params,
                "burst_minutes",
                (defaults.burst_gap_seconds / 60) as u64,
                1,
                1440,
            )? as i64,
        burst_min: bounded(&params, "burst_min", defaults.burst_min as u64, 2, 10_000)? as usize,
        share_min: defaults.share_min,
    };
    cached(&app, "noisy", account, &params, async |engine: &Engine| {
        let view = engine
            .noisy(account, &period, &filters, &options)
            .await
            .map_err(engine_error)?;
        Ok(NoisyBody {
            account_id: account,
            period: period_body(&period),
            facts_version: engine.version(),
            generation: engine.generation(),
            metrics_version: engine.metrics_version(account),
            view,
        })
    })
    .await
}

/// The incidents behind a number: same period and filters, sorted, keyset paged.
#[utoipa::path(
    get,
    path = "/api/v1/incidents",
    tag = "incidents",
    params(PeriodParams, FilterParams, PageParams),
    responses(
        (status = 200, description = "A page of incidents", body = IncidentsBody),
        (status = 400, description = "A parameter to fix", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
    )
)]
pub(crate) async fn drilldown(
    AxState(app): AxState<Arc<App>>,
    Account(account): Account,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Asked {
        params,
        period,
        filters,
    } = asked(query.as_deref(), &app.accepted.drilldown)?;
    let page = page(&params)?;
    cached(
        &app,
        "incidents",
        account,
        &params,
        async |engine: &Engine| {
            let found = engine
                .drilldown(account, &period, &filters, &page)
                .await
                .map_err(engine_error)?;
            Ok(IncidentsBody {
                account_id: account,
                facts_version: engine.version(),
                generation: engine.generation(),
                metrics_version: engine.metrics_version(account),
                incidents: found.facts,
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
pub(crate) async fn detail(
    AxState(app): AxState<Arc<App>>,
    Account(account): Account,
    id: Result<Path<String>, PathRejection>,
) -> Result<axum::Json<DetailBody>, ApiError> {
    let id = id.map_or_else(|_| String::new(), |Path(id)| id);
    let fact = incident_fact(&app, account, &id).await?;
    let id = fact.incident_id;
    let timeline = timeline(&app, id).await?;
    Ok(axum::Json(DetailBody {
        facts: fact,
        timeline,
    }))
}

/// The account's incident `id` (as given in the path), or a 404 that says so.
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
        .await
        .map_err(engine_error)?
        .ok_or_else(not_found)
}

/// The incident's log entries from the replica, oldest first (None: no replica configured).
pub(crate) async fn timeline(
    app: &App,
    id: i64,
) -> Result<Option<Vec<Entry>>, ApiError> {
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
