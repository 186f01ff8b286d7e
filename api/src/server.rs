//! The report API: JSON over HTTP, bearer tokens scoped to one account.
//!
//! `GET /api/v1/reports/incidents?from=2026-10-26&to=2026-11-02&tz=Europe/Berlin&group_by=team`
//! answers the period's aggregates beside the previous period of equal length (absolute and
//! relative deltas) and, with `group_by`, one row per group with the account-wide norm.
//! `/healthz` and `/metrics` need no token. Every error is JSON with a message that says
//! what to fix.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mttx_etl::sink::state::{State, TokenCheck};
use mttx_etl::source::Source;
use mttx_query::{Compared, Engine, Filters, GroupBy, Page, Period, Row, Sort};
use serde_json::{Value, json};
use tokio::sync::RwLock;

/// The longest period a report may cover.
pub const MAX_DAYS: u64 = 400;

/// What the handlers share.
#[derive(Debug)]
pub struct App {
    engine: RwLock<Engine>,
    state: State,
    /// The replica, for incident timelines (None: detail without timeline).
    source: Option<Source>,
}

/// An error as the API answers it.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "status": self.0.as_u16(), "message": self.1 } });
        (self.0, axum::Json(body)).into_response()
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

impl App {
    /// Opens the facts table for serving.
    pub async fn open(
        facts: &str,
        state: State,
        source: Option<Source>,
    ) -> anyhow::Result<Arc<Self>> {
        let engine = Engine::open(facts).await?;
        Ok(Arc::new(Self {
            engine: RwLock::new(engine),
            state,
            source,
        }))
    }

    /// Follows the table: new facts are served within `every` of their commit.
    pub fn follow(self: &Arc<Self>, every: Duration) {
        let app = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(app) = app.upgrade() else { return };
                if let Err(e) = app.engine.write().await.refresh().await {
                    tracing::warn!(error = %e, "could not refresh the facts table");
                }
            }
        });
    }
}

/// The API's routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/reports/incidents", get(report))
        .route("/api/v1/incidents", get(drilldown))
        .route("/api/v1/incidents/{id}", get(detail))
        .fallback(|uri: axum::http::Uri| async move {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("there is nothing at {uri}; reports are at /api/v1/reports/incidents"),
            )
        })
        .with_state(app)
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

async fn metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        mttx_etl::metrics::render(),
    )
}

/// The account of the request's bearer token.
async fn account(app: &App, headers: &HeaderMap) -> Result<i64, ApiError> {
    let unauthorized = |m: &str| ApiError(StatusCode::UNAUTHORIZED, m.to_owned());
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "send `Authorization: Bearer <token>`; create a token with `mttx token create --account <id>`",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| unauthorized("the Authorization header must read `Bearer <token>`"))?;
    match app.state.check_token(token).await {
        Ok(TokenCheck::Account(a)) => Ok(a),
        Ok(TokenCheck::Unknown) => Err(unauthorized(
            "this token is not known; create one with `mttx token create`",
        )),
        Ok(TokenCheck::Expired) => Err(unauthorized(
            "this token has expired; create a new one with `mttx token create`",
        )),
        Ok(TokenCheck::Revoked) => Err(unauthorized(
            "this token has been revoked; create a new one with `mttx token create`",
        )),
        Err(e) => {
            tracing::error!(error = %e, "token check failed");
            Err(ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot check tokens right now; try again".into(),
            ))
        }
    }
}

const PERIOD_PARAMS: [&str; 3] = ["from", "to", "tz"];
const FILTER_PARAMS: [&str; 7] = [
    "team",
    "service",
    "escalation_policy",
    "responder",
    "urgency",
    "priority",
    "major",
];

/// Refuses parameters the endpoint does not know, naming the ones it does.
fn known(params: &HashMap<String, String>, extra: &[&str]) -> Result<(), ApiError> {
    let all: Vec<&str> = PERIOD_PARAMS
        .iter()
        .chain(FILTER_PARAMS.iter())
        .chain(extra)
        .copied()
        .collect();
    match params.keys().find(|k| !all.contains(&k.as_str())) {
        Some(k) => Err(bad(format!(
            "unknown parameter `{k}`: use {}",
            all.join(", ")
        ))),
        None => Ok(()),
    }
}

fn period(params: &HashMap<String, String>) -> Result<Period, ApiError> {
    let tz_name = params.get("tz").map_or("UTC", String::as_str);
    let tz: chrono_tz::Tz = tz_name.parse().map_err(|_| {
        bad(format!(
            "unknown time zone `{tz_name}`: use an IANA name such as Europe/Berlin"
        ))
    })?;
    let (from, to) = (date(params, "from")?, date(params, "to")?);
    Period::new(tz, from, to, MAX_DAYS).map_err(|e| bad(e.to_string()))
}

fn id_param(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
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

fn filters(params: &HashMap<String, String>) -> Result<Filters, ApiError> {
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
    let major = params
        .get("major")
        .map(|m| match m.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(bad(format!("`major` = `{m}`: use true or false"))),
        })
        .transpose()?;
    Ok(Filters {
        team: id_param(params, "team")?,
        service: id_param(params, "service")?,
        escalation_policy: id_param(params, "escalation_policy")?,
        responder: id_param(params, "responder")?,
        urgency,
        priority,
        major,
    })
}

