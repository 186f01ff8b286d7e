//! mttx's outward face: the report API ([`http`]), the dashboard ([`dashboard`]) and the
//! weekly report ([`weekly`]), all over one facts engine held by an [`App`]. [`app`] is
//! the whole server as one router; [`serve`] puts a router on a socket. The `mttx`
//! binary (crate `mttx`) calls these.
//!
//! Dependencies point one way: `dashboard → http, weekly`; `http` and `weekly` know
//! neither of the others; the report shapes all three answer in are in [`body`], and the
//! names they show beside ids in [`named`].

pub mod body;
pub mod dashboard;
mod error;
pub mod export;
pub mod http;
pub mod metrics_server;
pub mod named;
pub mod process_metrics;
mod server;
pub mod weekly;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;

pub use error::{Error, Result};
pub use http::{App, AppOptions, CACHE_BYTES, REQUEST_TIMEOUT, open_served};

/// The whole server over `app`: the API's routes and the dashboard's pages, a JSON 404
/// for anything else, security headers on every answer, and around them a 64 KiB body
/// limit, compression, the request counters with the request timeout (503 after
/// [`AppOptions::request_timeout`], counted), request tracing, one error shape (JSON) for
/// every refusal ([`http::limits`]) and, outermost, a request id ([`http::request_id`]).
pub fn app(app: Arc<App>) -> Router {
    http::routes()
        .merge(dashboard::routes())
        .fallback(http::nothing_here)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            http::headers::secure,
        ))
        .with_state(app.clone())
        .layer(tower_http::limit::RequestBodyLimitLayer::new(64 * 1024))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(axum::middleware::from_fn_with_state(
            app,
            http::metrics::track,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn(http::limits::one_error_shape))
        .layer(axum::middleware::from_fn(http::request_id::tag))
}

/// Serves `router` at `addr` until the process ends; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    serve_until(addr, router, std::future::pending()).await
}

/// Serves `router` at `addr` until `stop` completes, then stops gracefully: no new
/// connections are accepted, idle ones are closed, and every request already received is
/// answered before the returned task ends. Returns the bound address and that task.
pub async fn serve_until(
    addr: SocketAddr,
    router: Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listen = |source| Error::Listen { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(listen)?;
    let bound = listener.local_addr().map_err(listen)?;
    let task = tokio::spawn(server::run(listener, router, stop));
    Ok((bound, task))
}
