//! The report API: JSON over HTTP, bearer tokens scoped to one account.
//!
//! `GET /api/v1/reports/incidents?from=2026-10-26&to=2026-11-02&tz=Europe/Berlin&group_by=team`
//! answers the period's aggregates beside the previous period of equal length (absolute and
//! relative deltas) and, with `group_by`, one row per group with the account-wide norm.
//! `/healthz` and `/metrics` need no token. Every error is JSON with a message that says
//! what to fix.
//!
//! A request flows through [`routes`] to a handler of its resource ([`reports`],
//! [`incidents`]): [`auth::Account`] turns its bearer token into an account, [`params`]
//! reads its query string, the handler asks the engine that [`App`] holds (through the
//! answer [`cache`]) and answers with [`wire`] types; any failure is an [`ApiError`]
//! ([`error`]). This module holds [`App`], which opens the served facts generation and
//! follows the table and the state for new versions and generations.

pub mod analytics;
pub mod auth;
pub mod cache;
pub(crate) mod csv_answer;
pub(crate) mod docs;
pub mod error;
pub mod headers;
pub mod incidents;
pub mod limits;
pub mod metrics;
pub mod names;
pub mod openapi;
pub mod params;
pub mod reports;
pub mod request_id;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::Uri;
use axum::routing::get;
use chrono::{DateTime, Utc};
use mttx_query::Engine;
use mttx_replica::Source;
use mttx_state::{Generation, State};
use tokio::sync::RwLock;

use self::auth::Tokens;
use self::cache::Answers;
pub use self::error::ApiError;
use self::params::Accepted;

/// The default size of the answer cache.
pub const CACHE_BYTES: u64 = 256 << 20;

/// How an [`App`] serves: the size of its answer cache, what `/metrics` adds and how long
/// names are kept.
#[derive(Debug, Clone, Copy)]
pub struct AppOptions {
    /// The answer cache's size in bytes (0: no cache). Default [`CACHE_BYTES`].
    pub cache_bytes: u64,
    /// Counters that `/metrics` shows before the API's own, as OpenMetrics text: those of an
    /// ETL running in the same process, say. Default none.
    pub extra_metrics: Option<fn() -> String>,
    /// How long an account's names are kept before the replica is read again. Default
    /// [`names::NAMES_TTL`].
    pub names_ttl: Duration,
    /// The fewest values on either side of a change of a mean or percentile for a verdict.
    /// Default [`mttx_query::DEFAULT_MIN_SAMPLE`].
    pub min_sample: usize,
    /// Mark the session cookie `Secure` and send HSTS (the server is reached over HTTPS).
    pub cookie_secure: bool,
    /// Trust `X-Forwarded-For`, `-Proto` and `-Host` from a proxy in front: the client's
    /// address for the sign-in rate limit, and HTTPS (a `Secure` cookie, HSTS) when the
    /// proxy says so.
    pub trust_proxy: bool,
    /// How long a request may take before it is answered 503 (and counted as timed out).
    /// Default [`REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
}

/// How long a request may take by default.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            cache_bytes: CACHE_BYTES,
            extra_metrics: None,
            names_ttl: names::NAMES_TTL,
            min_sample: mttx_query::DEFAULT_MIN_SAMPLE,
            cookie_secure: false,
            trust_proxy: false,
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

/// What the handlers share.
#[derive(Debug)]
pub struct App {
    pub(crate) engine: RwLock<Engine>,
    /// The `--facts` location: generation 1, and where new generations are built beside.
    base: String,
    pub(crate) state: State,
    /// The replica, for incident timelines (None: detail without timeline).
    pub(crate) source: Option<Source>,
    answers: Answers,
    tokens: Tokens,
    names: names::Names,
    pub(crate) accepted: Accepted,
    extra_metrics: Option<fn() -> String>,
    min_sample: usize,
    /// Set when the server starts to stop: `/readyz` answers 503 from then on.
    draining: std::sync::atomic::AtomicBool,
    /// How the server is reached: behind TLS, behind a proxy.
    pub(crate) reach: Reach,
    /// Sign-in attempts by client address.
    pub(crate) login_limit: crate::dashboard::LoginLimit,
    /// How long a request may take.
    pub(crate) request_timeout: Duration,
}

/// How the server is reached (from [`AppOptions`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Reach {
    pub cookie_secure: bool,
    pub trust_proxy: bool,
}

impl Reach {
    /// Whether `headers` came over HTTPS: always with `cookie_secure`, else when a
    /// trusted proxy says so.
    pub fn https(&self, headers: &axum::http::HeaderMap) -> bool {
        self.cookie_secure
            || (self.trust_proxy
                && headers
                    .get("x-forwarded-proto")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|p| p.eq_ignore_ascii_case("https")))
    }
}