fn engine_error(e: mttx_query::Error) -> ApiError {
    match e {
        mttx_query::Error::BadRequest(m) => bad(m),
        other => {
            tracing::error!(error = ?other, "query failed");
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the query failed; the server log says why".into(),
            )
        }
    }
}

fn date(params: &HashMap<String, String>, name: &str) -> Result<chrono::NaiveDate, ApiError> {
    let v = params
        .get(name)
        .ok_or_else(|| bad(format!("`{name}` is required: a date like 2026-10-26")))?;
    v.parse()
        .map_err(|_| bad(format!("`{name}` = `{v}` is not a date like 2026-10-26")))
}

fn compared_json(c: &Compared, norm: Option<Option<f64>>) -> Value {
    let mut v = json!({
        "value": c.value, "previous": c.previous, "delta": c.delta, "delta_ratio": c.delta_ratio,
    });
    if let Some(norm) = norm {
        v["norm"] = json!(norm);
    }
    v
}

fn row_json(row: &Row, norm: Option<&Row>) -> Value {
    let norms: HashMap<&str, Option<f64>> = norm
        .map(|n| n.current.values().into_iter().collect())
        .unwrap_or_default();
    let metrics: serde_json::Map<String, Value> = row
        .compared()
        .into_iter()
        .map(|(name, c)| {
            let n = norm.map(|_| norms.get(name).copied().flatten());
            (name.to_owned(), compared_json(&c, n))
        })
        .collect();
    json!({ "key": row.key, "metrics": metrics })
}

async fn report(
    AxState(app): AxState<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<axum::Json<Value>, ApiError> {
    let account = account(&app, &headers).await?;
    known(&params, &["group_by", "unit"])?;
    let period = period(&params)?;
    let filters = filters(&params)?;
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
    let engine = app.engine.read().await;
    let report = engine
        .report(account, &period, group_by, &filters)
        .await
        .map_err(engine_error)?;
    let buckets: Option<Vec<Value>> = match unit {
        None => None,
        Some(unit) => Some(
            engine
                .trend(account, &period, unit, &filters)
                .await
                .map_err(engine_error)?
                .into_iter()
                .map(|(start, m)| {
                    let values: serde_json::Map<String, Value> = m
                        .values()
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), json!(v)))
                        .collect();
                    json!({ "start": start, "metrics": values })
                })
                .collect(),
        ),
    };
    let previous = period.previous();
    let groups: Vec<Value> = report
        .groups
        .iter()
        .map(|g| row_json(g, Some(&report.account)))
        .collect();
    Ok(axum::Json(json!({
        "account_id": account,
        "period": { "from": period.from, "to": period.to, "tz": period.tz.name() },
        "previous_period": { "from": previous.from, "to": previous.to, "tz": period.tz.name() },
        "facts_version": engine.version(),
        "total": row_json(&report.account, None),
        "group_by": report.group_by,
        "groups": groups,
        "unit": unit,
        "buckets": buckets,
    })))
}

/// The incidents behind a number: same period and filters, sorted, keyset paged.
async fn drilldown(
    AxState(app): AxState<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<axum::Json<Value>, ApiError> {
    let account = account(&app, &headers).await?;
    known(&params, &["sort", "after", "limit"])?;
    let period = period(&params)?;
    let filters = filters(&params)?;
    let sort_text = params.get("sort").map_or("-created_at", String::as_str);
    let (descending, name) = match sort_text.strip_prefix('-') {
        Some(n) => (true, n),
        None => (false, sort_text),
    };
    let sort = match name {
        "created_at" => Sort::CreatedAt,
        "time_to_ack" => Sort::TimeToAck,
        "time_to_resolve" => Sort::TimeToResolve,
        _ => {
            return Err(bad(format!(
                "`sort` = `{sort_text}`: use created_at, time_to_ack or time_to_resolve, with a leading - for descending"
            )));
        }
    };
    let limit = match params.get("limit") {
        None => 50,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| bad(format!("`limit` = `{l}`: use a number from 1 to 1000")))?,
    };
    let page = Page {
        sort,
        descending,
        limit,
        after: params.get("after").cloned(),
    };
    let engine = app.engine.read().await;
    let found = engine
        .drilldown(account, &period, &filters, &page)
        .await
        .map_err(engine_error)?;
    Ok(axum::Json(json!({
        "account_id": account,
        "facts_version": engine.version(),
        "incidents": found.facts,
        "next": found.next,
    })))
}

/// One incident: its facts and its log timeline from the replica. 404 for any incident
/// that is not the token's account's.
async fn detail(
    AxState(app): AxState<Arc<App>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let account = account(&app, &headers).await?;
    let not_found = || {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no incident {id} in this account"),
        )
    };
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let fact = app
        .engine
        .read()
        .await
        .incident(account, id)
        .await
        .map_err(engine_error)?
        .ok_or_else(not_found)?;
    let timeline = match &app.source {
        Some(source) => {
            let mut logs = source.logs(&[id]).await.map_err(|e| {
                tracing::error!(error = %e, "reading a timeline failed");
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the replica cannot be read right now; try again".into(),
                )
            })?;
            let mut entries = logs.remove(&id).map(|(_, e)| e).unwrap_or_default();
            entries.sort_by_key(|e| (e.created_at, e.id));
            json!(entries)
        }
        None => Value::Null,
    };
    Ok(axum::Json(json!({ "facts": fact, "timeline": timeline })))
}
