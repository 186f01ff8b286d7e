//! A bare Prometheus endpoint, `/metrics` and `/healthz`, for a process that serves no API
//! (the ETL's `--metrics-addr`): `/metrics` answers what the given renderer writes, then
//! the build and process metrics.

use std::net::SocketAddr;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;

/// Serves the counters `render` writes (OpenMetrics text) at `addr` in the background;
/// returns the bound address (port 0 picks a free one).
pub async fn serve(addr: SocketAddr, render: fn() -> String) -> crate::Result<SocketAddr> {
    let listen = |source| crate::Error::Listen { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(listen)?;
    let bound = listener.local_addr().map_err(listen)?;
    let app = Router::new()
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(
                        CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    crate::process_metrics::append_to(render()),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    Ok(bound)
}