impl App {
    /// Says the server is stopping: `/readyz` answers 503 so load balancers stop sending
    /// requests; the requests already here are still answered.
    pub fn drain(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Opens the facts table for serving.
    pub async fn open(
        facts: &str,
        state: State,
        source: Option<Source>,
        options: AppOptions,
    ) -> crate::Result<Arc<Self>> {
        let engine = open_served(&state, facts)
            .await?
            .with_min_sample(options.min_sample);
        Ok(Arc::new(Self {
            engine: RwLock::new(engine),
            base: facts.to_owned(),
            state,
            source,
            answers: Answers::new(options.cache_bytes),
            tokens: Tokens::default(),
            names: names::Names::new(options.names_ttl),
            accepted: params::accepted(),
            extra_metrics: options.extra_metrics,
            min_sample: options.min_sample,
            draining: std::sync::atomic::AtomicBool::new(false),
            reach: Reach {
                cookie_secure: options.cookie_secure,
                trust_proxy: options.trust_proxy,
            },
            login_limit: crate::dashboard::LoginLimit::default(),
            request_timeout: options.request_timeout,
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
                match app.state.serving(&app.base).await {
                    Ok(g) if g.id != serving => match open_generation(&app.state, &g).await {
                        Ok(next) => {
                            let next = next.with_min_sample(app.min_sample);
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
                // How current the facts are is read before the table: the ETL records it
                // after its commit, so it never runs ahead of the version served.
                let mut next = app.engine.read().await.clone();
                let before = (next.version(), next.data_as_of());
                if let Some(at) = freshness(&app.state, &next).await {
                    next.set_data_as_of(at);
                }
                match next.refresh().await {
                    Ok(()) if (next.version(), next.data_as_of()) != before => {
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

/// How current the engine's table is, as its ETL recorded it in the state: Some(None)
/// when nothing is recorded; None when it could not be read (logged; keep what is known).
async fn freshness(state: &State, engine: &Engine) -> Option<Option<DateTime<Utc>>> {
    let id = engine.table_id()?;
    match state.freshness(&id).await {
        Ok(f) => Some(f.and_then(|f| f.data_as_of)),
        Err(e) => {
            tracing::warn!(error = %e, "could not read how current the facts are");
            None
        }
    }
}

/// An engine over the facts generation the state says is served (the first time:
/// `facts` itself, as generation 1), saying how current it is.
pub async fn open_served(state: &State, facts: &str) -> crate::Result<Engine> {
    open_generation(state, &state.serving(facts).await?).await
}

/// An engine over one facts generation.
async fn open_generation(state: &State, g: &Generation) -> crate::Result<Engine> {
    // Registers the object stores compiled in, or says which feature a URL needs.
    let url = mttx_facts::table_url(&g.location)?;
    let mut engine = Engine::open(url.as_str())
        .await?
        .serving(g.id, g.versions());
    if let Some(at) = freshness(state, &engine).await {
        engine.set_data_as_of(at);
    }
    Ok(engine)
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, description = "The server is up", body = String)))]
pub(crate) async fn health() -> &'static str {
    "ok\n"
}

/// Readiness: whether a load balancer should send this server requests. 200 while the facts
/// are open and the state database answers; 503 once the server is draining for a stop,
/// or when the state does not answer.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()), responses(
    (status = 200, description = "Ready: the facts are open and the state answers", body = String),
    (status = 503, description = "Not ready: draining for a stop, or the state database does not answer", body = wire::ErrorBody),
))]
pub(crate) async fn ready(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    // Not ready is a normal state (a drain, a state restart): answered, not logged as an error.
    let not_ready = |message: &str| {
        error::json_error(axum::http::StatusCode::SERVICE_UNAVAILABLE, message.into())
    };
    if app.draining.load(std::sync::atomic::Ordering::SeqCst) {
        return not_ready("draining: this server is stopping; send requests to another");
    }
    if let Err(e) = app.state.ping().await {
        tracing::warn!(error = %e, "not ready: the state database does not answer");
        return not_ready("not ready: the state database does not answer");
    }
    let version = app.engine.read().await.version();
    format!("ready (facts version {version})\n").into_response()
}

/// The API's routes: `/api/v1/…`, the document and its reference page, liveness and the
/// counters.
pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics::scrape))
        .route("/openapi.json", get(openapi::document))
        .merge(docs::routes())
        .route("/api/v1/reports/incidents", get(reports::report))
        .route("/api/v1/reports/noisy", get(reports::noisy))
        .route("/api/v1/incidents", get(incidents::drilldown))
        .route("/api/v1/incidents/{id}", get(incidents::detail))
        .merge(analytics::routes())
}

/// Any path no route takes: a 404 that points at the document.
pub(crate) async fn nothing_here(uri: Uri) -> ApiError {
    ApiError::NotFound(format!(
        "there is nothing at {uri}; the endpoints are listed at /openapi.json"
    ))
}
