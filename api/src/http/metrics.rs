//! Prometheus counters of the API server: requests by route and status class, latency by
//! route, answer-cache hits and misses, and how current the served facts are
//! (`data_as_of`, and the lag behind it). `/metrics` shows them after the counters of the
//! App's extra renderer, if it has one (an ETL in the same process).

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::App;
use super::error::json_error;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: String,
    /// 2xx, 4xx, 5xx: low cardinality on purpose.
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

type Latency = Family<RouteLabel, Histogram, fn() -> Histogram>;

struct Global {
    requests: Family<RouteStatus, Counter>,
    latency: Latency,
    timeouts: Family<RouteLabel, Counter>,
    cache_hits: Counter,
    cache_misses: Counter,
    data_as_of: Gauge,
    data_lag: Gauge,
    registry: Registry,
}

fn histogram() -> Histogram {
    // 0.25 ms to about 8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

static GLOBAL: LazyLock<Global> = LazyLock::new(|| {
    let requests = Family::<RouteStatus, Counter>::default();
    let latency: Latency = Family::new_with_constructor(histogram);
    let timeouts = Family::<RouteLabel, Counter>::default();
    let cache_hits = Counter::default();
    let cache_misses = Counter::default();
    let data_as_of = Gauge::default();
    let data_lag = Gauge::default();
    let mut registry = Registry::with_prefix("mttx_api");
    registry.register(
        "requests",
        "HTTP requests by route and status class",
        requests.clone(),
    );
    registry.register(
        "request_duration_seconds",
        "Time to answer a request, by route",
        latency.clone(),
    );
    registry.register(
        "request_timeouts",
        "Requests not answered within the request timeout (answered 503, also counted in requests), by route",
        timeouts.clone(),
    );
    registry.register(
        "cache_hits",
        "Answers served from the cache",
        cache_hits.clone(),
    );
    registry.register(
        "cache_misses",
        "Answers computed (not in the cache)",
        cache_misses.clone(),
    );
    registry.register(
        "data_as_of_unix_seconds",
        "The replica time up to which the served facts are complete (data_as_of)",
        data_as_of.clone(),
    );
    registry.register(
        "data_lag_seconds",
        "Seconds from data_as_of to now: how far the served facts trail the replica's last entry",
        data_lag.clone(),
    );
    Global {
        requests,
        latency,
        timeouts,
        cache_hits,
        cache_misses,
        data_as_of,
        data_lag,
        registry,
    }
});

/// Counts an answer served from the cache (true) or computed.
pub fn cache(hit: bool) {
    if hit {
        GLOBAL.cache_hits.inc();
    } else {
        GLOBAL.cache_misses.inc();
    }
}

/// Middleware: answers 503 (the JSON error) to a request not answered within the
/// server's request timeout, and counts each request, its latency and timeouts under its
/// route pattern (never the path itself, which holds ids).
pub async fn track(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let start = Instant::now();
    let response = match tokio::time::timeout(app.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            GLOBAL
                .timeouts
                .get_or_create(&RouteLabel {
                    route: route.clone(),
                })
                .inc();
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the answer took longer than {:?}; ask for a shorter period or fewer groups, or try again",
                    app.request_timeout
                ),
            )
        }
    };
    let status = format!("{}xx", response.status().as_u16() / 100);
    GLOBAL
        .latency
        .get_or_create(&RouteLabel {
            route: route.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
    GLOBAL
        .requests
        .get_or_create(&RouteStatus { route, status })
        .inc();
    response
}

/// Prometheus counters of the server (and of an ETL in the same process).
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()), responses((status = 200, description = "OpenMetrics text", body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
pub(crate) async fn scrape(State(app): State<Arc<App>>) -> impl IntoResponse {
    if let Some(t) = app.engine.read().await.data_as_of() {
        GLOBAL.data_as_of.set(t.timestamp());
        GLOBAL
            .data_lag
            .set((chrono::Utc::now() - t).num_seconds().max(0));
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        render(app.extra_metrics),
    )
}

/// `extra`'s counters (if any), the API's, then the build and process metrics, as one
/// OpenMetrics text.
pub fn render(extra: Option<fn() -> String>) -> String {
    let mut out = extra.map_or_else(String::new, |render| render());
    // One text has one end marker: the API's registry writes it.
    if out.ends_with("# EOF\n") {
        out.truncate(out.len() - "# EOF\n".len());
    }
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &GLOBAL.registry);
    crate::process_metrics::append_to(out)
}
