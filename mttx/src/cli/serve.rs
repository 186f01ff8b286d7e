//! `mttx serve`: the report API and dashboard over the served facts generation.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use super::{Places, shutdown_on_signal};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "MTTX_LISTEN")]
    listen: SocketAddr,
    /// Memory for cached answers, in MiB (0: compute every answer). Answers are keyed
    /// by account, parameters and facts table version, so none is ever stale.
    #[arg(long, default_value_t = 256, env = "MTTX_CACHE_MIB")]
    cache_mib: u64,
    /// How long a request may take before it is answered 503 (counted in
    /// mttx_api_request_timeouts_total), in seconds.
    #[arg(long, default_value_t = 30.0, env = "MTTX_REQUEST_TIMEOUT_SECONDS")]
    request_timeout_seconds: f64,
    #[command(flatten)]
    stop: StopArgs,
}

/// How a server stops, and how it is reached.
#[derive(Debug, Clone, Copy, Args)]
pub struct StopArgs {
    /// On SIGTERM or SIGINT, how long to keep answering the requests already received
    /// before exiting anyway (new connections are refused at once and /readyz says 503).
    #[arg(long, default_value_t = 30, env = "MTTX_SHUTDOWN_SECONDS")]
    shutdown_seconds: u64,
    /// The dashboard is reached over HTTPS: mark its session cookie `Secure` and send HSTS.
    #[arg(long, env = "MTTX_COOKIE_SECURE")]
    pub cookie_secure: bool,
    /// Trust X-Forwarded-For/-Proto/-Host from a proxy in front (the client address of
    /// the sign-in rate limit; `Secure` cookies and HSTS when it says https). Only behind a
    /// proxy that sets them.
    #[arg(long, env = "MTTX_TRUST_PROXY")]
    pub trust_proxy: bool,
}

pub async fn run(places: &Places, args: ServeArgs) -> anyhow::Result<()> {
    let request_timeout = Duration::try_from_secs_f64(args.request_timeout_seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            super::usage(format!(
                "--request-timeout-seconds {}: give a number of seconds above 0, like 30 or 0.5",
                args.request_timeout_seconds
            ))
        })?;
    let state = places.open_state().await?;
    let replica = places.replica(4).await?;
    let options = mttx_api::AppOptions {
        request_timeout,
        cache_bytes: args.cache_mib << 20,
        extra_metrics: Some(mttx_etl::metrics::render),
        min_sample: places.min_sample,
        cookie_secure: args.stop.cookie_secure,
        trust_proxy: args.stop.trust_proxy,
        ..Default::default()
    };
    let app = mttx_api::App::open(&places.facts, state, Some(replica), options).await?;
    serve_until_stopped(app, args.listen, args.stop, |bound| {
        tracing::info!(
            "serving the report API at http://{bound}/api/v1/reports/incidents (document: /openapi.json)"
        );
        eprintln!("listening on http://{bound}");
    })
    .await
}

/// Serves `app` at `listen`, following the served facts, until SIGTERM or SIGINT (or the
/// server stops by itself); `announce` is told the bound address. On the signal the
/// server drains: /readyz answers 503, no new connection is accepted, and the requests
/// already received are answered for up to `--shutdown-seconds` before it returns.
pub async fn serve_until_stopped(
    app: std::sync::Arc<mttx_api::App>,
    listen: SocketAddr,
    stop: StopArgs,
    announce: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    app.follow(Duration::from_secs(1));
    let shutdown = shutdown_on_signal("stopping the server: answering the requests in flight");
    let drained = {
        let (shutdown, app) = (shutdown.clone(), app.clone());
        async move {
            shutdown.cancelled().await;
            app.drain();
        }
    };
    let (bound, task) = mttx_api::serve_until(listen, mttx_api::app(app), drained)
        .await
        .map_err(|e| anyhow::Error::new(e).context("--listen"))?;
    announce(bound);
    let mut task = std::pin::pin!(task);
    tokio::select! {
        _ = &mut task => return Ok(()),
        _ = shutdown.cancelled() => {}
    }
    let grace = Duration::from_secs(stop.shutdown_seconds);
    match tokio::time::timeout(grace, task).await {
        Ok(_) => tracing::info!("stopped: every request received was answered"),
        Err(_) => tracing::warn!(
            "stopped after {} s (--shutdown-seconds) with requests still running",
            grace.as_secs()
        ),
    }
    Ok(())
}
